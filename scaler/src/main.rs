//! The `safecity-scaler` binary: reads the configuration, starts the scaler,
//! stops gracefully (streams end with OK) on SIGTERM/SIGINT.

use anyhow::Context as _;
use safecity_scaler::ScalerConfig;
use safecity_shell::{signals, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ScalerConfig::from_env().context("invalid configuration")?;
    telemetry::init(config.log_format);
    tracing::info!(config = ?config, "starting");
    let scaler = safecity_scaler::start(config, signals::on_signals())
        .await
        .context("cannot start")?;
    scaler.wait().await.context("gRPC server failed")
}
