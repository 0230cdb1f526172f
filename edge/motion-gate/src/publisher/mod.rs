//! Publishing forwarded frames to the broker, without ever blocking a camera.
//!
//! One task per gate drains the [`FrameBuffer`]: it connects (with backoff),
//! declares the exchanges, and publishes each frame to `safecity.frames` with
//! the camera's region as routing key, `mandatory` set and a publisher
//! confirm, with up to [`CONFIRM_WINDOW`] confirms outstanding.
//!
//! - **Unroutable** (no detector queue bound for the region yet): the frame is
//!   dropped and counted (`frames_dropped_total{reason="unroutable"}`). Frames
//!   are perishable: a frame nobody could receive now is worth nothing later,
//!   and retrying would only delay fresher frames.
//! - **Nacked**: dropped and counted the same way.
//! - **Connection lost / publish timeout**: the frame (and every other frame
//!   still awaiting its confirm) goes back to the front of the buffer and the
//!   task reconnects; meanwhile cameras keep pushing and the
//!   buffer drops oldest-first (`reason="buffer_full"`).
//!
//! What the broker drops later (expired or pushed out of the bounded frames
//! queue) is counted by [`dropped`].

pub mod buffer;
pub mod dropped;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
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

impl PublisherSettings {
    /// The broker connection settings, naming the connection `name`.
    pub fn broker(&self, name: &str) -> BrokerSettings {
        BrokerSettings {
            url: self.amqp_url.clone(),
            connection_name: name.to_owned(),
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
        }
    }
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
    let broker_settings = settings.broker("safecity-motion-gate");
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

/// Frames published and not yet confirmed, at most: confirms are pipelined,
/// so the broker's round trip is paid once per window, not once per frame.
pub const CONFIRM_WINDOW: usize = 64;

/// What became of one publish.
type Outcome = (
    Frame,
    Result<Result<(), PublishError>, tokio::time::error::Elapsed>,
);

impl FramePublisher {
    /// Publishes buffered frames, up to [`CONFIRM_WINDOW`] awaiting their
    /// confirms, until the connection breaks or `cancel`.
    async fn drain(&self, publisher: &Publisher) -> SessionEnd<std::convert::Infallible> {
        let mut warned_unroutable = false;
        let mut in_flight = FuturesUnordered::new();
        let mut broken: Option<String> = None;
        loop {
            tokio::select! {
                () = self.cancel.cancelled(), if broken.is_none() => {
                    // Let the frames already sent be confirmed (or requeued).
                    while let Some(outcome) = in_flight.next().await {
                        let _ = self.settle(outcome, &mut warned_unroutable);
                    }
                    return SessionEnd::Stopped;
                }
                frame = self.buffer.pop(), if broken.is_none() && in_flight.len() < CONFIRM_WINDOW => {
                    self.metrics.buffer_frames.set(self.buffer.len() as i64);
                    let timeout = self.publish_timeout;
                    in_flight.push(async move {
                        let published = tokio::time::timeout(timeout, publisher.publish_frame(&frame)).await;
                        (frame, published)
                    });
                }
                Some(outcome) = in_flight.next() => {
                    if let Some(error) = self.settle(outcome, &mut warned_unroutable) {
                        broken.get_or_insert(error);
                    }
                }
                else => {}
            }
            if let Some(error) = &broken
                && in_flight.is_empty()
            {
                return SessionEnd::Lost {
                    error: error.clone(),
                    worked: true,
                };
            }
        }
    }

    /// Counts one publish; a frame whose fate is unknown (the connection
    /// broke, no confirm in time) goes back to the buffer's front and the
    /// error is returned.
    fn settle(&self, (frame, published): Outcome, warned_unroutable: &mut bool) -> Option<String> {
        let camera = frame.camera.id.clone();
        match published {
            Ok(Ok(())) => {
                self.metrics
                    .frames_published
                    .get_or_create(&GateMetrics::camera(&camera))
                    .inc();
                None
            }
            Ok(Err(PublishError::Unroutable { routing_key, .. })) => {
                self.metrics.dropped(&camera, DropReason::Unroutable);
                if *warned_unroutable {
                    debug!(region = %routing_key, %camera, "unroutable frame dropped");
                } else {
                    warn!(region = %routing_key, "no detector queue is bound for the region: dropping frames until one is");
                    *warned_unroutable = true;
                }
                None
            }
            Ok(Err(PublishError::Nacked { .. })) => {
                self.metrics.dropped(&camera, DropReason::Nacked);
                debug!(%camera, "broker refused a frame");
                None
            }
            Ok(Err(PublishError::Broker(error))) => {
                self.requeue(frame);
                Some(format!("publishing failed: {error}"))
            }
            Err(_elapsed) => {
                self.requeue(frame);
                Some(format!(
                    "no publisher confirm within {}",
                    humantime::format_duration(self.publish_timeout)
                ))
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
