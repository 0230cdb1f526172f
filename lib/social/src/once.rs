//! Posting each incident at most once: the check → claim → post → record flow
//! that every public-facing function shares.
//!
//! [`PostOnce`] owns a [`Notifier`] and a [`Ledger`]:
//!
//! - an incident the ledger knows as posted or merged is never posted again;
//! - a post first **claims** its slot (its idempotency key) under the
//!   region's storm limit, together with the incidents it covers: they belong
//!   to this post from then on, and are never merged into another;
//! - a post whose outcome is unknown (a 5xx, a timeout, a connection dropped
//!   after the request was sent) keeps its claim: the retry replays the same
//!   key, and the network returns the first post if it exists. Only a definite
//!   "not posted" (refused before acceptance, or the connection refused) gives
//!   the slot back;
//! - when the region's limit is reached the incident is held, and a later
//!   follow-up covers every held incident of the region in one post.

use std::time::Duration;

use chrono::{DateTime, Utc};
use safecity_runtime::HandlerError;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::ledger::{HeldIncident, IncidentState, Ledger, PostKind};
use crate::notifier::Notifier;
use crate::post::{Post, Published};

/// How many posts a region may get per window; the rest merge into a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormLimit {
    /// Posts per window per region (at least 1).
    pub max_posts: u32,
    /// The sliding window.
    pub window: Duration,
}

impl StormLimit {
    /// No limit: every incident gets its own post.
    pub const UNLIMITED: StormLimit = StormLimit {
        max_posts: u32::MAX,
        window: Duration::from_secs(1),
    };
}

/// What became of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    /// The post is out (now, or by an earlier attempt whose answer was lost).
    Posted(Published),
    /// The incident's post or follow-up exists already: nothing was sent.
    AlreadyPosted,
    /// The region is at its limit: the incident is now held for a follow-up.
    Held {
        /// When the window has room again.
        retry_in: Duration,
    },
    /// The incident waits for a follow-up (held earlier, or claimed by a
    /// follow-up whose outcome is unknown): call [`PostOnce::follow_up`].
    AwaitsFollowUp,
}

/// What became of a follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpOutcome {
    /// The follow-up is out, covering these incidents.
    Posted {
        /// The post.
        published: Published,
        /// How many incidents it covers.
        incidents: usize,
    },
    /// Nothing is held in the region (a concurrent follow-up covered it).
    NothingHeld,
    /// The region is still at its limit.
    Deferred {
        /// When the window has room again.
        retry_in: Duration,
    },
}

/// Posts through a notifier, at most once per incident (see the module docs).
#[derive(Debug)]
pub struct PostOnce<N> {
    notifier: N,
    ledger: Ledger,
    storm: StormLimit,
}

