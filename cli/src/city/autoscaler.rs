//! The local autoscaler: drives the city's functions exactly as KEDA and the
//! HPA drive Deployments, through the scaler's gRPC API only.
//!
//! For each ScaledObject a controller holds one `StreamIsActive` stream and
//! starts a replica from zero the moment the scaler pushes `true`; polls
//! `IsActive` and `GetMetrics` every `pollingInterval`; sizes the replicas
//! with the HPA rule ([`super::hpa`]) between `minReplicaCount` and
//! `maxReplicaCount`; runs `fallback.replicas` after `failureThreshold`
//! failed polls; and goes back to zero after `cooldownPeriod` without
//! activity. Replicas are OS processes of the function binaries; scale-in is
//! SIGTERM (the runtime drains), and a replica that dies is started again,
//! as a Deployment would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use safecity_scaler::pb::{GetMetricsRequest, ScaledObjectRef};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};

use super::hpa::{self, Hpa};
use super::process::{Process, Spec, free_port};
use super::prometheus::Page;
use super::scaled_object::ScaledObject;

/// Builds the process of replica `index` of a Deployment, serving its ops
/// endpoints on `port`.
pub type ReplicaSpec = Arc<dyn Fn(u32, u16) -> Spec + Send + Sync>;

/// The grace a scaled-in replica gets to drain (its `terminationGracePeriodSeconds`).
pub const TERMINATION_GRACE: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch (comparable across processes).
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One cold start, every stage in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColdStart {
    /// The scaler pushed `true` on the stream (or a poll found it active).
    pub activated: u64,
    /// Whether the push (not a poll) activated it.
    pub pushed: bool,
    /// The autoscaler decided 0 → N.
    pub decided: u64,
    /// The process was spawned.
    pub spawned: u64,
    /// Its `/readyz` answered 200 (it consumes).
    pub ready: Option<u64>,
    /// It settled its first input (succeeded, retried or dead-lettered).
    pub handled: Option<u64>,
    /// The function was back at zero replicas.
    pub back_at_zero: Option<u64>,
}

/// What the view and `safecity status` show of one function.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FunctionStatus {
    /// The ScaledObject.
    pub scaled_object: String,
    /// The Deployment it scales.
    pub deployment: String,
    /// Replicas running (started, not yet scaled in).
    pub replicas: u32,
    /// Replicas whose `/readyz` answered.
    pub ready: u32,
    /// What the last decision asked for.
    pub desired: u32,
    /// The scaler's last answer to `IsActive`.
    pub active: bool,
    /// The last metric value (pending work, or backlog seconds).
    pub metric: f64,
    /// The metric's name and target.
    pub metric_name: String,
    /// The HPA target of the metric.
    pub target: f64,
    /// Activations from zero.
    pub activations: u64,
    /// Replicas that died and were started again.
    pub restarts: u64,
    /// HPA scale-ins (N -> M > 0: replicas stopped with SIGTERM, draining).
    pub scale_ins: u64,
    /// Of those, the ones decided while work was still pending.
    pub scale_ins_under_load: u64,
    /// Polls that failed since the last success.
    pub failed_polls: u32,
    /// The cold starts, oldest first (the last 100).
    pub cold_starts: Vec<ColdStart>,
    /// The `/metrics` URLs of the running replicas.
    pub replica_urls: Vec<String>,
    /// The OS process ids of the running replicas.
    pub replica_pids: Vec<u32>,
}

/// What the scaler says of one ScaledObject, as KEDA asks it each poll.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerView {
    /// `IsActive`.
    pub active: bool,
    /// `GetMetrics`: the metric's value (pending work, or backlog seconds).
    pub metric: f64,
    /// `GetMetricSpec`: the target per replica.
    pub target: f64,
    /// The metric's name.
    pub metric_name: String,
}

