//! SIGTERM and SIGINT as a cancellation token: the one shutdown signal of a process.

use tokio_util::sync::CancellationToken;
use tracing::info;

/// Returns a token that fires on the first SIGTERM or SIGINT (Ctrl-C).
///
/// Must be called inside a tokio runtime. A second signal does not cut the
/// drain short: each component's own grace period bounds how long it takes.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let name = wait_for_signal().await;
        info!(signal = name, "shutdown requested");
        fire.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
