//! Cold starts from zero through the whole FaaS path: an event published to
//! a function at zero replicas -> the scaler's push -> the local autoscaler's
//! decision -> the process spawned -> ready (consuming) -> the event handled.
//!
//! - single: one function, `BENCH_COLDSTART_PROBES` (20) probes in a row,
//!   each from zero (a 1 s cooldown between them);
//! - burst, after Knative's scale-from-zero benchmark: 25 distinct functions
//!   (the probe binary under 25 names) at zero, one event reaching all of
//!   them at once.
//!
//! The functions are the `probe-function` binary of this build (release
//! under `cargo bench`), the scaler runs in-process, the broker is the local
//! RabbitMQ. Targets: single p99 <= 500 ms; burst p95 <= 2 s.
//!
//! `cargo bench -p safecity-e2e --bench coldstart` (BENCH_COLDSTART_PROBES,
//! BENCH_COLDSTART_BURST to change the sizes). Quick mode
//! (`SAFECITY_BENCH_QUICK=1`): 3 probes, a burst of 10. With
//! `SAFECITY_BENCH_ROWS` set, single p50/p99 and burst p95 are also appended
//! as rows for `safecity bench`, against KEDA's default 30 s
//! `pollingInterval` (a configured constant: the activation delay alone of
//! KEDA's polling scalers, not a measurement).

use std::path::Path;
use std::time::Duration;

use safecity_bench_rows::{Better, Row};
use safecity_cli::city::autoscaler::epoch_ms;
use safecity_cli::coldstart::percentile;
use safecity_e2e::{MiniCity, probe_object};
use safecity_events::{CloudEvent, EventType};
use tokio::time::Instant;

const PROBE: &str = env!("CARGO_BIN_EXE_probe-function");

/// A size from the environment, else the full or the quick default.
fn count(name: &str, full: usize, quick: usize) -> usize {
    safecity_bench_rows::setting(name, full, quick)
}

async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    let deadline = started + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("{what}: {:.2} s", started.elapsed().as_secs_f64());
}

/// Stops the city, saying how long it took (the functions drain first).
async fn stop(city: MiniCity) {
    let started = Instant::now();
    city.stop().await;
    eprintln!("city stopped: {:.2} s", started.elapsed().as_secs_f64());
}

/// Stage times of one cold start, ms after the publish.
#[derive(Debug, Clone, Copy)]
struct Stages {
    pushed: f64,
    spawned: f64,
    ready: f64,
    handled: f64,
}

async fn single(probes: usize) -> Vec<Stages> {
    let mut city = MiniCity::start("bench-single").await;
    city.declare("probe-single", &[EventType::Fire.into()])
        .await;
    let spec = city.probe_spec(
        Path::new(PROBE),
        "probe-single",
        EventType::Fire,
        Duration::ZERO,
        &[],
    );
    city.scale(
        probe_object(
            "probe-single",
            EventType::Fire,
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        ),
        spec,
    );
    city.wait_for_streams(1).await;
    let client = city.vhost.client().await;
    let mut out = Vec::new();
    for n in 0..probes {
        until(
            &format!("probe {n}: at zero"),
            Duration::from_secs(60),
            || city.status("probe-single").replicas == 0,
        )
        .await;
        // Let the scaler see the idle queue (no in-flight hold left).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = city.status("probe-single").cold_starts.len();
        let published = epoch_ms();
        client
            .publish_event(&CloudEvent::new(
                "/cameras/bench",
                EventType::Fire,
                serde_json::json!({}),
            ))
            .await;
        until(
            &format!("probe {n}: handled"),
            Duration::from_secs(30),
            || {
                let status = city.status("probe-single");
                status.cold_starts.len() > before
                    && status
                        .cold_starts
                        .last()
                        .is_some_and(|c| c.handled.is_some())
            },
        )
        .await;
        let cold = city
            .status("probe-single")
            .cold_starts
            .last()
            .cloned()
            .expect("cold start");
        let after = |t: u64| t.saturating_sub(published) as f64;
        out.push(Stages {
            pushed: after(cold.activated),
            spawned: after(cold.spawned),
            ready: after(cold.ready.expect("ready")),
            handled: after(cold.handled.expect("handled")),
        });
    }
    stop(city).await;
    out
}