/// Asks the scaler what KEDA asks it every `pollingInterval`: `IsActive`,
/// `GetMetricSpec` and `GetMetrics`; `None` when it names no metric.
pub async fn ask_scaler(
    client: &mut ExternalScalerClient<Channel>,
    reference: &ScaledObjectRef,
) -> Result<Option<ScalerView>, tonic::Status> {
    let active = client
        .is_active(reference.clone())
        .await?
        .into_inner()
        .result;
    let spec = client
        .get_metric_spec(reference.clone())
        .await?
        .into_inner();
    let Some(metric_spec) = spec.metric_specs.first() else {
        return Ok(None);
    };
    let values = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(reference.clone()),
            metric_name: metric_spec.metric_name.clone(),
        })
        .await?
        .into_inner();
    Ok(Some(ScalerView {
        active,
        metric: values
            .metric_values
            .first()
            .map_or(0.0, |v| v.metric_value_float),
        target: metric_spec.target_size_float,
        metric_name: metric_spec.metric_name.clone(),
    }))
}

/// The shared status of every function, by ScaledObject name.
pub type Statuses = Arc<Mutex<BTreeMap<String, FunctionStatus>>>;

struct Replica {
    process: Process,
    url: String,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

struct Controller {
    so: ScaledObject,
    reference: ScaledObjectRef,
    spec: ReplicaSpec,
    client: ExternalScalerClient<Channel>,
    http: reqwest::Client,
    logs: PathBuf,
    statuses: Statuses,
    replicas: Vec<Replica>,
    next_index: u32,
    hpa: Hpa,
    last_active: Option<Instant>,
    failed_polls: u32,
    cancel: CancellationToken,
}

/// Runs a controller for `so` until `cancel`, then scales it to zero.
pub async fn control(
    so: ScaledObject,
    spec: ReplicaSpec,
    client: ExternalScalerClient<Channel>,
    logs: PathBuf,
    statuses: Statuses,
    cancel: CancellationToken,
) {
    let Some(reference) = so.scaler_ref() else {
        warn!(scaled_object = %so.name, "no triggers: not scaled");
        return;
    };
    statuses.lock().expect("statuses").insert(
        so.name.clone(),
        FunctionStatus {
            scaled_object: so.name.clone(),
            deployment: so.target.clone(),
            ..FunctionStatus::default()
        },
    );
    let mut controller = Controller {
        reference,
        spec,
        client,
        http: reqwest::Client::new(),
        logs,
        statuses,
        replicas: Vec::new(),
        next_index: 0,
        hpa: Hpa::default(),
        last_active: None,
        failed_polls: 0,
        cancel,
        so,
    };
    controller.run().await;
}

impl Controller {
    fn status(&self, update: impl FnOnce(&mut FunctionStatus)) {
        if let Some(status) = self
            .statuses
            .lock()
            .expect("statuses")
            .get_mut(&self.so.name)
        {
            update(status);
        }
    }

