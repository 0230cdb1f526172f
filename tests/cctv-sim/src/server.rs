//! The logical CCTV: serves scripted scenes as MJPEG streams over HTTP, the
//! way IP cameras do (`multipart/x-mixed-replace`, one JPEG per part), and can
//! write frames to a folder.
//!
//! Two clocks:
//! - [`SimMode::Live`]: like a real camera, a connection joins the camera's
//!   running clock (frame index = seconds since the simulator started x fps);
//!   a slow client skips frames.
//! - [`SimMode::Replay`]: every connection starts at frame 0 and gets every
//!   frame, paced at the scene's fps: deterministic for tests.
//!
//! Faults for tests: [`SimControl::cut`] ends open streams and answers 503
//! until [`SimControl::restore`]; [`SimControl::stall`] keeps connections open
//! but sends nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::mjpeg::{BOUNDARY, encode_part};
use crate::scene::{Scene, SceneError};

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A scene is invalid.
    #[error(transparent)]
    Scene(#[from] SceneError),
    /// Writing frames failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How connections see the camera's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimMode {
    /// Join the running clock (real camera behaviour).
    Live,
    /// Start at frame 0 on every connection, never skip.
    Replay,
}

/// One simulated camera.
#[derive(Debug, Clone)]
pub struct SimCamera {
    /// Camera id.
    pub id: String,
    /// URL path it is served at, e.g. `/cameras/seoul-01.mjpg`.
    pub path: String,
    /// Its scene.
    pub scene: Arc<Scene>,
}

#[derive(Debug, Default)]
struct CameraState {
    online: AtomicBool,
    stalled: AtomicBool,
    generation: AtomicU64,
    frames_sent: AtomicU64,
    connections: AtomicU64,
}

/// Fault injection and counters, per camera id.
#[derive(Debug, Default)]
pub struct SimControl {
    cameras: HashMap<String, CameraState>,
}

impl SimControl {
    fn state(&self, id: &str) -> &CameraState {
        self.cameras
            .get(id)
            .unwrap_or_else(|| panic!("no simulated camera `{id}`"))
    }

    /// Ends open streams of camera `id` and refuses new ones (HTTP 503).
    pub fn cut(&self, id: &str) {
        let s = self.state(id);
        s.online.store(false, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Serves camera `id` again.
    pub fn restore(&self, id: &str) {
        self.state(id).online.store(true, Ordering::SeqCst);
    }

    /// Stops (true) or resumes (false) sending frames without closing.
    pub fn stall(&self, id: &str, stalled: bool) {
        self.state(id).stalled.store(stalled, Ordering::SeqCst);
    }

    /// Frames sent by camera `id` so far (all connections).
    pub fn frames_sent(&self, id: &str) -> u64 {
        self.state(id).frames_sent.load(Ordering::SeqCst)
    }

    /// Connections accepted for camera `id` so far.
    pub fn connections(&self, id: &str) -> u64 {
        self.state(id).connections.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct SimState {
    cameras: Arc<HashMap<String, SimCamera>>,
    control: Arc<SimControl>,
    mode: SimMode,
    epoch: Instant,
    cancel: CancellationToken,
}

/// A running simulator listener.
#[derive(Debug)]
pub struct CctvSim {
    /// The bound address.
    pub addr: SocketAddr,
    /// Fault injection.
    pub control: Arc<SimControl>,
    task: JoinHandle<()>,
}

impl CctvSim {
    /// Serves `cameras` on `addr` until `cancel` fires.
    pub async fn bind(
        addr: SocketAddr,
        cameras: Vec<SimCamera>,
        mode: SimMode,
        cancel: CancellationToken,
    ) -> Result<Self, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let control = Arc::new(SimControl {
            cameras: cameras
                .iter()
                .map(|c| {
                    let state = CameraState::default();
                    state.online.store(true, Ordering::SeqCst);
                    (c.id.clone(), state)
                })
                .collect(),
        });
        let state = SimState {
            cameras: Arc::new(cameras.into_iter().map(|c| (c.path.clone(), c)).collect()),
            control: control.clone(),
            mode,
            epoch: Instant::now(),
            cancel: cancel.clone(),
        };
        let app = Router::new().fallback(stream).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
        });
        Ok(CctvSim {
            addr,
            control,
            task,
        })
    }

    /// Waits for the server to end (after cancellation).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn stream(State(state): State<SimState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some(camera) = state.cameras.get(&path).cloned() else {
        let known: Vec<&String> = state.cameras.keys().collect();
        return (
            StatusCode::NOT_FOUND,
            format!("no camera at {path}; cameras: {known:?}\n"),
        )
            .into_response();
    };
    let control = state.control.clone();
    let cam = control.state(&camera.id);
    if !cam.online.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "camera offline\n").into_response();
    }
    cam.connections.fetch_add(1, Ordering::SeqCst);
    let generation = cam.generation.load(Ordering::SeqCst);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(produce(state, camera, generation, tx));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
        )
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn produce(
    state: SimState,
    camera: SimCamera,
    generation: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let fps = camera.scene.spec().fps;
    let period = Duration::from_secs_f64(1.0 / fps);
    let (base, mut n) = match state.mode {
        SimMode::Replay => (Instant::now(), 0u64),
        SimMode::Live => {
            let n = (state.epoch.elapsed().as_secs_f64() * fps) as u64;
            (state.epoch, n)
        }
    };
    let cam = state.control.state(&camera.id);
    loop {
        if state.cancel.is_cancelled()
            || !cam.online.load(Ordering::SeqCst)
            || cam.generation.load(Ordering::SeqCst) != generation
            || tx.is_closed()
        {
            return;
        }
        if cam.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let due = base + period.mul_f64(n as f64);
        tokio::select! {
            () = state.cancel.cancelled() => return,
            () = tokio::time::sleep_until(due) => {}
        }
        let scene = camera.scene.clone();
        let jpeg = match tokio::task::spawn_blocking(move || scene.jpeg(n)).await {
            Ok(Ok(jpeg)) => jpeg,
            Ok(Err(error)) => {
                warn!(camera = %camera.id, %error, "rendering failed");
                return;
            }
            Err(_) => return,
        };
        // Re-check: a cut while rendering must not leak one more frame.
        if !cam.online.load(Ordering::SeqCst) || cam.generation.load(Ordering::SeqCst) != generation
        {
            return;
        }
        if tx
            .send(Ok(Bytes::from(encode_part(BOUNDARY, &jpeg))))
            .await
            .is_err()
        {
            return;
        }
        cam.frames_sent.fetch_add(1, Ordering::SeqCst);
        n += 1;
        if state.mode == SimMode::Live {
            // A slow client skips frames, as with a real camera.
            n = n.max((base.elapsed().as_secs_f64() * fps) as u64);
        }
    }
}

/// Writes frames `0..count` of `scene` to `dir` as `frame-000000.jpg`, ...
pub fn write_frames(scene: &Scene, dir: &Path, count: u64) -> Result<(), SimError> {
    let write_error = |path: &Path, source| SimError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    for n in 0..count {
        let path = dir.join(format!("frame-{n:06}.jpg"));
        let jpeg = scene.jpeg(n)?;
        std::fs::write(&path, jpeg).map_err(|e| write_error(&path, e))?;
    }
    Ok(())
}
