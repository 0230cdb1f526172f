//! `safecity coldstart <function> --kube`: cold starts on the cluster, the
//! seed team's "from the trigger to pod creation to the service", end to end.
//!
//! For each probe: wait until the function's Deployment is at zero replicas
//! with no pod left; open watches on the Deployment, its pods and the
//! namespace's Events (from the current resource versions, so nothing is
//! missed); publish a probe event (AMQP); then note when each stage is first
//! seen — KEDA's activation (the Deployment's `spec.replicas` 0 -> N), the
//! pod scheduled (`PodScheduled`), its image pulled (the kubelet's `Pulled`
//! event, also sent when the image was cached), its container started, the
//! pod ready (`Ready`), the event handled (the pod's own
//! `safecity_events_*_total` through the API server's pod proxy), and back
//! at zero after the cooldown. Times are this machine's clock at the moment a
//! watch event arrives: millisecond resolution, unlike the API's one-second
//! timestamps.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Client, Resource};
use lapin::{Connection, ConnectionProperties};
use safecity_events::Publisher;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::objects::{deployment, scaled_object_of};
use crate::coldstart::{ColdstartArgs, publish_probe, render_table};

/// The stages of a cold start on the cluster, in order.
pub const STAGES: [&str; 7] = [
    "KEDA activation (0 -> N)",
    "pod scheduled",
    "image pulled",
    "container started",
    "ready (Ready)",
    "event handled",
    "back at zero",
];

/// A stage, as an index into [`STAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The Deployment's `spec.replicas` went from 0 to at least 1.
    Activated = 0,
    /// A new pod's `PodScheduled` condition is true.
    Scheduled = 1,
    /// The kubelet's `Pulled` event for a new pod.
    Pulled = 2,
    /// A new pod's container is running.
    Started = 3,
    /// A new pod's `Ready` condition is true.
    Ready = 4,
    /// The pod's metrics show its first settled input.
    Handled = 5,
    /// The Deployment is back at 0 replicas.
    BackAtZero = 6,
}

/// What the watches report: a stage, when it was seen, and the pod it
/// concerns (for [`Stage::Ready`]); `None` when a watch is open.
type Seen = (Option<Stage>, Instant, Option<String>);

/// Measures `args.probes` cold starts of `args.function` in
/// `args.namespace`, publishing the probes to `amqp_url`; returns the table.
pub async fn measure(
    client: &Client,
    args: &ColdstartArgs,
    amqp_url: &str,
) -> anyhow::Result<String> {
    let so = scaled_object_of(client, &args.namespace, &args.function).await?;
    let (_, selector) = deployment(client, &args.namespace, &so.target).await?;
    let connection = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .with_context(|| {
            format!(
                "the broker for the probes ({})",
                safecity_shell::env::redact_url(amqp_url)
            )
        })?;
    let publisher = Publisher::open(&connection).await?;
    let mut rows = Vec::new();
    for n in 1..=args.probes {
        wait_at_zero(client, args, &so.target, &selector, n).await?;
        let row = probe(client, args, &so.target, &selector, &publisher).await?;
        println!(
            "probe {n}: activation +{:.0} ms, ready +{:.0} ms, handled +{:.0} ms, back at zero +{:.0} ms",
            row[Stage::Activated as usize],
            row[Stage::Ready as usize],
            row[Stage::Handled as usize],
            row[Stage::BackAtZero as usize]
        );
        rows.push(row);
    }
    let _ = connection.close(200, "coldstart done".into()).await;
    Ok(render_table(
        &args.function,
        &format!("namespace {}, ScaledObject {}", args.namespace, so.name),
        &STAGES,
        &rows,
    ))
}

