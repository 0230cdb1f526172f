//! The one broker connection of the scaler, run by the shell's session
//! supervisor: the depth sampler and the activation tap share it, however
//! many ScaledObjects there are; it is re-opened with backoff when lost.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use lapin::Connection;
use safecity_shell::broker::{self, BrokerSession, BrokerSettings, SessionEnd};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::ScalerMetrics;
use crate::state::{BrokerHealth, ScalerState, depth};
use crate::tap;

/// The scaler's broker session: depth sampling and the tap, side by side.
struct ScalerSession {
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    depth_interval: Duration,
    cancel: CancellationToken,
}

impl BrokerSession for ScalerSession {
    type Error = Infallible;

    async fn run(&mut self, connection: &Connection) -> SessionEnd<Infallible> {
        self.metrics.broker_connections_opened.inc();
        self.metrics.broker_up.set(1);
        info!("broker connected");
        let (state, metrics, cancel) = (&self.state, &self.metrics, &self.cancel);
        // Cancellation also interrupts a request the broker does not answer:
        // a silent broker never delays SIGTERM.
        let outcome = tokio::select! {
            () = cancel.cancelled() => Ok(()),
            result = depth::run(state, metrics, connection, self.depth_interval, cancel) => result.map_err(|e| e.to_string()),
            result = tap::run(state, metrics, connection, cancel) => result.map_err(|e| e.to_string()),
        };
        self.metrics.broker_up.set(0);
        match outcome {
            Ok(()) => SessionEnd::Stopped,
            Err(error) => SessionEnd::Lost {
                error,
                worked: true,
            },
        }
    }

    fn lost(&mut self, error: &str, retry_in: Duration) {
        self.metrics.broker_up.set(0);
        warn!(%error, retry_in_ms = retry_in.as_millis() as u64, "broker unreachable: RPCs answer Unavailable until it is back");
        self.state
            .set_broker_health(BrokerHealth::Down(error.to_owned()));
    }
}

/// Keeps one broker session alive until `cancel`.
pub async fn run(
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    amqp_url: String,
    depth_interval: Duration,
    reconnect_max_delay: Duration,
    cancel: CancellationToken,
) {
    let settings = BrokerSettings {
        url: amqp_url,
        connection_name: "safecity-scaler".to_owned(),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: reconnect_max_delay,
    };
    let mut session = ScalerSession {
        state,
        metrics,
        depth_interval,
        cancel: cancel.clone(),
    };
    let Ok(()) = broker::supervise(&settings, &cancel, &mut session).await;
}
