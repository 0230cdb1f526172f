//! Real-broker test helpers for function authors (feature `testkit`).
//!
//! [`TestVhost`] gives a test its own RabbitMQ virtual host on the local broker
//! (created with `rabbitmqctl`, deleted on drop), so integration tests run in
//! parallel without seeing each other's events, and can close their own
//! connections to simulate a broker fault.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use safecity_events::topology::EVENTS_EXCHANGE;
use safecity_events::{CloudEvent, EventData, Frame, FunctionQueues, PublishError, Publisher};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RuntimeConfig;
use crate::function::Function;
use crate::run::RunningFunction;

/// Runs `rabbitmqctl`, panics with its output if it fails, returns its stdout.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is installed (scripts/ensure-rabbitmq.sh installs RabbitMQ)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A throw-away virtual host on the local broker, deleted on drop.
#[derive(Debug)]
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
    /// An AMQP URL (guest/guest) for it.
    pub url: String,
}

impl TestVhost {
    /// Creates `safecity-test-<test>-<random>` and grants `guest` on it.
    /// `SAFECITY_TEST_AMQP_HOST` overrides the broker (`127.0.0.1:5672`).
    pub fn new(test: &str) -> Self {
        let name = format!(
            "safecity-test-{test}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let _ = rabbitmqctl(&["add_vhost", &name]);
        let _ = rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let host =
            std::env::var("SAFECITY_TEST_AMQP_HOST").unwrap_or_else(|_| "127.0.0.1:5672".into());
        let url = format!("amqp://guest:guest@{host}/{name}");
        TestVhost { name, url }
    }

    /// Closes every client connection of this vhost, as an administrator would.
    pub fn close_connections(&self) {
        let _ = rabbitmqctl(&[
            "close_all_connections",
            "-p",
            &self.name,
            "closed by the test",
        ]);
    }

    /// A runtime configuration for this vhost: fast retries (200 ms, 400 ms),
    /// a 5 s shutdown grace, HTTP on an ephemeral loopback port; `overrides`
    /// are environment-style pairs applied on top.
    pub fn config(&self, overrides: &[(&str, &str)]) -> RuntimeConfig {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("SAFECITY_AMQP_URL", self.url.clone()),
            ("SAFECITY_HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ("SAFECITY_RETRY_DELAYS", "200ms,400ms".to_owned()),
            ("SAFECITY_SHUTDOWN_GRACE", "5s".to_owned()),
            ("SAFECITY_RECONNECT_MAX_DELAY", "500ms".to_owned()),
        ]);
        for (k, v) in overrides {
            vars.insert(k, (*v).to_owned());
        }
        RuntimeConfig::from_lookup(|name| vars.get(name).cloned()).expect("valid test config")
    }
}

impl TestVhost {
    /// A confirm-mode client on this vhost, playing producer and inspector.
    pub async fn client(&self) -> TestClient {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("the test client connects to the local broker");
        let publisher = Publisher::open(&connection)
            .await
            .expect("a confirm-mode channel");
        TestClient {
            _connection: connection,
            channel: publisher.channel().clone(),
            publisher,
        }
    }
}

/// A plain AMQP client for tests: publishes events, reads queues.
#[derive(Debug)]
pub struct TestClient {
    _connection: Connection,
    publisher: Publisher,
    /// The confirm-mode channel, for anything the helpers do not cover.
    pub channel: Channel,
}

