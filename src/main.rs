use std::io::Write as _;

fn main() {
    let code = i32::from(smmctl::main_entry().code());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // The Kafka clients are never destroyed, so the C library's exit
    // handlers must not run: see `exit_without_cleanup`.
    smm_kafka_ffi::process::exit_without_cleanup(code)
}
