//! `motion-gate --registry cameras.toml --region seoul`: gates one region's cameras.

use anyhow::Context as _;
use clap::Parser as _;
use safecity_motion_gate::{GateArgs, Registry, start};
use safecity_shell::{signals, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = GateArgs::parse();
    let registry_path = args.registry.clone();
    let config = args.into_config()?;
    telemetry::init(config.log_format);
    let registry = Registry::load(&registry_path)?;
    let gate = start(config, &registry, signals::on_signals())
        .await
        .context("starting the motion gate")?;
    gate.wait().await;
    Ok(())
}