async fn burst(functions: usize) -> Vec<f64> {
    let mut city = MiniCity::start("bench-burst").await;
    let names: Vec<String> = (0..functions).map(|i| format!("burst-{i:02}")).collect();
    for name in &names {
        city.declare(name, &[EventType::Gun.into()]).await;
        let spec = city.probe_spec(Path::new(PROBE), name, EventType::Gun, Duration::ZERO, &[]);
        city.scale(
            probe_object(
                name,
                EventType::Gun,
                Duration::from_secs(5),
                Duration::from_secs(5),
                1,
            ),
            spec,
        );
    }
    // Every stream open and every queue sampled idle.
    city.wait_for_streams(functions).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = city.vhost.client().await;
    let published = epoch_ms();
    client
        .publish_event(&CloudEvent::new(
            "/cameras/bench",
            EventType::Gun,
            serde_json::json!({}),
        ))
        .await;
    until(
        "every function handled its event",
        Duration::from_secs(60),
        || {
            names.iter().all(|n| {
                city.status(n)
                    .cold_starts
                    .last()
                    .is_some_and(|c| c.handled.is_some())
            })
        },
    )
    .await;
    let handled = names
        .iter()
        .map(|n| {
            let cold = city
                .status(n)
                .cold_starts
                .last()
                .cloned()
                .expect("cold start");
            cold.handled.expect("handled").saturating_sub(published) as f64
        })
        .collect();
    stop(city).await;
    handled
}

#[tokio::main]
async fn main() {
    let probes = count("BENCH_COLDSTART_PROBES", 20, 3);
    let functions = count("BENCH_COLDSTART_BURST", 25, 10);
    let singles = single(probes).await;
    let bursts = burst(functions).await;
    let column = |f: fn(&Stages) -> f64| -> Vec<f64> { singles.iter().map(f).collect() };
    let handled = column(|s| s.handled);
    println!();
    println!(
        "single, publish -> handled per probe (ms): {}",
        handled
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| cold start from zero (probe function, release, this machine) | p50 | p99 | target |"
    );
    println!("|---|---|---|---|");
    for (stage, values) in [
        (
            "publish -> activation pushed by the scaler",
            column(|s| s.pushed),
        ),
        ("publish -> process spawned", column(|s| s.spawned)),
        ("publish -> ready (consuming)", column(|s| s.ready)),
    ] {
        println!(
            "| {stage} ({probes} probes) | {:.0} ms | {:.0} ms | |",
            percentile(&values, 0.5),
            percentile(&values, 0.99)
        );
    }
    println!(
        "| **single: publish -> handled** ({probes} probes) | {:.0} ms | {:.0} ms | p99 <= 500 ms |",
        percentile(&handled, 0.5),
        percentile(&handled, 0.99)
    );
    println!(
        "| **burst: {functions} functions at zero, one event each at once: publish -> handled** | {:.0} ms | p95 {:.0} ms | p95 <= 2000 ms |",
        percentile(&bursts, 0.5),
        percentile(&bursts, 0.95)
    );
    println!(
        "| baseline: KEDA's default 30 s pollingInterval, activation alone | 15000 ms (mean) | 30000 ms | |"
    );
    println!("| baseline: the seed team's queue -> serving pod with KEDA polling | 10500 ms | | |");
    println!(
        "| ratio: seed 10.5 s / our single p50 | {:.0}x | | |",
        10_500.0 / percentile(&handled, 0.5).max(1.0)
    );
    let keda =
        |what: &str| format!("KEDA pollingInterval 30 s alone, {what} (configured, not measured)");
    let rows = [
        Row::new(
            "coldstart",
            format!("single: publish -> handled from zero, p50 ({probes} probes)"),
            percentile(&handled, 0.5),
            "ms",
            Better::Lower,
        )
        .baseline(keda("mean"), 15_000.0),
        Row::new(
            "coldstart",
            format!("single: publish -> handled from zero, p99 ({probes} probes)"),
            percentile(&handled, 0.99),
            "ms",
            Better::Lower,
        )
        .baseline(keda("worst case"), 30_000.0)
        .target("p99 <= 500 ms"),
        Row::new(
            "coldstart",
            format!("burst: {functions} functions at zero, one event each, p95"),
            percentile(&bursts, 0.95),
            "ms",
            Better::Lower,
        )
        .baseline(keda("worst case"), 30_000.0)
        .target("p95 <= 2000 ms"),
    ];
    for row in rows {
        row.emit().expect("bench rows");
    }
}
