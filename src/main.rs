// Output goes through `smmctl::output::Printer`: see src/lib.rs.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;

fn main() {
    let code = i32::from(smmctl::main_entry().code());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Leave without running the C library's exit handlers. The Kafka
    // clients are deliberately never destroyed (destroying one waits on
    // brokers that may be gone), so their threads are still running, and
    // OpenSSL's exit handler would free TLS state under a thread still in a
    // handshake: an intermittent crash after the command had finished.
    // SAFETY: _exit only ends the process; Rust's buffered output was
    // flushed above and nothing else needs running at exit.
    unsafe { libc::_exit(code) }
}
