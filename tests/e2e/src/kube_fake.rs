//! A fake Kubernetes API server on loopback for the kube tools' tests: a
//! MOCK, standing in for the core kinds no real server here can serve (no
//! kube-apiserver package exists on this machine): Deployments, Pods and
//! Events, with list and the watch protocol (newline-delimited JSON events
//! from a resource version), the pod proxy (`pods/<name>:<port>/proxy/...`,
//! forwarded to the pod's real process), and KEDA ScaledObjects as plain
//! stored JSON. The KEDA objects' schema is checked against a real
//! CRD-serving API server in `tests/kube_keda.rs` instead.
//!
//! [`FakeCluster::run_keda`] plays KEDA and the kubelet for one Deployment:
//! it activates it (`spec.replicas` 0 -> 1) when its work queue holds a
//! message, creates a pod that is scheduled, has its image pulled (a
//! `Pulled` Event), starts a real process and becomes Ready when the
//! process's `/readyz` answers, and scales back to zero after a cooldown
//! without work — each step a MODIFIED/ADDED/DELETED watch event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use safecity_cli::city::process::{Process, Spec, free_port};

/// One stored object of a kind.
#[derive(Debug, Clone)]
struct Stored {
    kind: &'static str,
    object: Value,
}

/// A change, as a watch sends it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    kind: &'static str,
    verb: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct Store {
    version: u64,
    objects: BTreeMap<(String, String), Stored>,
    log: Vec<Change>,
    pod_ports: BTreeMap<String, u16>,
}

