fn main() -> std::process::ExitCode {
    smmctl::main_entry()
}
