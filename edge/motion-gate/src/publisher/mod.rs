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
use std::time::Duration;

use lapin::Connection;
use safecity_events::topology::declare_exchanges;
use safecity_events::{Frame, PublishError, Publisher};
use safecity_shell::broker::{self, BrokerSession, BrokerSettings, SessionEnd, bounded};
use safecity_shell::ops::Readiness;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use buffer::FrameBuffer;

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

/// The publishing session: drains the buffer on one connection.
struct FramePublisher {
    buffer: Arc<FrameBuffer>,
    metrics: Arc<GateMetrics>,
    connected: Readiness,
    publish_timeout: Duration,
    broker: String,
    cancel: CancellationToken,
}

/// Drains `buffer` into the broker until `cancel` fires; `connected` is
/// ready while a connection is up.
pub async fn run(
    settings: PublisherSettings,
    buffer: Arc<FrameBuffer>,
    metrics: Arc<GateMetrics>,
    connected: Readiness,
    cancel: CancellationToken,
) {
    let broker_settings = BrokerSettings {
        url: settings.amqp_url,
        connection_name: "safecity-motion-gate".to_owned(),
        reconnect_min: settings.reconnect_min,
        reconnect_max: settings.reconnect_max,
    };
    let mut session = FramePublisher {
        buffer,
        metrics,
        connected,
        publish_timeout: settings.publish_timeout,
        broker: broker_settings.redacted_url(),
        cancel: cancel.clone(),
    };
    let Ok(()) = broker::supervise(&broker_settings, &cancel, &mut session).await;
    session.connected.set(false);
    session.metrics.broker_up.set(0);
}

impl BrokerSession for FramePublisher {
    type Error = std::convert::Infallible;

    async fn run(&mut self, connection: &Connection) -> SessionEnd<Self::Error> {
        let publisher = match open(connection).await {
            Ok(publisher) => publisher,
            Err(error) => return SessionEnd::lost(error),
        };
        info!(broker = %self.broker, "connected to the broker");
        self.connected.set(true);
        self.metrics.broker_up.set(1);
        let end = self.drain(&publisher).await;
        self.connected.set(false);
        self.metrics.broker_up.set(0);
        end
    }

    fn lost(&mut self, error: &str, retry_in: Duration) {
        warn!(broker = %self.broker, %error, retry_in = ?retry_in, "broker unreachable; frames are buffered (oldest dropped when full)");
    }
}

impl FramePublisher {
    /// Publishes buffered frames until the connection breaks or `cancel`.
    async fn drain(&self, publisher: &Publisher) -> SessionEnd<std::convert::Infallible> {
        let mut warned_unroutable = false;
        loop {
            let frame = tokio::select! {
                () = self.cancel.cancelled() => return SessionEnd::Stopped,
                frame = self.buffer.pop() => frame,
            };
            self.metrics.buffer_frames.set(self.buffer.len() as i64);
            let camera = frame.camera.id.clone();
            let published =
                tokio::time::timeout(self.publish_timeout, publisher.publish_frame(&frame)).await;
            match published {
                Ok(Ok(())) => {
                    self.metrics
                        .frames_published
                        .get_or_create(&GateMetrics::camera(&camera))
                        .inc();
                }
                Ok(Err(PublishError::Unroutable { routing_key, .. })) => {
                    self.metrics.dropped(&camera, DropReason::Unroutable);
                    if !warned_unroutable {
                        warn!(region = %routing_key, "no detector queue is bound for the region: dropping frames until one is");
                        warned_unroutable = true;
                    } else {
                        debug!(region = %routing_key, %camera, "unroutable frame dropped");
                    }
                }
                Ok(Err(PublishError::Nacked { .. })) => {
                    self.metrics.dropped(&camera, DropReason::Nacked);
                    debug!(%camera, "broker refused a frame");
                }
                Ok(Err(PublishError::Broker(error))) => {
                    self.requeue(frame);
                    return SessionEnd::Lost {
                        error: format!("publishing failed: {error}"),
                        worked: true,
                    };
                }
                Err(_elapsed) => {
                    self.requeue(frame);
                    return SessionEnd::Lost {
                        error: format!(
                            "no publisher confirm within {}",
                            humantime::format_duration(self.publish_timeout)
                        ),
                        worked: true,
                    };
                }
            }
        }
    }

    fn requeue(&self, frame: Frame) {
        if let Some(dropped) = self.buffer.push_front(frame) {
            self.metrics
                .dropped(&dropped.camera.id, DropReason::BufferFull);
        }
    }
}

/// A confirm-mode publisher with the exchanges declared.
async fn open(connection: &Connection) -> Result<Publisher, String> {
    let publisher = bounded("opening a channel", Publisher::open(connection))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    bounded(
        "declaring the exchanges",
        declare_exchanges(publisher.channel()),
    )
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(publisher)
}
