//! Starting a whole gate: one task per camera of the region, one publisher,
//! the HTTP endpoints; stopping them on cancellation.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry as MetricsRegistry;
use safecity_shell::ops::{self, Ops, Readiness};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::camera::CameraTask;
use crate::config::GateConfig;
use crate::gate::{CameraGate, GateError};
use crate::metrics::GateMetrics;
use crate::publisher::{self, FrameBuffer};
use crate::registry::{Registry, source_url};

/// Why a gate did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry has no camera in the region.
    #[error("the registry has no camera in region `{0}`")]
    EmptyRegion(String),
    /// A camera's parameters or source are invalid.
    #[error("camera `{camera}`: {reason}")]
    Camera {
        /// Camera id.
        camera: String,
        /// Why.
        reason: String,
    },
    /// The HTTP port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A started gate.
#[derive(Debug)]
pub struct RunningGate {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// The gate's metrics.
    pub metrics: Arc<GateMetrics>,
    /// The frames waiting for the broker.
    pub buffer: Arc<FrameBuffer>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningGate {
    /// Stops everything (same as cancelling the token given to [`start`]).
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Waits until every task has ended (after cancellation).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts gating `config.region`'s cameras of `registry`.
pub async fn start(
    config: GateConfig,
    registry: &Registry,
    cancel: CancellationToken,
) -> Result<RunningGate, StartError> {
    let cameras = registry.region(&config.region);
    if cameras.is_empty() {
        return Err(StartError::EmptyRegion(config.region.clone()));
    }
    let mut metrics_registry = MetricsRegistry::default();
    let metrics = Arc::new(GateMetrics::new(&mut metrics_registry));
    let buffer = Arc::new(FrameBuffer::new(config.buffer_frames));
    let connected = Readiness::new("ready", "broker not connected");
    let mut tasks = JoinSet::new();
    let mut camera_tasks = Vec::new();
    for entry in cameras {
        let camera_error = |reason: String| StartError::Camera {
            camera: entry.id.clone(),
            reason,
        };
        let source = source_url(entry).map_err(camera_error)?;
        let gate = CameraGate::new(
            entry.camera(),
            entry.mask_polygons(),
            &registry.gate,
            config.output,
            metrics.clone(),
        )
        .map_err(|e: GateError| camera_error(e.to_string()))?;
        camera_tasks.push(CameraTask::new(
            gate,
            source,
            config.camera,
            buffer.clone(),
            metrics.clone(),
        ));
    }
    let ops = Ops {
        readiness: connected.clone(),
        metrics: ops::render_registry(Arc::new(metrics_registry)),
    };
    let (http_addr, http_task) = ops::serve(config.http_addr, ops, cancel.clone())
        .await
        .map_err(|source| StartError::Bind {
            addr: config.http_addr,
            source,
        })?;
    tasks.spawn(async move {
        let _ = http_task.await;
    });
    tasks.spawn(publisher::dropped::run(
        config.publisher.broker("safecity-motion-gate-dropped"),
        config.region.clone(),
        metrics.clone(),
        cancel.clone(),
    ));
    tasks.spawn(publisher::run(
        config.publisher.clone(),
        buffer.clone(),
        metrics.clone(),
        connected,
        cancel.clone(),
    ));
    let count = camera_tasks.len();
    for task in camera_tasks {
        tasks.spawn(task.run(cancel.clone()));
    }
    info!(region = %config.region, cameras = count, %http_addr, "motion gate started");
    Ok(RunningGate {
        http_addr,
        metrics,
        buffer,
        cancel,
        tasks,
    })
}
