//! Prometheus metrics of the scaler, served on `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `safecity_scaler_rpc_requests_total` | counter | method, code |
//! | `safecity_scaler_rpc_duration_seconds` | histogram (handler time, 2 µs .. 2.5 s, ×1.25 buckets) | method |
//! | `safecity_scaler_pending_work` | gauge | queue, event_type |
//! | `safecity_scaler_in_flight_work` | gauge | queue, event_type |
//! | `safecity_scaler_activation_pushes_total` | counter | event_type |
//! | `safecity_scaler_open_streams` | gauge | |
//! | `safecity_scaler_watched_queues` | gauge | |
//! | `safecity_scaler_registered_triggers` | gauge | |
//! | `safecity_scaler_pruned_triggers_total` | counter | |
//! | `safecity_scaler_depth_rounds_total` | counter | |
//! | `safecity_scaler_depth_declares_total` | counter | (passive declares sent) |
//! | `safecity_scaler_amqp_channels_opened_total` | counter | |
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
type RpcLabels = [(&'static str, &'static str); 2];
type MethodLabel = [(&'static str, &'static str); 1];

/// The RPCs of `externalscaler.ExternalScaler`, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `IsActive`
    IsActive,
    /// `StreamIsActive`
    StreamIsActive,
    /// `GetMetricSpec`
    GetMetricSpec,
    /// `GetMetrics`
    GetMetrics,
    /// `StreamMetricSpec`
    StreamMetricSpec,
}

impl Method {
    const ALL: [Method; 5] = [
        Method::IsActive,
        Method::StreamIsActive,
        Method::GetMetricSpec,
        Method::GetMetrics,
        Method::StreamMetricSpec,
    ];

    /// The RPC's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::IsActive => "IsActive",
            Method::StreamIsActive => "StreamIsActive",
            Method::GetMetricSpec => "GetMetricSpec",
            Method::GetMetrics => "GetMetrics",
            Method::StreamMetricSpec => "StreamMetricSpec",
        }
    }
}

/// The name of a gRPC status code, as in `tonic::Code`'s `Debug` output.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The scaler's metrics.
pub struct ScalerMetrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    /// One handle per method, created at start: observing takes no family lock.
    rpc_duration: [Histogram; 5],
    pending: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    activation_pushes: Family<Labels, Counter>,
    /// Open `StreamIsActive` streams.
    pub open_streams: Gauge,
    watched_queues: Gauge,
    registered_triggers: Gauge,
    /// Triggers forgotten after `SAFECITY_SCALER_WATCH_IDLE_TIMEOUT` without an RPC.
    pub pruned_triggers: Counter,
    /// Completed ready-count rounds over all watched queues.
    pub depth_rounds: Counter,
    /// Passive declares sent by the depth sampler.
    pub depth_declares: Counter,
    /// AMQP channels opened since start (depth sampler and tap; a missing queue
    /// closes the sampler's channel, so this counts those too).
    pub amqp_channels_opened: Counter,
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
    // 2 µs .. ~2.5 s in steps of 25 %: fine enough to read a sub-millisecond p99.
    Histogram::new(exponential_buckets(0.000_002, 1.25, 64))
}

impl ScalerMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("safecity_scaler");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        let rpc_duration_family =
            Family::<MethodLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                rpc_histogram,
            );
        let rpc_duration = Method::ALL
            .map(|method| rpc_duration_family.get_or_create_owned(&[("method", method.as_str())]));
        let pending = Family::<Labels, Gauge>::default();
        let in_flight = Family::<Labels, Gauge>::default();
        let activation_pushes = Family::<Labels, Counter>::default();
        let open_streams = Gauge::default();
        let watched_queues = Gauge::default();
        let registered_triggers = Gauge::default();
        let pruned_triggers = Counter::default();
        let depth_rounds = Counter::default();
        let depth_declares = Counter::default();
        let amqp_channels_opened = Counter::default();
        let broker_connections_opened = Counter::default();
        let broker_up = Gauge::default();
        registry.register(
            "rpc_requests",
            "gRPC requests by method and status code",
            rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "gRPC handler time: from the decoded request to the response message",
            rpc_duration_family,
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
            "registered_triggers",
            "Distinct ScaledObject triggers (name + metadata) known",
            registered_triggers.clone(),
        );
        registry.register(
            "pruned_triggers",
            "Triggers forgotten after the idle timeout without an RPC or stream",
            pruned_triggers.clone(),
        );
        registry.register(
            "depth_rounds",
            "Ready-count rounds over all watched queues",
            depth_rounds.clone(),
        );
        registry.register(
            "depth_declares",
            "Passive queue declares the depth sampler sent",
            depth_declares.clone(),
        );
        registry.register(
            "amqp_channels_opened",
            "AMQP channels opened since start",
            amqp_channels_opened.clone(),
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
            registered_triggers,
            pruned_triggers,
            depth_rounds,
            depth_declares,
            amqp_channels_opened,
            broker_connections_opened,
            broker_up,
        })
    }

    /// Records one finished RPC.
    pub fn observe_rpc(&self, method: Method, code: tonic::Code, elapsed: Duration) {
        self.rpc_requests
            .get_or_create(&[("method", method.as_str()), ("code", code_label(code))])
            .inc();
        self.rpc_duration[method as usize].observe(elapsed.as_secs_f64());
    }

    /// Sets the number of registered triggers.
    pub fn set_registered_triggers(&self, count: usize) {
        self.registered_triggers
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Drops the per-queue series of a queue that is no longer watched.
    pub fn forget_queue(&self, queue: &str, event_type: Option<&'static str>) {
        let labels = queue_labels(queue, event_type);
        self.pending.remove(&labels);
        self.in_flight.remove(&labels);
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
                let labels = queue_labels(&queue.name, queue.event_type().map(|t| t.as_str()));
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

fn queue_labels(queue: &str, event_type: Option<&'static str>) -> Labels {
    vec![
        ("queue", queue.to_owned()),
        ("event_type", event_type.unwrap_or_default().to_owned()),
    ]
}
