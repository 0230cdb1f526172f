//! # safecity-runtime
//!
//! The library every safecity function is built on. An author implements one
//! trait, [`Function`], and calls [`run`]; the runtime gives the function a
//! uniform RabbitMQ trigger:
//!
//! - **Topology** declared idempotently at start: the events exchange, a durable
//!   quorum queue per function bound to its event types, retry queues and a
//!   dead-letter queue ([`topology`]).
//! - **Delivery**: manual ack after success, at most `SAFECITY_CONCURRENCY`
//!   handlers at once (the prefetch), at-least-once.
//! - **Failures**: retries with backoff that never block other messages, then a
//!   dead-letter queue whose headers say why ([`failure`]); undecodable input is
//!   dead-lettered at once; a panicking handler is a failed attempt.
//! - **Shutdown** on SIGTERM/SIGINT: stop consuming, let handlers finish within
//!   the grace period, requeue the rest.
//! - **Broker faults**: reconnect with backoff, resume consuming.
//! - **Observability**: `/healthz`, `/readyz`, `/metrics` and `tracing` spans
//!   whose trace id comes from the event's `traceparent`. A function adds its
//!   own metrics to `/metrics` with [`Function::register_metrics`] (handles
//!   from the re-exported [`prometheus_client`], so versions always match).
//!
//! Configuration comes from the environment; see [`RuntimeConfig`].

pub mod city;
pub mod config;
pub mod context;
pub mod event;
pub mod failure;
pub mod frame;
pub mod function;
pub mod headers;
pub mod http;
pub mod metrics;
pub mod publisher;
mod run;
pub mod shutdown;
pub mod telemetry;
pub mod topology;
pub mod trace;
mod worker;

pub use city::{BoundingBox, Camera, Detection, EventType, FrameSize, Jpeg, SafetyEvent};
pub use config::{ConfigError, RuntimeConfig};
pub use context::Context;
pub use event::{Attributes, CloudEvent, DecodeError, EventData};
pub use frame::Frame;
pub use function::{Function, HandlerError, Input, Subscription};
pub use publisher::{PublishError, Publisher};
pub use run::{RunError, RunningFunction, run, start};

/// The Prometheus client the runtime's registry is built with, for
/// [`Function::register_metrics`].
pub use prometheus_client;

#[cfg(feature = "testkit")]
mod testkit;

/// Helpers for testing functions: in memory, and (feature `testkit`) on a real broker.
pub mod testing {
    pub use crate::context::{Emitted, TestContext};
    #[cfg(feature = "testkit")]
    pub use crate::testkit::{
        TestClient, TestFunction, TestVhost, eventually, http_get, metric, rabbitmqctl,
    };
}
