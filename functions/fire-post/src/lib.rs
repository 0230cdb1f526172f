//! # fire-post
//!
//! Posts every fire incident to a social network exactly once:
//!
//! 1. An incident the ledger knows as posted or merged is acknowledged without
//!    posting: a redelivery or a re-detection never makes a second post.
//! 2. Otherwise, if the camera's region had fewer than `max_posts` posts in the
//!    window, the alert (Korean and English, place, time, confidence, map link,
//!    snapshot with people pixelated) is posted with `Idempotency-Key` =
//!    `fire-post-<incident id>`, then recorded. A crash between the two replays
//!    the same key, and the network returns the first post.
//! 3. Otherwise the incident is held and the event deferred until the window
//!    has room; the first held event to come back posts one follow-up listing
//!    every held incident of the region, and the others find themselves merged.
//!
//! Network answers: 429 and 5xx retry with backoff honouring `Retry-After`;
//! other 4xx dead-letter with the server's answer as the reason.

pub mod config;
pub mod message;

use chrono::{DateTime, Utc};
use safecity_runtime::{
    CloudEvent, Context, EventType, Function, HandlerError, SafetyEvent, Subscription,
};
use safecity_social::ledger::PostKind;
use std::time::Duration;

use safecity_social::post::public_snapshot;
use safecity_social::{IncidentState, Ledger, Notifier, Post, Published};
use sha2::{Digest, Sha256};
use tracing::info;

pub use config::{FirePostConfig, StormLimit};

/// The fire-post function.
pub struct FirePost<N> {
    notifier: N,
    ledger: Ledger,
    storm: StormLimit,
    hide_people: bool,
}

impl<N: Notifier> FirePost<N> {
    /// A fire-post posting through `notifier`, remembering in `ledger`.
    pub fn new(notifier: N, ledger: Ledger, storm: StormLimit, hide_people: bool) -> Self {
        FirePost {
            notifier,
            ledger,
            storm,
            hide_people,
        }
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.storm.window).unwrap_or(chrono::Duration::MAX)
    }

    /// Reserves one of the region's posts in the window for `slot`.
    async fn reserve(
        &self,
        slot: &str,
        region: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HandlerError> {
        Ok(self
            .ledger
            .reserve(slot, region, now, now - self.window(), self.storm.max_posts)
            .await?)
    }

    /// A deferral until the oldest post of the window leaves it.
    async fn defer_until_room(
        &self,
        region: &str,
        now: DateTime<Utc>,
    ) -> Result<HandlerError, HandlerError> {
        let oldest = self
            .ledger
            .oldest_post_since(region, now - self.window())
            .await?;
        let free_at = oldest.unwrap_or(now) + self.window();
        let wait = (free_at - now).to_std().unwrap_or_default() + Duration::from_millis(100);
        Ok(HandlerError::defer(
            format!("storm control: {region} is at its post limit"),
            wait,
        ))
    }

    /// Publishes a post whose slot is reserved; gives the slot back if it fails.
    async fn publish(&self, post: &Post) -> Result<Published, HandlerError> {
        match self.notifier.publish(post).await {
            Ok(published) => Ok(published),
            Err(error) => {
                self.ledger.release(&post.idempotency_key).await?;
                Err(error.into_verdict())
            }
        }
    }

    /// Posts one follow-up for every held incident of `region` if the window
    /// has room, or defers until it has.
    async fn post_follow_up(&self, region: &str, now: DateTime<Utc>) -> Result<(), HandlerError> {
        let held = self.ledger.held(region).await?;
        if held.is_empty() {
            return Ok(());
        }
        let mut digest = Sha256::new();
        for incident in &held {
            digest.update(incident.incident_id.as_bytes());
            digest.update([0]);
        }
        let post = Post {
            text: message::follow_up_text(region, &held),
            language: "ko".to_owned(),
            media: None,
            idempotency_key: format!(
                "fire-post-follow-up-{}",
                &hex::encode(digest.finalize())[..32]
            ),
        };
        if !self.reserve(&post.idempotency_key, region, now).await? {
            return Err(self.defer_until_room(region, now).await?);
        }
        let published = self.publish(&post).await?;
        let covered: Vec<(&str, &str)> = held
            .iter()
            .map(|h| (h.incident_id.as_str(), h.summary.as_str()))
            .collect();
        self.ledger
            .record(
                PostKind::FollowUp,
                &post.idempotency_key,
                &covered,
                region,
                &published,
                now,
            )
            .await?;
        info!(region, incidents = held.len(), post = %published.id, "posted a follow-up");
        Ok(())
    }
}

impl<N: Notifier> Function for FirePost<N> {
    type Input = CloudEvent<SafetyEvent>;

    fn name(&self) -> &str {
        "fire-post"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Fire.into()]
    }

    async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        let fire = &event.data;
        let incident = fire.incident_id.as_str();
        let region = fire.camera.region.as_str();
        let now = Utc::now();
        match self.ledger.state(incident).await? {
            Some(IncidentState::Posted | IncidentState::Merged) => {
                info!(incident, "already posted, nothing to do");
                return Ok(());
            }
            Some(IncidentState::Held) => return self.post_follow_up(region, now).await,
            None => {}
        }
        let summary = message::summary(fire);
        let slot = format!("fire-post-{incident}");
        if !self.reserve(&slot, region, now).await? {
            self.ledger.hold(incident, region, &summary, now).await?;
            info!(incident, region, "storm control: held for a follow-up post");
            return Err(self.defer_until_room(region, now).await?);
        }
        let post = Post {
            text: message::alert_text(fire),
            language: "ko".to_owned(),
            media: public_snapshot(
                fire,
                self.hide_people,
                format!(
                    "Camera {} in {}: fire detected",
                    fire.camera.id, fire.camera.region
                ),
            ),
            idempotency_key: slot,
        };
        let published = self.publish(&post).await?;
        self.ledger
            .record(
                PostKind::Alert,
                &post.idempotency_key,
                &[(incident, summary.as_str())],
                region,
                &published,
                now,
            )
            .await?;
        info!(incident, region, post = %published.id, "posted a fire alert");
        Ok(())
    }
}
