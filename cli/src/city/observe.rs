//! What the local city shows: every second the observer reads the gates',
//! the scaler's and every function replica's `/metrics`, the broker's queue
//! list, the map's incidents and the outbox's posts, and keeps a snapshot
//! for the live view, the summary and `safecity status`.
//!
//! Function replicas come and go (scale to zero): the last page read from
//! each replica is kept after it stopped, so counts add up over the run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::autoscaler::{FunctionStatus, Statuses};
use super::plan::{Plan, REGIONS};
use super::prometheus::{Page, merge, quantile};

/// One row of the pipeline table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage {
    /// The stage.
    pub name: &'static str,
    /// What it counted.
    pub count: f64,
    /// What the latency columns measure.
    pub latency: &'static str,
    /// Median, seconds.
    pub p50: Option<f64>,
    /// 99th percentile, seconds.
    pub p99: Option<f64>,
}

/// A broker queue's counts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QueueCounts {
    /// The queue.
    pub name: String,
    /// Ready messages.
    #[serde(default)]
    pub messages_ready: u64,
    /// Delivered, unacked.
    #[serde(default)]
    pub messages_unacknowledged: u64,
}

/// Everything read in one round.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The gates' pages, by region.
    pub gates: BTreeMap<String, Page>,
    /// Every page ever read of each function (replicas merged), by Deployment.
    pub functions: BTreeMap<String, Page>,
    /// The scaler's page.
    pub scaler: Page,
    /// The functions' status from the autoscaler.
    pub status: BTreeMap<String, FunctionStatus>,
    /// The city's queues.
    pub queues: Vec<QueueCounts>,
    /// The map's incidents (GeoJSON features' properties).
    pub incidents: Vec<serde_json::Value>,
    /// The outbox's posts.
    pub posts: Vec<serde_json::Value>,
}

impl Snapshot {
    /// The pipeline, stage by stage.
    pub fn stages(&self) -> Vec<Stage> {
        let gates = |name: &str| -> f64 {
            self.gates
                .values()
                .fold(0.0, |total, p| total + p.sum(name, &[]))
        };
        let mut motion = Vec::new();
        for page in self.gates.values() {
            merge_buckets(
                &mut motion,
                &page.buckets("safecity_gate_frame_seconds", &[("stage", "motion")]),
            );
        }
        let detector = self.functions.get("detector").cloned().unwrap_or_default();
        let frame_age = detector.buckets("safecity_event_age_seconds", &[("event_type", "frames")]);
        let alerts = detector.sum("safecity_detector_alerts_total", &[]);
        let mut age = Vec::new();
        let mut duration = Vec::new();
        let mut handled = 0.0;
        for (name, page) in &self.functions {
            if name == "detector" {
                continue;
            }
            merge_buckets(&mut age, &page.buckets("safecity_event_age_seconds", &[]));
            merge_buckets(
                &mut duration,
                &page.buckets("safecity_handle_duration_seconds", &[]),
            );
            handled += page.sum("safecity_events_succeeded_total", &[]);
        }
        let effects = self.incidents.len() + self.posts.len();
        vec![
            Stage {
                name: "camera",
                count: gates("safecity_gate_frames_read_total"),
                latency: "",
                ..Stage::default()
            },
            Stage {
                name: "gate",
                count: gates("safecity_gate_frames_forwarded_total"),
                latency: "motion analysis per frame",
                p50: quantile(&motion, 0.5),
                p99: quantile(&motion, 0.99),
            },
            Stage {
                name: "detector",
                count: detector.sum(
                    "safecity_events_succeeded_total",
                    &[("event_type", "frames")],
                ),
                latency: "capture -> detector",
                p50: quantile(&frame_age, 0.5),
                p99: quantile(&frame_age, 0.99),
            },
            Stage {
                name: "event",
                count: alerts,
                latency: "",
                ..Stage::default()
            },
            Stage {
                name: "function",
                count: handled,
                latency: "event -> function",
                p50: quantile(&age, 0.5),
                p99: quantile(&age, 0.99),
            },
            Stage {
                name: "effect",
                count: effects as f64,
                latency: "handling (pin, post)",
                p50: quantile(&duration, 0.5),
                p99: quantile(&duration, 0.99),
            },
        ]
    }

