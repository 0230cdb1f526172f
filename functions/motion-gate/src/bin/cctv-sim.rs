//! `cctv-sim`: serves the simulated cameras of a registry as MJPEG streams,
//! or writes one camera's frames to a folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use safecity_motion_gate::Registry;
use safecity_motion_gate::logging;
use safecity_motion_gate::scene::Scene;
use safecity_motion_gate::sim::{CctvSim, SimCamera, SimMode, write_frames};
use safecity_motion_gate::source::SourceUrl;
use safecity_runtime::config::LogFormat;
use safecity_runtime::shutdown;

/// Logical CCTV cameras for safecity.
#[derive(Debug, Parser)]
#[command(name = "cctv-sim", version, about)]
struct Args {
    /// Camera registry (TOML); cameras' `sim` tables script their scenes.
    #[arg(long, env = "SAFECITY_GATE_REGISTRY")]
    registry: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every camera with an http:// source on its URL's host:port (default).
    Serve {
        /// Only this region's cameras.
        #[arg(long)]
        region: Option<String>,
        /// live: join a running clock; replay: every connection starts at frame 0.
        #[arg(long, value_enum, default_value = "live")]
        mode: SimMode,
    },
    /// Write frames of one camera to a folder (for the gate's dir:// source).
    Write {
        /// Camera id.
        #[arg(long)]
        camera: String,
        /// Number of frames.
        #[arg(long, default_value_t = 300)]
        frames: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(LogFormat::Text);
    let registry = Registry::load(&args.registry)?;
    match args.command.unwrap_or(Command::Serve {
        region: None,
        mode: SimMode::Live,
    }) {
        Command::Write {
            camera,
            frames,
            out,
        } => {
            let entry = registry
                .cameras
                .iter()
                .find(|c| c.id == camera)
                .with_context(|| format!("no camera `{camera}` in the registry"))?;
            let scene = Scene::new(entry.sim.clone().unwrap_or_default())?;
            write_frames(&scene, &out, frames)?;
            println!("wrote {frames} frames of {camera} to {}", out.display());
        }
        Command::Serve { region, mode } => {
            let mut by_addr: BTreeMap<String, Vec<SimCamera>> = BTreeMap::new();
            for entry in &registry.cameras {
                if region.as_ref().is_some_and(|r| *r != entry.region) {
                    continue;
                }
                let Ok(SourceUrl::Http {
                    authority, path, ..
                }) = entry.source_url()
                else {
                    continue;
                };
                let scene = Scene::new(entry.sim.clone().unwrap_or_default())
                    .with_context(|| format!("scene of camera `{}`", entry.id))?;
                by_addr.entry(authority).or_default().push(SimCamera {
                    id: entry.id.clone(),
                    path,
                    scene: Arc::new(scene),
                });
            }
            if by_addr.is_empty() {
                bail!("no camera with an http:// source to simulate");
            }
            let cancel = shutdown::on_signals();
            let mut servers = Vec::new();
            for (authority, cameras) in by_addr {
                let addr: SocketAddr = authority
                    .parse()
                    .with_context(|| format!("`{authority}` is not an IP:port to bind"))?;
                let ids: Vec<String> = cameras
                    .iter()
                    .map(|c| format!("http://{addr}{}", c.path))
                    .collect();
                servers.push(CctvSim::bind(addr, cameras, mode, cancel.clone()).await?);
                for url in ids {
                    println!("serving {url}");
                }
            }
            for server in servers {
                server.wait().await;
            }
        }
    }
    Ok(())
}
