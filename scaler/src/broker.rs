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
        let outcome = match Connection::connect(&amqp_url, properties).await {
            Ok(connection) => {
                metrics.broker_connections_opened.inc();
                metrics.broker_up.set(1);
                info!("broker connected");
                backoff = Duration::from_millis(100);
                let outcome = tokio::select! {
                    result = depth::run(&state, &metrics, &connection, depth_interval, &cancel) => result.map_err(|e| e.to_string()),
                    result = tap::run(&state, &metrics, &connection, &cancel) => result.map_err(|e| e.to_string()),
                };
                let _ = connection.close(200, "scaler session ends".into()).await;
                outcome
            }
            Err(error) => Err(error.to_string()),
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
