//! One task per camera: read frames, gate them, hand forwarded frames to the
//! buffer. A camera that fails (refused, cut, stalled, HTTP error) is
//! reconnected with backoff; other cameras are unaffected.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::gate::{CameraGate, GateError};
use crate::metrics::{DropReason, GateMetrics};
use crate::publisher::FrameBuffer;
use crate::source::{MjpegStream, SourceError, SourceUrl, list_jpegs};
use safecity_shell::Backoff;

/// Per-camera resilience settings.
#[derive(Debug, Clone, Copy)]
pub struct CameraSettings {
    /// No byte for this long = a stalled stream (reconnect).
    pub stall_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

/// Drives one camera until `cancel` fires (or a non-repeating folder ends).
#[derive(Debug)]
pub struct CameraTask {
    gate: Option<CameraGate>,
    source: SourceUrl,
    settings: CameraSettings,
    buffer: Arc<FrameBuffer>,
    metrics: Arc<GateMetrics>,
}

impl CameraTask {
    /// A task for `gate`'s camera reading `source`.
    pub fn new(
        gate: CameraGate,
        source: SourceUrl,
        settings: CameraSettings,
        buffer: Arc<FrameBuffer>,
        metrics: Arc<GateMetrics>,
    ) -> Self {
        CameraTask {
            gate: Some(gate),
            source,
            settings,
            buffer,
            metrics,
        }
    }

    fn id(&self) -> String {
        self.gate
            .as_ref()
            .map(|g| g.camera().id.clone())
            .unwrap_or_default()
    }

    fn set_up(&self, up: bool) {
        self.metrics
            .camera_up
            .get_or_create(&GateMetrics::camera(&self.id()))
            .set(i64::from(up));
    }

    /// Runs until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.set_up(false);
        let id = self.id();
        let source = self.source.redacted();
        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max);
        let started = Instant::now();
        let mut attempt = 0u64;
        while !cancel.is_cancelled() {
            if attempt > 0 {
                self.metrics
                    .camera_reconnects
                    .get_or_create(&GateMetrics::camera(&id))
                    .inc();
            }
            attempt += 1;
            if let Some(gate) = self.gate.as_mut() {
                gate.reset();
            }
            let result = match self.source.clone() {
                SourceUrl::Http {
                    authority,
                    path,
                    credentials,
                } => {
                    self.stream_http(
                        &authority,
                        &path,
                        credentials.as_deref(),
                        started,
                        &mut backoff,
                        &cancel,
                    )
                    .await
                }
                SourceUrl::Dir {
                    path,
                    fps,
                    pace,
                    repeat,
                } => {
                    let result = self.read_dir(&path, fps, pace, repeat, &cancel).await;
                    if result.is_ok() {
                        info!(camera = %id, %source, "frame folder finished");
                        self.set_up(false);
                        return;
                    }
                    result
                }
            };
            self.set_up(false);
            match result {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    warn!(camera = %id, %source, %error, retry_in = ?delay, "camera down; reconnecting");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.set_up(false);
    }

    async fn stream_http(
        &mut self,
        authority: &str,
        path: &str,
        credentials: Option<&str>,
        started: Instant,
        backoff: &mut Backoff,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        let open = MjpegStream::open(authority, path, credentials, self.settings.stall_timeout);
        let mut stream = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            stream = open => stream?,
        };
        let mut first = true;
        loop {
            let jpeg = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                jpeg = stream.next_jpeg() => jpeg?,
            };
            if first {
                first = false;
                backoff.reset();
                self.set_up(true);
                info!(camera = %self.id(), "camera streaming");
            }
            self.handle(jpeg, started.elapsed()).await;
        }
    }

    async fn read_dir(
        &mut self,
        path: &std::path::Path,
        fps: f64,
        pace: bool,
        repeat: bool,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        let files = list_jpegs(path)?;
        self.set_up(!files.is_empty());
        let started = Instant::now();
        let mut index = 0u64;
        loop {
            for file in &files {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let at = Duration::from_secs_f64(index as f64 / fps);
                if pace {
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep_until(started + at) => {}
                    }
                }
                let jpeg = tokio::fs::read(file)
                    .await
                    .map_err(|source| SourceError::Io {
                        path: file.clone(),
                        source,
                    })?;
                self.handle(jpeg, at).await;
                index += 1;
            }
            if !repeat || files.is_empty() {
                return Ok(());
            }
        }
    }

    /// Gates one JPEG on the blocking pool and buffers it if forwarded.
    async fn handle(&mut self, jpeg: Vec<u8>, at: Duration) {
        let Some(mut gate) = self.gate.take() else {
            return;
        };
        let captured_at = Utc::now();
        let (gate, result) = tokio::task::spawn_blocking(move || {
            let result = gate.process(jpeg, at, captured_at);
            (gate, result)
        })
        .await
        .expect("the gate does not panic");
        let id = gate.camera().id.clone();
        self.gate = Some(gate);
        match result {
            Ok(Some(frame)) => {
                if let Some(dropped) = self.buffer.push(frame) {
                    self.metrics
                        .dropped(&dropped.camera.id, DropReason::BufferFull);
                }
                self.metrics.buffer_frames.set(self.buffer.len() as i64);
            }
            Ok(None) => {}
            Err(GateError::Corrupt(reason)) => {
                self.metrics
                    .frames_corrupt
                    .get_or_create(&GateMetrics::camera(&id))
                    .inc();
                warn!(camera = %id, %reason, "corrupt frame skipped");
            }
            Err(error) => warn!(camera = %id, %error, "frame skipped"),
        }
    }
}
