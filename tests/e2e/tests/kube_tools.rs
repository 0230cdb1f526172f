//! `safecity status --kube` and `safecity coldstart --kube` against a
//! cluster API. Which parts are real:
//!
//! - the Kubernetes API is a MOCK ([`safecity_e2e::kube_fake`]): no
//!   kube-apiserver can run here, so Deployments, Pods, Events, the watch
//!   protocol and the pod proxy are faked on loopback; the KEDA
//!   ScaledObjects it serves are the real rendered `manifests/overlays/local`
//!   (their schema is checked by a real CRD-serving API server in
//!   `tests/kube_keda.rs`);
//! - the scaler (in-process, asked over gRPC), RabbitMQ (the work and
//!   dead-letter queues, the management API), the probe publishing and the
//!   pod's process (the real `probe-function` binary, whose `/metrics` the
//!   tool reads through the pod proxy) are real.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use safecity_cli::coldstart::ColdstartArgs;
use safecity_cli::status::{Output, StatusArgs, render};
use safecity_e2e::kube_fake::{FakeCluster, FakeKeda};
use safecity_e2e::{MiniCity, management_url, root};
use safecity_events::topology::FunctionQueues;
use safecity_events::{CloudEvent, EventType};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

const PROBE: &str = env!("CARGO_BIN_EXE_probe-function");

/// The ScaledObjects of `manifests/overlays/local`, rendered by kustomize, as JSON.
fn local_scaled_objects() -> Vec<serde_json::Value> {
    let kubectl = root().join(".venv/bin/kubectl");
    assert!(
        kubectl.is_file(),
        "{} is missing: run scripts/python-peers.sh",
        kubectl.display()
    );
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(root().join("manifests/overlays/local"))
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde_yaml_ng::Value::deserialize(document).expect("YAML"))
        .filter(|document| document["kind"].as_str() == Some("ScaledObject"))
        .map(|document| serde_json::to_value(document).expect("JSON"))
        .collect()
}