/// The fake API server.
#[derive(Debug, Clone)]
pub struct FakeCluster {
    store: Arc<Mutex<Store>>,
    changes: broadcast::Sender<Change>,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// The namespace everything lives in.
    pub namespace: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What the fake KEDA and kubelet of [`FakeCluster::run_keda`] play for one
/// Deployment.
pub struct FakeKeda {
    /// The Deployment (and its pods' `app.kubernetes.io/name`).
    pub name: String,
    /// The work queue whose depth activates it (a passive declare).
    pub queue: String,
    /// The broker holding `queue`.
    pub amqp_url: String,
    /// The process of pod number `index`, serving its ops port `port`.
    pub spec: Arc<dyn Fn(u32, u16) -> Spec + Send + Sync>,
    /// Where the pods' logs go.
    pub logs: std::path::PathBuf,
    /// Back to zero after this long without a waiting message.
    pub cooldown: Duration,
}

impl std::fmt::Debug for FakeKeda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKeda")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

impl FakeCluster {
    /// Serves on `127.0.0.1:0`.
    pub async fn start(namespace: &str) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let cluster = FakeCluster {
            store: Arc::new(Mutex::new(Store::default())),
            changes,
            url,
            namespace: namespace.to_owned(),
        };
        let app = Router::new()
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}",
                get(list_or_watch_group),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
                get(get_group),
            )
            .route("/api/v1/namespaces/{ns}/{plural}", get(list_or_watch_core))
            .route("/api/v1/namespaces/{ns}/{plural}/{name}", get(get_core))
            .route(
                "/api/v1/namespaces/{ns}/pods/{target}/proxy/{*path}",
                get(pod_proxy),
            )
            .with_state(cluster.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        cluster
    }

    /// A kube client for it.
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("url"));
        config.default_namespace = self.namespace.clone();
        kube::Client::try_from(config).expect("client")
    }

    /// Stores (or replaces) an object of `kind` and tells the watches.
    pub fn put(&self, kind: &'static str, mut object: Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_owned();
        let mut store = self.store.lock().expect("store");
        store.version += 1;
        let version = store.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object["metadata"]["namespace"] = json!(self.namespace);
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!(now());
        }
        let key = (kind.to_owned(), name);
        let verb = if store.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store.objects.insert(
            key,
            Stored {
                kind,
                object: object.clone(),
            },
        );
        let change = Change {
            version,
            kind,
            verb,
            object,
        };
        store.log.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// Removes an object and tells the watches.
    pub fn delete(&self, kind: &'static str, name: &str) {
        let mut store = self.store.lock().expect("store");
        let Some(mut removed) = store.objects.remove(&(kind.to_owned(), name.to_owned())) else {
            return;
        };
        store.version += 1;
        let version = store.version;
        removed.object["metadata"]["resourceVersion"] = json!(version.to_string());
        let change = Change {
            version,
            kind,
            verb: "DELETED",
            object: removed.object,
        };
        store.log.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// An object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let store = self.store.lock().expect("store");
        store
            .objects
            .get(&(kind.to_owned(), name.to_owned()))
            .map(|s| s.object.clone())
    }

    /// A Deployment with `replicas` whose pods carry `app.kubernetes.io/name: <name>`.
    pub fn put_deployment(&self, name: &str, replicas: i32, ready: i32) {
        self.put(
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": name}},
                        "spec": {"containers": [{"name": name, "image": format!("safecity/{name}:test")}]}
                    }
                },
                "status": {"replicas": replicas, "readyReplicas": ready}
            }),
        );
    }

    /// A pod of `deployment`: created at `created`, ready at `ready` (RFC 3339).
    pub fn put_pod(&self, deployment: &str, name: &str, created: &str, ready: Option<&str>) {
        let mut conditions =
            vec![json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": created})];
        if let Some(ready) = ready {
            conditions
                .push(json!({"type": "Ready", "status": "True", "lastTransitionTime": ready}));
        }
        self.put(
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/name": deployment}, "creationTimestamp": created},
                "spec": {"containers": [{"name": deployment, "image": format!("safecity/{deployment}:test")}]},
                "status": {"phase": "Running", "conditions": conditions}
            }),
        );
    }

    /// Stores KEDA ScaledObjects (rendered manifests, as JSON).
    pub fn put_scaled_objects(&self, objects: &[Value]) {
        for object in objects {
            self.put("ScaledObject", object.clone());
        }
    }

    fn plural_kind(plural: &str) -> Option<&'static str> {
        Some(match plural {
            "deployments" => "Deployment",
            "pods" => "Pod",
            "events" => "Event",
            "scaledobjects" => "ScaledObject",
            _ => return None,
        })
    }

    fn list_kind(kind: &str) -> (&'static str, &'static str) {
        match kind {
            "Deployment" => ("apps/v1", "DeploymentList"),
            "Pod" => ("v1", "PodList"),
            "Event" => ("v1", "EventList"),
            _ => ("keda.sh/v1alpha1", "ScaledObjectList"),
        }
    }

    /// Plays KEDA and the kubelet for one Deployment until `cancel` (see
    /// the module docs and [`FakeKeda`]).
    pub async fn run_keda(self, keda: FakeKeda, cancel: CancellationToken) {
        let FakeKeda {
            name,
            queue,
            amqp_url,
            spec,
            logs,
            cooldown,
        } = keda;
        let connection =
            lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("the fake KEDA connects");
        let channel = connection.create_channel().await.expect("channel");
        let mut running: Option<(String, Process)> = None;
        let mut idle_since = tokio::time::Instant::now();
        let mut index = 0;
        while !cancel.is_cancelled() {
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .expect("passive declare");
            let waiting = declared.message_count();
            if waiting > 0 {
                idle_since = tokio::time::Instant::now();
            }
            if waiting > 0 && running.is_none() {
                // KEDA: 0 -> 1.
                self.put_deployment(&name, 1, 0);
                // The scheduler and the kubelet.
                let pod = format!("{name}-{index:05}-fake");
                let port = free_port().expect("port");
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.put(
                    "Pod",
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod, "labels": {"app.kubernetes.io/name": name}},
                        "spec": {"containers": [{"name": name, "image": format!("safecity/{name}:test"),
                                 "ports": [{"name": "http", "containerPort": port}]}]},
                        "status": {"phase": "Pending", "conditions": [
                            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]}
                    }),
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.put(
                    "Event",
                    json!({
                        "apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": format!("{pod}.pulled")},
                        "involvedObject": {"kind": "Pod", "name": pod, "namespace": self.namespace},
                        "reason": "Pulled", "type": "Normal",
                        "message": format!("Container image \"safecity/{name}:test\" already present on machine")
                    }),
                );
                let process =
                    Process::spawn((spec)(index, port), &logs).expect("the pod's process starts");
                index += 1;
                self.store
                    .lock()
                    .expect("store")
                    .pod_ports
                    .insert(pod.clone(), port);
                let container = |ready: bool| {
                    json!([{"name": name, "image": format!("safecity/{name}:test"), "imageID": "sha256:fake",
                            "ready": ready, "restartCount": 0, "started": true,
                            "state": {"running": {"startedAt": now()}}}])
                };
                let mut object = self.get("Pod", &pod).expect("the pod");
                object["status"]["phase"] = json!("Running");
                object["status"]["containerStatuses"] = container(false);
                self.put("Pod", object);
                // Ready when the process's /readyz answers.
                let http = reqwest::Client::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while tokio::time::Instant::now() < deadline {
                    let answer = http
                        .get(format!("http://127.0.0.1:{port}/readyz"))
                        .send()
                        .await;
                    if answer.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let mut object = self.get("Pod", &pod).expect("the pod");
                object["status"]["conditions"]
                    .as_array_mut()
                    .expect("conditions")
                    .push(json!({"type": "Ready", "status": "True", "lastTransitionTime": now()}));
                object["status"]["containerStatuses"] = container(true);
                self.put("Pod", object);
                self.put_deployment(&name, 1, 1);
                running = Some((pod, process));
                idle_since = tokio::time::Instant::now();
            } else if running.is_some() && idle_since.elapsed() >= cooldown {
                // KEDA's cooldown: 1 -> 0, the pod terminated (SIGTERM).
                self.put_deployment(&name, 0, 0);
                if let Some((pod, process)) = running.take() {
                    let _ = process.stop(Duration::from_secs(10)).await;
                    self.delete("Pod", &pod);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((pod, process)) = running.take() {
            let _ = process.stop(Duration::from_secs(10)).await;
            self.delete("Pod", &pod);
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    watch: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
    #[serde(rename = "fieldSelector")]
    field_selector: Option<String>,
}

/// Equality selectors only (`a=b,c=d`), as the tools send them.
fn matches(object: &Value, query: &ListQuery) -> bool {
    let pairs = |selector: &Option<String>| -> Vec<(String, String)> {
        selector
            .iter()
            .flat_map(|s| s.split(','))
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let labels_ok = pairs(&query.label_selector)
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k.as_str()].as_str() == Some(v));
    let fields_ok = pairs(&query.field_selector).iter().all(|(path, v)| {
        let mut value = object;
        for part in path.split('.') {
            value = &value[part];
        }
        value.as_str() == Some(v)
    });
    labels_ok && fields_ok
}

async fn list_or_watch(cluster: FakeCluster, plural: &str, query: ListQuery) -> Response {
    let Some(kind) = FakeCluster::plural_kind(plural) else {
        return (StatusCode::NOT_FOUND, "unknown resource").into_response();
    };
    let watching = query
        .watch
        .as_deref()
        .is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let store = cluster.store.lock().expect("store");
        let items: Vec<Value> = store
            .objects
            .values()
            .filter(|s| s.kind == kind && matches(&s.object, &query))
            .map(|s| s.object.clone())
            .collect();
        let (api_version, list_kind) = FakeCluster::list_kind(kind);
        return axum::Json(json!({
            "apiVersion": api_version, "kind": list_kind,
            "metadata": {"resourceVersion": store.version.to_string()},
            "items": items
        }))
        .into_response();
    }
    let from: u64 = query
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut live = cluster.changes.subscribe();
    let backlog: Vec<Change> = cluster
        .store
        .lock()
        .expect("store")
        .log
        .iter()
        .filter(|c| c.version > from)
        .cloned()
        .collect();
    let (tx, rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<String, std::convert::Infallible>>();
    tokio::spawn(async move {
        let line = |c: &Change| format!("{}\n", json!({"type": c.verb, "object": c.object}));
        let mut last = from;
        for change in backlog {
            if change.kind == kind
                && matches(&change.object, &query)
                && tx.send(Ok(line(&change))).is_err()
            {
                return;
            }
            last = last.max(change.version);
        }
        while let Ok(change) = live.recv().await {
            if change.version <= last {
                continue;
            }
            if change.kind == kind
                && matches(&change.object, &query)
                && tx.send(Ok(line(&change))).is_err()
            {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        ))
        .expect("response")
}

fn get_one(cluster: &FakeCluster, plural: &str, name: &str) -> Response {
    let Some(kind) = FakeCluster::plural_kind(plural) else {
        return (StatusCode::NOT_FOUND, "unknown resource").into_response();
    };
    match cluster.get(kind, name) {
        Some(object) => axum::Json(object).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": format!("{plural} \"{name}\" not found"), "reason": "NotFound", "code": 404})),
        )
            .into_response(),
    }
}

