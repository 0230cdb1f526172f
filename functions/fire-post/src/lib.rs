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
//! other 4xx dead-letter with the server's answer as the reason. A post whose
//! outcome is unknown (5xx, timeout, dropped connection) keeps its slot and
//! its key, so the retry replays it and it is never merged into a follow-up
//! (the check → claim → post → record flow is `safecity_social::PostOnce`).

pub mod config;
pub mod message;

use chrono::Utc;
use safecity_events::EventType;
use safecity_runtime::{CloudEvent, Context, Function, HandlerError, SafetyEvent, Subscription};
use safecity_social::post::public_snapshot;
use safecity_social::{AlertOutcome, FollowUpOutcome, Ledger, Notifier, Post, PostOnce};
use tracing::info;

pub use config::FirePostConfig;
pub use safecity_social::StormLimit;

/// The fire-post function.
#[derive(Debug)]
pub struct FirePost<N> {
    poster: PostOnce<N>,
    hide_people: bool,
}

impl<N: Notifier> FirePost<N> {
    /// A fire-post posting through `notifier`, remembering in `ledger`.
    pub fn new(notifier: N, ledger: Ledger, storm: StormLimit, hide_people: bool) -> Self {
        FirePost {
            poster: PostOnce::new(notifier, ledger, storm),
            hide_people,
        }
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