fn status_args(city: &MiniCity, output: Output) -> StatusArgs {
    StatusArgs {
        kube: true,
        namespace: "safecity".to_owned(),
        scaler: city.scaler.as_ref().expect("scaler").grpc_addr.to_string(),
        management: management_url(),
        vhost: city.vhost.name.clone(),
        output,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_scaled_object_with_replicas_pending_work_dead_letters_and_the_last_cold_start()
 {
    let city = MiniCity::start("kube-status").await;
    let cluster = FakeCluster::start("safecity").await;
    cluster.put_scaled_objects(&local_scaled_objects());
    for name in ["detector", "map-pin", "caption"] {
        cluster.put_deployment(name, 0, 0);
    }
    cluster.put_deployment("fire-post", 1, 1);
    cluster.put_pod(
        "fire-post",
        "fire-post-7d9c-old",
        "2026-12-07T11:00:00Z",
        Some("2026-12-07T11:00:04Z"),
    );
    cluster.put_pod(
        "fire-post",
        "fire-post-7d9c-abcde",
        "2026-12-07T12:00:00Z",
        Some("2026-12-07T12:00:02Z"),
    );

    // Three accidents wait for map-pin at zero; two of its inputs are dead letters.
    city.declare("map-pin", &[EventType::Accident.into()]).await;
    city.declare("fire-post", &[EventType::Fire.into()]).await;
    city.declare("caption", &[EventType::Gun.into(), EventType::Knife.into()])
        .await;
    city.declare(
        "detector",
        &[safecity_events::Subscription::Frames { region: None }],
    )
    .await;
    let client = city.vhost.client().await;
    for _ in 0..3 {
        client
            .publish_event(&CloudEvent::new(
                "/cameras/kube",
                EventType::Accident,
                serde_json::json!({}),
            ))
            .await;
    }
    let dead_queue = FunctionQueues::new("map-pin").expect("name").dead_letter();
    for body in [b"bad one".as_slice(), b"bad two".as_slice()] {
        client
            .channel
            .basic_publish(
                "".into(),
                dead_queue.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    let kube = cluster.client();
    let args = status_args(&city, Output::Json);
    // The management API's queue counts refresh every few seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = safecity_cli::kube::status::rows(&kube, &args)
            .await
            .expect("status rows");
        let map_pin = rows
            .iter()
            .find(|r| r.function == "map-pin")
            .expect("map-pin row");
        if map_pin.dead_letters == Some(2) && map_pin.pending == Some(3.0) {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows never settled: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = rows.iter().map(|r| r.scaled_object.as_str()).collect();
    assert_eq!(names, ["caption", "detector", "fire-post", "map-pin"]);
    let map_pin = rows
        .iter()
        .find(|r| r.function == "map-pin")
        .expect("map-pin");
    assert_eq!((map_pin.desired, map_pin.ready), (0, 0));
    assert_eq!(
        map_pin.active,
        Some(true),
        "pending work at zero replicas: active"
    );
    let fire_post = rows
        .iter()
        .find(|r| r.function == "fire-post")
        .expect("fire-post");
    assert_eq!((fire_post.desired, fire_post.ready), (1, 1));
    assert_eq!(fire_post.pending, Some(0.0));
    assert_eq!(fire_post.active, Some(false));
    assert_eq!(fire_post.dead_letters, Some(0));
    assert_eq!(
        fire_post.last_cold_start_ms,
        Some(2000),
        "the newest pod: created -> Ready"
    );
    let caption = rows
        .iter()
        .find(|r| r.function == "caption")
        .expect("caption");
    assert_eq!(caption.last_cold_start_ms, None, "no pod: no cold start");

    let table = render(&rows, Output::Table).expect("table");
    let header = table.lines().next().expect("header");
    for column in [
        "FUNCTION",
        "SCALEDOBJECT",
        "DESIRED",
        "READY",
        "PENDING",
        "ACTIVE",
        "DEAD-LETTERS",
        "LAST-COLD-START",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let map_pin_line = table
        .lines()
        .find(|l| l.starts_with("map-pin"))
        .expect("a map-pin line");
    let cells: Vec<&str> = map_pin_line.split_whitespace().collect();
    assert_eq!(
        cells,
        ["map-pin", "map-pin", "0", "0", "3.0", "yes", "2", "-"],
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&rows, Output::Json).expect("json")).expect("JSON");
    assert_eq!(json.as_array().expect("array").len(), 4);
    assert_eq!(json[3]["dead_letters"], 2);

    // Without a scaler to ask, the scaler's columns are empty, the rest stays.
    let mut no_scaler = status_args(&city, Output::Table);
    no_scaler.scaler = "127.0.0.1:1".to_owned();
    let rows = safecity_cli::kube::status::rows(&kube, &no_scaler)
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.pending.is_none() && r.active.is_none()),
        "{rows:?}"
    );
    assert_eq!(
        rows.iter()
            .find(|r| r.function == "fire-post")
            .expect("row")
            .desired,
        1
    );
    city.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coldstart_watches_activation_scheduling_pull_start_readiness_handling_and_the_way_back_to_zero()
 {
    let city = MiniCity::start("kube-coldstart").await;
    let cluster = FakeCluster::start("safecity").await;
    cluster.put_scaled_objects(&local_scaled_objects());
    cluster.put_deployment("map-pin", 0, 0);
    city.declare("map-pin", &[EventType::Accident.into()]).await;

    let cancel = CancellationToken::new();
    let spec = city.probe_spec(
        Path::new(PROBE),
        "map-pin",
        EventType::Accident,
        Duration::ZERO,
        &[],
    );
    let keda = tokio::spawn(cluster.clone().run_keda(
        FakeKeda {
            name: "map-pin".to_owned(),
            queue: FunctionQueues::new("map-pin").expect("name").work(),
            amqp_url: city.vhost.url.clone(),
            spec: Arc::new(move |index, port| spec(index, port)),
            logs: city.logs.clone(),
            cooldown: Duration::from_secs(2),
        },
        cancel.clone(),
    ));

    let args = ColdstartArgs {
        function: "map-pin".to_owned(),
        ops_port: 9090,
        probes: 3,
        kube: true,
        namespace: "safecity".to_owned(),
        timeout: Duration::from_secs(60),
        frame: root().join("target/yolo-assets/bus.jpg"),
    };
    let table = safecity_cli::kube::coldstart::measure(&cluster.client(), &args, &city.vhost.url)
        .await
        .expect("three cold starts measured");
    println!("{table}");
    cancel.cancel();
    keda.await.expect("the fake KEDA stops");

    let lines: Vec<&str> = table.lines().collect();
    let stage_values = |stage: &str| -> Vec<f64> {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(stage))
            .unwrap_or_else(|| panic!("no row `{stage}` in:\n{table}"));
        line.trim_start()[stage.len()..]
            .split_whitespace()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("`{v}` in {line}")))
            .collect()
    };
    let stages = safecity_cli::kube::coldstart::STAGES;
    let rows: Vec<Vec<f64>> = stages.iter().map(|s| stage_values(s)).collect();
    for (stage, values) in stages.iter().zip(&rows) {
        assert_eq!(values.len(), 5, "{stage}: three probes, p50, p99");
        assert!(
            values.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{stage}: {values:?}"
        );
    }
    for probe in 0..3 {
        let column: Vec<f64> = rows.iter().map(|r| r[probe]).collect();
        assert!(
            column.windows(2).all(|w| w[0] <= w[1]),
            "probe {}: the stages in order: {column:?}\n{table}",
            probe + 1
        );
        // The cooldown (2 s) separates handling from the way back to zero.
        assert!(column[6] >= column[5] + 1500.0, "{column:?}");
    }
    assert!(table.contains("publish -> handled: p50"), "{table}");
    assert!(
        table.contains("KEDA's default 30 s pollingInterval"),
        "{table}"
    );
    assert!(
        table.contains("the seed team's measured queue -> serving pod"),
        "{table}"
    );
    assert!(
        cluster.get("Pod", "map-pin-00003-fake").is_none(),
        "no fourth pod"
    );
    city.stop().await;
}

#[tokio::test]
async fn a_missing_function_names_the_scaled_objects_there() {
    let cluster = FakeCluster::start("safecity").await;
    cluster.put_scaled_objects(&local_scaled_objects());
    let error =
        safecity_cli::kube::objects::scaled_object_of(&cluster.client(), "safecity", "no-such")
            .await
            .expect_err("no such function");
    let message = error.to_string();
    assert!(
        message.contains("`no-such`") && message.contains("caption, detector, fire-post, map-pin"),
        "{message}"
    );
}