impl TestClient {
    /// Publishes `body` to the events exchange with `mandatory`, waits for the
    /// confirm and panics if no queue was bound for `routing_key`.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], content_type: Option<&str>) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(content_type) = content_type {
            properties = properties.with_content_type(content_type.into());
        }
        self.publish_confirmed(EVENTS_EXCHANGE, routing_key, body, properties)
            .await;
    }

    /// Publishes a camera frame to the frames exchange under its region, as
    /// the motion gate does, and panics if no queue was bound for it.
    pub async fn publish_frame(&self, frame: &Frame) {
        expect_routed(self.publisher.publish_frame(frame).await);
    }

    /// Publishes with `mandatory`, waits for the confirm, and panics unless
    /// the broker acked it and routed it to a queue.
    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        expect_routed(
            self.publisher
                .publish(exchange, routing_key, body, properties)
                .await,
        );
    }

    /// Publishes a CloudEvent under its type; returns the body sent.
    pub async fn publish_event<T: EventData>(&self, event: &CloudEvent<T>) -> Vec<u8> {
        expect_routed(self.publisher.publish_event(event).await);
        event.to_json()
    }

    /// Ready messages of a queue now (one passive declare). The broker may not
    /// have settled an action that just completed: see [`TestClient::ready_count_within`].
    pub async fn ready_count(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists")
            .message_count()
    }

    /// Polls the ready count of `queue` every 20 ms until it is `expected` or
    /// `timeout` passes; returns the last count read.
    ///
    /// RabbitMQ settles counts asynchronously (a closed channel's unacked
    /// deliveries return to a quorum queue through its log, after the close
    /// itself completed), so a single read right after an action can be stale.
    /// Assert on the returned value: `assert_eq!(client.ready_count_within(&q, 4, t).await, 4)`.
    pub async fn ready_count_within(&self, queue: &str, expected: u32, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.ready_count(queue).await;
            if count == expected || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes one message from a queue, if any.
    pub async fn get(&self, queue: &str) -> Option<BasicGetMessage> {
        self.channel
            .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    }

    /// Waits up to `timeout` for a message on `queue`.
    pub async fn wait_get(&self, queue: &str, timeout: Duration) -> Option<BasicGetMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.get(queue).await {
                return Some(message);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to `timeout` for the next dead letter of `function`.
    pub async fn wait_dead_letter(
        &self,
        function: &str,
        timeout: Duration,
    ) -> Option<BasicGetMessage> {
        let queue = FunctionQueues::new(function)
            .expect("a valid function name")
            .dead_letter();
        self.wait_get(&queue, timeout).await
    }

    /// Consumes from a queue into a channel of bodies (e.g. emitted events).
    pub async fn collect(&self, queue: &str) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
        let mut consumer = self
            .channel
            .basic_consume(
                ShortString::from(queue),
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                if tx.send(delivery.data).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

fn expect_routed(published: Result<(), PublishError>) {
    if let Err(error) = published {
        panic!("test publish failed: {error}");
    }
}

/// Polls `condition` every 10 ms; panics naming `what` after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads one sample from Prometheus text: the first line of metric `name`
/// containing `label_fragment`, e.g. `metric(&text, "safecity_events_succeeded_total", "\"fire\"")`.
pub fn metric(text: &str, name: &str, label_fragment: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label_fragment))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// A function running in-process on its own vhost, with a client beside it.
#[derive(Debug)]
pub struct TestFunction {
    /// The function's vhost (dropped, and deleted, after the function stops).
    pub vhost: TestVhost,
    /// A client on the same vhost.
    pub client: TestClient,
    running: Option<RunningFunction>,
    stop: CancellationToken,
}

impl TestFunction {
    /// Starts `function` on a fresh vhost named after `test` with
    /// [`TestVhost::config`] plus `overrides`, and waits until it consumes.
    pub async fn start<F: Function>(test: &str, function: F, overrides: &[(&str, &str)]) -> Self {
        let vhost = TestVhost::new(test);
        let stop = CancellationToken::new();
        let running = crate::run::start(function, vhost.config(overrides), stop.clone())
            .await
            .expect("the function starts");
        eventually(Duration::from_secs(30), "the function consumes", || {
            running.is_ready()
        })
        .await;
        let client = vhost.client().await;
        TestFunction {
            vhost,
            client,
            running: Some(running),
            stop,
        }
    }

    /// The running function (metrics, readiness, HTTP address).
    pub fn running(&self) -> &RunningFunction {
        self.running.as_ref().expect("running until stop()")
    }

    /// One sample of the function's metrics (see [`metric`]); 0 when absent.
    pub fn metric(&self, name: &str, label_fragment: &str) -> f64 {
        metric(&self.running().metrics_text(), name, label_fragment).unwrap_or(0.0)
    }

    /// Stops the function gracefully and waits for the drain.
    pub async fn stop(mut self) {
        self.stop.cancel();
        self.running
            .take()
            .expect("running")
            .join()
            .await
            .expect("the function stops cleanly");
    }
}

/// A minimal HTTP/1.0 GET on loopback: status code and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the HTTP port");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}
