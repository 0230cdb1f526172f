//! The gate's publish path into the frames queue, on the local broker.
//!
//! 50 KB frames (a 640x360 JPEG at quality 80 is 30-60 KB), one camera, each
//! contender on its own fresh vhost:
//!
//! - (a) the gate's publisher (`publisher::run`: mandatory publishes, up to
//!   `CONFIRM_WINDOW` confirms in flight) into the bounded classic frames
//!   queue the detector declares (`FrameBounds::default()`);
//! - (a') the same publisher into a quorum frames queue (what frames used
//!   before they were bounded);
//! - (b) one confirmed publish at a time (publish, await the confirm, next)
//!   into a quorum queue and (c) into a classic one: the baseline measured
//!   when the issue was filed (377 and 2,473 frames/s).
//!
//! `cargo bench -p safecity-motion-gate --bench publish`;
//! `SAFECITY_BENCH_FRAMES` (default 5,000; 1,000 with `SAFECITY_BENCH_QUICK=1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use prometheus_client::registry::Registry;
use safecity_bench_rows::{Better, Row};
use safecity_events::topology::{
    FRAMES_EXCHANGE, FrameBounds, QueueType, declare_exchanges, declare_function_bounded,
};
use safecity_events::{Camera, Frame, FunctionQueues, Publisher, Subscription};
use safecity_motion_gate::metrics::{CameraLabel, GateMetrics};
use safecity_motion_gate::publisher::{self, FrameBuffer, PublisherSettings};
use safecity_runtime::testing::TestVhost;
use safecity_shell::ops::Readiness;
use tokio_util::sync::CancellationToken;

const REGION: &str = "bench";
const CAMERA: &str = "cam-bench";
const BODY_BYTES: usize = 50 * 1024;

