//! The `cctv-sim` command: serve a registry's simulated cameras as MJPEG
//! streams, or write one camera's frames to a folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::registry::SimRegistry;
use crate::scene::Scene;
use crate::server::{CctvSim, SimCamera, SimMode, write_frames};

/// Logical CCTV cameras for safecity.
#[derive(Debug, Parser)]
#[command(name = "cctv-sim", version, about)]
pub struct Args {
    /// Camera registry (TOML); cameras' `sim` tables script their scenes.
    #[arg(long, env = "SAFECITY_GATE_REGISTRY")]
    pub registry: PathBuf,
    /// What to do (default: serve every camera).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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

/// Runs the command until it is done or `cancel` fires.
pub async fn run(args: Args, cancel: CancellationToken) -> anyhow::Result<()> {
    let registry = SimRegistry::load(&args.registry)?;
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
                .camera(&camera)
                .with_context(|| format!("no camera `{camera}` in the registry"))?;
            write_frames(&Scene::new(entry.scene_spec())?, &out, frames)?;
            println!("wrote {frames} frames of {camera} to {}", out.display());
        }
        Command::Serve { region, mode } => {
            serve(&registry, region.as_deref(), mode, cancel).await?
        }
    }
    Ok(())
}

/// Groups the cameras to serve by listen address.
fn cameras_by_address(
    registry: &SimRegistry,
    region: Option<&str>,
) -> anyhow::Result<BTreeMap<SocketAddr, Vec<SimCamera>>> {
    let mut by_addr: BTreeMap<SocketAddr, Vec<SimCamera>> = BTreeMap::new();
    for entry in &registry.cameras {
        if region.is_some_and(|r| r != entry.region) {
            continue;
        }
        let Some(endpoint) = entry.http_endpoint() else {
            continue;
        };
        let (addr, path) = endpoint.map_err(anyhow::Error::msg)?;
        let scene = Scene::new(entry.scene_spec())
            .with_context(|| format!("scene of camera `{}`", entry.id))?;
        by_addr.entry(addr).or_default().push(SimCamera {
            id: entry.id.clone(),
            path,
            scene: Arc::new(scene),
        });
    }
    if by_addr.is_empty() {
        bail!("no camera with an http:// source to simulate");
    }
    Ok(by_addr)
}

async fn serve(
    registry: &SimRegistry,
    region: Option<&str>,
    mode: SimMode,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for (addr, cameras) in cameras_by_address(registry, region)? {
        let urls: Vec<String> = cameras
            .iter()
            .map(|c| format!("http://{addr}{}", c.path))
            .collect();
        servers.push(CctvSim::bind(addr, cameras, mode, cancel.clone()).await?);
        for url in urls {
            println!("serving {url}");
        }
    }
    for server in servers {
        server.wait().await;
    }
    Ok(())
}
