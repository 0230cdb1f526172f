//! The local city's control API, on loopback: what `safecity status` and
//! `safecity coldstart` ask a running `safecity up`. Its address is written
//! to a discovery file in the temporary folder while the city runs.
//!
//! - `GET /api/status`: every function as the autoscaler and the broker see it;
//! - `GET /api/scrape-targets`: Prometheus HTTP service discovery for every
//!   component and running replica (`http_sd_configs`);
//! - `GET /metrics`: kube-state-metrics' Deployment replica series for the
//!   local processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::autoscaler::{FunctionStatus, Statuses};
use super::observe::Observer;

/// How other commands find a running local city.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// The control API, `http://127.0.0.1:<port>`.
    pub control: String,
    /// The city's AMQP URL.
    pub amqp_url: String,
    /// The city's folder (logs).
    pub work: String,
    /// The `safecity up` process.
    pub pid: u32,
}

/// The discovery file: `SAFECITY_CITY_FILE`, or `safecity-city.json` in
/// the temporary folder.
pub fn discovery_file() -> PathBuf {
    std::env::var_os("SAFECITY_CITY_FILE").map_or_else(
        || std::env::temp_dir().join("safecity-city.json"),
        PathBuf::from,
    )
}

/// Reads the discovery file of a running city.
pub fn discover() -> anyhow::Result<Discovery> {
    let path = discovery_file();
    let text = std::fs::read_to_string(&path).map_err(|_| {
        anyhow::anyhow!(
            "no local city is running ({} is missing): start one with `scripts/up.sh`",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// One function, as `GET /api/status` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionReport {
    /// The autoscaler's view.
    #[serde(flatten)]
    pub status: FunctionStatusReport,
    /// Messages ready or in flight in its queue (broker).
    pub queued: u64,
    /// Messages in its dead-letter queue.
    pub dead_letters: u64,
}

/// The serialisable part of [`FunctionStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionStatusReport {
    /// The ScaledObject.
    pub scaled_object: String,
    /// The Deployment.
    pub deployment: String,
    /// Replicas running.
    pub replicas: u32,
    /// Replicas ready.
    pub ready: u32,
    /// Replicas wanted.
    pub desired: u32,
    /// The scaler's `IsActive`.
    pub active: bool,
    /// The scaler's metric value.
    pub metric: f64,
    /// Activations from zero.
    pub activations: u64,
    /// Cold starts, oldest first.
    pub cold_starts: Vec<ColdStartReport>,
}

/// A cold start's stages, ms since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdStartReport {
    /// Activation (push or poll).
    pub activated: u64,
    /// Whether a push activated it.
    pub pushed: bool,
    /// The autoscaler's decision.
    pub decided: u64,
    /// Process spawned.
    pub spawned: u64,
    /// `/readyz` 200.
    pub ready: Option<u64>,
    /// First input settled.
    pub handled: Option<u64>,
    /// Back at zero replicas.
    pub back_at_zero: Option<u64>,
}

fn report(status: &FunctionStatus) -> FunctionStatusReport {
    FunctionStatusReport {
        scaled_object: status.scaled_object.clone(),
        deployment: status.deployment.clone(),
        replicas: status.replicas,
        ready: status.ready,
        desired: status.desired,
        active: status.active,
        metric: status.metric,
        activations: status.activations,
        cold_starts: status
            .cold_starts
            .iter()
            .map(|c| ColdStartReport {
                activated: c.activated,
                pushed: c.pushed,
                decided: c.decided,
                spawned: c.spawned,
                ready: c.ready,
                handled: c.handled,
                back_at_zero: c.back_at_zero,
            })
            .collect(),
    }
}

#[derive(Clone)]
struct ControlState {
    statuses: Statuses,
    observer: Observer,
    fixed_targets: Arc<Vec<ScrapeTarget>>,
}

/// One Prometheus HTTP service-discovery group (`http_sd_configs`): the local
/// city's stand-in for the pods a PodMonitor finds on a cluster, with the
/// same `namespace`, `pod` and `job` labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeTarget {
    /// `host:port`.
    pub targets: Vec<String>,
    /// Target labels (`__metrics_path__` included).
    pub labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    /// A target from its `/metrics` URL, as pod `pod` of component `job`.
    pub fn new(job: &str, pod: &str, metrics_url: &str) -> Option<Self> {
        let url = reqwest::Url::parse(metrics_url).ok()?;
        let address = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        let labels = BTreeMap::from([
            ("__metrics_path__".to_owned(), url.path().to_owned()),
            ("job".to_owned(), job.to_owned()),
            ("namespace".to_owned(), NAMESPACE.to_owned()),
            ("pod".to_owned(), pod.to_owned()),
        ]);
        Some(ScrapeTarget {
            targets: vec![address],
            labels,
        })
    }
}

