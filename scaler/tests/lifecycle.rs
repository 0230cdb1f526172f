//! The life cycle of watches, against the real local RabbitMQ: triggers KEDA
//! stopped asking about are pruned (with their tap bindings), and queues that
//! do not exist cost no AMQP channels however often they are sampled.

mod support;

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use safecity_events::EventType;
use support::*;

/// Whether the scaler's tap queue is bound for `routing_key`.
fn tapped(vhost: &TestVhost, routing_key: &str) -> bool {
    vhost
        .bound_queues(routing_key)
        .iter()
        .any(|q| q.starts_with("amq.gen-"))
}

async fn wait_until_untapped(vhost: &TestVhost, routing_key: &str) {
    for _ in 0..60 {
        if !tapped(vhost, routing_key) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the tap is still bound for `{routing_key}`");
}

#[tokio::test]
async fn idle_triggers_are_pruned_with_their_tap_bindings_but_not_while_streamed() {
    let vhost = TestVhost::new("prune");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    amqp.declare_function("gun-alert", EventType::Gun).await;
    let scaler = vhost
        .scaler(&[("SAFECITY_SCALER_WATCH_IDLE_TIMEOUT", "500ms")])
        .await;
    let mut client = grpc(&scaler).await;
    let fire = scaled_object("fire-alert", &[("eventType", "fire")]);
    let gun = scaled_object("gun-alert", &[("eventType", "gun")]);

    // Streams open first: while one is open, a trigger is leased (never pruned),
    // so the taps can be checked however slow rabbitmqctl is.
    let fire_stream = client
        .stream_is_active(fire.clone())
        .await
        .expect("stream")
        .into_inner();
    let gun_stream = client
        .stream_is_active(gun.clone())
        .await
        .expect("stream")
        .into_inner();
    assert_eq!(poll(&mut client, &fire).await.expect("fire"), (0.0, false));
    assert_eq!(poll(&mut client, &gun).await.expect("gun"), (0.0, false));
    vhost.wait_for_tap("fire").await;
    vhost.wait_for_tap("gun").await;
    assert_eq!(
        metric(
            &metrics_page(&scaler).await,
            "safecity_scaler_watched_queues"
        ),
        Some(2.0),
        "streamed triggers outlive the idle timeout"
    );

    // KEDA stops asking about gun (its ScaledObject was deleted).
    drop(gun_stream);
    let page = wait_for_metric(
        &scaler,
        "safecity_scaler_watched_queues",
        Duration::from_secs(20),
        |n| n == 1.0,
    )
    .await;
    assert!(
        page.contains("queue=\"safecity.fn.fire-alert\""),
        "the streamed trigger stays: {page}"
    );
    assert!(
        !page.contains("queue=\"safecity.fn.gun-alert\""),
        "the pruned queue's series go: {page}"
    );
    assert_eq!(
        metric(&page, "safecity_scaler_pruned_triggers_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&page, "safecity_scaler_registered_triggers"),
        Some(1.0)
    );
    wait_until_untapped(&vhost, "gun").await;
    assert!(tapped(&vhost, "fire"), "fire is still tapped");

    // The stream closes: now fire goes too.
    drop(fire_stream);
    let page = wait_for_metric(
        &scaler,
        "safecity_scaler_watched_queues",
        Duration::from_secs(20),
        |n| n == 0.0,
    )
    .await;
    assert_eq!(metric(&page, "safecity_scaler_open_streams"), Some(0.0));
    assert_eq!(
        metric(&page, "safecity_scaler_pruned_triggers_total"),
        Some(2.0)
    );
    wait_until_untapped(&vhost, "fire").await;

    // KEDA asks again (a ScaledObject of the same name was created): served.
    amqp.publish(EventType::Gun).await;
    let _gun_stream = client
        .stream_is_active(gun.clone())
        .await
        .expect("stream")
        .into_inner();
    assert_eq!(
        poll(&mut client, &gun).await.expect("gun again"),
        (1.0, true)
    );
    vhost.wait_for_tap("gun").await;
    scaler.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn missing_queues_cost_no_amqp_channels() {
    const MISSING: usize = 20;
    let vhost = TestVhost::new("missing");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let objects: Vec<_> = (0..MISSING)
        .map(|i| scaled_object(&format!("so-{i}"), &[("queue", &format!("missing.q.{i}"))]))
        .collect();
    for object in &objects {
        assert_eq!(
            poll(&mut client, object)
                .await
                .expect("a missing queue is served"),
            (0.0, false),
            "a missing queue has no work"
        );
    }
    let existing = scaled_object("fire-alert", &[("eventType", "fire")]);
    assert_eq!(
        poll(&mut client, &existing).await.expect("fire"),
        (0.0, false)
    );

    // Many ready-count rounds over the 20 missing queues.
    let page = metrics_page(&scaler).await;
    let rounds = metric(&page, "safecity_scaler_depth_rounds_total").expect("rounds");
    let page = wait_for_metric(
        &scaler,
        "safecity_scaler_depth_rounds_total",
        Duration::from_secs(30),
        |n| n >= rounds + 10.0,
    )
    .await;
    assert_eq!(
        metric(&page, "safecity_scaler_amqp_channels_opened_total"),
        Some(2.0),
        "one channel for the ready counts, one for the tap: {page}"
    );
    // The broker agrees: channel numbers are allocated in sequence, so churn
    // would show as high numbers.
    let numbers: Vec<u32> = rabbitmqctl(&[
        "list_channels",
        "-q",
        "--no-table-headers",
        "vhost",
        "number",
    ])
    .lines()
    .filter_map(|line| line.strip_prefix(&format!("{}\t", vhost.name)))
    .map(|number| number.trim().parse().expect("channel number"))
    .collect();
    assert!(
        !numbers.is_empty() && numbers.iter().all(|n| *n <= 2),
        "channels of the vhost: {numbers:?}"
    );

    // A missing queue appears: its work is seen at the next listing.
    let appeared = "missing.q.7";
    amqp.channel
        .queue_declare(
            appeared.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    for _ in 0..3 {
        amqp.channel
            .basic_publish(
                "".into(),
                appeared.into(),
                BasicPublishOptions::default(),
                b"work",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    poll_until(
        &mut client,
        &objects[7],
        Duration::from_secs(10),
        "the new queue's work",
        |v| matches!(v, Ok((p, true)) if *p == 3.0),
    )
    .await
    .expect("served");

    // A watched queue is deleted: at most one channel is spent learning it.
    amqp.channel
        .queue_delete(appeared.into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    poll_until(
        &mut client,
        &objects[7],
        Duration::from_secs(10),
        "the deleted queue has no work",
        |v| matches!(v, Ok((p, false)) if *p == 0.0),
    )
    .await
    .expect("served");
    let page = metrics_page(&scaler).await;
    let rounds = metric(&page, "safecity_scaler_depth_rounds_total").expect("rounds");
    let page = wait_for_metric(
        &scaler,
        "safecity_scaler_depth_rounds_total",
        Duration::from_secs(30),
        |n| n >= rounds + 5.0,
    )
    .await;
    let channels = metric(&page, "safecity_scaler_amqp_channels_opened_total").expect("channels");
    assert!(channels <= 3.0, "{channels} channels opened: {page}");
    scaler.shutdown().await.expect("clean shutdown");
}
