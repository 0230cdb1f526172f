//! Broker topology: exchange and queue names, and their idempotent declaration.
//!
//! ```text
//! safecity.events (topic, key = event type) ──┐
//! safecity.frames (topic, key = region)    ───┼─> safecity.fn.<name>            (durable, quorum)
//!                                             │      │ nack by broker after DELIVERY_LIMIT
//!                                             │      └─> safecity.fn.<name>.dead (dead-letter queue)
//! safecity.fn.<name>.retry.<ms>ms  (TTL = ms) ┘  <- failed attempts wait here, then return
//! ```
//!
//! One retry queue per delay: every message in it waits the same time, so expiry
//! is first-in first-out and a long delay never holds back a short one.
//!
//! Frames are perishable, events are not. A work queue that takes only
//! frames is a bounded classic queue ([`FrameBounds`]): at most
//! `max_frames` wait (the oldest is dropped first), none longer than the
//! frame budget (its message TTL), and what the broker drops goes to
//! `safecity.frames.dropped` under the frame's region, where each region's
//! motion gate counts it per camera. Classic, not quorum: a frame lost with
//! a broker node costs nothing a replicated write is worth, and classic
//! queues take several times the frames per second (docs/capacity.md).

use std::str::FromStr;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::event_type::EventType;

/// Topic exchange of CloudEvents; the routing key is the event type.
pub const EVENTS_EXCHANGE: &str = "safecity.events";

/// Topic exchange of camera frames; the routing key is the camera's region.
pub const FRAMES_EXCHANGE: &str = "safecity.frames";

/// Topic exchange of the frames the broker dropped from a frames queue
/// (expired or pushed out), under their region.
pub const FRAMES_DROPPED_EXCHANGE: &str = "safecity.frames.dropped";

/// The bounds of a work queue that takes frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBounds {
    /// The frame budget: a frame waits at most this long (the queue's
    /// message TTL); older ones are dropped, they would only make alerts late.
    pub budget: Duration,
    /// At most this many frames wait; a new one pushes the oldest out.
    pub max_frames: u32,
}

impl Default for FrameBounds {
    /// 10 s, 1,000 frames.
    fn default() -> Self {
        FrameBounds {
            budget: Duration::from_secs(10),
            max_frames: 1000,
        }
    }
}

/// Deliveries of one message after which the broker itself dead-letters it
/// (a handler that crashes its process every time must not loop forever).
pub const DELIVERY_LIMIT: i64 = 20;

/// One binding of a function's queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Safety events of one type from the events exchange.
    Event(EventType),
    /// Camera frames from the frames exchange: one region, or every region with `None`.
    Frames {
        /// Region routing key, or `None` for all regions.
        region: Option<String>,
    },
}

impl Subscription {
    /// The exchange the binding is on.
    pub fn exchange(&self) -> &'static str {
        match self {
            Subscription::Event(_) => EVENTS_EXCHANGE,
            Subscription::Frames { .. } => FRAMES_EXCHANGE,
        }
    }

    /// The binding key on that exchange.
    pub fn binding_key(&self) -> &str {
        match self {
            Subscription::Event(t) => t.as_str(),
            Subscription::Frames { region: Some(r) } => r,
            Subscription::Frames { region: None } => "#",
        }
    }
}

impl Subscription {
    /// Whether this binding brings frames.
    pub fn is_frames(&self) -> bool {
        matches!(self, Subscription::Frames { .. })
    }
}

impl From<EventType> for Subscription {
    fn from(event_type: EventType) -> Self {
        Subscription::Event(event_type)
    }
}

/// Errors declaring the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The function name cannot name queues.
    #[error(
        "function name `{0}` is invalid: use 1-64 characters of lowercase letters, digits and '-'"
    )]
    InvalidName(String),
    /// The function subscribes to nothing.
    #[error("function `{0}` has no subscriptions: its queue would never receive anything")]
    NoSubscriptions(String),
    /// The broker refused a declaration (often: an existing queue with other arguments).
    #[error("declaring {what} failed: {source}")]
    Declare {
        /// What was being declared.
        what: String,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
}

/// The queue type of a function's durable queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated Raft queues: the default, survive a node loss.
    Quorum,
    /// Single-node classic queues: for tiny brokers and tests.
    Classic,
}

impl QueueType {
    fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl FromStr for QueueType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            other => Err(format!("`{other}` is not `quorum` or `classic`")),
        }
    }
}

/// Names of one function's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionQueues {
    name: String,
}

impl FunctionQueues {
    /// Checks the function name and derives its queue names.
    pub fn new(function_name: &str) -> Result<Self, TopologyError> {
        let valid = !function_name.is_empty()
            && function_name.len() <= 64
            && function_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(TopologyError::InvalidName(function_name.to_owned()));
        }
        Ok(FunctionQueues {
            name: function_name.to_owned(),
        })
    }

    /// The function's name.
    pub fn function(&self) -> &str {
        &self.name
    }

    /// The queue the function consumes.
    pub fn work(&self) -> String {
        format!("safecity.fn.{}", self.name)
    }

    /// The dead-letter queue: inputs that can never succeed, with reasons in headers.
    pub fn dead_letter(&self) -> String {
        format!("safecity.fn.{}.dead", self.name)
    }

    /// The queue where failed inputs wait `delay` before returning to the work queue.
    pub fn retry(&self, delay: Duration) -> String {
        format!("safecity.fn.{}.retry.{}ms", self.name, delay.as_millis())
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.to_owned()))
}

