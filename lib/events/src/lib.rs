//! # safecity-events
//!
//! The contract every safecity component shares, and nothing else: the
//! scaler, the CLI, the motion gate and the function runtime all depend on
//! it, and it depends on no safecity crate.
//!
//! - [`event`]: CloudEvents 1.0 in JSON structured mode, validated on decode
//!   with the offending field named; [`city`]: the payloads (safety events,
//!   cameras, detections).
//! - [`incident`]: the incident lifecycle extensions (`incidentstate`,
//!   `zones`, `movement`, `updatereason`) and zone names.
//! - [`frame`]: camera frames, a binary JPEG body with camera headers.
//! - [`topology`]: exchange and queue names, bindings ([`Subscription`]) and
//!   their idempotent declaration.
//! - [`dead_letter`]: the failure record a message carries through retries
//!   into a dead-letter queue (header names, reasons, causes).
//! - [`trace`]: W3C `traceparent`, carried from camera to post.
//! - [`publish`]: confirmed, mandatory publishing, so a message is either
//!   stored by the broker or the publisher hears why not.
//! - [`headers`]: typed reads and writes of AMQP headers.
//!
//! The contract is defined on AMQP 0-9-1 (RabbitMQ): message properties and
//! headers are part of it, which is why this crate speaks `lapin` types.

pub mod city;
pub mod dead_letter;
pub mod event;
mod event_type;
pub mod frame;
pub mod headers;
pub mod incident;
pub mod publish;
pub mod topology;
pub mod trace;

pub use city::{BoundingBox, Camera, Detection, EventType, FrameAge, FrameSize, Jpeg, SafetyEvent};
pub use dead_letter::{DeadLetterCause, FailureRecord};
pub use event::{Attributes, CloudEvent, DecodeError, EventData};
pub use frame::Frame;
pub use incident::{Lifecycle, Movement, UpdateReason, ZoneMovement};
pub use publish::{PublishError, Publisher};
pub use topology::{FunctionQueues, QueueType, Subscription};
pub use trace::TraceParent;
