//! The signal that stops the workers.

use tokio::sync::watch;

use super::LOG_TARGET;

/// Stops the workers on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!(target: LOG_TARGET, "cannot listen for SIGTERM/SIGINT; stop the workers with SIGKILL");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!(target: LOG_TARGET, "SIGTERM: draining"),
                _ = int.recv() => tracing::info!(target: LOG_TARGET, "SIGINT: draining"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}
