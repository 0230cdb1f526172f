//! Publishing forwarded frames to the broker, without ever blocking a camera.
//!
//! One task per gate drains the [`FrameBuffer`]: it connects (with backoff),
//! declares the exchanges, and publishes each frame to `safecity.frames` with
//! the camera's region as routing key, `mandatory` set and a publisher confirm.
//!
//! - **Unroutable** (no detector queue bound for the region yet): the frame is
//!   dropped and counted (`frames_dropped_total{reason="unroutable"}`). Frames
//!   are perishable: a frame nobody could receive now is worth nothing later,
//!   and retrying would only delay fresher frames.
//! - **Nacked**: dropped and counted the same way.
//! - **Connection lost / publish timeout**: the frame goes back to the front of
//!   the buffer and the task reconnects; meanwhile cameras keep pushing and the
//!   buffer drops oldest-first (`reason="buffer_full"`).

pub mod buffer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use safecity_runtime::config::redact_url;
use safecity_runtime::topology::{FRAMES_EXCHANGE, declare_exchanges};
use safecity_runtime::{PublishError, Publisher};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use buffer::FrameBuffer;

use crate::backoff::Backoff;
use crate::metrics::{DropReason, GateMetrics};

/// How the publisher reaches the broker.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// AMQP URL.
    pub amqp_url: String,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// A publish without confirm for this long counts as a broken connection.
    pub publish_timeout: Duration,
}

/// Drains `buffer` into the broker until `cancel` fires.
pub async fn run(
    settings: PublisherSettings,
    buffer: Arc<FrameBuffer>,
    metrics: Arc<GateMetrics>,
    connected: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
    let url = redact_url(&settings.amqp_url);
    while !cancel.is_cancelled() {
        let session = tokio::select! {
            () = cancel.cancelled() => break,
            session = connect(&settings.amqp_url) => session,
        };
        let (connection, publisher) = match session {
            Ok(session) => session,
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(broker = %url, %error, retry_in = ?delay, "broker unreachable; frames are buffered (oldest dropped when full)");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        info!(broker = %url, "connected to the broker");
        backoff.reset();
        connected.store(true, Ordering::SeqCst);
        metrics.broker_up.set(1);
        let mut warned_unroutable = false;
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => break,
                frame = buffer.pop() => frame,
            };
            metrics.buffer_frames.set(buffer.len() as i64);
            let camera = frame.camera.id.clone();
            let published = tokio::time::timeout(
                settings.publish_timeout,
                publisher.publish(
                    FRAMES_EXCHANGE,
                    &frame.camera.region,
                    &frame.jpeg,
                    frame.properties(),
                ),
            )
            .await;
            match published {
                Ok(Ok(())) => {
                    metrics
                        .frames_published
                        .get_or_create(&GateMetrics::camera(&camera))
                        .inc();
                }
                Ok(Err(PublishError::Unroutable { routing_key, .. })) => {
                    metrics.dropped(&camera, DropReason::Unroutable);
                    if !warned_unroutable {
                        warn!(region = %routing_key, "no detector queue is bound for the region: dropping frames until one is");
                        warned_unroutable = true;
                    } else {
                        debug!(region = %routing_key, %camera, "unroutable frame dropped");
                    }
                }
                Ok(Err(PublishError::Nacked { .. })) => {
                    metrics.dropped(&camera, DropReason::Nacked);
                    debug!(%camera, "broker refused a frame");
                }
                Ok(Err(PublishError::Broker(error))) => {
                    warn!(%error, "publishing failed; reconnecting");
                    requeue(&buffer, &metrics, frame);
                    break;
                }
                Err(_elapsed) => {
                    warn!(timeout = ?settings.publish_timeout, "no publisher confirm in time; reconnecting");
                    requeue(&buffer, &metrics, frame);
                    break;
                }
            }
        }
        connected.store(false, Ordering::SeqCst);
        metrics.broker_up.set(0);
        let _ = connection.close(200, "motion gate stopping".into()).await;
    }
    connected.store(false, Ordering::SeqCst);
    metrics.broker_up.set(0);
}

fn requeue(buffer: &FrameBuffer, metrics: &GateMetrics, frame: safecity_runtime::Frame) {
    if let Some(dropped) = buffer.push_front(frame) {
        metrics.dropped(&dropped.camera.id, DropReason::BufferFull);
    }
}

async fn connect(url: &str) -> Result<(Connection, Publisher), String> {
    let connect = Connection::connect(url, ConnectionProperties::default());
    let connection = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "connect timed out after 10s".to_owned())?
        .map_err(|e| e.to_string())?;
    let publisher = Publisher::open(&connection)
        .await
        .map_err(|e| e.to_string())?;
    declare_exchanges(publisher.channel())
        .await
        .map_err(|e| e.to_string())?;
    Ok((connection, publisher))
}
