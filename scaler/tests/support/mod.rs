//! Shared helpers of the scaler's black-box tests: a throw-away vhost on the
//! real local broker, a scaler started on 127.0.0.1:0, AMQP and gRPC clients.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use safecity_events::event::CLOUDEVENTS_JSON;
use safecity_events::topology::{self, EVENTS_EXCHANGE, FunctionQueues, QueueType};
use safecity_events::{CloudEvent, EventType, Subscription};
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use safecity_scaler::pb::{GetMetricsRequest, ScaledObjectRef};
use safecity_scaler::{RunningScaler, ScalerConfig};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel as GrpcChannel;

pub(crate) use safecity_runtime::testing::{TestVhost, rabbitmqctl};

/// The scaler's helpers on a test vhost.
#[allow(async_fn_in_trait)]
pub(crate) trait ScalerVhost {
    /// A scaler configuration for this vhost on ephemeral loopback ports.
    fn scaler_config(&self, overrides: &[(&str, &str)]) -> ScalerConfig;
    /// Starts a scaler for this vhost.
    async fn scaler(&self, overrides: &[(&str, &str)]) -> RunningScaler;
    /// An AMQP client on this vhost (publisher confirms on).
    async fn amqp(&self) -> Amqp;
    /// Names of the queues bound to the events exchange with `routing_key`.
    fn bound_queues(&self, routing_key: &str) -> Vec<String>;
    /// Waits until the scaler's tap queue (server-named `amq.gen-…`) is bound for `routing_key`.
    async fn wait_for_tap(&self, routing_key: &str);
}

impl ScalerVhost for TestVhost {
    fn scaler_config(&self, overrides: &[(&str, &str)]) -> ScalerConfig {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("SAFECITY_AMQP_URL".to_owned(), self.url.clone()),
            (
                "SAFECITY_SCALER_GRPC_ADDR".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "SAFECITY_SCALER_METRICS_ADDR".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "SAFECITY_SCALER_DEPTH_INTERVAL".to_owned(),
                "200ms".to_owned(),
            ),
            (
                "SAFECITY_SCALER_MANAGEMENT_INTERVAL".to_owned(),
                "500ms".to_owned(),
            ),
            (
                "SAFECITY_SCALER_RECONNECT_MAX_DELAY".to_owned(),
                "500ms".to_owned(),
            ),
            ("SAFECITY_SCALER_ACTIVE_RESEND".to_owned(), "1s".to_owned()),
        ]);
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        ScalerConfig::from_lookup(|name| vars.get(name).cloned()).expect("valid test config")
    }

    async fn scaler(&self, overrides: &[(&str, &str)]) -> RunningScaler {
        safecity_scaler::start(self.scaler_config(overrides), CancellationToken::new())
            .await
            .expect("scaler starts")
    }

    async fn amqp(&self) -> Amqp {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("test client connects");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        topology::declare_exchanges(&channel)
            .await
            .expect("exchanges");
        Amqp {
            connection,
            channel,
        }
    }

    fn bound_queues(&self, routing_key: &str) -> Vec<String> {
        rabbitmqctl(&[
            "list_bindings",
            "-q",
            "--no-table-headers",
            "-p",
            &self.name,
            "source_name",
            "routing_key",
            "destination_name",
        ])
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields.len() == 3 && fields[0] == EVENTS_EXCHANGE && fields[1] == routing_key)
                .then(|| fields[2].to_owned())
        })
        .collect()
    }

    async fn wait_for_tap(&self, routing_key: &str) {
        for _ in 0..100 {
            if self
                .bound_queues(routing_key)
                .iter()
                .any(|q| q.starts_with("amq.gen-"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the scaler never bound its tap for `{routing_key}`");
    }
}

/// A plain AMQP client playing the camera side and the function.
pub(crate) struct Amqp {
    pub connection: Connection,
    pub channel: Channel,
}

impl Amqp {
    /// Declares the function `name` subscribed to `event_type`, as the runtime does.
    pub(crate) async fn declare_function(&self, name: &str, event_type: EventType) -> String {
        let queues = FunctionQueues::new(name).expect("valid function name");
        topology::declare_function(
            &self.channel,
            &queues,
            &[Subscription::Event(event_type)],
            QueueType::Quorum,
            &[],
        )
        .await
        .expect("function topology");
        queues.work()
    }

    /// Publishes one CloudEvent of `event_type` and waits for the broker's confirm.
    pub(crate) async fn publish(&self, event_type: EventType) {
        let event = CloudEvent::new(
            "/cameras/test",
            event_type,
            serde_json::json!({"camera": "cam-1"}),
        );
        self.channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                event_type.as_str().into(),
                BasicPublishOptions::default(),
                &event.to_json(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type(CLOUDEVENTS_JSON.into()),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
}

/// A tonic client of the scaler.
pub(crate) async fn grpc(scaler: &RunningScaler) -> ExternalScalerClient<GrpcChannel> {
    ExternalScalerClient::connect(format!("http://{}", scaler.grpc_addr))
        .await
        .expect("gRPC connects")
}

/// A ScaledObjectRef with `metadata`.
pub(crate) fn scaled_object(name: &str, metadata: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: name.to_owned(),
        namespace: "safecity".to_owned(),
        scaler_metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// KEDA's poll tick: GetMetricSpec, GetMetrics, IsActive. Returns (metric value, active).
pub(crate) async fn poll(
    client: &mut ExternalScalerClient<GrpcChannel>,
    object: &ScaledObjectRef,
) -> Result<(f64, bool), tonic::Status> {
    let spec = client.get_metric_spec(object.clone()).await?.into_inner();
    assert_eq!(spec.metric_specs.len(), 1, "one metric per trigger");
    let metric_name = spec.metric_specs[0].metric_name.clone();
    let values = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(object.clone()),
            metric_name: metric_name.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(
        values.metric_values.len(),
        1,
        "exactly one value per metric"
    );
    assert_eq!(values.metric_values[0].metric_name, metric_name);
    let active = client.is_active(object.clone()).await?.into_inner().result;
    Ok((values.metric_values[0].metric_value_float, active))
}

/// Polls until `check` accepts KEDA's view, failing after `timeout` with the last view.
pub(crate) async fn poll_until(
    client: &mut ExternalScalerClient<GrpcChannel>,
    object: &ScaledObjectRef,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(&Result<(f64, bool), tonic::Status>) -> bool,
) -> Result<(f64, bool), tonic::Status> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let view = poll(client, object).await;
        if check(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {view:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the scaler's `/metrics` page.
pub(crate) async fn metrics_page(scaler: &RunningScaler) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(scaler.metrics_addr)
        .await
        .expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: scaler\r\n\r\n")
        .await
        .expect("request");
    let mut page = String::new();
    stream.read_to_string(&mut page).await.expect("response");
    page
}

/// The workspace's Python interpreter with the test peers, or a clear failure.
pub(crate) fn python() -> PathBuf {
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-peers.sh (it installs grpcio and grpcio-tools from tests/python-requirements.txt)",
        python.display()
    );
    python
}

/// The Python KEDA stand-in script.
pub(crate) fn keda_client_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keda_client.py"))
}

/// The value of the unlabelled series `name` on a `/metrics` page.
pub(crate) fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Reads `/metrics` until `check` accepts the value of `name`, failing after
/// `timeout` with the last page.
pub(crate) async fn wait_for_metric(
    scaler: &RunningScaler,
    name: &str,
    timeout: Duration,
    check: impl Fn(f64) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let page = metrics_page(scaler).await;
        if metric(&page, name).is_some_and(&check) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached the expected value within {timeout:?}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
