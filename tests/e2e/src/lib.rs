//! # safecity-e2e
//!
//! End-to-end tests and benchmarks of the city (`tests/`, `benches/`): the
//! Kubernetes manifests checked against the code that reads them, and the
//! components as real processes on a real broker, scaled from zero by the
//! local autoscaler through the real scaler.
//!
//! This library is their shared harness: [`MiniCity`] is a throw-away
//! virtual host with the scaler running in-process and the local autoscaler
//! driving real function processes; [`build_binaries`] builds the
//! workspace's binaries the tests start (a no-op when `cargo test
//! --workspace` built them already). The binary `probe-function` is a
//! function whose name and event type come from its environment, so one
//! binary plays any number of functions.

pub mod kube_fake;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safecity_cli::city::autoscaler::{self, FunctionStatus, ReplicaSpec, Statuses};
use safecity_cli::city::hpa::Behavior;
use safecity_cli::city::process::Spec;
use safecity_cli::city::scaled_object::{ScaledObject, Trigger};
use safecity_events::topology::{self, FunctionQueues, QueueType};
use safecity_events::{EventType, Subscription};
use safecity_runtime::testing::TestVhost;
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use safecity_scaler::{RunningScaler, ScalerConfig};
use tokio_util::sync::CancellationToken;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the workspace binaries the end-to-end tests start, in the profile
/// of the running test, and returns their folder (`target/debug`).
pub fn build_binaries() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .current_dir(root())
                .args([
                    "build",
                    "--quiet",
                    "--bins",
                    "-p",
                    "safecity-cli",
                    "-p",
                    "safecity-scaler",
                    "-p",
                    "safecity-motion-gate",
                    "-p",
                    "safecity-cctv-sim",
                    "-p",
                    "safecity-detector",
                    "-p",
                    "safecity-map-pin",
                    "-p",
                    "safecity-fire-post",
                    "-p",
                    "safecity-caption",
                    "-p",
                    "safecity-e2e",
                ])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the city's binaries failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root().join("target"));
            target.join("debug")
        })
        .clone()
}

/// The broker's management API (`SAFECITY_TEST_MANAGEMENT_URL`, default
/// `http://guest:guest@127.0.0.1:15672`).
pub fn management_url() -> String {
    std::env::var("SAFECITY_TEST_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".to_owned())
}

/// A ScaledObject for the probe function `name` on `event_type`, as KEDA
/// would get it from a manifest.
pub fn probe_object(
    name: &str,
    event_type: EventType,
    polling: Duration,
    cooldown: Duration,
    max_replicas: u32,
) -> ScaledObject {
    ScaledObject {
        name: name.to_owned(),
        namespace: "safecity".to_owned(),
        target: name.to_owned(),
        polling_interval: polling,
        cooldown,
        min_replicas: 0,
        max_replicas,
        fallback: None,
        behavior: Behavior::default(),
        triggers: vec![Trigger {
            kind: "external-push".to_owned(),
            metadata: HashMap::from([
                ("scalerAddress".to_owned(), "in-process".to_owned()),
                ("eventType".to_owned(), event_type.as_str().to_owned()),
                ("targetPendingPerReplica".to_owned(), "10".to_owned()),
            ]),
        }],
    }
}

/// A broker vhost with the scaler in-process and an autoscaler beside it.
#[derive(Debug)]
pub struct MiniCity {
    /// The vhost (deleted on drop).
    pub vhost: TestVhost,
    /// The running scaler.
    pub scaler: Option<RunningScaler>,
    /// What the autoscaler knows of each function.
    pub statuses: Statuses,
    /// Function logs.
    pub logs: PathBuf,
    client: ExternalScalerClient<tonic::transport::Channel>,
    cancel: CancellationToken,
    controllers: Vec<tokio::task::JoinHandle<()>>,
}