fn frame(sequence: u64) -> Frame {
    // Incompressible bytes between JPEG markers: the broker stores them as is.
    let mut jpeg = vec![0u8; BODY_BYTES];
    let mut state = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for byte in &mut jpeg {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    jpeg[..2].copy_from_slice(&[0xFF, 0xD8]);
    jpeg[BODY_BYTES - 2..].copy_from_slice(&[0xFF, 0xD9]);
    Frame {
        camera: Camera {
            id: CAMERA.to_owned(),
            region: REGION.to_owned(),
            latitude: 35.1796,
            longitude: 129.0756,
        },
        captured_at: Utc::now(),
        sequence,
        jpeg,
    }
}

/// The frames queue as the detector's runtime declares it, or a plain queue
/// of `queue_type` for the baselines.
async fn declare(vhost: &TestVhost, bounded: Option<QueueType>, plain: Option<QueueType>) {
    let connection = Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    declare_exchanges(&channel).await.expect("exchanges");
    let subscription = Subscription::Frames {
        region: Some(REGION.to_owned()),
    };
    if let Some(queue_type) = bounded {
        declare_function_bounded(
            &channel,
            &FunctionQueues::new("detector").expect("name"),
            &[subscription],
            queue_type,
            &[],
            FrameBounds::default(),
        )
        .await
        .expect("the frames queue");
    }
    if let Some(queue_type) = plain {
        let mut arguments = FieldTable::default();
        let name = match queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(name.into()));
        channel
            .queue_declare(
                ShortString::from("frames"),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                ShortString::from("frames"),
                ShortString::from(FRAMES_EXCHANGE),
                ShortString::from(REGION),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
    }
    connection.close(0, "declared".into()).await.expect("close");
}

/// (a): the gate's publisher draining a full buffer; frames per second.
async fn gate_publisher(vhost: &TestVhost, frames: u64) -> f64 {
    let buffer = Arc::new(FrameBuffer::new(frames as usize));
    for sequence in 0..frames {
        assert!(buffer.push(frame(sequence)).is_none());
    }
    let metrics = Arc::new(GateMetrics::new(&mut Registry::default()));
    let cancel = CancellationToken::new();
    let settings = PublisherSettings {
        amqp_url: vhost.url.clone(),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        publish_timeout: Duration::from_secs(30),
    };
    let started = Instant::now();
    let task = tokio::spawn(publisher::run(
        settings,
        buffer,
        metrics.clone(),
        Readiness::new("ready", "not connected"),
        cancel.clone(),
    ));
    let published = metrics.frames_published.get_or_create(&CameraLabel {
        camera: CAMERA.to_owned(),
    });
    while published.get() < frames {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    cancel.cancel();
    task.await.expect("the publisher stops");
    frames as f64 / elapsed.as_secs_f64()
}

/// (b), (c): one confirmed publish at a time; frames per second.
async fn one_at_a_time(vhost: &TestVhost, frames: u64) -> f64 {
    let connection = Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .expect("connect");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let bodies: Vec<Frame> = (0..frames).map(frame).collect();
    let started = Instant::now();
    for frame in &bodies {
        publisher.publish_frame(frame).await.expect("confirmed");
    }
    let elapsed = started.elapsed();
    connection.close(0, "done".into()).await.expect("close");
    frames as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var("SAFECITY_BENCH_QUICK").is_ok_and(|v| v == "1");
    let frames: u64 = std::env::var("SAFECITY_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1000 } else { 5000 });
    // The bounded queue holds 1,000 frames: beyond, the oldest are pushed out
    // (dead-lettered to the unbound dropped-frames exchange), as in a city
    // whose detector is at zero.
    println!("publishing {frames} frames of {BODY_BYTES} bytes per contender, one camera");
    let mut rows = Vec::new();
    for (name, bounded, plain, pipelined) in [
        (
            "(a) gate publisher, bounded classic frames queue",
            Some(QueueType::Classic),
            None,
            true,
        ),
        (
            "(a') gate publisher, quorum queue",
            None,
            Some(QueueType::Quorum),
            true,
        ),
        (
            "(b) one confirm at a time, quorum queue",
            None,
            Some(QueueType::Quorum),
            false,
        ),
        (
            "(c) one confirm at a time, classic queue",
            None,
            Some(QueueType::Classic),
            false,
        ),
    ] {
        let vhost = TestVhost::new("bench-publish");
        declare(&vhost, bounded, plain).await;
        let rate = if pipelined {
            gate_publisher(&vhost, frames).await
        } else {
            one_at_a_time(&vhost, frames).await
        };
        println!("{name}: {rate:.0} frames/s");
        rows.push((name, rate));
    }
    let (a, a_quorum, b, c) = (rows[0].1, rows[1].1, rows[2].1, rows[3].1);
    println!();
    println!("| contender | frames/s | MB/s | vs (b) | vs (c) |");
    println!("|---|---|---|---|---|");
    for (name, rate) in &rows {
        println!(
            "| {name} | {rate:.0} | {:.1} | {:.2}x | {:.2}x |",
            rate * BODY_BYTES as f64 / 1e6,
            rate / b,
            rate / c
        );
    }
    println!();
    println!(
        "gate path into the frames queue: {a:.0} frames/s ({:.2}x one-at-a-time classic, {:.2}x one-at-a-time quorum; pipelined quorum {a_quorum:.0})",
        a / c,
        a / b
    );
    // Rows for `safecity bench` (written when SAFECITY_BENCH_ROWS is set).
    let measure = |what: &str| format!("{what} ({frames} frames of 50 KB)");
    let gate = measure("gate publisher, bounded classic frames queue");
    let quorum = measure("gate publisher, quorum queue");
    for row in [
        Row::new("gate-publish", gate.clone(), a, "frames/s", Better::Higher)
            .baseline("one confirm at a time, classic queue", c),
        Row::new("gate-publish", gate, a, "frames/s", Better::Higher)
            .baseline("one confirm at a time, quorum queue", b),
        Row::new("gate-publish", quorum, a_quorum, "frames/s", Better::Higher)
            .baseline("one confirm at a time, quorum queue", b),
    ] {
        row.emit().expect("bench rows");
    }
}
