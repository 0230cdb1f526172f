//! Process lifecycle against a real RabbitMQ: graceful shutdown, broker faults,
//! start-up errors and the signal path of a real function binary.

mod support;

use std::process::Stdio;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use safecity_runtime::events::topology::FunctionQueues;
use safecity_runtime::{CloudEvent, EventType, RunError, RunningFunction, SafetyEvent};
use serde_json::json;
use support::{Journal, Probe, TestVhost, eventually, http_get, metric};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
/// How long a queue count may take to settle after an action.
const SETTLE: Duration = Duration::from_secs(10);

async fn start_probe(
    vhost: &TestVhost,
    journal: &Journal,
    overrides: &[(&str, &str)],
) -> (RunningFunction, CancellationToken) {
    let stop = CancellationToken::new();
    let running = safecity_runtime::start(
        Probe {
            name: "probe".to_owned(),
            journal: journal.clone(),
        },
        vhost.config(overrides),
        stop.clone(),
    )
    .await
    .expect("the probe starts");
    (running, stop)
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work_and_leaves_the_rest_queued() {
    let vhost = TestVhost::new("shutdown");
    let journal = Journal::default();
    let settings = [
        ("SAFECITY_CONCURRENCY", "4"),
        ("SAFECITY_SHUTDOWN_GRACE", "10s"),
    ];
    let (running, stop) = start_probe(&vhost, &journal, &settings).await;
    eventually(WAIT, "consuming", || running.is_ready()).await;
    let client = vhost.client().await;
    for i in 0..12 {
        support::publish_probe(&client, &format!("s{i}"), json!({"sleep_ms": 600})).await;
    }
    eventually(WAIT, "4 handlers running", || {
        journal.with(|j| j.running) == 4
    })
    .await;
    stop.cancel();
    tokio::time::timeout(WAIT, running.join())
        .await
        .expect("drained within the grace")
        .expect("clean stop");

    let first_round = journal.total_completed();
    let started = journal.with(|j| j.calls.len() as u32);
    assert_eq!(first_round, started, "every started handler finished");
    assert!(first_round >= 4, "{first_round}");
    let queue = FunctionQueues::new("probe").expect("name").work();
    assert_eq!(
        client
            .ready_count_within(&queue, 12 - first_round, SETTLE)
            .await,
        12 - first_round,
        "finished work was acked, the rest is still queued"
    );

    // A new replica takes the rest; nothing is handled twice, nothing is lost.
    let (running, stop) = start_probe(&vhost, &journal, &settings).await;
    eventually(WAIT, "all 12 done", || journal.total_completed() == 12).await;
    for i in 0..12 {
        assert_eq!(journal.completed(&format!("s{i}")), 1, "s{i}");
    }
    stop.cancel();
    running.join().await.expect("clean stop");
    assert_eq!(client.ready_count_within(&queue, 0, SETTLE).await, 0);
}

#[tokio::test]
async fn work_unfinished_when_the_grace_expires_is_requeued_not_lost() {
    let vhost = TestVhost::new("grace");
    let journal = Journal::default();
    let settings = [
        ("SAFECITY_CONCURRENCY", "4"),
        ("SAFECITY_SHUTDOWN_GRACE", "200ms"),
    ];
    let (running, stop) = start_probe(&vhost, &journal, &settings).await;
    eventually(WAIT, "consuming", || running.is_ready()).await;
    let client = vhost.client().await;
    for i in 0..4 {
        support::publish_probe(&client, &format!("g{i}"), json!({"sleep_ms": 2500})).await;
    }
    eventually(WAIT, "4 handlers running", || {
        journal.with(|j| j.running) == 4
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), running.join())
        .await
        .expect("stops soon after the grace")
        .expect("clean stop");
    assert_eq!(journal.total_completed(), 0);
    let queue = FunctionQueues::new("probe").expect("name").work();
    assert_eq!(
        client.ready_count_within(&queue, 4, SETTLE).await,
        4,
        "all four requeued"
    );

    let (running, stop) = start_probe(&vhost, &journal, &settings).await;
    eventually(WAIT, "all 4 done", || journal.total_completed() == 4).await;
    for i in 0..4 {
        let calls = journal.calls(&format!("g{i}"));
        assert_eq!(calls.len(), 2, "g{i} abandoned once, then done");
        assert_eq!(
            calls[1].attempt, 1,
            "an abandoned run is not a failed attempt"
        );
    }
    stop.cancel();
    running.join().await.expect("clean stop");
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_is_reestablished_and_nothing_is_lost() {
    let vhost = TestVhost::new("reconnect");
    let journal = Journal::default();
    let (running, stop) = start_probe(&vhost, &journal, &[("SAFECITY_CONCURRENCY", "5")]).await;
    eventually(WAIT, "consuming", || running.is_ready()).await;
    let client = vhost.client().await;
    for i in 0..60 {
        support::publish_probe(&client, &format!("r{i}"), json!({"sleep_ms": 30})).await;
    }
    eventually(WAIT, "some progress", || journal.total_completed() >= 10).await;
    vhost.close_connections();
    let client = vhost.client().await;
    eventually(WAIT, "every event handled", || {
        (0..60).all(|i| journal.completed(&format!("r{i}")) >= 1)
    })
    .await;
    let queue = FunctionQueues::new("probe").expect("name").work();
    assert_eq!(client.ready_count_within(&queue, 0, SETTLE).await, 0);
    assert!(running.is_ready(), "consuming again");
    let reconnects = metric(
        &running.metrics_text(),
        "safecity_broker_reconnects_total",
        "probe",
    )
    .expect("metric");
    assert!(reconnects >= 1.0, "{reconnects}");
    stop.cancel();
    running.join().await.expect("clean stop");
}

#[tokio::test]
async fn an_unavailable_broker_at_start_is_waited_for() {
    // The vhost does not exist yet: the broker refuses the connection.
    let vhost_name = format!(
        "safecity-test-late-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let config = safecity_runtime::RuntimeConfig::from_lookup(|name| match name {
        "SAFECITY_AMQP_URL" => Some(format!("amqp://guest:guest@127.0.0.1:5672/{vhost_name}")),
        "SAFECITY_HTTP_ADDR" => Some("127.0.0.1:0".to_owned()),
        "SAFECITY_RECONNECT_MAX_DELAY" => Some("300ms".to_owned()),
        _ => None,
    })
    .expect("config");
    let journal = Journal::default();
    let stop = CancellationToken::new();
    let running = safecity_runtime::start(
        Probe {
            name: "probe".to_owned(),
            journal: journal.clone(),
        },
        config,
        stop.clone(),
    )
    .await
    .expect("starts without a broker");
    let addr = running.http_addr().expect("http");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!running.is_ready());
    assert_eq!(http_get(addr, "/readyz").await.0, 503);
    assert_eq!(http_get(addr, "/healthz").await.0, 200);

    support::rabbitmqctl(&["add_vhost", &vhost_name]);
    support::rabbitmqctl(&[
        "set_permissions",
        "-p",
        &vhost_name,
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    eventually(WAIT, "consuming once the vhost exists", || {
        running.is_ready()
    })
    .await;
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    stop.cancel();
    running.join().await.expect("clean stop");
    support::rabbitmqctl(&["delete_vhost", &vhost_name]);
}

#[tokio::test]
async fn a_conflicting_queue_stops_start_up_with_a_clear_error() {
    let vhost = TestVhost::new("conflict");
    let client = vhost.client().await;
    let queue = FunctionQueues::new("probe").expect("name").work();
    client
        .channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .expect("a classic queue squats the name");
    let journal = Journal::default();
    let (running, _stop) = start_probe(&vhost, &journal, &[]).await;
    let result = tokio::time::timeout(WAIT, running.join())
        .await
        .expect("gives up at once");
    let error = result.expect_err("the topology is refused");
    assert!(matches!(error, RunError::Topology(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&queue) && text.contains("PRECONDITION"),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_functions_fail_before_connecting() {
    struct Nameless;
    impl safecity_runtime::Function for Nameless {
        type Input = CloudEvent<serde_json::Value>;
        fn name(&self) -> &str {
            "Not A Name"
        }
        fn subscriptions(&self) -> Vec<safecity_runtime::Subscription> {
            vec![EventType::Fire.into()]
        }
        async fn handle(
            &self,
            _: Self::Input,
            _: safecity_runtime::Context,
        ) -> Result<(), safecity_runtime::HandlerError> {
            Ok(())
        }
    }
    let config = safecity_runtime::RuntimeConfig::from_lookup(|name| {
        (name == "SAFECITY_HTTP_ADDR").then(|| "off".to_owned())
    })
    .expect("config");
    let error = safecity_runtime::start(Nameless, config.clone(), CancellationToken::new())
        .await
        .expect_err("invalid name");
    assert!(error.to_string().contains("Not A Name"), "{error}");

    let journal = Journal::default();
    struct Deaf(Probe);
    impl safecity_runtime::Function for Deaf {
        type Input = CloudEvent<serde_json::Value>;
        fn name(&self) -> &str {
            self.0.name.as_str()
        }
        fn subscriptions(&self) -> Vec<safecity_runtime::Subscription> {
            Vec::new()
        }
        async fn handle(
            &self,
            _: Self::Input,
            _: safecity_runtime::Context,
        ) -> Result<(), safecity_runtime::HandlerError> {
            Ok(())
        }
    }
    let deaf = Deaf(Probe {
        name: "deaf".into(),
        journal,
    });
    let error = safecity_runtime::start(deaf, config, CancellationToken::new())
        .await
        .expect_err("no subscriptions");
    assert!(error.to_string().contains("no subscriptions"), "{error}");
}

fn example_binary(name: &str) -> std::path::PathBuf {
    // target/<profile>/deps/lifecycle-HASH -> target/<profile>/examples/NAME
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds examples",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_example_function_drains_and_exits_zero_on_sigterm() {
    let vhost = TestVhost::new("sigterm");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(example_binary("fire_logger"))
        .env("SAFECITY_AMQP_URL", &vhost.url)
        .env("SAFECITY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SAFECITY_RETRY_DELAYS", "200ms")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the example");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => http_get(addr, "/readyz").await.0 == 200,
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "example never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = vhost.client().await;
    let mut event = SafetyEvent {
        event_type: EventType::Fire,
        incident_id: "inc-1".into(),
        camera: safecity_runtime::events::Camera {
            id: "cam-1".into(),
            region: "busan".into(),
            latitude: 35.1,
            longitude: 129.0,
        },
        detections: vec![safecity_runtime::events::Detection {
            class: "fire".into(),
            confidence: 0.9,
            bounding_box: safecity_runtime::events::BoundingBox {
                x: 0.0,
                y: 0.0,
                width: 10.0,
                height: 10.0,
            },
        }],
        captured_at: chrono::Utc::now(),
        frame_size: safecity_runtime::events::FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: None,
        frame_age: None,
    };
    client
        .publish_raw(
            "fire",
            &event.clone().into_cloud_event().to_json(),
            Some("application/cloudevents+json"),
        )
        .await;
    event.detections.clear();
    client
        .publish_raw(
            "fire",
            &event.into_cloud_event().to_json(),
            Some("application/cloudevents+json"),
        )
        .await;
    let dead = FunctionQueues::new("fire-logger")
        .expect("name")
        .dead_letter();
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("the event without detections is dead-lettered");
    assert_eq!(
        safecity_runtime::events::headers::get_str(
            message.delivery.properties.headers().as_ref(),
            safecity_runtime::events::dead_letter::header::DEAD_LETTER_REASON
        ),
        Some("event has no detections")
    );
    let (_, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "safecity_events_succeeded_total",
            "event_type=\"fire\""
        ),
        Some(1.0)
    );

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within the grace")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt as _;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("read stderr");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