    /// Forwards the scaler's pushes into a channel, re-opening the stream
    /// when it ends (the scaler restarted), until `cancel`.
    fn watch_stream(&self) -> mpsc::Receiver<Instant> {
        let (tx, rx) = mpsc::channel(16);
        let mut client = self.client.clone();
        let reference = self.reference.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                let opened = tokio::select! {
                    () = cancel.cancelled() => return,
                    opened = client.stream_is_active(reference.clone()) => opened,
                };
                if let Ok(stream) = opened {
                    let mut stream = stream.into_inner();
                    loop {
                        let message = tokio::select! {
                            () = cancel.cancelled() => return,
                            message = stream.message() => message,
                        };
                        match message {
                            Ok(Some(answer)) if answer.result => {
                                if tx.send(Instant::now()).await.is_err() {
                                    return;
                                }
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        rx
    }

    async fn run(&mut self) {
        let mut pushes = self.watch_stream();
        let mut poll = tokio::time::interval(self.so.polling_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watch = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                Some(at) = pushes.recv() => {
                    self.last_active = Some(at);
                    if self.replicas.is_empty() {
                        self.activate(at, true).await;
                    }
                }
                _ = poll.tick() => self.poll().await,
                _ = watch.tick() => self.watch_replicas(),
            }
        }
        self.scale_to(0, None).await;
    }

    /// 0 → N at once (KEDA's activation), recording the cold start.
    async fn activate(&mut self, activated: Instant, pushed: bool) {
        let target = self.so.min_replicas.max(1).min(self.so.max_replicas.max(1));
        let wall =
            epoch_ms().saturating_sub(u64::try_from(activated.elapsed().as_millis()).unwrap_or(0));
        info!(scaled_object = %self.so.name, pushed, "activation: 0 -> {target}");
        let record = ColdStart {
            activated: wall,
            pushed,
            decided: epoch_ms(),
            ..ColdStart::default()
        };
        self.status(|s| {
            s.activations += 1;
            s.cold_starts.push(record);
            if s.cold_starts.len() > 100 {
                s.cold_starts.remove(0);
            }
        });
        self.scale_to(target, Some(Instant::now())).await;
    }

    async fn poll(&mut self) {
        let view = match ask_scaler(&mut self.client.clone(), &self.reference).await {
            Ok(Some(view)) => view,
            Ok(None) => return,
            Err(_) => {
                self.poll_failed().await;
                return;
            }
        };
        let ScalerView {
            active,
            metric,
            target,
            metric_name: name,
        } = view;
        self.failed_polls = 0;
        self.status(|s| {
            s.active = active;
            s.metric = metric;
            s.target = target;
            s.metric_name = name;
            s.failed_polls = 0;
        });
        let now = Instant::now();
        if active {
            self.last_active = Some(now);
            if self.replicas.is_empty() {
                self.activate(now, false).await;
                return;
            }
        }
        let current = u32::try_from(self.replicas.len()).unwrap_or(u32::MAX);
        if current == 0 {
            return;
        }
        let idle_for = self.last_active.map_or(Duration::MAX, |at| now - at);
        if !active && self.so.min_replicas == 0 && idle_for >= self.so.cooldown {
            info!(scaled_object = %self.so.name, "cooldown over: {current} -> 0");
            self.hpa = Hpa::default();
            self.scale_to(0, None).await;
            return;
        }
        let recommendation = hpa::recommend(current, metric, target);
        let desired = self.hpa.next(
            now,
            current,
            recommendation,
            self.so.min_replicas,
            self.so.max_replicas,
            &self.so.behavior,
        );
        if desired != current {
            info!(scaled_object = %self.so.name, metric, target, "HPA: {current} -> {desired}");
            if desired < current {
                self.status(|s| {
                    s.scale_ins += 1;
                    s.scale_ins_under_load += u64::from(metric > 0.0);
                });
            }
            self.scale_to(desired, None).await;
        }
    }

    async fn poll_failed(&mut self) {
        self.failed_polls += 1;
        let failed = self.failed_polls;
        self.status(|s| s.failed_polls = failed);
        if let Some(fallback) = self.so.fallback
            && failed >= fallback.failure_threshold
            && self.replicas.len() != fallback.replicas as usize
        {
            warn!(scaled_object = %self.so.name, failed, "the scaler does not answer: fallback to {} replicas", fallback.replicas);
            self.scale_to(fallback.replicas, None).await;
        }
    }

    /// Starts or stops replicas until `target` run. Started replicas are
    /// readied in the background; stopped ones drain in the background.
    async fn scale_to(&mut self, target: u32, cold_start: Option<Instant>) {
        while self.replicas.len() < target as usize {
            match self.start_replica(cold_start.is_some()) {
                Ok(replica) => self.replicas.push(replica),
                Err(error) => {
                    warn!(scaled_object = %self.so.name, %error, "cannot start a replica");
                    break;
                }
            }
        }
        let mut stopping = Vec::new();
        while self.replicas.len() > target as usize {
            if let Some(replica) = self.replicas.pop() {
                stopping.push(replica);
            }
        }
        let back_at_zero = !stopping.is_empty() && self.replicas.is_empty();
        for replica in stopping {
            tokio::spawn(replica.process.stop(TERMINATION_GRACE));
        }
        let (replicas, urls, pids) = self.replica_view();
        self.status(|s| {
            s.replicas = replicas;
            s.desired = target;
            s.replica_urls = urls;
            s.replica_pids = pids;
            if back_at_zero && let Some(last) = s.cold_starts.last_mut() {
                last.back_at_zero.get_or_insert(epoch_ms());
            }
        });
    }

    fn replica_view(&self) -> (u32, Vec<String>, Vec<u32>) {
        (
            u32::try_from(self.replicas.len()).unwrap_or(u32::MAX),
            self.replicas.iter().map(|r| r.url.clone()).collect(),
            self.replicas
                .iter()
                .filter_map(|r| r.process.pid())
                .collect(),
        )
    }

    fn start_replica(&mut self, cold_start: bool) -> Result<Replica, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let index = self.next_index;
        self.next_index += 1;
        let spec = (self.spec)(index, port);
        let url = spec
            .ops_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let process = Process::spawn(spec, &self.logs).map_err(|e| e.to_string())?;
        if cold_start {
            self.status(|s| {
                if let Some(last) = s.cold_starts.last_mut() {
                    last.spawned = epoch_ms();
                }
            });
        }
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(watch_readiness(
            self.http.clone(),
            url.clone(),
            ready.clone(),
            self.statuses.clone(),
            self.so.name.clone(),
            cold_start,
            self.cancel.clone(),
        ));
        Ok(Replica {
            process,
            url,
            ready,
        })
    }

    /// Counts ready replicas and starts again the ones that died.
    fn watch_replicas(&mut self) {
        let mut died = Vec::new();
        for (i, replica) in self.replicas.iter_mut().enumerate() {
            if let Some(status) = replica.process.exited() {
                warn!(replica = %replica.process.spec.name, %status, log = %replica.process.log.display(), "replica died: starting another");
                died.push(i);
            }
        }
        for i in died.into_iter().rev() {
            self.replicas.remove(i);
            match self.start_replica(false) {
                Ok(replica) => self.replicas.push(replica),
                Err(error) => {
                    warn!(scaled_object = %self.so.name, %error, "cannot restart a replica")
                }
            }
            self.status(|s| s.restarts += 1);
        }
        let ready = self
            .replicas
            .iter()
            .filter(|r| r.ready.load(std::sync::atomic::Ordering::Relaxed))
            .count();
        let (replicas, urls, pids) = self.replica_view();
        self.status(|s| {
            s.ready = u32::try_from(ready).unwrap_or(u32::MAX);
            s.replicas = replicas;
            s.replica_urls = urls;
            s.replica_pids = pids;
        });
    }
}

/// Polls a new replica's `/readyz`; for a cold start, records when it was
/// ready and when its first input was settled (its `/metrics`).
async fn watch_readiness(
    http: reqwest::Client,
    url: String,
    ready: Arc<std::sync::atomic::AtomicBool>,
    statuses: Statuses,
    scaled_object: String,
    cold_start: bool,
    cancel: CancellationToken,
) {
    let record = |update: &dyn Fn(&mut ColdStart)| {
        if let Some(last) = statuses
            .lock()
            .expect("statuses")
            .get_mut(&scaled_object)
            .and_then(|s| s.cold_starts.last_mut())
        {
            update(last);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !cancel.is_cancelled() {
        let answer = http
            .get(format!("{url}/readyz"))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            ready.store(true, std::sync::atomic::Ordering::Relaxed);
            if cold_start {
                let at = epoch_ms();
                record(&|c| c.ready = Some(at));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if !cold_start || !ready.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    while Instant::now() < deadline && !cancel.is_cancelled() {
        if let Ok(response) = http.get(format!("{url}/metrics")).send().await
            && let Ok(text) = response.text().await
        {
            let page = Page::parse(&text);
            let settled = page.sum("safecity_events_succeeded_total", &[])
                + page.sum("safecity_events_retried_total", &[])
                + page.sum("safecity_events_dead_lettered_total", &[])
                + page.sum("safecity_events_deferred_total", &[]);
            if settled > 0.0 {
                let at = epoch_ms();
                record(&|c| c.handled = Some(at));
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
