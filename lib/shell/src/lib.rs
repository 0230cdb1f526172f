//! # safecity-shell
//!
//! The one home of the plumbing every long-running safecity process needs,
//! so that the function runtime, the motion gate and the scaler each keep
//! only their own logic and their `main` is a few lines:
//!
//! - [`telemetry`]: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`.
//! - [`signals`]: SIGTERM and SIGINT as a cancellation token.
//! - [`ops`]: the ops HTTP server: `/healthz`, `/readyz`, `/metrics`.
//! - [`backoff`]: one capped exponential backoff.
//! - [`broker`]: the broker-session supervisor (connect, run a session,
//!   reconnect with backoff, every request bounded, cancellation) and
//!   [`broker::bounded`] for single requests.
//! - [`env`]: typed settings from the environment (durations, sizes,
//!   addresses, URLs with their password redacted, secrets from files), each
//!   error naming its variable.
//!
//! It is a crate of its own, not a module of the function runtime, because
//! the scaler and the motion gate are not functions: they need the shell
//! without the runtime's trigger, and the runtime needs it without them. It
//! knows nothing of the city's events (that is `safecity-events`).

pub mod backoff;
pub mod broker;
pub mod env;
pub mod ops;
pub mod signals;
pub mod telemetry;

pub use backoff::Backoff;
pub use env::{Env, EnvError};
pub use telemetry::LogFormat;