fn durable_queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text(queue_type.as_str()));
    args
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), TopologyError> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await
        .map(|_| ())
        .map_err(|source| TopologyError::Declare {
            what: format!("queue `{name}`"),
            source,
        })
}

/// Declares the city exchanges (durable topic exchanges).
pub async fn declare_exchanges(channel: &Channel) -> Result<(), TopologyError> {
    for exchange in [EVENTS_EXCHANGE, FRAMES_EXCHANGE, FRAMES_DROPPED_EXCHANGE] {
        channel
            .exchange_declare(
                ShortString::from(exchange),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                what: format!("exchange `{exchange}`"),
                source,
            })?;
    }
    Ok(())
}

/// Declares one retry queue: messages wait `delay`, then return to the work queue.
pub async fn declare_retry_queue(
    channel: &Channel,
    queues: &FunctionQueues,
    queue_type: QueueType,
    delay: Duration,
) -> Result<String, TopologyError> {
    let name = queues.retry(delay);
    let mut args = durable_queue_arguments(queue_type);
    let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
    args.insert("x-dead-letter-exchange".into(), text(""));
    args.insert("x-dead-letter-routing-key".into(), text(&queues.work()));
    if queue_type == QueueType::Quorum {
        // Quorum queues can dead-letter at-least-once: an expired retry is never
        // dropped on its way back to the work queue.
        args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        args.insert("x-overflow".into(), text("reject-publish"));
    }
    declare_queue(channel, &name, args).await?;
    Ok(name)
}

/// Declares everything a function needs, idempotently: exchanges, work queue,
/// dead-letter queue, retry queues for `retry_delays`, and the bindings; a
/// frames-only work queue gets the default [`FrameBounds`].
pub async fn declare_function(
    channel: &Channel,
    queues: &FunctionQueues,
    subscriptions: &[Subscription],
    queue_type: QueueType,
    retry_delays: &[Duration],
) -> Result<(), TopologyError> {
    declare_function_bounded(
        channel,
        queues,
        subscriptions,
        queue_type,
        retry_delays,
        FrameBounds::default(),
    )
    .await
}

/// The arguments of a frames work queue bounded by `bounds`.
pub fn frames_queue_arguments(bounds: FrameBounds) -> FieldTable {
    let mut args = durable_queue_arguments(QueueType::Classic);
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(i64::from(bounds.max_frames)),
    );
    args.insert("x-overflow".into(), text("drop-head"));
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(bounds.budget.as_millis()).unwrap_or(i64::MAX)),
    );
    // No routing key: a dropped frame keeps its region.
    args.insert(
        "x-dead-letter-exchange".into(),
        text(FRAMES_DROPPED_EXCHANGE),
    );
    args
}

/// [`declare_function`] with the frame bounds of a frames-only work queue.
pub async fn declare_function_bounded(
    channel: &Channel,
    queues: &FunctionQueues,
    subscriptions: &[Subscription],
    queue_type: QueueType,
    retry_delays: &[Duration],
    frame_bounds: FrameBounds,
) -> Result<(), TopologyError> {
    if subscriptions.is_empty() {
        return Err(TopologyError::NoSubscriptions(queues.function().to_owned()));
    }
    declare_exchanges(channel).await?;
    declare_queue(
        channel,
        &queues.dead_letter(),
        durable_queue_arguments(queue_type),
    )
    .await?;

    let work_args = if subscriptions.iter().all(Subscription::is_frames) {
        frames_queue_arguments(frame_bounds)
    } else {
        let mut args = durable_queue_arguments(queue_type);
        args.insert("x-dead-letter-exchange".into(), text(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            text(&queues.dead_letter()),
        );
        if queue_type == QueueType::Quorum {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DELIVERY_LIMIT),
            );
        }
        args
    };
    declare_queue(channel, &queues.work(), work_args).await?;

    for delay in retry_delays {
        declare_retry_queue(channel, queues, queue_type, *delay).await?;
    }

    for subscription in subscriptions {
        channel
            .queue_bind(
                ShortString::from(queues.work()),
                ShortString::from(subscription.exchange()),
                ShortString::from(subscription.binding_key()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                what: format!(
                    "binding of `{}` to `{}` with key `{}`",
                    queues.work(),
                    subscription.exchange(),
                    subscription.binding_key()
                ),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_function() {
        let queues = FunctionQueues::new("fire-post").expect("valid");
        assert_eq!(queues.work(), "safecity.fn.fire-post");
        assert_eq!(queues.dead_letter(), "safecity.fn.fire-post.dead");
        assert_eq!(
            queues.retry(Duration::from_secs(5)),
            "safecity.fn.fire-post.retry.5000ms"
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        for bad in ["", "Fire", "fire post", "fire.post", &"x".repeat(65)] {
            assert!(FunctionQueues::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscriptions_bind_to_the_right_exchange() {
        let fire = Subscription::from(EventType::Fire);
        assert_eq!(fire.exchange(), EVENTS_EXCHANGE);
        assert_eq!(fire.binding_key(), "fire");
        let all = Subscription::Frames { region: None };
        assert_eq!(all.exchange(), FRAMES_EXCHANGE);
        assert_eq!(all.binding_key(), "#");
    }

    #[test]
    fn queue_type_parses() {
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert!("lazy".parse::<QueueType>().is_err());
    }
}
