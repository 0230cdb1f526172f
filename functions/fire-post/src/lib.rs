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
//! Incident lifecycle: the alert goes out for the first event of an
//! incident (`opened`, or an `updated` whose `opened` never came);
//! `updated` events of a posted incident are acknowledged without posting.
//! With close posts on (`SAFECITY_FIRE_POST_ON_CLOSE=true`), a `closed`
//! event posts once "fire at … no longer detected" with `Idempotency-Key` =
//! `fire-post-<incident id>-closed`, under the same at-most-once rules
//! (ledger key `<incident id>-closed`), outside storm control, and only
//! after the incident's alert is out: a `closed` overtaking its alert waits
//! ([`HandlerError::defer`]) for up to [`CLOSE_WAIT`], then is dropped.
//!
//! Network answers: 429 and 5xx retry with backoff honouring `Retry-After`;
//! other 4xx dead-letter with the server's answer as the reason. A post whose
//! outcome is unknown (5xx, timeout, dropped connection) keeps its slot and
//! its key, so the retry replays it and it is never merged into a follow-up
//! (the check → claim → post → record flow is `safecity_social::PostOnce`).

pub mod config;
pub mod message;

use std::time::Duration;

use chrono::Utc;
use safecity_events::{EventType, Lifecycle};
use safecity_runtime::{CloudEvent, Context, Function, HandlerError, SafetyEvent, Subscription};
use safecity_social::post::public_snapshot;
use safecity_social::{
    AlertOutcome, FollowUpOutcome, IncidentState, Ledger, Notifier, Post, PostOnce,
};
use tracing::info;

pub use config::FirePostConfig;
pub use safecity_social::StormLimit;

/// How long a `closed` event waits for its incident's alert to go out
/// before it is dropped (the alert may have been dead-lettered).
pub const CLOSE_WAIT: Duration = Duration::from_secs(600);

/// The fire-post function.
#[derive(Debug)]
pub struct FirePost<N> {
    poster: PostOnce<N>,
    hide_people: bool,
    close_posts: bool,
}

impl<N: Notifier> FirePost<N> {
    /// A fire-post posting through `notifier`, remembering in `ledger`
    /// (close posts off: see [`FirePost::with_close_posts`]).
    pub fn new(notifier: N, ledger: Ledger, storm: StormLimit, hide_people: bool) -> Self {
        FirePost {
            poster: PostOnce::new(notifier, ledger, storm),
            hide_people,
            close_posts: false,
        }
    }

    /// Also posts once when an incident is closed ("no longer detected").
    pub fn with_close_posts(mut self, on: bool) -> Self {
        self.close_posts = on;
        self
    }

    /// The "no longer detected" post of a closed incident: once, after its alert.
    async fn closed(&self, event: &CloudEvent<SafetyEvent>) -> Result<(), HandlerError> {
        let fire = &event.data;
        let incident = fire.incident_id.as_str();
        if !self.close_posts {
            info!(
                incident,
                "closed; close posts are off (SAFECITY_FIRE_POST_ON_CLOSE)"
            );
            return Ok(());
        }
        match self.poster.ledger().state(incident).await? {
            Some(IncidentState::Posted | IncidentState::Merged) => {}
            _ => {
                let age = (Utc::now() - event.attributes.time)
                    .to_std()
                    .unwrap_or_default();
                if age > CLOSE_WAIT {
                    info!(
                        incident,
                        "closed, but its alert never went out: no close post"
                    );
                    return Ok(());
                }
                return Err(HandlerError::defer(
                    format!("incident {incident} closed before its alert went out"),
                    Duration::from_secs(5),
                ));
            }
        }
        let region = fire.camera.region.as_str();
        let post = Post {
            text: message::closed_text(fire, event.attributes.time),
            language: "ko".to_owned(),
            media: None,
            idempotency_key: format!("fire-post-{incident}-closed"),
        };
        let subject = format!("{incident}-closed");
        match self
            .poster
            .notice(&subject, region, &message::summary(fire), &post, Utc::now())
            .await?
        {
            AlertOutcome::Posted(published) => {
                info!(incident, region, post = %published.id, "posted that the fire is no longer detected");
            }
            other => info!(incident, outcome = ?other, "close already posted, nothing to do"),
        }
        Ok(())
    }

    /// Posts one follow-up for the held incidents of `region` (or replays
    /// the one that claimed `incident`), or defers until the window has room.
    async fn follow_up(&self, incident: &str, region: &str) -> Result<(), HandlerError> {
        let outcome = self
            .poster
            .follow_up(
                incident,
                region,
                "fire-post-follow-up",
                Utc::now(),
                |held| Post {
                    text: message::follow_up_text(region, held),
                    language: "ko".to_owned(),
                    media: None,
                    idempotency_key: String::new(),
                },
            )
            .await?;
        match outcome {
            FollowUpOutcome::Posted {
                published,
                incidents,
            } => {
                info!(incident, region, incidents, post = %published.id, "posted a follow-up covering this incident");
                Ok(())
            }
            FollowUpOutcome::NothingHeld => {
                info!(
                    incident,
                    region, "already covered by a concurrent follow-up, nothing to do"
                );
                Ok(())
            }
            FollowUpOutcome::Deferred { retry_in } => Err(HandlerError::defer(
                format!("storm control: {region} is at its post limit"),
                retry_in,
            )),
        }
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
        if event.attributes.lifecycle() == Lifecycle::Closed {
            return self.closed(&event).await;
        }
        let fire = &event.data;
        let incident = fire.incident_id.as_str();
        let region = fire.camera.region.as_str();
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
            idempotency_key: format!("fire-post-{incident}"),
        };
        let summary = message::summary(fire);
        match self
            .poster
            .alert(incident, region, &summary, &post, Utc::now())
            .await?
        {
            AlertOutcome::Posted(published) => {
                info!(incident, region, post = %published.id, "posted a fire alert");
                Ok(())
            }
            AlertOutcome::AlreadyPosted => {
                info!(incident, "already posted, nothing to do");
                Ok(())
            }
            AlertOutcome::AwaitsFollowUp => self.follow_up(incident, region).await,
            AlertOutcome::Held { retry_in } => {
                info!(incident, region, "storm control: held for a follow-up post");
                Err(HandlerError::defer(
                    format!("storm control: {region} is at its post limit"),
                    retry_in,
                ))
            }
        }
    }
}
