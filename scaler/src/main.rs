//! The `safecity-scaler` binary: reads the configuration, starts the scaler,
//! stops gracefully on SIGTERM/SIGINT.

use anyhow::Context as _;
use safecity_scaler::ScalerConfig;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = ScalerConfig::from_env().context("invalid configuration")?;
    tracing::info!(config = ?config, "starting");
    let cancel = CancellationToken::new();
    let scaler = safecity_scaler::start(config, cancel.clone())
        .await
        .context("cannot start")?;
    let signals = cancel.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: ending streams with OK");
        signals.cancel();
    });
    scaler.wait().await.context("gRPC server failed")?;
    Ok(())
}
