//! `safecity coldstart <function>`: cold starts measured the way the seed
//! team wanted, against the running local city (`safecity up`): publish a
//! probe to a function at zero replicas and report each stage — published →
//! activation pushed by the scaler → autoscaler decision → process spawned
//! → `/readyz` → event handled → back at zero after the cooldown — with
//! p50/p99 over the probes, next to KEDA's default 30 s polling and the seed
//! team's measured 10.5 s from queue to serving pod.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use lapin::{Connection, ConnectionProperties};
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, Frame, FrameSize, Publisher, SafetyEvent,
    TraceParent,
};
use tokio::time::Instant;

use crate::city::autoscaler::epoch_ms;
use crate::city::control::{ColdStartReport, FunctionReport, discover};

/// Options of `safecity coldstart`.
#[derive(Debug, Clone, Args)]
pub struct ColdstartArgs {
    /// The function (Deployment or ScaledObject name), e.g. `map-pin`.
    pub function: String,
    /// With --kube: the pods' ops port (their `/metrics`, read through the
    /// API server's pod proxy to see the probe handled).
    #[arg(long, default_value_t = 9090)]
    pub ops_port: u16,
    /// How many probes.
    #[arg(long, default_value_t = 5)]
    pub probes: usize,
    /// Measure on the Kubernetes cluster of the current kubeconfig instead
    /// of the local city.
    #[arg(long)]
    pub kube: bool,
    /// The namespace (with --kube).
    #[arg(long, default_value = "safecity")]
    pub namespace: String,
    /// The longest wait for one probe (zero replicas, then handled).
    #[arg(long, default_value = "300s", value_parser = safecity_shell::env::parse_duration)]
    pub timeout: Duration,
    /// An image the detector can read (probing the detector).
    #[arg(long, default_value = "target/yolo-assets/bus.jpg")]
    pub frame: std::path::PathBuf,
}

/// One probe's stages, milliseconds after the publish.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Probe {
    /// The scaler pushed activation (or a poll found it).
    pub activated: f64,
    /// The autoscaler decided 0 -> N.
    pub decided: f64,
    /// The process (pod) was spawned (scheduled).
    pub spawned: f64,
    /// It was ready.
    pub ready: f64,
    /// The probe was handled.
    pub handled: f64,
    /// The function was back at zero.
    pub back_at_zero: f64,
}

/// The named stages of a probe, in order.
pub const STAGES: [&str; 6] = [
    "activation pushed",
    "autoscaler decision",
    "process spawned",
    "ready (/readyz)",
    "event handled",
    "back at zero",
];

impl Probe {
    /// The stages' values, in [`STAGES`] order.
    pub fn values(&self) -> [f64; 6] {
        [
            self.activated,
            self.decided,
            self.spawned,
            self.ready,
            self.handled,
            self.back_at_zero,
        ]
    }
}

/// The `q` quantile (nearest rank) of `values`.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The table of probes with p50/p99, and the comparison: one row per stage
/// (`stages`), one column per probe (`probes[i][stage]`, ms after the
/// publish). The stage named `event handled` is the cold start compared.
pub fn render_table(function: &str, where_: &str, stages: &[&str], probes: &[Vec<f64>]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== cold starts of `{function}` ({where_}), ms after the publish, {} probe(s)",
        probes.len()
    );
    let width = stages.iter().map(|s| s.len()).max().unwrap_or(0) + 2;
    let header: String = (1..=probes.len())
        .map(|i| format!("#{i}"))
        .chain(["p50".to_owned(), "p99".to_owned()])
        .map(|h| format!("{h:>10}"))
        .collect();
    let _ = writeln!(out, "    {:<width$}{header}", "stage");
    for (index, stage) in stages.iter().enumerate() {
        let values: Vec<f64> = probes
            .iter()
            .map(|p| p.get(index).copied().unwrap_or(f64::NAN))
            .collect();
        let cells: String = values.iter().map(|v| format!("{v:>10.0}")).collect();
        let _ = writeln!(
            out,
            "    {stage:<width$}{cells}{:>10.0}{:>10.0}",
            percentile(&values, 0.5),
            percentile(&values, 0.99)
        );
    }
    let Some(handled_index) = stages.iter().position(|s| s.starts_with("event handled")) else {
        return out;
    };
    let handled: Vec<f64> = probes
        .iter()
        .filter_map(|p| p.get(handled_index).copied())
        .collect();
    let p50 = percentile(&handled, 0.5);
    let p99 = percentile(&handled, 0.99);
    let _ = writeln!(
        out,
        "\n    publish -> handled: p50 {p50:.0} ms, p99 {p99:.0} ms"
    );
    let _ = writeln!(
        out,
        "    KEDA's default 30 s pollingInterval: activation alone waits up to 30 000 ms (15 000 ms on average): {:.1}x our p99",
        30_000.0 / p99.max(1.0)
    );
    let _ = writeln!(
        out,
        "    the seed team's measured queue -> serving pod with KEDA polling: 10 500 ms: {:.1}x our p50",
        10_500.0 / p50.max(1.0)
    );
    out
}

