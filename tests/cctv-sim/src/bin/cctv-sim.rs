//! `cctv-sim`: serves the simulated cameras of a registry as MJPEG streams,
//! or writes one camera's frames to a folder.

use clap::Parser as _;
use safecity_cctv_sim::cli::{Args, run};
use safecity_shell::{LogFormat, signals, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(LogFormat::Text);
    run(args, signals::on_signals()).await
}
