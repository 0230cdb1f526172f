//! What a handler knows about the attempt it runs in, and how it emits events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use safecity_events::topology::FrameBounds;
use safecity_events::{
    Attributes, CloudEvent, DecodeError, EventData, PublishError, Publisher, TraceParent,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Span;

/// An event a handler emitted, as recorded by a test context.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Routing key (the event type).
    pub routing_key: String,
    /// The JSON structured-mode body.
    pub body: Vec<u8>,
}

impl Emitted {
    /// Decodes the recorded body back into a typed event.
    pub fn decode<T: EventData>(&self) -> Result<CloudEvent<T>, DecodeError> {
        CloudEvent::from_json(&self.body)
    }
}

#[derive(Clone)]
enum Sink {
    Broker(Publisher),
    Recorder(Arc<Mutex<Vec<Emitted>>>),
}

/// The context of one handler attempt.
#[derive(Clone)]
pub struct Context {
    function: Arc<str>,
    attributes: Option<Attributes>,
    attempt: u32,
    deadline: Instant,
    shutdown: CancellationToken,
    span: Span,
    trace: TraceParent,
    frame_budget: Duration,
    sink: Sink,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("function", &self.function)
            .field("attributes", &self.attributes)
            .field("attempt", &self.attempt)
            .field("deadline", &self.deadline)
            .field("trace", &self.trace.to_string())
            .finish()
    }
}

/// Everything the runtime knows when it starts an attempt.
pub(crate) struct AttemptInfo {
    pub function: Arc<str>,
    pub attributes: Option<Attributes>,
    pub attempt: u32,
    pub timeout: Duration,
    pub shutdown: CancellationToken,
    pub span: Span,
    pub trace: TraceParent,
    pub frame_budget: Duration,
}

impl Context {
    pub(crate) fn for_broker(info: AttemptInfo, publisher: Publisher) -> Self {
        Context::build(info, Sink::Broker(publisher))
    }

    fn build(info: AttemptInfo, sink: Sink) -> Self {
        Context {
            function: info.function,
            attributes: info.attributes,
            attempt: info.attempt,
            deadline: Instant::now() + info.timeout,
            shutdown: info.shutdown,
            span: info.span,
            trace: info.trace,
            frame_budget: info.frame_budget,
            sink,
        }
    }

    /// The frame budget (`SAFECITY_FRAME_BUDGET`): the broker drops frames
    /// that waited longer, and an alert from an older frame is late.
    pub fn frame_budget(&self) -> Duration {
        self.frame_budget
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.function
    }

    /// The CloudEvent attributes of the input, when it is a CloudEvent.
    pub fn attributes(&self) -> Option<&Attributes> {
        self.attributes.as_ref()
    }

    /// Which attempt this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When this attempt times out and is counted as failed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fires when the process starts shutting down: finish or give up quickly.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The span of this attempt; its `trace_id` comes from the input's `traceparent`.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The trace context this attempt propagates to the events it emits.
    pub fn traceparent(&self) -> TraceParent {
        self.trace
    }

    /// Publishes `event` to the events exchange and waits for the broker's confirm.
    ///
    /// The event inherits this attempt's trace unless it carries its own
    /// `traceparent`. An event that no queue is bound for is an error
    /// ([`PublishError::Unroutable`]), never a silent drop.
    pub async fn emit<T: EventData>(&self, mut event: CloudEvent<T>) -> Result<(), PublishError> {
        if event.attributes.traceparent.is_none() {
            event.attributes.traceparent = Some(self.trace);
        }
        match &self.sink {
            Sink::Broker(publisher) => publisher.publish_event(&event).await,
            Sink::Recorder(recorded) => {
                let routing_key = event.attributes.event_type.as_str();
                let body = event.to_json();
                recorded
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(Emitted {
                        routing_key: routing_key.to_owned(),
                        body,
                    });
                Ok(())
            }
        }
    }
}

/// Builds contexts for unit tests of handlers, without a broker.
///
/// ```
/// use safecity_runtime::testing::TestContext;
///
/// let test = TestContext::new("map-pin").attempt(2);
/// let ctx = test.context();
/// assert_eq!(ctx.attempt(), 2);
/// assert!(test.emitted().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct TestContext {
    function: String,
    attributes: Option<Attributes>,
    attempt: u32,
    timeout: Duration,
    frame_budget: Duration,
    shutdown: CancellationToken,
    recorded: Arc<Mutex<Vec<Emitted>>>,
}

impl TestContext {
    /// A context for `function`, first attempt, 60 s deadline, 10 s frame budget.
    pub fn new(function: &str) -> Self {
        TestContext {
            function: function.to_owned(),
            attributes: None,
            attempt: 1,
            timeout: Duration::from_secs(60),
            frame_budget: FrameBounds::default().budget,
            shutdown: CancellationToken::new(),
            recorded: Arc::default(),
        }
    }

    /// Sets the attempt number.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the time the handler gets.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the frame budget the handler sees (default 10 s).
    pub fn frame_budget(mut self, budget: Duration) -> Self {
        self.frame_budget = budget;
        self
    }

    /// Copies the attributes of the event the handler will receive.
    pub fn for_event<T>(mut self, event: &CloudEvent<T>) -> Self {
        self.attributes = Some(event.attributes.clone());
        self
    }

    /// The shutdown token the contexts share: cancel it to simulate a SIGTERM.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A context to pass to the handler; events it emits are recorded here.
    pub fn context(&self) -> Context {
        let trace = self
            .attributes
            .as_ref()
            .and_then(|a| a.traceparent)
            .map(|parent| parent.child())
            .unwrap_or_else(TraceParent::new_root);
        Context::build(
            AttemptInfo {
                function: Arc::from(self.function.as_str()),
                attributes: self.attributes.clone(),
                attempt: self.attempt,
                timeout: self.timeout,
                shutdown: self.shutdown.clone(),
                span: tracing::info_span!("test_handler", function = %self.function),
                trace,
                frame_budget: self.frame_budget,
            },
            Sink::Recorder(self.recorded.clone()),
        )
    }

    /// Events emitted through contexts of this builder, in order.
    pub fn emitted(&self) -> Vec<Emitted> {
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_events::EventType;

    #[tokio::test]
    async fn emitted_events_inherit_the_trace() {
        let incoming = CloudEvent::new("/cameras/c1", EventType::Gun, serde_json::json!({}))
            .with_traceparent(TraceParent::new_root());
        let test = TestContext::new("caption").for_event(&incoming);
        let ctx = test.context();
        ctx.emit(CloudEvent::new(
            "/functions/caption",
            EventType::Gun,
            serde_json::json!({"text": "a person with a gun"}),
        ))
        .await
        .expect("recorded");
        let emitted = test.emitted();
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].routing_key, "gun");
        let event = emitted[0]
            .decode::<serde_json::Value>()
            .expect("valid event");
        let parent = incoming.attributes.traceparent.expect("trace");
        let child = event.attributes.traceparent.expect("inherited");
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.parent_id, parent.parent_id);
    }
}
