//! Counting the frames the broker dropped after the gate published them.
//!
//! A frames queue is bounded (`safecity_events::topology::FrameBounds`): a
//! frame older than the frame budget expires, and a new frame pushes the
//! oldest out of a full queue. The broker dead-letters both to
//! `safecity.frames.dropped` under the frame's region. The gate of that
//! region is the one component always running while its detector may be at
//! zero, so it counts them, per camera, next to the drops it makes itself:
//! `safecity_gate_frames_dropped_total{reason="expired"}` and
//! `{reason="queue_full"}`.
//!
//! The counting queue, `safecity.frames.dropped.<region>`, keeps only the
//! headers' worth of interest but receives whole frames: it is consumed
//! without acknowledgements and capped at [`COUNTING_QUEUE_MAX`] frames, so a
//! gate that is down does not make the broker hold dropped frames for it
//! (drops while no gate of the region runs are not counted).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};
use safecity_events::frame::header;
use safecity_events::headers::get_str;
use safecity_events::topology::{FRAMES_DROPPED_EXCHANGE, declare_exchanges};
use safecity_shell::broker::{self, BrokerSession, BrokerSettings, SessionEnd, bounded};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::{DropReason, GateMetrics};

/// Dropped frames the counting queue holds at most while no gate consumes it.
pub const COUNTING_QUEUE_MAX: i64 = 1000;

/// The queue where the gate of `region` counts its dropped frames.
pub fn counting_queue(region: &str) -> String {
    format!("{FRAMES_DROPPED_EXCHANGE}.{region}")
}

/// Why the broker dropped a frame, from its `x-first-death-reason` header.
pub fn drop_reason(headers: Option<&FieldTable>) -> Option<DropReason> {
    match get_str(headers, "x-first-death-reason")? {
        "expired" => Some(DropReason::Expired),
        "maxlen" => Some(DropReason::QueueFull),
        _ => None,
    }
}

/// The counting session: one channel consuming the region's counting queue.
struct DroppedFrames {
    region: String,
    metrics: Arc<GateMetrics>,
    broker: String,
    cancel: CancellationToken,
}

/// Counts the frames of `region` the broker drops, until `cancel` fires.
pub async fn run(
    settings: BrokerSettings,
    region: String,
    metrics: Arc<GateMetrics>,
    cancel: CancellationToken,
) {
    let mut session = DroppedFrames {
        region,
        metrics,
        broker: settings.redacted_url(),
        cancel: cancel.clone(),
    };
    let Ok(()) = broker::supervise(&settings, &cancel, &mut session).await;
}

impl BrokerSession for DroppedFrames {
    type Error = std::convert::Infallible;

    async fn run(&mut self, connection: &Connection) -> SessionEnd<Self::Error> {
        let channel = match open(connection, &self.region).await {
            Ok(channel) => channel,
            Err(error) => return SessionEnd::lost(error),
        };
        let queue = counting_queue(&self.region);
        let consumer = bounded(
            "consuming the dropped frames",
            channel.basic_consume(
                ShortString::from(queue.as_str()),
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        let mut consumer = match consumer {
            Ok(Ok(consumer)) => consumer,
            Ok(Err(error)) => return SessionEnd::lost(error),
            Err(timeout) => return SessionEnd::lost(timeout),
        };
        info!(%queue, "counting the frames the broker drops");
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return SessionEnd::Stopped,
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => self.count(delivery.properties.headers().as_ref()),
                    Some(Err(error)) => return SessionEnd::Lost { error: error.to_string(), worked: true },
                    None => return SessionEnd::Lost { error: "the consumer was cancelled".to_owned(), worked: true },
                },
            }
        }
    }

    fn lost(&mut self, error: &str, retry_in: Duration) {
        warn!(broker = %self.broker, %error, retry_in = ?retry_in, "cannot count the frames the broker drops");
    }
}

impl DroppedFrames {
    fn count(&self, headers: Option<&FieldTable>) {
        let Some(reason) = drop_reason(headers) else {
            return;
        };
        let camera = get_str(headers, header::CAMERA_ID).unwrap_or("unknown");
        self.metrics.dropped(camera, reason);
    }
}

/// Declares the dropped-frames exchange and the region's counting queue.
async fn open(connection: &Connection, region: &str) -> Result<Channel, String> {
    let channel = bounded("opening a channel", connection.create_channel())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    bounded("declaring the exchanges", declare_exchanges(&channel))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let queue = counting_queue(region);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(COUNTING_QUEUE_MAX),
    );
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    bounded(
        "declaring the counting queue",
        channel.queue_declare(
            ShortString::from(queue.as_str()),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        ),
    )
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("declaring {queue}: {e}"))?;
    bounded(
        "binding the counting queue",
        channel.queue_bind(
            ShortString::from(queue.as_str()),
            ShortString::from(FRAMES_DROPPED_EXCHANGE),
            ShortString::from(region),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("binding {queue}: {e}"))?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(reason: &str) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString(reason.into()),
        );
        table
    }

    #[test]
    fn the_brokers_reasons_map_to_drop_reasons() {
        assert_eq!(
            drop_reason(Some(&headers("expired"))),
            Some(DropReason::Expired)
        );
        assert_eq!(
            drop_reason(Some(&headers("maxlen"))),
            Some(DropReason::QueueFull)
        );
        assert_eq!(drop_reason(Some(&headers("rejected"))), None);
        assert_eq!(drop_reason(None), None);
    }

    #[test]
    fn each_region_counts_in_its_own_queue() {
        assert_eq!(counting_queue("seoul"), "safecity.frames.dropped.seoul");
    }
}
