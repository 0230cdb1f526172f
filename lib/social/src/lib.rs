//! # safecity-social
//!
//! What the city's public-facing functions share: a [`Notifier`] that posts an
//! alert to a social network (Mastodon-compatible API or a signed webhook), a
//! [`Ledger`] that remembers what was posted, [`PostOnce`], the one
//! check → claim → post → record flow that posts each incident at most once,
//! and [`privacy`] helpers that hide people in public snapshots. With the
//! `receiver` feature, [`receiver`] is a signed-webhook receiver (the local
//! city's outbox and the tests' social network).

pub mod config;
pub mod ledger;
pub mod mastodon;
pub mod migrate;
pub mod notifier;
pub mod once;
pub mod post;
/// Pixelating people in snapshots: one home, [`safecity_cameras::privacy`]
/// (the detector uses it at the source; posts use it again).
pub use safecity_cameras::privacy;
#[cfg(feature = "receiver")]
pub mod receiver;
pub mod secret;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod webhook;

pub use config::{AnyNotifier, NotifierConfig};
pub use ledger::{IncidentState, Ledger, LedgerError};
pub use notifier::{Notifier, NotifyError};
pub use once::{AlertOutcome, FollowUpOutcome, PostOnce, StormLimit};
pub use post::{Media, Post, Published};
pub use secret::Secret;
