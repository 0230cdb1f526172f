//! # safecity-social
//!
//! What the city's public-facing functions share: a [`Notifier`] that posts an
//! alert to a social network (Mastodon-compatible API or a signed webhook), a
//! [`Ledger`] that remembers what was posted so an incident is never posted
//! twice, and [`privacy`] helpers that hide people in public snapshots.

pub mod config;
pub mod ledger;
pub mod mastodon;
pub mod migrate;
pub mod notifier;
pub mod post;
pub mod privacy;
pub mod secret;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod webhook;

pub use config::{AnyNotifier, ConfigError, NotifierConfig};
pub use ledger::{IncidentState, Ledger, LedgerError};
pub use notifier::{Notifier, NotifyError};
pub use post::{Media, Post, Published};
pub use secret::Secret;
