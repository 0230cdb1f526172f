//! The bounded frames queue, end to end on the local broker: what the broker
//! drops (pushed out of a full queue, or older than the frame budget) comes
//! back to the region's gate and is counted per camera.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::registry::Registry;
use safecity_events::topology::{FrameBounds, QueueType, declare_function_bounded};
use safecity_events::{Camera, Frame, FunctionQueues, Subscription};
use safecity_motion_gate::metrics::{DropLabel, DropReason, GateMetrics};
use safecity_motion_gate::publisher::PublisherSettings;
use safecity_motion_gate::publisher::dropped::{self, counting_queue};
use safecity_runtime::testing::{eventually, rabbitmqctl};
use support::{REGION, TestVhost};
use tokio_util::sync::CancellationToken;

fn frame(camera: &str, sequence: u64) -> Frame {
    Frame {
        camera: Camera {
            id: camera.to_owned(),
            region: REGION.to_owned(),
            latitude: 37.5665,
            longitude: 126.978,
        },
        captured_at: Utc::now(),
        sequence,
        jpeg: vec![0xFF, 0xD8, 0xFF, 0xD9],
    }
}

fn dropped(metrics: &GateMetrics, camera: &str, reason: DropReason) -> u64 {
    metrics
        .frames_dropped
        .get_or_create(&DropLabel {
            camera: camera.to_owned(),
            reason,
        })
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_the_broker_drops_are_counted_per_camera_by_the_regions_gate() {
    let vhost = TestVhost::new("gate-frame-bounds");
    let client = vhost.client().await;
    // The detector's frames queue, declared as the runtime declares it, with
    // a short budget and room for five frames; no detector consumes it.
    let queues = FunctionQueues::new("detector").expect("name");
    let bounds = FrameBounds {
        budget: Duration::from_millis(1500),
        max_frames: 5,
    };
    declare_function_bounded(
        &client.channel,
        &queues,
        &[Subscription::Frames {
            region: Some(REGION.to_owned()),
        }],
        QueueType::Quorum,
        &[],
        bounds,
    )
    .await
    .expect("the bounded frames queue");
    let listed = rabbitmqctl(&[
        "list_queues",
        "-p",
        &vhost.name,
        "name",
        "type",
        "arguments",
    ]);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("{}\t", queues.work())))
        .unwrap_or_else(|| panic!("the work queue: {listed}"));
    assert!(
        line.contains("classic"),
        "frames are a classic queue: {line}"
    );
    assert!(line.contains("drop-head"), "{line}");

    let mut registry = Registry::default();
    let metrics = Arc::new(GateMetrics::new(&mut registry));
    let cancel = CancellationToken::new();
    let settings = PublisherSettings {
        amqp_url: vhost.url.clone(),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_millis(500),
        publish_timeout: Duration::from_secs(5),
    };
    let counter = tokio::spawn(dropped::run(
        settings.broker("test-dropped"),
        REGION.to_owned(),
        metrics.clone(),
        cancel.clone(),
    ));
    let queue = counting_queue(REGION);
    eventually(
        Duration::from_secs(10),
        "the counting queue has its consumer",
        || {
            rabbitmqctl(&["list_queues", "-p", &vhost.name, "name", "consumers"])
                .lines()
                .any(|l| l == format!("{queue}\t1"))
        },
    )
    .await;

    // Eight frames into room for five: three pushed out at once, five
    // expire after the budget. Another region's drops are not ours.
    for sequence in 0..6 {
        client.publish_frame(&frame("cam-a", sequence)).await;
    }
    for sequence in 0..2 {
        client.publish_frame(&frame("cam-b", sequence)).await;
    }
    eventually(Duration::from_secs(10), "three frames pushed out", || {
        dropped(&metrics, "cam-a", DropReason::QueueFull) == 3
    })
    .await;
    assert_eq!(dropped(&metrics, "cam-b", DropReason::QueueFull), 0);
    eventually(Duration::from_secs(15), "five frames expired", || {
        dropped(&metrics, "cam-a", DropReason::Expired) == 3
            && dropped(&metrics, "cam-b", DropReason::Expired) == 2
    })
    .await;
    assert_eq!(
        client.ready_count(&queues.work()).await,
        0,
        "nothing stale waits"
    );
    // Nothing more comes: every frame was counted exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dropped(&metrics, "cam-a", DropReason::QueueFull), 3);
    assert_eq!(dropped(&metrics, "cam-a", DropReason::Expired), 3);
    assert_eq!(dropped(&metrics, "cam-b", DropReason::Expired), 2);
    cancel.cancel();
    counter.await.expect("the counter stops on cancellation");
}