impl<N: Notifier> PostOnce<N> {
    /// Posts through `notifier`, remembering in `ledger`, under `storm`.
    pub fn new(notifier: N, ledger: Ledger, storm: StormLimit) -> Self {
        PostOnce {
            notifier,
            ledger,
            storm,
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        chrono::Duration::from_std(self.storm.window)
            .ok()
            .and_then(|window| now.checked_sub_signed(window))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// How long until the oldest post of the window leaves it.
    async fn room_in(&self, region: &str, now: DateTime<Utc>) -> Result<Duration, HandlerError> {
        let oldest = self
            .ledger
            .oldest_post_since(region, self.window_start(now))
            .await?;
        let free_at = oldest.unwrap_or(now) + chrono::Duration::from_std(self.storm.window)?;
        Ok((free_at - now).to_std().unwrap_or_default() + Duration::from_millis(100))
    }

    /// Sends a claimed post; gives the claim back only on a definite "not
    /// posted", and records the post when it is out.
    async fn send(
        &self,
        kind: PostKind,
        post: &Post,
        covered: &[(&str, &str)],
        region: &str,
        now: DateTime<Utc>,
    ) -> Result<Published, HandlerError> {
        match self.notifier.publish(post).await {
            Ok(published) => {
                self.ledger
                    .record(
                        kind,
                        &post.idempotency_key,
                        covered,
                        region,
                        &published,
                        now,
                    )
                    .await?;
                Ok(published)
            }
            Err(error) if error.may_have_posted() => {
                warn!(key = %post.idempotency_key, %error, "post outcome unknown: keeping its slot, the retry replays the same key");
                Err(error.into_verdict())
            }
            Err(error) => {
                self.ledger.unclaim(&post.idempotency_key, kind).await?;
                Err(error.into_verdict())
            }
        }
    }

    /// Posts `post` as the alert of `incident` (its key names the slot),
    /// unless the incident was posted already or the region is at its limit.
    pub async fn alert(
        &self,
        incident: &str,
        region: &str,
        summary: &str,
        post: &Post,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, HandlerError> {
        self.post_once(incident, region, summary, post, now, self.storm.max_posts)
            .await
    }

    /// Posts `post` once for `subject` (a ledger key of its own, e.g.
    /// `<incident>-closed` for the end of an incident already alerted),
    /// outside storm control: a notice is never held or merged. It still
    /// counts in the region's window, and a replay of the same key never
    /// makes a second post.
    pub async fn notice(
        &self,
        subject: &str,
        region: &str,
        summary: &str,
        post: &Post,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, HandlerError> {
        self.post_once(subject, region, summary, post, now, u32::MAX)
            .await
    }

    async fn post_once(
        &self,
        incident: &str,
        region: &str,
        summary: &str,
        post: &Post,
        now: DateTime<Utc>,
        max_posts: u32,
    ) -> Result<AlertOutcome, HandlerError> {
        match self.ledger.state(incident).await? {
            Some(IncidentState::Posted | IncidentState::Merged) => {
                return Ok(AlertOutcome::AlreadyPosted);
            }
            Some(IncidentState::Held) => return Ok(AlertOutcome::AwaitsFollowUp),
            Some(IncidentState::Pending) => {
                let slot = self.ledger.pending_slot(incident).await?;
                if slot.as_deref() != Some(post.idempotency_key.as_str()) {
                    return Ok(AlertOutcome::AwaitsFollowUp);
                }
            }
            None => {}
        }
        let claimed = self
            .ledger
            .claim(
                &post.idempotency_key,
                region,
                &[(incident, summary)],
                now,
                self.window_start(now),
                max_posts,
            )
            .await?;
        if !claimed {
            self.ledger.hold(incident, region, summary, now).await?;
            return Ok(AlertOutcome::Held {
                retry_in: self.room_in(region, now).await?,
            });
        }
        let published = self
            .send(PostKind::Alert, post, &[(incident, summary)], region, now)
            .await?;
        Ok(AlertOutcome::Posted(published))
    }

    /// Posts one follow-up covering the held incidents of `region`, written
    /// by `compose`; or replays the follow-up that claimed `incident` when its
    /// outcome is unknown. Keys are `<key_prefix>-<digest of the incidents>`.
    pub async fn follow_up(
        &self,
        incident: &str,
        region: &str,
        key_prefix: &str,
        now: DateTime<Utc>,
        compose: impl Fn(&[HeldIncident]) -> Post,
    ) -> Result<FollowUpOutcome, HandlerError> {
        let pending = match self.ledger.pending_slot(incident).await? {
            Some(slot) => Some((slot.clone(), self.ledger.claimed(&slot).await?)),
            None => None,
        };
        let (slot, incidents) = match pending {
            Some(pending) => pending,
            None => {
                let held = self.ledger.held(region).await?;
                if held.is_empty() {
                    return Ok(FollowUpOutcome::NothingHeld);
                }
                let slot = follow_up_key(key_prefix, &held);
                let covered = pairs(&held);
                let claimed = self
                    .ledger
                    .claim(
                        &slot,
                        region,
                        &covered,
                        now,
                        self.window_start(now),
                        self.storm.max_posts,
                    )
                    .await?;
                if !claimed {
                    return Ok(FollowUpOutcome::Deferred {
                        retry_in: self.room_in(region, now).await?,
                    });
                }
                (slot, held)
            }
        };
        let mut post = compose(&incidents);
        post.idempotency_key = slot;
        let published = self
            .send(PostKind::FollowUp, &post, &pairs(&incidents), region, now)
            .await?;
        info!(region, incidents = incidents.len(), post = %published.id, "posted a follow-up");
        Ok(FollowUpOutcome::Posted {
            published,
            incidents: incidents.len(),
        })
    }
}

fn pairs(incidents: &[HeldIncident]) -> Vec<(&str, &str)> {
    incidents
        .iter()
        .map(|h| (h.incident_id.as_str(), h.summary.as_str()))
        .collect()
}

/// `<prefix>-<first 32 hex digits of SHA-256 over the incident ids>`.
fn follow_up_key(prefix: &str, held: &[HeldIncident]) -> String {
    let mut digest = Sha256::new();
    for incident in held {
        digest.update(incident.incident_id.as_bytes());
        digest.update([0]);
    }
    format!("{prefix}-{}", &hex::encode(digest.finalize())[..32])
}
