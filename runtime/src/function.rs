//! The author-facing surface: the [`Function`] trait, its [`Input`] and its verdicts.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use lapin::types::FieldTable;
use prometheus_client::registry::Registry;
use safecity_events::{Attributes, CloudEvent, DecodeError, EventData, Frame, Subscription};

use crate::context::Context;

/// A safecity function: a name, what it subscribes to, and one async handler.
///
/// ```no_run
/// use safecity_runtime::{CloudEvent, Context, EventType, Function, HandlerError, SafetyEvent, Subscription};
///
/// struct Log;
///
/// impl Function for Log {
///     type Input = CloudEvent<SafetyEvent>;
///     fn name(&self) -> &str { "log" }
///     fn subscriptions(&self) -> Vec<Subscription> { vec![EventType::Fire.into()] }
///     async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
///         println!("fire at {}", event.data.camera.id);
///         Ok(())
///     }
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), safecity_runtime::RunError> {
///     safecity_runtime::run(Log).await
/// }
/// ```
pub trait Function: Send + Sync + 'static {
    /// What the handler receives: `CloudEvent<T>` for events, [`Frame`] for camera frames.
    type Input: Input;

    /// The function's name; names its queue, retry path and dead-letter queue.
    fn name(&self) -> &str;

    /// What the function's queue is bound to.
    fn subscriptions(&self) -> Vec<Subscription>;

    /// Handles one input. `Ok` acknowledges it; an error retries or dead-letters it.
    fn handle(
        &self,
        input: Self::Input,
        ctx: Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Adds the function's own Prometheus metrics to the runtime's registry,
    /// served on `/metrics` beside the `safecity_events_*` series. The default
    /// adds none.
    ///
    /// Called once by [`start`](crate::start), before the HTTP port opens and
    /// before the first input. Create the metric handles when the function is
    /// built, keep them in `self`, and register clones here: a
    /// [`prometheus_client`] handle and its clone share one value, so
    /// `handle` just increments its own copy. Names are used as given (a
    /// counter gets the `_total` suffix); prefix them with the function, e.g.
    /// `safecity_detector_`, and leave the runtime's names (see
    /// [`metrics`](crate::metrics)) alone.
    ///
    /// ```
    /// use safecity_runtime::prometheus_client::metrics::counter::Counter;
    /// use safecity_runtime::prometheus_client::registry::Registry;
    /// # use safecity_runtime::{CloudEvent, Context, EventType, Function, HandlerError, SafetyEvent, Subscription};
    ///
    /// #[derive(Default)]
    /// struct Log {
    ///     fires: Counter,
    /// }
    ///
    /// impl Function for Log {
    ///     type Input = CloudEvent<SafetyEvent>;
    ///     fn name(&self) -> &str { "log" }
    ///     fn subscriptions(&self) -> Vec<Subscription> { vec![EventType::Fire.into()] }
    ///     async fn handle(&self, _event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
    ///         self.fires.inc();
    ///         Ok(())
    ///     }
    ///     fn register_metrics(&self, registry: &mut Registry) {
    ///         // Served as `safecity_log_fires_total`.
    ///         registry.register("safecity_log_fires", "Fire events seen", self.fires.clone());
    ///     }
    /// }
    /// ```
    fn register_metrics(&self, registry: &mut Registry) {
        let _ = registry;
    }
}

/// A received AMQP message, as input decoders see it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The body.
    pub body: &'a [u8],
    /// The AMQP `content-type` property, if set.
    pub content_type: Option<&'a str>,
    /// The AMQP headers, if any.
    pub headers: Option<&'a FieldTable>,
    /// The routing key it was published with.
    pub routing_key: &'a str,
}

/// A type a function can receive: decoded from a message, or rejected with a reason.
pub trait Input: Sized + Send + 'static {
    /// Decodes and validates a message.
    fn decode(message: &Message<'_>) -> Result<Self, DecodeError>;

    /// The CloudEvent attributes, for inputs that are CloudEvents.
    fn attributes(&self) -> Option<&Attributes>;

    /// What log lines call this input: the event id, or `<camera>#<sequence>`
    /// for a frame.
    fn id(&self) -> Cow<'_, str>;

    /// Metric label for this input: the event type, or `frames`.
    fn kind(&self) -> &'static str;

    /// When the thing the input reports happened; used for the event-age metric.
    fn occurred_at(&self) -> DateTime<Utc>;
}

