//! # safecity-runtime
//!
//! Write a safecity function: implement [`Function`] (a name, what it
//! subscribes to, one async handler) and call [`run`]. The runtime gives it a
//! uniform RabbitMQ trigger:
//!
//! - **Topology** declared idempotently at start: a durable quorum queue per
//!   function bound to its [`Subscription`]s, retry queues and a dead-letter
//!   queue.
//! - **Delivery**: manual ack after success, at most `SAFECITY_CONCURRENCY`
//!   handlers at once (the prefetch), at-least-once.
//! - **Failures**: the handler's [`HandlerError`] decides: retry with backoff
//!   (never blocking other messages), defer without spending an attempt, or
//!   dead-letter with a reason. Undecodable input is dead-lettered at once; a
//!   panicking or overrunning handler is a failed attempt.
//! - **Shutdown** on SIGTERM/SIGINT: stop consuming, let handlers finish within
//!   the grace period, requeue the rest.
//! - **Broker faults**: reconnect with backoff, resume consuming.
//! - **Observability**: `/healthz`, `/readyz`, `/metrics` and `tracing` spans
//!   whose trace id comes from the event's `traceparent`; a function adds its
//!   own metrics with [`Function::register_metrics`].
//!
//! The handler gets its input ([`CloudEvent`] of a payload, or a camera
//! [`Frame`]) and a [`Context`] (attempt, deadline, shutdown token, span, and
//! [`Context::emit`] to publish events). Configuration comes from the
//! environment ([`RuntimeConfig`]); [`start`] takes it explicitly instead.
//! Test a handler in memory with [`testing::TestContext`], or on a real broker
//! with the `testkit` feature.
//!
//! The event types are the contract crate's, re-exported as [`events`]
//! (`safecity-events`), so tools can depend on the contract alone.

mod config;
mod context;
mod function;
mod metrics;
mod run;
#[cfg(feature = "testkit")]
mod testkit;
mod worker;

pub use config::RuntimeConfig;
pub use context::Context;
pub use function::{Function, HandlerError, Input, Message};
pub use run::{RunError, RunningFunction, run, start};
pub use safecity_events::{CloudEvent, EventType, Frame, PublishError, SafetyEvent, Subscription};

/// The wire contract: events, payloads, frames, topology names.
pub use safecity_events as events;

/// The Prometheus client the runtime's registry is built with, for
/// [`Function::register_metrics`].
pub use prometheus_client;

/// Helpers for testing functions: in memory, and (feature `testkit`) on a real broker.
pub mod testing {
    pub use crate::context::{Emitted, TestContext};
    #[cfg(feature = "testkit")]
    pub use crate::testkit::{
        TestClient, TestFunction, TestVhost, eventually, http_get, metric, rabbitmqctl,
    };
}