/// Waits until the Deployment wants 0 replicas and none of its pods is left.
async fn wait_at_zero(
    client: &Client,
    args: &ColdstartArgs,
    name: &str,
    selector: &str,
    n: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + args.timeout;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.namespace);
    let mut said = false;
    loop {
        let (deployment, _) = deployment(client, &args.namespace, name).await?;
        let replicas = deployment.spec.replicas.unwrap_or(0);
        let left = pods
            .list(&ListParams::default().labels(selector))
            .await?
            .items
            .len();
        if replicas == 0 && left == 0 {
            return Ok(());
        }
        if !said {
            println!(
                "probe {n}: waiting for `{name}` to be at zero ({replicas} replicas wanted, {left} pods): its cooldown"
            );
            said = true;
        }
        if Instant::now() > deadline {
            bail!(
                "`{name}` did not go back to zero within {} s",
                args.timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One probe: the watches, the publish, the stages in ms after the publish.
async fn probe(
    client: &Client,
    args: &ColdstartArgs,
    name: &str,
    selector: &str,
    publisher: &Publisher,
) -> anyhow::Result<Vec<f64>> {
    let namespace = args.namespace.as_str();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    let by_labels = ListParams::default().labels(selector);
    let of_pods = ListParams::default().fields("involvedObject.kind=Pod");
    // Each watch starts at its list's resource version: nothing is missed.
    let versions = (
        deployments
            .list(&by_name)
            .await?
            .metadata
            .resource_version
            .unwrap_or_default(),
        pods.list(&by_labels)
            .await?
            .metadata
            .resource_version
            .unwrap_or_default(),
        events
            .list(&of_pods)
            .await?
            .metadata
            .resource_version
            .unwrap_or_default(),
    );
    let deployment_name = name.to_owned();
    let watches = vec![
        tokio::spawn(watch(
            deployments,
            by_name,
            versions.0,
            tx.clone(),
            cancel.clone(),
            deployment_stages,
        )),
        tokio::spawn(watch(
            pods,
            by_labels,
            versions.1,
            tx.clone(),
            cancel.clone(),
            pod_stages,
        )),
        tokio::spawn(watch(
            events,
            of_pods,
            versions.2,
            tx.clone(),
            cancel.clone(),
            move |event: &Event| pulled(event, &deployment_name),
        )),
    ];
    // Publish only once every watch is open: a stage must be seen live, not
    // replayed later from the watch's backlog.
    let mut open = 0;
    while open < watches.len() {
        match tokio::time::timeout(args.timeout, rx.recv()).await {
            Ok(Some((None, _, _))) => open += 1,
            Ok(Some(_)) => {}
            _ => {
                cancel.cancel();
                bail!(
                    "the watches did not open within {} s",
                    args.timeout.as_secs()
                );
            }
        }
    }
    let published = Instant::now();
    publish_probe(publisher, name, &args.frame).await?;
    let deadline = published + args.timeout;
    let mut seen: BTreeMap<Stage, Instant> = BTreeMap::new();
    let mut handled_poll: Option<tokio::task::JoinHandle<()>> = None;
    while !seen.contains_key(&Stage::BackAtZero) {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        let Ok(Some((stage, at, pod))) = next else {
            cancel.cancel();
            let missing: Vec<&str> = STAGES
                .iter()
                .enumerate()
                .filter(|(i, _)| !seen.keys().any(|s| *s as usize == *i))
                .map(|(_, s)| *s)
                .collect();
            bail!(
                "the probe did not complete within {} s: not seen: {}",
                args.timeout.as_secs(),
                missing.join(", ")
            );
        };
        let Some(stage) = stage else {
            continue;
        };
        // Back at zero counts only after the probe was handled.
        if stage == Stage::BackAtZero && !seen.contains_key(&Stage::Handled) {
            continue;
        }
        if seen.contains_key(&stage) {
            continue;
        }
        seen.insert(stage, at);
        if let (Stage::Ready, Some(pod), None) = (stage, pod, handled_poll.as_ref()) {
            handled_poll = Some(tokio::spawn(poll_handled(
                client.clone(),
                namespace.to_owned(),
                pod,
                args.ops_port,
                tx.clone(),
                cancel.clone(),
            )));
        }
    }
    cancel.cancel();
    for task in watches.into_iter().chain(handled_poll) {
        let _ = task.await;
    }
    let observed: Vec<f64> = STAGES
        .iter()
        .enumerate()
        .map(|(index, _)| {
            seen.iter()
                .find(|(stage, _)| **stage as usize == index)
                .map_or(f64::NAN, |(_, at)| {
                    at.saturating_duration_since(published).as_secs_f64() * 1000.0
                })
        })
        .collect();
    Ok(causal_order(observed))
}

/// Stage times as the cluster must have passed them. Each watch (the
/// Deployment, the pods, the events) delivers on its own stream, so a later
/// stage can be observed before an earlier one (the pod's scheduling before
/// the Deployment's replica change); a stage seen at `t` proves every
/// earlier stage happened by `t`, so each stage is bounded by the next one.
fn causal_order(mut stages: Vec<f64>) -> Vec<f64> {
    for index in (0..stages.len().saturating_sub(1)).rev() {
        let next = stages[index + 1];
        if next < stages[index] {
            stages[index] = next;
        }
    }
    stages
}

/// Watches `api` from `version` until `cancel`, re-opening the watch when
/// the server ends it, and sends what `stages` sees in each object.
async fn watch<K, F>(
    api: Api<K>,
    params: ListParams,
    mut version: String,
    tx: mpsc::UnboundedSender<Seen>,
    cancel: CancellationToken,
    stages: F,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(&K) -> Vec<(Stage, Option<String>)>,
{
    let mut watch_params = WatchParams::default().timeout(290);
    if let Some(labels) = &params.label_selector {
        watch_params = watch_params.labels(labels);
    }
    if let Some(fields) = &params.field_selector {
        watch_params = watch_params.fields(fields);
    }
    while !cancel.is_cancelled() {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            stream = api.watch(&watch_params, &version) => stream,
        };
        let Ok(stream) = stream else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let _ = tx.send((None, Instant::now(), None));
        let mut stream: std::pin::Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<K>>> + Send>> =
            stream.boxed();
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let object = match event {
                Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object))) => object,
                Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                    version = bookmark.metadata.resource_version;
                    continue;
                }
                Some(Ok(WatchEvent::Deleted(object))) => {
                    if let Some(v) = object.meta().resource_version.clone() {
                        version = v;
                    }
                    continue;
                }
                // The server ended the watch (timeout, expired version): re-open.
                Some(Ok(WatchEvent::Error(_)) | Err(_)) | None => break,
            };
            if let Some(v) = object.meta().resource_version.clone() {
                version = v;
            }
            let at = Instant::now();
            for (stage, pod) in stages(&object) {
                let _ = tx.send((Some(stage), at, pod));
            }
        }
    }
}

