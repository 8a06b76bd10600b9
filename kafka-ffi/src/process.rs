//! Ending the process once a command has finished.

/// Ends the process with `code` at once, without running the C library's
/// exit handlers.
///
/// smmctl's Kafka clients are deliberately never destroyed (destroying one
/// waits on brokers that may be gone), so their threads are still running
/// at exit, and OpenSSL's exit handler would free TLS state under a thread
/// still in a handshake: an intermittent crash after the command had
/// finished. The caller flushes its own buffered output first; nothing
/// else needs running at exit.
pub fn exit_without_cleanup(code: i32) -> ! {
    // SAFETY: _exit only ends the process. It touches no Rust state, and
    // the caller has flushed the output it buffered.
    unsafe { libc::_exit(code) }
}