fn probe_event(event_type: EventType) -> SafetyEvent {
    SafetyEvent {
        event_type,
        incident_id: format!("coldstart-probe-{}", uuid::Uuid::now_v7()),
        camera: Camera {
            id: "coldstart-probe".to_owned(),
            region: "seoul".to_owned(),
            latitude: 37.5665,
            longitude: 126.978,
        },
        detections: vec![Detection {
            class: format!("{event_type} (coldstart probe)"),
            confidence: 0.9,
            bounding_box: BoundingBox {
                x: 10.0,
                y: 10.0,
                width: 50.0,
                height: 50.0,
            },
        }],
        captured_at: chrono::Utc::now(),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: None,
        frame_age: None,
    }
}

/// Publishes a probe for `function`: an event of its type, or a frame for the detector.
pub async fn publish_probe(
    publisher: &Publisher,
    function: &str,
    frame: &std::path::Path,
) -> anyhow::Result<()> {
    let event_type = match function {
        "detector" => {
            let jpeg =
                std::fs::read(frame).with_context(|| format!("reading {}", frame.display()))?;
            let probe = Frame {
                camera: Camera {
                    id: "coldstart-probe".to_owned(),
                    region: "seoul".to_owned(),
                    latitude: 37.5665,
                    longitude: 126.978,
                },
                captured_at: chrono::Utc::now(),
                sequence: 0,
                jpeg,
            };
            publisher.publish_frame(&probe).await?;
            return Ok(());
        }
        "map-pin" => EventType::Accident,
        "fire-post" => EventType::Fire,
        "caption" => EventType::Gun,
        other => bail!("no probe for `{other}`: use detector, map-pin, fire-post or caption"),
    };
    let event = probe_event(event_type)
        .into_cloud_event()
        .with_traceparent(TraceParent::new_root());
    publisher.publish_event(&event).await?;
    Ok(())
}

async fn status(
    http: &reqwest::Client,
    control: &str,
    function: &str,
) -> anyhow::Result<FunctionReport> {
    let reports: Vec<FunctionReport> = http
        .get(format!("{control}/api/status"))
        .send()
        .await
        .context("the local city's control API")?
        .json()
        .await?;
    reports
        .into_iter()
        .find(|r| r.status.deployment == function || r.status.scaled_object == function)
        .with_context(|| format!("the local city does not scale `{function}`"))
}

fn relative(record: &ColdStartReport, published: u64) -> Probe {
    let after = |at: u64| at.saturating_sub(published) as f64;
    Probe {
        activated: after(record.activated),
        decided: after(record.decided),
        spawned: after(record.spawned),
        ready: record.ready.map_or(f64::NAN, after),
        handled: record.handled.map_or(f64::NAN, after),
        back_at_zero: record.back_at_zero.map_or(f64::NAN, after),
    }
}

/// Runs the probes against the local city.
pub async fn run(args: ColdstartArgs, amqp_url: &str) -> anyhow::Result<()> {
    if args.kube {
        let client = crate::kube::client().await?;
        let report = crate::kube::coldstart::measure(&client, &args, amqp_url).await?;
        print!("{report}");
        return Ok(());
    }
    let city = discover()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let connection = Connection::connect(&city.amqp_url, ConnectionProperties::default()).await?;
    let publisher = Publisher::open(&connection).await?;
    let mut probes = Vec::new();
    for n in 1..=args.probes {
        let deadline = Instant::now() + args.timeout;
        let mut waiting = false;
        loop {
            let report = status(&http, &city.control, &args.function).await?;
            if report.status.replicas == 0 && report.queued == 0 {
                break;
            }
            if !waiting {
                println!(
                    "probe {n}: waiting for `{}` to be at zero replicas (its cooldown)",
                    args.function
                );
                waiting = true;
            }
            if Instant::now() > deadline {
                bail!(
                    "`{}` did not go back to zero within {} s",
                    args.function,
                    args.timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let before = status(&http, &city.control, &args.function)
            .await?
            .status
            .cold_starts
            .len();
        let published = epoch_ms();
        publish_probe(&publisher, &args.function, &args.frame).await?;
        let record = loop {
            let report = status(&http, &city.control, &args.function).await?;
            if report.status.cold_starts.len() > before
                && let Some(last) = report.status.cold_starts.last()
                && last.handled.is_some()
            {
                break last.clone();
            }
            if Instant::now() > deadline {
                bail!(
                    "probe {n} was not handled within {} s",
                    args.timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut probe = relative(&record, published);
        println!(
            "probe {n}: pushed +{:.0} ms, ready +{:.0} ms, handled +{:.0} ms; waiting for the cooldown",
            probe.activated, probe.ready, probe.handled
        );
        // Back at zero: the cooldown, then the drain.
        let back = loop {
            let report = status(&http, &city.control, &args.function).await?;
            if let Some(last) = report.status.cold_starts.get(before)
                && let Some(at) = last.back_at_zero
            {
                break at;
            }
            if Instant::now() > deadline {
                break 0;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        probe.back_at_zero = if back == 0 {
            f64::NAN
        } else {
            back.saturating_sub(published) as f64
        };
        probes.push(probe);
    }
    let _ = connection.close(200, "coldstart done".into()).await;
    let rows: Vec<Vec<f64>> = probes.iter().map(|p| p.values().to_vec()).collect();
    print!(
        "{}",
        render_table(&args.function, "the local city", &STAGES, &rows)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.99), 5.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
