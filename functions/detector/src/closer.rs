//! The closer: publishes the `closed` events of incidents nobody has seen
//! for the window.
//!
//! Handlers emit `opened` and `updated` through the runtime, but an incident
//! ends when frames *stop* coming, so no handler runs then. The closer is a
//! task with its own broker connection (confirm mode, `mandatory`): every
//! `tick` it takes the incidents whose camera's capture clock is a window
//! past their last detection ([`IncidentTracker::due_closures`]) and
//! publishes their `closed` event; a failed publish leaves the incident open
//! for the next tick (and reconnects with backoff). When stopped, after the
//! runtime has drained, it closes every incident still open
//! ([`IncidentTracker::close_all`]): the detector's memory is about to be
//! lost, and a restarted detector opens a new incident for anything still
//! in view.

use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use safecity_events::{Lifecycle, PublishError, Publisher};
use safecity_shell::backoff::Backoff;
use safecity_shell::broker::{BrokerSettings, CLOSE_TIMEOUT_ON_SHUTDOWN, bounded};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::incidents::{CloseClaim, IncidentTracker};
use crate::metrics::DetectorMetrics;

/// Where and how often the closer works.
#[derive(Debug, Clone)]
pub struct CloserSettings {
    /// Its broker connection.
    pub broker: BrokerSettings,
    /// How often it looks for incidents to close.
    pub tick: Duration,
    /// How long the final closing may take when stopped.
    pub shutdown_grace: Duration,
}

impl CloserSettings {
    /// Settings for `amqp_url`, ticking at a quarter of the incident window
    /// (at most every second, at least every 50 ms).
    pub fn new(amqp_url: &str, incident_window: Duration) -> Self {
        CloserSettings {
            broker: BrokerSettings {
                url: amqp_url.to_owned(),
                connection_name: "safecity detector closer".to_owned(),
                reconnect_min: Duration::from_millis(200),
                reconnect_max: Duration::from_secs(10),
            },
            tick: (incident_window / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

struct Link {
    connection: Connection,
    publisher: Publisher,
}

/// Starts the closer; it runs until `stop` fires, then closes what is open.
pub fn spawn(
    tracker: IncidentTracker,
    settings: CloserSettings,
    metrics: Arc<DetectorMetrics>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut link: Option<Link> = None;
        let mut backoff =
            Backoff::new(settings.broker.reconnect_min, settings.broker.reconnect_max);
        let mut wait = settings.tick;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let claims = tracker.due_closures();
            if claims.is_empty() {
                wait = settings.tick;
                continue;
            }
            wait = match publish(&mut link, &settings.broker, claims, &metrics).await {
                Ok(()) => {
                    backoff.reset();
                    settings.tick
                }
                Err(error) => {
                    let retry_in = backoff.next_delay().max(settings.tick);
                    warn!(%error, retry_in = ?retry_in, "closing incidents failed; they stay open until the next try");
                    retry_in
                }
            };
        }
        let claims = tracker.close_all();
        if !claims.is_empty() {
            let count = claims.len();
            match tokio::time::timeout(
                settings.shutdown_grace,
                publish(&mut link, &settings.broker, claims, &metrics),
            )
            .await
            {
                Ok(Ok(())) => info!(
                    incidents = count,
                    "closed the open incidents before stopping"
                ),
                Ok(Err(error)) => {
                    warn!(%error, "could not close the open incidents before stopping")
                }
                Err(_) => warn!("closing the open incidents took longer than the grace; stopping"),
            }
        }
        if let Some(link) = link {
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT_ON_SHUTDOWN,
                link.connection.close(200, "stopping".into()),
            )
            .await;
        }
    })
}

/// Publishes each claim's `closed` event (connecting first if needed). On a
/// broker failure the link is dropped and the remaining claims released.
async fn publish(
    link: &mut Option<Link>,
    broker: &BrokerSettings,
    claims: Vec<CloseClaim>,
    metrics: &DetectorMetrics,
) -> Result<(), String> {
    if link.is_none() {
        let connection = broker.connect().await?;
        let publisher = bounded("opening the closer's channel", Publisher::open(&connection))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        safecity_events::topology::declare_exchanges(publisher.channel())
            .await
            .map_err(|e| e.to_string())?;
        *link = Some(Link {
            connection,
            publisher,
        });
    }
    let publisher = &link.as_ref().expect("connected above").publisher;
    for claim in claims {
        let event = claim.event();
        let (event_type, incident) = (event.data.event_type, event.data.incident_id.clone());
        match bounded("publishing a closed event", publisher.publish_event(event)).await {
            Ok(Ok(())) => {
                claim.sent();
                metrics.lifecycle(event_type, Lifecycle::Closed);
                info!(%event_type, %incident, "closed an incident: no sighting for the window");
            }
            Ok(Err(PublishError::Unroutable { .. })) => {
                // No queue listens to this event type: retrying cannot help.
                warn!(%event_type, %incident, "closed event unroutable (no queue bound); the incident is closed anyway");
                claim.sent();
            }
            Ok(Err(error)) => {
                *link = None;
                return Err(format!(
                    "publishing the closed event of {incident}: {error}"
                ));
            }
            Err(timed_out) => {
                *link = None;
                return Err(timed_out.to_string());
            }
        }
    }
    Ok(())
}
