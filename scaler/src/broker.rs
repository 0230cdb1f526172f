//! The one broker connection: opened, watched and re-opened with backoff. The
//! depth sampler and the activation tap share it, however many ScaledObjects
//! there are.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::ScalerMetrics;
use crate::state::{BrokerHealth, ScalerState, depth};
use crate::tap;

/// The longest any one AMQP request of the session may take (connecting,
/// opening a channel, a declare, a bind): a broker that accepts the TCP
/// connection but does not answer (e.g. while it boots, or a quorum queue
/// without a leader yet) ends the session, which reconnects with backoff,
/// instead of leaving every RPC answering "stale" forever.
pub const AMQP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `operation` bounded by [`AMQP_REQUEST_TIMEOUT`]; `what` names it in the
/// error. Callers unwrap both layers with `??`.
pub async fn bounded<F: Future>(
    what: &'static str,
    operation: F,
) -> Result<F::Output, RequestTimedOut> {
    tokio::time::timeout(AMQP_REQUEST_TIMEOUT, operation)
        .await
        .map_err(|_| RequestTimedOut(what))
}

/// An AMQP request that got no answer within [`AMQP_REQUEST_TIMEOUT`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0}: no answer from the broker within 10 s")]
pub struct RequestTimedOut(pub &'static str);

/// Keeps one broker session alive until `cancel`.
pub async fn run(
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    amqp_url: String,
    depth_interval: Duration,
    reconnect_max_delay: Duration,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let properties =
            ConnectionProperties::default().with_connection_name("safecity-scaler".into());
        let connected = bounded("connecting", Connection::connect(&amqp_url, properties)).await;
        let outcome = match connected {
            Ok(Ok(connection)) => {
                metrics.broker_connections_opened.inc();
                metrics.broker_up.set(1);
                info!("broker connected");
                backoff = Duration::from_millis(100);
                let outcome = tokio::select! {
                    result = depth::run(&state, &metrics, &connection, depth_interval, &cancel) => result.map_err(|e| e.to_string()),
                    result = tap::run(&state, &metrics, &connection, &cancel) => result.map_err(|e| e.to_string()),
                };
                // Bounded too: closing a connection the broker already tore
                // down can wait for a close-ok that never comes.
                let close = connection.close(200, "scaler session ends".into());
                let _ = bounded("closing", close).await;
                outcome
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(timed_out) => Err(timed_out.to_string()),
        };
        metrics.broker_up.set(0);
        if let Err(reason) = outcome {
            if cancel.is_cancelled() {
                break;
            }
            warn!(error = %reason, retry_in_ms = backoff.as_millis() as u64, "broker unreachable: RPCs answer Unavailable until it is back");
            state.set_broker_health(BrokerHealth::Down(reason));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(reconnect_max_delay);
        }
    }
}
