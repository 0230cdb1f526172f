//! Functions scaled as FaaS, for real: the scaler in-process on a real
//! broker, the local autoscaler driving real function processes (the
//! `probe-function` binary), exactly as KEDA and the HPA drive Deployments.

use std::path::Path;
use std::time::Duration;

use safecity_e2e::{MiniCity, probe_object};
use safecity_events::{CloudEvent, EventType};
use tokio::time::Instant;

const PROBE: &str = env!("CARGO_BIN_EXE_probe-function");

async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event(event_type: EventType) -> CloudEvent<serde_json::Value> {
    CloudEvent::new(
        "/cameras/e2e",
        event_type,
        serde_json::json!({"probe": true}),
    )
}

/// Whether a process's environment names the vhost (one of the city's).
fn processes_of(vhost: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| String::from_utf8_lossy(&env).contains(vhost))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_wakes_from_zero_handles_its_event_and_goes_back_to_zero() {
    let mut city = MiniCity::start("e2e-zero").await;
    city.declare("probe-zero", &[EventType::Fire.into()]).await;
    let spec = city.probe_spec(
        Path::new(PROBE),
        "probe-zero",
        EventType::Fire,
        Duration::ZERO,
        &[],
    );
    city.scale(
        probe_object(
            "probe-zero",
            EventType::Fire,
            Duration::from_secs(1),
            Duration::from_secs(2),
            4,
        ),
        spec,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        city.status("probe-zero").replicas,
        0,
        "nothing runs before the event"
    );
    assert_eq!(
        processes_of(&city.vhost.name),
        0,
        "no function process at all"
    );

    let client = city.vhost.client().await;
    client.publish_event(&event(EventType::Fire)).await;
    until("the event handled", Duration::from_secs(30), || {
        city.status("probe-zero")
            .cold_starts
            .last()
            .is_some_and(|c| c.handled.is_some())
    })
    .await;
    let status = city.status("probe-zero");
    assert_eq!(status.activations, 1, "one activation");
    assert_eq!(status.replicas, 1, "exactly one process");
    assert_eq!(processes_of(&city.vhost.name), 1, "exactly one OS process");
    let cold = status.cold_starts.last().expect("a cold start").clone();
    assert!(cold.pushed, "activated by the scaler's push, not a poll");

    until(
        "back at zero after the cooldown",
        Duration::from_secs(30),
        || city.status("probe-zero").replicas == 0,
    )
    .await;
    until("the process gone", Duration::from_secs(30), || {
        processes_of(&city.vhost.name) == 0
    })
    .await;
    let status = city.status("probe-zero");
    assert_eq!(status.activations, 1, "no second activation");
    let back = status.cold_starts[0].back_at_zero.expect("back at zero");
    assert!(
        back >= cold.handled.expect("handled") + 2000,
        "not before the 2 s cooldown after the work"
    );
    city.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_function_is_never_scaled_in_mid_work() {
    let mut city = MiniCity::start("e2e-busy").await;
    city.declare("probe-busy", &[EventType::Knife.into()]).await;
    // Each event takes 8 s; the cooldown is 2 s: only in-flight accounting
    // keeps the function up.
    let spec = city.probe_spec(
        Path::new(PROBE),
        "probe-busy",
        EventType::Knife,
        Duration::from_secs(8),
        &[],
    );
    city.scale(
        probe_object(
            "probe-busy",
            EventType::Knife,
            Duration::from_secs(1),
            Duration::from_secs(2),
            1,
        ),
        spec,
    );
    let client = city.vhost.client().await;
    client.publish_event(&event(EventType::Knife)).await;
    until("the work handled", Duration::from_secs(40), || {
        city.status("probe-busy")
            .cold_starts
            .last()
            .is_some_and(|c| c.handled.is_some())
    })
    .await;
    let status = city.status("probe-busy");
    let cold = status.cold_starts.last().expect("a cold start");
    let ready = cold.ready.expect("ready");
    let handled = cold.handled.expect("handled");
    assert!(
        handled >= ready + 8000,
        "the handler ran its 8 s ({} ms)",
        handled - ready
    );
    assert!(
        cold.back_at_zero.is_none(),
        "not scaled in while the event was in flight"
    );
    assert_eq!(status.activations, 1);
    assert_eq!(status.restarts, 0);
    until("back at zero afterwards", Duration::from_secs(30), || {
        city.status("probe-busy").replicas == 0
    })
    .await;
    city.stop().await;
}