    /// Messages in the dead-letter queues, by function.
    pub fn dead_letters(&self) -> BTreeMap<String, u64> {
        self.queues
            .iter()
            .filter_map(|q| {
                let function = q.name.strip_prefix("safecity.fn.")?.strip_suffix(".dead")?;
                Some((
                    function.to_owned(),
                    q.messages_ready + q.messages_unacknowledged,
                ))
            })
            .collect()
    }

    /// Messages waiting or in flight in the functions' work queues.
    pub fn pending(&self, function: &str) -> u64 {
        let name = format!("safecity.fn.{function}");
        self.queues
            .iter()
            .filter(|q| q.name == name)
            .map(|q| q.messages_ready + q.messages_unacknowledged)
            .sum()
    }
}

fn merge_buckets(total: &mut Vec<(f64, f64)>, more: &[(f64, f64)]) {
    for &(le, count) in more {
        match total.iter_mut().find(|(l, _)| l.to_bits() == le.to_bits()) {
            Some(entry) => entry.1 += count,
            None => total.push((le, count)),
        }
    }
    total.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// Reads the city every second into a shared snapshot.
#[derive(Debug, Clone)]
pub struct Observer {
    plan: Plan,
    statuses: Statuses,
    http: reqwest::Client,
    /// The last page of every replica ever seen, by replica URL, with its Deployment.
    replica_pages: Arc<Mutex<BTreeMap<String, (String, Page)>>>,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Observer {
    /// An observer of the city of `plan`.
    pub fn new(plan: Plan, statuses: Statuses) -> Self {
        Observer {
            plan,
            statuses,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            replica_pages: Arc::default(),
            snapshot: Arc::default(),
        }
    }

    /// The last snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().expect("snapshot").clone()
    }

    async fn text(&self, url: &str) -> Option<String> {
        self.http.get(url).send().await.ok()?.text().await.ok()
    }

    async fn page(&self, base: &str) -> Page {
        self.text(&format!("{base}/metrics"))
            .await
            .map(|t| Page::parse(&t))
            .unwrap_or_default()
    }

    /// Reads everything once and stores the snapshot.
    pub async fn refresh(&self) -> Snapshot {
        let status = self.statuses.lock().expect("statuses").clone();
        for function in status.values() {
            for url in &function.replica_urls {
                if let Some(text) = self.text(&format!("{url}/metrics")).await {
                    self.replica_pages.lock().expect("pages").insert(
                        url.clone(),
                        (function.deployment.clone(), Page::parse(&text)),
                    );
                }
            }
        }
        let mut functions: BTreeMap<String, Page> = BTreeMap::new();
        for (deployment, page) in self.replica_pages.lock().expect("pages").values() {
            merge(
                functions.entry(deployment.clone()).or_default(),
                page.clone(),
            );
        }
        let mut gates = BTreeMap::new();
        for region in REGIONS {
            gates.insert(
                region.to_owned(),
                self.page(&Plan::local(self.plan.gate_port(region))).await,
            );
        }
        let queues = self
            .http
            .get(format!(
                "{}/api/queues/{}?columns=name,messages_ready,messages_unacknowledged",
                self.plan.management.trim_end_matches('/'),
                urlencode(&self.plan.vhost)
            ))
            .send()
            .await
            .ok();
        let queues = match queues {
            Some(response) => response
                .json::<Vec<QueueCounts>>()
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let incidents = self
            .text(&format!(
                "{}/api/incidents",
                Plan::local(self.plan.ports.map)
            ))
            .await
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["features"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f["properties"].clone())
            .collect();
        let posts = self
            .text(&format!("{}/posts", Plan::local(self.plan.ports.outbox)))
            .await
            .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
            .unwrap_or_default();
        let snapshot = Snapshot {
            gates,
            functions,
            scaler: self.page(&Plan::local(self.plan.ports.scaler_ops)).await,
            status,
            queues,
            incidents,
            posts,
        };
        *self.snapshot.lock().expect("snapshot") = snapshot.clone();
        snapshot
    }

    /// Refreshes every `period` until `cancel`.
    pub async fn run(self, period: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => { self.refresh().await; }
            }
        }
    }
}

/// Percent-encodes a vhost for the management API's paths.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
