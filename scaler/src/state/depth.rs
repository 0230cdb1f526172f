//! Ready counts over AMQP: a passive `queue.declare` per watched queue answers
//! the ready count and consumer count at once, with no statistics lag.
//!
//! Only queues that the last management listing of the vhost shows are
//! declared: a passive declare of a missing queue is answered with 404, which
//! closes the channel, so declaring missing queues every round would open a
//! new channel per missing queue per round. A missing queue is recorded as
//! "no work" without any AMQP traffic until a listing shows it (at most one
//! `SAFECITY_SCALER_MANAGEMENT_INTERVAL` after it is created; push activation
//! does not wait for it, the tap counts its events). A queue deleted between a
//! listing and the declare costs one new channel, once.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{BrokerHealth, ScalerState};
use crate::broker::{RequestTimedOut, bounded};
use crate::metrics::ScalerMetrics;

/// Why a sampling session ended (the broker session reconnects).
#[derive(Debug, thiserror::Error)]
pub enum DepthError {
    /// An AMQP request failed.
    #[error("depth sampler: {0}")]
    Amqp(#[from] lapin::Error),
    /// An AMQP request got no answer in time.
    #[error("depth sampler: {0}")]
    TimedOut(#[from] RequestTimedOut),
}

/// Whether `error` is the broker's 404 (no such queue); it closes the channel.
pub fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 404)
}

/// Samples every watched queue every `interval` (and at once when a queue is
/// added or first listed) on `connection` until an AMQP error (returned) or `cancel`.
pub async fn run(
    state: &Arc<ScalerState>,
    metrics: &ScalerMetrics,
    connection: &Connection,
    interval: Duration,
    cancel: &CancellationToken,
) -> Result<(), DepthError> {
    let open_channel = || async {
        let channel = bounded("opening a channel", connection.create_channel()).await??;
        metrics.amqp_channels_opened.inc();
        Ok::<Channel, DepthError>(channel)
    };
    let mut channel = open_channel().await?;
    let wake = state.new_queue.clone();
    let mut full_round = true;
    let mut next_full_round = Instant::now() + interval;
    loop {
        // A wake-up for new queues samples only those (registering N ScaledObjects
        // costs N declares, not N full rounds); the interval samples all.
        for queue in state.queue_names() {
            if !full_round && queue.has_depth_sample() {
                continue;
            }
            let depth = match queue.known_to_exist() {
                // Not listed yet: sampled once the management listing says.
                None => continue,
                Some(false) => None,
                Some(true) => match bounded(
                    "a passive queue.declare",
                    passive_declare(&channel, &queue.name),
                )
                .await?
                {
                    Ok(depth) => Some(depth),
                    Err(error) if is_not_found(&error) => {
                        debug!(queue = %queue.name, "queue deleted since the last listing: no pending work");
                        queue.mark_missing();
                        channel = open_channel().await?;
                        None
                    }
                    Err(error) => return Err(error.into()),
                },
            };
            state.record_depth(&queue, depth);
        }
        state.set_broker_health(BrokerHealth::Up);
        if full_round {
            metrics.depth_rounds.inc();
            next_full_round = Instant::now() + interval;
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(next_full_round) => full_round = true,
            () = wake.notified() => full_round = false,
        }
    }
}

async fn passive_declare(channel: &Channel, queue: &str) -> Result<(u64, u32), lapin::Error> {
    let declared = channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok((
        u64::from(declared.message_count()),
        declared.consumer_count(),
    ))
}