/// KEDA's activation and the way back to zero, from the Deployment.
fn deployment_stages(deployment: &Deployment) -> Vec<(Stage, Option<String>)> {
    match deployment.spec.replicas {
        Some(0) => vec![(Stage::BackAtZero, None)],
        Some(_) => vec![(Stage::Activated, None)],
        None => Vec::new(),
    }
}

/// Scheduled, started and ready, from a pod's status.
fn pod_stages(pod: &Pod) -> Vec<(Stage, Option<String>)> {
    let name = pod.metadata.name.clone();
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    let mut stages = Vec::new();
    if condition("PodScheduled") {
        stages.push((Stage::Scheduled, None));
    }
    let started =
        status.container_statuses.iter().flatten().any(|c| {
            c.started == Some(true) || c.state.as_ref().is_some_and(|s| s.running.is_some())
        });
    if started {
        stages.push((Stage::Started, None));
    }
    if condition("Ready") {
        stages.push((Stage::Ready, name));
    }
    stages
}

/// The kubelet's `Pulled` event for a pod of the Deployment `deployment`.
fn pulled(event: &Event, deployment: &str) -> Vec<(Stage, Option<String>)> {
    let of_ours = event
        .involved_object
        .name
        .as_deref()
        .is_some_and(|pod| pod.starts_with(&format!("{deployment}-")));
    if of_ours && event.reason.as_deref() == Some("Pulled") {
        vec![(Stage::Pulled, None)]
    } else {
        Vec::new()
    }
}

/// Reads the pod's `/metrics` through the API server's pod proxy until it
/// shows a settled input (succeeded, retried or dead-lettered).
async fn poll_handled(
    client: Client,
    namespace: String,
    pod: String,
    port: u16,
    tx: mpsc::UnboundedSender<Seen>,
    cancel: CancellationToken,
) {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/metrics");
    while !cancel.is_cancelled() {
        let request = http::Request::get(&path).body(Vec::new());
        if let Ok(request) = request
            && let Ok(text) = client.request_text(request).await
        {
            let page = crate::city::prometheus::Page::parse(&text);
            let settled = page.sum("safecity_events_succeeded_total", &[])
                + page.sum("safecity_events_retried_total", &[])
                + page.sum("safecity_events_dead_lettered_total", &[]);
            if settled > 0.0 {
                let _ = tx.send((Some(Stage::Handled), Instant::now(), None));
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_seen_first_on_another_watch_bounds_the_earlier_ones() {
        assert_eq!(
            causal_order(vec![43.0, 30.0, 55.0, 55.0, 152.0]),
            vec![30.0, 30.0, 55.0, 55.0, 152.0]
        );
        assert_eq!(causal_order(vec![1.0, 2.0, 3.0]), vec![1.0, 2.0, 3.0]);
    }
}