impl<T: EventData> Input for CloudEvent<T> {
    fn decode(message: &Message<'_>) -> Result<Self, DecodeError> {
        CloudEvent::from_message(message.content_type, message.body)
    }

    fn attributes(&self) -> Option<&Attributes> {
        Some(&self.attributes)
    }

    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.attributes.id)
    }

    fn kind(&self) -> &'static str {
        self.attributes.event_type.as_str()
    }

    fn occurred_at(&self) -> DateTime<Utc> {
        self.attributes.time
    }
}

impl Input for Frame {
    fn decode(message: &Message<'_>) -> Result<Self, DecodeError> {
        Frame::decode(message.body, message.headers)
    }

    fn attributes(&self) -> Option<&Attributes> {
        None
    }

    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(format!("{}#{}", self.camera.id, self.sequence))
    }

    fn kind(&self) -> &'static str {
        "frames"
    }

    fn occurred_at(&self) -> DateTime<Utc> {
        self.captured_at
    }
}

/// A handler's verdict on an input it could not handle.
///
/// Any `std::error::Error` converts into [`HandlerError::Retry`] with `?`: an
/// unexpected failure is assumed transient. Say [`HandlerError::dead_letter`]
/// when retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// Try again later: after `after`, or after the runtime's next backoff step.
    Retry {
        /// Why the attempt failed.
        reason: String,
        /// Minimum delay before the next attempt, overriding the backoff schedule.
        after: Option<Duration>,
    },
    /// Not a failure: hand the input back for later (e.g. a rate limit is
    /// reached). It returns after `after` (rounded up to whole seconds, capped
    /// by `SAFECITY_MAX_RETRY_DELAY`) without spending an attempt.
    Defer {
        /// Why the input waits.
        reason: String,
        /// How long it waits.
        after: Duration,
    },
    /// Give up now: the input goes to the dead-letter queue with this reason.
    DeadLetter {
        /// Why the input can never succeed.
        reason: String,
    },
}

impl HandlerError {
    /// Retry on the runtime's backoff schedule.
    pub fn retry(reason: impl fmt::Display) -> Self {
        HandlerError::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }

    /// Retry no sooner than `after` (e.g. a server's `Retry-After`).
    pub fn retry_after(reason: impl fmt::Display, after: Duration) -> Self {
        HandlerError::Retry {
            reason: reason.to_string(),
            after: Some(after),
        }
    }

    /// Come back after `after` without counting a failed attempt.
    pub fn defer(reason: impl fmt::Display, after: Duration) -> Self {
        HandlerError::Defer {
            reason: reason.to_string(),
            after,
        }
    }

    /// Dead-letter now.
    pub fn dead_letter(reason: impl fmt::Display) -> Self {
        HandlerError::DeadLetter {
            reason: reason.to_string(),
        }
    }

    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            HandlerError::Retry { reason, .. }
            | HandlerError::Defer { reason, .. }
            | HandlerError::DeadLetter { reason } => reason,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Retry { reason, .. } => write!(f, "retry: {reason}"),
            HandlerError::Defer { reason, after } => {
                write!(f, "defer {}: {reason}", humantime::format_duration(*after))
            }
            HandlerError::DeadLetter { reason } => write!(f, "dead-letter: {reason}"),
        }
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::retry(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_turns_errors_into_retries() {
        fn parse(text: &str) -> Result<u32, HandlerError> {
            Ok(text.parse::<u32>()?)
        }
        let err = parse("x").expect_err("not a number");
        assert!(matches!(err, HandlerError::Retry { after: None, .. }));
        assert!(err.reason().contains("invalid digit"));
    }

    #[test]
    fn cloud_event_input_rejects_a_foreign_content_type() {
        let message = Message {
            body: b"{}",
            content_type: Some("text/plain"),
            headers: None,
            routing_key: "fire",
        };
        assert_eq!(
            <CloudEvent<serde_json::Value> as Input>::decode(&message),
            Err(DecodeError::ContentType("text/plain".into()))
        );
    }
}
