//! The activation tap: one non-durable, exclusive, server-named queue bound to
//! the events exchange for every watched event type. Each copy of an event is
//! counted the moment the broker pushes it, so a function at zero is activated
//! without waiting for any polling interval. An event type no watched queue
//! needs any more (its triggers were pruned) is unbound again.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt as _;
use lapin::Connection;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use safecity_events::EventType;
use safecity_events::topology::{EVENTS_EXCHANGE, declare_exchanges};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::metrics::ScalerMetrics;
use crate::state::ScalerState;
use safecity_shell::broker::{RequestTimedOut, bounded};

/// Errors of the tap; any of them ends the broker session, which reconnects.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// An AMQP operation failed.
    #[error("tap: {0}")]
    Amqp(#[from] lapin::Error),
    /// Declaring the events exchange failed.
    #[error("tap: {0}")]
    Topology(#[from] safecity_events::topology::TopologyError),
    /// The broker ended the tap's consumer.
    #[error("tap: the broker cancelled the consumer")]
    ConsumerEnded,
    /// An AMQP request got no answer in time.
    #[error("tap: {0}")]
    TimedOut(#[from] RequestTimedOut),
}

/// Runs the tap on `connection` until an error (returned) or `cancel`.
pub async fn run(
    state: &Arc<ScalerState>,
    metrics: &ScalerMetrics,
    connection: &Connection,
    cancel: &CancellationToken,
) -> Result<(), TapError> {
    let channel = bounded("opening the tap channel", connection.create_channel()).await??;
    metrics.amqp_channels_opened.inc();
    bounded("declaring the events exchange", declare_exchanges(&channel)).await??;
    let mut arguments = FieldTable::default();
    // Only the arrival matters: keep the tap small whatever the event rate.
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1000));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("drop-head")),
    );
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(60_000));
    let queue = bounded(
        "declaring the tap queue",
        channel.queue_declare(
            ShortString::from(""),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        ),
    )
    .await??;
    let tap_queue = queue.name().clone();
    let mut consumer = bounded(
        "starting the tap consumer",
        channel.basic_consume(
            tap_queue.clone(),
            ShortString::from("safecity-scaler-tap"),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await??;
    let mut wanted = state.tapped();
    let mut bound: HashSet<EventType> = HashSet::new();
    info!(queue = %tap_queue, "activation tap consuming");
    loop {
        let (missing, unwanted): (Vec<EventType>, Vec<EventType>) = {
            let wanted = wanted.borrow_and_update();
            (
                wanted.difference(&bound).copied().collect(),
                bound.difference(&wanted).copied().collect(),
            )
        };
        for event_type in unwanted {
            bounded(
                "unbinding the tap",
                channel.queue_unbind(
                    tap_queue.clone(),
                    ShortString::from(EVENTS_EXCHANGE),
                    ShortString::from(event_type.as_str()),
                    FieldTable::default(),
                ),
            )
            .await??;
            bound.remove(&event_type);
            debug!(
                event_type = event_type.as_str(),
                "tap unbound: no watched queue needs it"
            );
        }
        for event_type in missing {
            bounded(
                "binding the tap",
                channel.queue_bind(
                    tap_queue.clone(),
                    ShortString::from(EVENTS_EXCHANGE),
                    ShortString::from(event_type.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await??;
            bound.insert(event_type);
            debug!(event_type = event_type.as_str(), "tap bound");
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    if let Ok(event_type) = delivery.routing_key.as_str().parse::<EventType>() {
                        state.record_tap(event_type);
                    }
                }
                Some(Err(error)) => return Err(error.into()),
                None => return Err(TapError::ConsumerEnded),
            },
            changed = wanted.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