/// The namespace the local city's targets and replica series are labelled with.
pub const NAMESPACE: &str = "safecity";

/// The fixed components and every running replica, for Prometheus.
async fn scrape_targets(State(state): State<ControlState>) -> axum::Json<Vec<ScrapeTarget>> {
    let statuses = state.statuses.lock().expect("statuses").clone();
    let mut targets = state.fixed_targets.as_ref().clone();
    for status in statuses.values() {
        for (index, url) in status.replica_urls.iter().enumerate() {
            let pod = format!(
                "{}-{}",
                status.deployment,
                status.replica_pids.get(index).copied().unwrap_or_default()
            );
            targets.extend(ScrapeTarget::new(
                &status.deployment,
                &pod,
                &format!("{url}/metrics"),
            ));
        }
    }
    axum::Json(targets)
}

/// One Deployment's replica counts, as kube-state-metrics reports them.
struct DeploymentReplicas {
    name: String,
    desired: u32,
    running: u32,
    ready: u32,
}

/// The series kube-state-metrics exports for a Deployment, for the local
/// processes, so that the dashboard's and the alerts' replica queries work
/// unchanged against the local city.
async fn metrics(State(state): State<ControlState>) -> String {
    let statuses = state.statuses.lock().expect("statuses").clone();
    let mut deployments: Vec<DeploymentReplicas> = statuses
        .values()
        .map(|s| DeploymentReplicas {
            name: s.deployment.clone(),
            desired: s.desired,
            running: s.replicas,
            ready: s.ready,
        })
        .collect();
    // The always-on gates: one per region, ready while their metrics answer.
    let snapshot = state.observer.snapshot();
    for region in super::plan::REGIONS {
        let up = u32::from(
            snapshot
                .gates
                .get(region)
                .is_some_and(|page| !page.is_empty()),
        );
        deployments.push(DeploymentReplicas {
            name: format!("motion-gate-{region}"),
            desired: 1,
            running: up,
            ready: up,
        });
    }
    let mut text = String::new();
    type Family = (&'static str, &'static str, fn(&DeploymentReplicas) -> u32);
    let families: [Family; 3] = [
        (
            "kube_deployment_spec_replicas",
            "Desired replicas (the local autoscaler's decision).",
            |d| d.desired,
        ),
        (
            "kube_deployment_status_replicas",
            "Replica processes running.",
            |d| d.running,
        ),
        (
            "kube_deployment_status_replicas_ready",
            "Replica processes whose /readyz answered.",
            |d| d.ready,
        ),
    ];
    for (name, help, value) in families {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for deployment in &deployments {
            text.push_str(&format!(
                "{name}{{namespace=\"{NAMESPACE}\",deployment=\"{}\"}} {}\n",
                deployment.name,
                value(deployment)
            ));
        }
    }
    text
}

async fn status(State(state): State<ControlState>) -> axum::Json<Vec<FunctionReport>> {
    let snapshot = state.observer.snapshot();
    let dead = snapshot.dead_letters();
    let statuses = state.statuses.lock().expect("statuses").clone();
    axum::Json(
        statuses
            .values()
            .map(|s| FunctionReport {
                queued: snapshot.pending(&s.deployment),
                dead_letters: dead.get(&s.deployment).copied().unwrap_or(0),
                status: report(s),
            })
            .collect(),
    )
}

/// Serves the control API on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    statuses: Statuses,
    observer: Observer,
    fixed_targets: Vec<ScrapeTarget>,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/api/status", get(status))
        .route("/api/scrape-targets", get(scrape_targets))
        .route("/metrics", get(metrics))
        .with_state(ControlState {
            statuses,
            observer,
            fixed_targets: Arc::new(fixed_targets),
        });
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
}