impl MiniCity {
    /// A fresh vhost named after `test` and a scaler on ephemeral ports
    /// (depth every 200 ms, management every 500 ms).
    pub async fn start(test: &str) -> Self {
        let vhost = TestVhost::new(test);
        let vars: HashMap<&str, String> = HashMap::from([
            ("SAFECITY_AMQP_URL", vhost.url.clone()),
            ("SAFECITY_SCALER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("SAFECITY_SCALER_METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("SAFECITY_SCALER_DEPTH_INTERVAL", "200ms".to_owned()),
            ("SAFECITY_SCALER_MANAGEMENT_INTERVAL", "500ms".to_owned()),
            ("SAFECITY_SCALER_ACTIVE_RESEND", "1s".to_owned()),
        ]);
        let config = ScalerConfig::from_lookup(|name| vars.get(name).cloned()).expect("config");
        let cancel = CancellationToken::new();
        let scaler = safecity_scaler::start(config, cancel.child_token())
            .await
            .expect("the scaler starts");
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", scaler.grpc_addr))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("gRPC connects");
        let logs = std::env::temp_dir().join(format!("{}-logs", vhost.name));
        std::fs::create_dir_all(&logs).expect("log folder");
        MiniCity {
            client: ExternalScalerClient::new(channel),
            vhost,
            scaler: Some(scaler),
            statuses: Arc::new(Mutex::new(BTreeMap::new())),
            logs,
            cancel,
            controllers: Vec::new(),
        }
    }

    /// Declares a function's topology (as `safecity up` does before anything
    /// runs, so no event is unroutable while it is at zero).
    pub async fn declare(&self, function: &str, subscriptions: &[Subscription]) {
        let client = self.vhost.client().await;
        topology::declare_function(
            &client.channel,
            &FunctionQueues::new(function).expect("name"),
            subscriptions,
            QueueType::Quorum,
            &[
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
        )
        .await
        .expect("topology");
    }

    /// Scales `so`'s Deployment with replicas built by `spec`.
    pub fn scale(&mut self, so: ScaledObject, spec: ReplicaSpec) {
        self.controllers.push(tokio::spawn(autoscaler::control(
            so,
            spec,
            self.client.clone(),
            self.logs.clone(),
            self.statuses.clone(),
            self.cancel.clone(),
        )));
    }

    /// Replicas of the probe function `name` on `event_type`, each settling
    /// an event after `handle` (binary: `probe`, e.g. `env!("CARGO_BIN_EXE_probe-function")`).
    pub fn probe_spec(
        &self,
        probe: &Path,
        name: &str,
        event_type: EventType,
        handle: Duration,
        extra: &[(&str, &str)],
    ) -> ReplicaSpec {
        let probe = probe.to_owned();
        let name = name.to_owned();
        let url = self.vhost.url.clone();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Arc::new(move |index, port| {
            let mut env: BTreeMap<String, String> = BTreeMap::from([
                ("PROBE_NAME".to_owned(), name.clone()),
                (
                    "PROBE_EVENT_TYPE".to_owned(),
                    event_type.as_str().to_owned(),
                ),
                ("PROBE_HANDLE_MS".to_owned(), handle.as_millis().to_string()),
                ("SAFECITY_AMQP_URL".to_owned(), url.clone()),
                ("SAFECITY_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ]);
            env.extend(extra.iter().cloned());
            Spec {
                name: format!("{name}-{index}"),
                program: probe.clone(),
                args: Vec::new(),
                env,
                ops_url: Some(format!("http://127.0.0.1:{port}")),
            }
        })
    }

    /// Replicas of the workspace binary `program` for the function `name`:
    /// this vhost's broker, fast retries, ops on the replica's port, plus `env`.
    pub fn binary_spec(&self, program: &Path, name: &str, env: &[(&str, String)]) -> ReplicaSpec {
        let program = program.to_owned();
        let name = name.to_owned();
        let url = self.vhost.url.clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Arc::new(move |index, port| {
            let mut vars: BTreeMap<String, String> = BTreeMap::from([
                ("SAFECITY_AMQP_URL".to_owned(), url.clone()),
                ("SAFECITY_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
                (
                    "SAFECITY_RETRY_DELAYS".to_owned(),
                    "200ms,400ms,800ms".to_owned(),
                ),
                (
                    "SAFECITY_RECONNECT_MAX_DELAY".to_owned(),
                    "500ms".to_owned(),
                ),
                ("SAFECITY_SHUTDOWN_GRACE".to_owned(), "10s".to_owned()),
            ]);
            vars.extend(env.iter().cloned());
            Spec {
                name: format!("{name}-{index}"),
                program: program.clone(),
                args: Vec::new(),
                env: vars,
                ops_url: Some(format!("http://127.0.0.1:{port}")),
            }
        })
    }

    /// Closes every broker connection of this vhost except those named
    /// `keep` (the test's own publisher), through the management API, as an
    /// operator or a broker restart would; returns how many were closed.
    pub async fn close_connections_except(&self, keep: &str) -> usize {
        let base = management_url();
        let http = reqwest::Client::new();
        let vhost = self.vhost.name.replace('/', "%2F");
        let Ok(response) = http
            .get(format!("{base}/api/vhosts/{vhost}/connections"))
            .send()
            .await
        else {
            return 0;
        };
        let connections: Vec<serde_json::Value> = response.json().await.unwrap_or_default();
        let mut closed = 0;
        for connection in connections {
            let name = connection["name"].as_str().unwrap_or_default();
            let client_name = connection["client_properties"]["connection_name"]
                .as_str()
                .unwrap_or_default();
            if client_name == keep || name.is_empty() {
                continue;
            }
            let encoded: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            if http
                .delete(format!("{base}/api/connections/{encoded}"))
                .header("X-Reason", "closed by the fault run")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                closed += 1;
            }
        }
        closed
    }

    /// Sends `signal` to the `pick`-th (modulo) running replica of
    /// `scaled_object`; returns its process id, `None` when none runs.
    pub fn signal_replica(
        &self,
        scaled_object: &str,
        pick: usize,
        signal: nix::sys::signal::Signal,
    ) -> Option<u32> {
        let pids = self.status(scaled_object).replica_pids;
        let pid = *pids.get(pick % pids.len().max(1))?;
        let raw = i32::try_from(pid).ok()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal).ok()?;
        Some(pid)
    }

    /// Waits until the scaler has `streams` StreamIsActive streams open (its
    /// `safecity_scaler_open_streams`): the ScaledObjects are registered, as
    /// they are on a cluster long before the first event.
    pub async fn wait_for_streams(&self, streams: usize) {
        let addr = self.scaler.as_ref().expect("running").metrics_addr;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .ok()
                .map(reqwest::Response::text);
            let open = match text {
                Some(text) => text.await.unwrap_or_default(),
                None => String::new(),
            }
            .lines()
            .find_map(|line| line.strip_prefix("safecity_scaler_open_streams "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
            if open >= streams as f64 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{streams} streams did not open ({open})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The autoscaler's view of `scaled_object`.
    pub fn status(&self, scaled_object: &str) -> FunctionStatus {
        self.statuses
            .lock()
            .expect("statuses")
            .get(scaled_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops the controllers (every function scaled to zero, drained) and the scaler.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for controller in self.controllers.drain(..) {
            let _ = controller.await;
        }
        if let Some(scaler) = self.scaler.take() {
            let _ = scaler.wait().await;
        }
    }
}
