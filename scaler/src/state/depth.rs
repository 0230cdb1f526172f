//! Ready counts over AMQP: a passive `queue.declare` per watched queue answers
//! the ready count and consumer count at once, with no statistics lag.
//!
//! A round declares its queues pipelined (up to [`PIPELINE`] requests in
//! flight on the one channel), so a round of N queues costs far fewer than
//! N round trips. **Quiet** queues (nothing ready, no consumer, no in-flight
//! work, a tapped event type and no event since their sample) are declared
//! only every [`QUIET_EVERY`]th round: the tap announces their new work at
//! once, and the management listing every `SAFECITY_SCALER_MANAGEMENT_INTERVAL`
//! notices anything else (a retry coming back). With 1,000 idle ScaledObjects
//! that is a quarter of the declares, and of the broker's work.
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

use futures_util::StreamExt as _;

use super::{BrokerHealth, ScalerState, WatchedQueue};
use crate::metrics::ScalerMetrics;
use safecity_shell::broker::{RequestTimedOut, bounded};

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

/// Passive declares in flight at once on the sampler channel.
pub const PIPELINE: usize = 32;

/// Quiet queues are declared every this many full rounds.
pub const QUIET_EVERY: u64 = 4;

/// Samples every watched queue every `interval` (quiet ones every
/// [`QUIET_EVERY`]th time), and at once the queues just added or first
/// listed, on `connection` until an AMQP error (returned) or `cancel`.
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
    let mut rounds: u64 = 0;
    let mut next_full_round = Instant::now() + interval;
    loop {
        // A wake-up for new queues samples only those (registering N ScaledObjects
        // costs N declares, not N full rounds); the interval samples all.
        let sample_quiet = rounds.is_multiple_of(QUIET_EVERY);
        let mut to_declare = Vec::new();
        for queue in state.queue_names() {
            if !full_round && queue.has_depth_sample() {
                continue;
            }
            match queue.known_to_exist() {
                // Not listed yet: sampled once the management listing says.
                None => {}
                Some(false) => state.record_depth(&queue, None),
                Some(true) if !sample_quiet && state.is_quiet(&queue) => {}
                Some(true) => to_declare.push(queue),
            }
        }
        if declare_all(state, metrics, &channel, to_declare).await? {
            // A queue was deleted since the listing: its 404 closed the channel.
            channel = open_channel().await?;
        }
        state.set_broker_health(BrokerHealth::Up);
        if full_round {
            metrics.depth_rounds.inc();
            rounds += 1;
            next_full_round = Instant::now() + interval;
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(next_full_round) => full_round = true,
            () = wake.notified() => full_round = false,
        }
    }
}

/// Declares `queues` pipelined and records their depths; true when one was
/// found deleted (the channel is then closed, and the queues whose answer
/// was lost with it keep their previous sample until the next round).
async fn declare_all(
    state: &ScalerState,
    metrics: &ScalerMetrics,
    channel: &Channel,
    queues: Vec<Arc<WatchedQueue>>,
) -> Result<bool, DepthError> {
    let mut answers = futures_util::stream::iter(queues)
        .map(|queue| async move {
            let depth = bounded(
                "a passive queue.declare",
                passive_declare(channel, &queue.name),
            )
            .await;
            (queue, depth)
        })
        .buffer_unordered(PIPELINE);
    let mut deleted = false;
    while let Some((queue, depth)) = answers.next().await {
        metrics.depth_declares.inc();
        match depth? {
            Ok(depth) => state.record_depth(&queue, Some(depth)),
            Err(error) if is_not_found(&error) => {
                debug!(queue = %queue.name, "queue deleted since the last listing: no pending work");
                queue.mark_missing();
                state.record_depth(&queue, None);
                deleted = true;
            }
            // The channel closed with another queue's 404.
            Err(_) if deleted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(deleted)
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
