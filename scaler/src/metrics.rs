//! Prometheus metrics of the scaler, served on `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `safecity_scaler_rpc_requests_total` | counter | method, code |
//! | `safecity_scaler_rpc_duration_seconds` | histogram | method |
//! | `safecity_scaler_pending_work` | gauge | queue, event_type |
//! | `safecity_scaler_in_flight_work` | gauge | queue, event_type |
//! | `safecity_scaler_activation_pushes_total` | counter | event_type |
//! | `safecity_scaler_open_streams` | gauge | |
//! | `safecity_scaler_watched_queues` | gauge | |
//! | `safecity_scaler_broker_connections_opened_total` | counter | |
//! | `safecity_scaler_broker_up` | gauge | |

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::ScalerState;

type Labels = Vec<(&'static str, String)>;

/// The scaler's metrics.
pub struct ScalerMetrics {
    registry: Registry,
    rpc_requests: Family<Labels, Counter>,
    rpc_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pending: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    activation_pushes: Family<Labels, Counter>,
    /// Open `StreamIsActive` streams.
    pub open_streams: Gauge,
    watched_queues: Gauge,
    /// Broker connections opened since start (one per session, not per ScaledObject).
    pub broker_connections_opened: Counter,
    /// 1 while the broker session is up.
    pub broker_up: Gauge,
}

impl std::fmt::Debug for ScalerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalerMetrics").finish_non_exhaustive()
    }
}

fn rpc_histogram() -> Histogram {
    // 10 µs .. ~1.3 s
    Histogram::new(exponential_buckets(0.000_01, 2.0, 18))
}

impl ScalerMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("safecity_scaler");
        let rpc_requests = Family::<Labels, Counter>::default();
        let rpc_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(rpc_histogram);
        let pending = Family::<Labels, Gauge>::default();
        let in_flight = Family::<Labels, Gauge>::default();
        let activation_pushes = Family::<Labels, Counter>::default();
        let open_streams = Gauge::default();
        let watched_queues = Gauge::default();
        let broker_connections_opened = Counter::default();
        let broker_up = Gauge::default();
        registry.register(
            "rpc_requests",
            "gRPC requests by method and status code",
            rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "gRPC request handling time",
            rpc_duration.clone(),
        );
        registry.register(
            "pending_work",
            "Ready + in-flight messages per watched queue",
            pending.clone(),
        );
        registry.register(
            "in_flight_work",
            "Delivered, unacknowledged messages per watched queue",
            in_flight.clone(),
        );
        registry.register(
            "activation_pushes",
            "StreamIsActive true messages sent",
            activation_pushes.clone(),
        );
        registry.register(
            "open_streams",
            "Open StreamIsActive streams",
            open_streams.clone(),
        );
        registry.register(
            "watched_queues",
            "Queues watched for ScaledObjects",
            watched_queues.clone(),
        );
        registry.register(
            "broker_connections_opened",
            "Broker connections opened since start",
            broker_connections_opened.clone(),
        );
        registry.register(
            "broker_up",
            "1 while the broker session is up",
            broker_up.clone(),
        );
        Arc::new(ScalerMetrics {
            registry,
            rpc_requests,
            rpc_duration,
            pending,
            in_flight,
            activation_pushes,
            open_streams,
            watched_queues,
            broker_connections_opened,
            broker_up,
        })
    }

    /// Records one finished RPC.
    pub fn observe_rpc(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        self.rpc_requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("code", format!("{code:?}")),
            ])
            .inc();
        self.rpc_duration
            .get_or_create(&vec![("method", method.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one `true` pushed on a stream.
    pub fn activation_pushed(&self, event_type: &'static str) {
        self.activation_pushes
            .get_or_create(&vec![("event_type", event_type.to_owned())])
            .inc();
    }

    /// Encodes all metrics, refreshing the per-queue gauges from `state` first.
    pub fn render(&self, state: &ScalerState) -> String {
        let queues = state.queue_names();
        self.watched_queues.set(queues.len() as i64);
        for queue in queues {
            if let Some(work) = queue.current() {
                let labels = vec![
                    ("queue", queue.name.clone()),
                    (
                        "event_type",
                        queue
                            .event_type()
                            .map_or_else(String::new, |t| t.as_str().to_owned()),
                    ),
                ];
                self.pending
                    .get_or_create(&labels)
                    .set(i64::try_from(work.total()).unwrap_or(i64::MAX));
                self.in_flight
                    .get_or_create(&labels)
                    .set(i64::try_from(work.in_flight).unwrap_or(i64::MAX));
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
