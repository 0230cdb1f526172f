//! Black-box tests of the scaler against the real local RabbitMQ, through a
//! real gRPC client (tonic) playing KEDA's call sequence.

mod support;

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use safecity_events::EventType;
use safecity_scaler::pb::GetMetricsRequest;
use support::*;
use tokio::time::{Instant, timeout};

#[tokio::test]
async fn push_activation_reaches_the_stream_within_milliseconds() {
    let vhost = TestVhost::new("push");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("fire-alert", &[("eventType", "fire")]);

    let (pending, active) = poll(&mut client, &object).await.expect("KEDA's poll tick");
    assert_eq!((pending, active), (0.0, false), "empty queue: idle");
    let mut stream = client
        .stream_is_active(object.clone())
        .await
        .expect("stream opens")
        .into_inner();
    vhost.wait_for_tap("fire").await;
    assert!(
        timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err(),
        "no push while nothing is pending"
    );

    let published = Instant::now();
    amqp.publish(EventType::Fire).await;
    let message = timeout(Duration::from_secs(1), stream.message())
        .await
        .expect("a push within 1 s (KEDA's own scaler polls every 30 s)")
        .expect("stream healthy")
        .expect("stream open");
    let latency = published.elapsed();
    assert!(message.result, "the push says active");
    assert!(
        latency < Duration::from_millis(250),
        "push took {latency:?}"
    );

    // While work is pending, `true` is re-sent (KEDA drops one it cannot map yet).
    let again = timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("re-sent while pending")
        .expect("healthy")
        .expect("open");
    assert!(again.result);

    let page = metrics_page(&scaler).await;
    assert!(
        page.contains("safecity_scaler_activation_pushes_total{event_type=\"fire\"}"),
        "{page}"
    );
    assert!(page.contains("safecity_scaler_open_streams 1"), "{page}");
    assert!(page.contains("method=\"GetMetrics\",code=\"Ok\""), "{page}");
    assert!(
        page.contains("safecity_scaler_broker_connections_opened_total 1"),
        "{page}"
    );
    scaler.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unacked_work_keeps_the_function_active() {
    const HELD: u64 = 4;
    let vhost = TestVhost::new("inflight");
    let amqp = vhost.amqp().await;
    let queue = amqp
        .declare_function("knife-review", EventType::Knife)
        .await;
    for _ in 0..HELD {
        amqp.publish(EventType::Knife).await;
    }
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("knife-review", &[("eventType", "knife")]);
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(5),
        "ready work seen",
        |v| matches!(v, Ok((p, true)) if *p == HELD as f64),
    )
    .await
    .expect("served");

    // The function takes every message and holds it unacked: ready drops to 0.
    let function = vhost.amqp().await;
    function
        .channel
        .basic_qos(HELD as u16, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = function
        .channel
        .basic_consume(
            queue.as_str().into(),
            "knife-review-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut deliveries = Vec::new();
    while deliveries.len() < HELD as usize {
        let delivery = consumer.next().await.expect("delivery").expect("ok");
        deliveries.push(delivery);
    }
    // Across the whole window in which the management statistics catch up,
    // KEDA's view must stay "HELD pending, active" — never idle mid-work.
    let until = Instant::now() + Duration::from_secs(7);
    let mut views = 0;
    while Instant::now() < until {
        let (pending, active) = poll(&mut client, &object).await.expect("served");
        assert!(
            active,
            "reported idle while {HELD} messages are in flight (view {views}, pending {pending})"
        );
        assert_eq!(pending, HELD as f64, "pending = ready + in-flight");
        views += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(views > 10);

    for delivery in deliveries {
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(20),
        "idle after the acks",
        |v| matches!(v, Ok((p, false)) if *p == 0.0),
    )
    .await
    .expect("served");
    scaler.shutdown().await.expect("clean shutdown");
}

/// An event delivered straight to an attached consumer never shows in the
/// ready count, and the management statistics lag: the tap's arrival must
/// count as pending until a fresher observation proves it gone.
#[tokio::test]
async fn work_taken_at_once_by_an_attached_consumer_is_seen_at_once() {
    let vhost = TestVhost::new("attached");
    let amqp = vhost.amqp().await;
    let queue = amqp.declare_function("gun-review", EventType::Gun).await;
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("gun-review", &[("eventType", "gun")]);
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(5),
        "idle before the event",
        |v| matches!(v, Ok((p, false)) if *p == 0.0),
    )
    .await
    .expect("served");

    // The function is running: its consumer is attached before the event.
    let function = vhost.amqp().await;
    function
        .channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = function
        .channel
        .basic_consume(
            queue.as_str().into(),
            "gun-review-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    amqp.publish(EventType::Gun).await;
    let published = Instant::now();
    let delivery = timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("delivered in time")
        .expect("a delivery")
        .expect("ok");
    tokio::time::sleep_until(published + Duration::from_millis(100)).await;
    // Every poll from 100 ms after the publish until the ack: active, >= 1.
    let hold = Duration::from_secs(20);
    let mut views = 0;
    while published.elapsed() < hold {
        let (pending, active) = poll(&mut client, &object).await.expect("served");
        let at = published.elapsed();
        assert!(
            active && pending >= 1.0,
            "view {views} at {at:?}: active {active}, pending {pending} while one event is in flight"
        );
        views += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(views > 100, "{views} views");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(20),
        "idle after the ack",
        |v| matches!(v, Ok((p, false)) if *p == 0.0),
    )
    .await
    .expect("served");
    scaler.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn scaled_objects_see_only_their_own_work() {
    let vhost = TestVhost::new("isolation");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    amqp.declare_function("gun-alert", EventType::Gun).await;
    amqp.declare_function("accident-drain", EventType::Accident)
        .await;
    for _ in 0..3 {
        amqp.publish(EventType::Fire).await;
    }
    for _ in 0..2 {
        amqp.publish(EventType::Accident).await;
    }
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let fire = scaled_object(
        "fire-alert",
        &[("eventType", "fire"), ("targetPendingPerReplica", "2")],
    );
    let gun = scaled_object("gun-alert", &[("eventType", "gun")]);
    let drain = scaled_object(
        "accident-drain",
        &[
            ("eventType", "accident"),
            ("targetDrainSeconds", "30"),
            ("targetPendingPerReplica", "5"),
        ],
    );

    let spec = client
        .get_metric_spec(fire.clone())
        .await
        .expect("spec")
        .into_inner();
    assert_eq!(spec.metric_specs[0].target_size_float, 2.0);
    let drain_spec = client
        .get_metric_spec(drain.clone())
        .await
        .expect("spec")
        .into_inner();
    assert_eq!(drain_spec.metric_specs[0].target_size_float, 30.0);
    assert_ne!(
        spec.metric_specs[0].metric_name,
        drain_spec.metric_specs[0].metric_name
    );

    assert_eq!(poll(&mut client, &fire).await.expect("fire"), (3.0, true));
    assert_eq!(poll(&mut client, &gun).await.expect("gun"), (0.0, false));
    // Drain time before any handling was observed: 2 pending x (30 s / 5) = 12 s.
    assert_eq!(
        poll(&mut client, &drain).await.expect("drain"),
        (12.0, true)
    );

    let invalid: &[(&[(&str, &str)], &str)] = &[
        (&[("eventType", "flood")], "eventType"),
        (
            &[("eventType", "fire"), ("targetPendingPerReplica", "lots")],
            "targetPendingPerReplica",
        ),
        (
            &[("eventType", "fire"), ("targetDrainSeconds", "0")],
            "targetDrainSeconds",
        ),
        (
            &[("eventType", "fire"), ("activationPending", "-3")],
            "activationPending",
        ),
        (&[("eventType", "fire"), ("queueName", "x")], "queueName"),
    ];
    for (metadata, key) in invalid {
        let object = scaled_object("fire-alert", metadata);
        let errors = [
            client
                .get_metric_spec(object.clone())
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .is_active(object.clone())
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .get_metrics(GetMetricsRequest {
                    scaled_object_ref: Some(object.clone()),
                    metric_name: "pending-x".into(),
                })
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .stream_is_active(object.clone())
                .await
                .map(|_| ())
                .unwrap_err(),
        ];
        for status in errors {
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{metadata:?}: {status:?}"
            );
            assert!(
                status.message().contains(key),
                "{metadata:?}: `{}` names `{key}`",
                status.message()
            );
        }
    }
    let wrong_metric = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(gun.clone()),
            metric_name: "pending-someone-else".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_metric.code(), tonic::Code::InvalidArgument);
    assert!(wrong_metric.message().contains("metricName"));
    scaler.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn one_broker_connection_for_many_scaled_objects_and_health_serving() {
    let vhost = TestVhost::new("connections");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let mut streams = Vec::new();
    for i in 0..50 {
        let event = ["fire", "gun", "knife", "accident"][i % 4];
        let object = scaled_object(&format!("fn-{i}"), &[("eventType", event)]);
        poll(&mut client, &object).await.expect("served");
        streams.push(
            client
                .stream_is_active(object)
                .await
                .expect("stream")
                .into_inner(),
        );
    }
    let page = metrics_page(&scaler).await;
    assert!(
        page.contains("safecity_scaler_broker_connections_opened_total 1\n"),
        "{page}"
    );
    assert!(page.contains("safecity_scaler_watched_queues 50"), "{page}");
    assert!(page.contains("safecity_scaler_open_streams 50"), "{page}");
    let connections = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "vhost",
        "name",
    ])
    .lines()
    .filter(|line| line.starts_with(&format!("{}\t", vhost.name)))
    .count();
    assert_eq!(
        connections, 2,
        "the scaler's one connection plus the test's own"
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", scaler.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: safecity_scaler::server::SERVICE_NAME.into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    scaler.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn graceful_shutdown_ends_streams_with_ok() {
    let vhost = TestVhost::new("shutdown");
    let amqp = vhost.amqp().await;
    amqp.declare_function("gun-alert", EventType::Gun).await;
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("gun-alert", &[("eventType", "gun")]);
    poll(&mut client, &object).await.expect("served");
    let mut stream = client
        .stream_is_active(object)
        .await
        .expect("stream")
        .into_inner();
    let shutdown = tokio::spawn(scaler.shutdown());
    let end = timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends promptly");
    assert!(matches!(end, Ok(None)), "ended with status OK, got {end:?}");
    timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes")
        .expect("joined")
        .expect("clean");
}

#[tokio::test]
async fn unreachable_broker_answers_unavailable_never_inactive() {
    // A broker nobody listens on: the scaler must not claim "idle".
    let vhost = TestVhost::new("unreachable");
    let scaler = vhost
        .scaler(&[
            (
                "SAFECITY_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:1/nowhere",
            ),
            ("SAFECITY_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:1"),
        ])
        .await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("fire-alert", &[("eventType", "fire")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = poll(&mut client, &object).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let status = client.is_active(object).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains("guest:guest"),
        "no credentials in errors"
    );
    scaler.shutdown().await.expect("clean shutdown");
}

/// Accepts TCP connections and never answers: a broker (or management API)
/// that hangs. Returns its address; the sockets live until the test ends.
async fn silent_listener() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// KEDA sets no deadline on its calls: a silent broker or management API
/// must be answered `Unavailable` from the known state at once, not after a
/// wait per call, and must not delay SIGTERM.
#[tokio::test]
async fn a_silent_broker_is_answered_at_once_and_does_not_delay_shutdown() {
    let broker = silent_listener().await;
    let management = silent_listener().await;
    let vhost = TestVhost::new("silent");
    let scaler = vhost
        .scaler(&[
            (
                "SAFECITY_AMQP_URL",
                &format!("amqp://guest:guest@{broker}/%2f"),
            ),
            (
                "SAFECITY_MANAGEMENT_URL",
                &format!("http://guest:guest@{management}"),
            ),
            ("SAFECITY_SCALER_FIRST_SAMPLE_TIMEOUT", "1s"),
        ])
        .await;
    let mut client = grpc(&scaler).await;
    // Past the first-sample timeout of the connection attempt.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for name in ["fire-alert", "gun-alert", "knife-alert"] {
        let object = scaled_object(name, &[("eventType", "fire")]);
        let asked = Instant::now();
        let status = client.is_active(object.clone()).await.unwrap_err();
        let waited = asked.elapsed();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            waited < Duration::from_millis(500),
            "answered after {waited:?}, not at once (the first-sample wait is 1 s)"
        );
        let status = poll(&mut client, &object).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let stopping = Instant::now();
    timeout(Duration::from_secs(3), scaler.shutdown())
        .await
        .expect("shutdown is prompt with a silent broker")
        .expect("clean shutdown");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

/// The management API down (refused): in-flight counts are unknown, so the
/// answer is `Unavailable` naming it, at once.
#[tokio::test]
async fn a_management_api_that_is_down_is_answered_at_once() {
    let vhost = TestVhost::new("nomgmt");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    let scaler = vhost
        .scaler(&[("SAFECITY_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:1")])
        .await;
    let mut client = grpc(&scaler).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let object = scaled_object("fire-alert", &[("eventType", "fire")]);
    let asked = Instant::now();
    let status = poll(&mut client, &object).await.unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "answered after {:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("management"), "{status:?}");
    scaler.shutdown().await.expect("clean shutdown");
}