async fn list_or_watch_group(
    State(cluster): State<FakeCluster>,
    Path((_group, _version, _ns, plural)): Path<(String, String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    list_or_watch(cluster, &plural, query).await
}

async fn list_or_watch_core(
    State(cluster): State<FakeCluster>,
    Path((_ns, plural)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Response {
    list_or_watch(cluster, &plural, query).await
}

async fn get_group(
    State(cluster): State<FakeCluster>,
    Path((_group, _version, _ns, plural, name)): Path<(String, String, String, String, String)>,
) -> Response {
    get_one(&cluster, &plural, &name)
}

async fn get_core(
    State(cluster): State<FakeCluster>,
    Path((_ns, plural, name)): Path<(String, String, String)>,
) -> Response {
    get_one(&cluster, &plural, &name)
}

/// `pods/<name>:<port>/proxy/<path>`: forwarded to the pod's process.
async fn pod_proxy(
    State(cluster): State<FakeCluster>,
    Path((_ns, target, path)): Path<(String, String, String)>,
) -> Response {
    let pod = target.split(':').next().unwrap_or_default();
    let Some(port) = cluster
        .store
        .lock()
        .expect("store")
        .pod_ports
        .get(pod)
        .copied()
    else {
        return (StatusCode::NOT_FOUND, "no such pod").into_response();
    };
    match reqwest::get(format!("http://127.0.0.1:{port}/{path}")).await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, response.text().await.unwrap_or_default()).into_response()
        }
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}
