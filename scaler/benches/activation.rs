//! Benchmark of the scaler binary against the real local RabbitMQ:
//! activation latency (publish → `true` on StreamIsActive), GetMetrics latency
//! with many ScaledObjects registered, broker connections opened, and RSS.
//!
//! `cargo bench -p safecity-scaler` (env: BENCH_ACTIVATIONS, default 1000;
//! BENCH_SCALED_OBJECTS, default 1000; BENCH_GET_METRICS, default 10000;
//! BENCH_LOADED_ACTIVATIONS, default 100).
//!
//! Phase 1 (its own scaler process): activation from zero. The function has no
//! consumer (it is at zero replicas); each round publishes one event, times the
//! push, then empties the queue (the function ran) and waits until IsActive says
//! idle again. The scaler's ready-count refresh is lowered to 50 ms here only so
//! that 1,000 rounds fit in a minute: the push path (tap) does not use it.
//!
//! Phase 2 (a second scaler process, default settings): 1,000 ScaledObjects
//! registered as KEDA does, then GetMetrics latency, activations from zero
//! with all of them registered, broker connections, RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::options::{
    BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use safecity_runtime::EventType;
use safecity_runtime::topology::EVENTS_EXCHANGE;
use safecity_scaler::pb::GetMetricsRequest;
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use support::{ScalerVhost, TestVhost, scaled_object};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .expect("rss line")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn metrics_page(port: u16) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: scaler\r\n\r\n")
        .await
        .expect("request");
    let mut page = String::new();
    stream.read_to_string(&mut page).await.expect("response");
    page
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// One scaler binary on free loopback ports, killed on drop.
struct ScalerProcess {
    process: KillOnDrop,
    metrics_port: u16,
}

impl ScalerProcess {
    async fn start(
        vhost: &TestVhost,
        extra_env: &[(&str, &str)],
    ) -> (Self, ExternalScalerClient<tonic::transport::Channel>) {
        let grpc_port = free_port();
        let metrics_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_safecity-scaler"));
        command
            .env("SAFECITY_AMQP_URL", &vhost.url)
            .env(
                "SAFECITY_SCALER_GRPC_ADDR",
                format!("127.0.0.1:{grpc_port}"),
            )
            .env(
                "SAFECITY_SCALER_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let process = KillOnDrop(command.spawn().expect("scaler binary starts"));
        let endpoint = format!("http://127.0.0.1:{grpc_port}");
        let client = loop {
            match ExternalScalerClient::connect(endpoint.clone()).await {
                Ok(client) => break client,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        (
            ScalerProcess {
                process,
                metrics_port,
            },
            client,
        )
    }
}

/// `rounds` activations from zero of the function whose ScaledObject is `object`
/// and whose queue is `queue`. Returns (sorted latencies, misses).
async fn activations_from_zero(
    client: &mut ExternalScalerClient<tonic::transport::Channel>,
    object: &safecity_scaler::pb::ScaledObjectRef,
    publisher: &lapin::Channel,
    queue: &str,
    rounds: usize,
    metrics_port: u16,
) -> (Vec<Duration>, usize) {
    let body = safecity_runtime::CloudEvent::new(
        "/cameras/bench",
        EventType::Fire,
        serde_json::json!({"camera": "bench"}),
    )
    .to_json();
    let mut stream = client
        .stream_is_active(object.clone())
        .await
        .expect("stream")
        .into_inner();
    let mut latencies = Vec::with_capacity(rounds);
    let mut missed = 0;
    for round in 0..rounds {
        // The function is idle again (the scaler says so) before the next event.
        while client
            .is_active(object.clone())
            .await
            .expect("IsActive")
            .into_inner()
            .result
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(safecity_scaler::server::MIN_PUSH_GAP).await;
        // Drop re-sent `true`s so the next message is this event's push.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), stream.message())
            .await
            .map(|m| m.ok().flatten())
        {}
        let started = Instant::now();
        publisher
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "fire".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(pushed) => {
                assert!(pushed.expect("stream healthy").expect("stream open").result);
                latencies.push(started.elapsed());
            }
            Err(_) => {
                missed += 1;
                let page = metrics_page(metrics_port).await;
                let state: Vec<&str> = page.lines().filter(|l| l.contains("bench-fire")).collect();
                eprintln!("activation {round}: no push within 5 s; scaler state: {state:?}");
            }
        }
        // The function ran: its queue is empty again.
        publisher
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .expect("purge");
    }
    latencies.sort();
    (latencies, missed)
}

#[tokio::main]
async fn main() {
    let activations = env_count("BENCH_ACTIVATIONS", 1000);
    let scaled_objects = env_count("BENCH_SCALED_OBJECTS", 1000);
    let get_metrics_calls = env_count("BENCH_GET_METRICS", 10_000);
    let loaded_activations = env_count("BENCH_LOADED_ACTIVATIONS", 100);
    let vhost = TestVhost::new("bench");
    let amqp = vhost.amqp().await;
    let queue = amqp.declare_function("bench-fire", EventType::Fire).await;
    let publisher = amqp.connection.create_channel().await.expect("channel");
    let measured = scaled_object("bench-fire", &[("eventType", "fire")]);

    // Phase 1: activation from zero.
    let (phase1, mut client) =
        ScalerProcess::start(&vhost, &[("SAFECITY_SCALER_DEPTH_INTERVAL", "50ms")]).await;
    support::poll(&mut client, &measured)
        .await
        .expect("registered");
    vhost.wait_for_tap("fire").await;
    let (latencies, missed) = activations_from_zero(
        &mut client,
        &measured,
        &publisher,
        &queue,
        activations,
        phase1.metrics_port,
    )
    .await;
    drop(client);
    drop(phase1);

    // Phase 2: many ScaledObjects, default settings.
    let others_types = ["gun", "knife", "accident"];
    for i in 0..scaled_objects {
        let other_queue = format!("bench.q.{i}");
        amqp.channel
            .queue_declare(
                other_queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare");
        amqp.channel
            .queue_bind(
                other_queue.as_str().into(),
                EVENTS_EXCHANGE.into(),
                others_types[i % 3].into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
    }
    let (phase2, mut client) = ScalerProcess::start(&vhost, &[]).await;
    let pid = phase2.process.0.id();
    // Register every ScaledObject as KEDA does: GetMetricSpec, GetMetrics,
    // IsActive, and one StreamIsActive stream each, all on one HTTP/2 connection.
    let mut others = Vec::new();
    for i in 0..scaled_objects {
        let other_queue = format!("bench.q.{i}");
        let object = scaled_object(
            &format!("so-{i}"),
            &[("eventType", others_types[i % 3]), ("queue", &other_queue)],
        );
        support::poll(&mut client, &object)
            .await
            .expect("registered");
        let mut stream = client
            .stream_is_active(object.clone())
            .await
            .expect("stream")
            .into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
        others.push(object);
    }
    let metric_names: Vec<String> = others
        .iter()
        .map(|o| format!("pending-bench-q-{}", &o.name[3..]))
        .collect();
    let spec = client
        .get_metric_spec(others[0].clone())
        .await
        .expect("spec")
        .into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, metric_names[0]);
    // GetMetrics latency (client side: the loopback HTTP/2 round trip is included).
    let mut get_metrics = Vec::with_capacity(get_metrics_calls);
    for call in 0..get_metrics_calls {
        let i = call % others.len();
        let request = GetMetricsRequest {
            scaled_object_ref: Some(others[i].clone()),
            metric_name: metric_names[i].clone(),
        };
        let started = Instant::now();
        client.get_metrics(request).await.expect("GetMetrics");
        get_metrics.push(started.elapsed());
    }
    get_metrics.sort();
    support::poll(&mut client, &measured)
        .await
        .expect("registered");
    let (loaded, loaded_missed) = activations_from_zero(
        &mut client,
        &measured,
        &publisher,
        &queue,
        loaded_activations,
        phase2.metrics_port,
    )
    .await;

    let connections: usize = support::rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "vhost",
        "client_properties",
    ])
    .lines()
    .filter(|line| {
        line.starts_with(&format!("{}\t", vhost.name))
            && line.contains("\"connection_name\",\"safecity-scaler\"")
    })
    .count();
    let opened = metrics_page(phase2.metrics_port)
        .await
        .lines()
        .find(|l| l.starts_with("safecity_scaler_broker_connections_opened_total"))
        .map(|l| l.rsplit(' ').next().unwrap_or("?").to_owned())
        .unwrap_or_default();
    let rss = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");
    let keda_polling = Duration::from_secs(30);
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);

    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| activation from zero p50 ({activations} activations, publish -> `true` on the stream) | {} | |",
        ms(p50)
    );
    println!("| activation from zero p99 | {} | <= 5 ms |", ms(p99));
    println!(
        "| activation from zero max | {} | |",
        ms(*latencies.last().expect("some"))
    );
    println!("| activations without a push within 5 s | {missed} | 0 |");
    println!(
        "| activation p50 / p99 with {scaled_objects} ScaledObjects + streams registered ({loaded_activations} activations) | {} / {} | |",
        ms(percentile(&loaded, 0.50)),
        ms(percentile(&loaded, 0.99))
    );
    println!("| ... without a push within 5 s | {loaded_missed} | 0 |");
    println!(
        "| GetMetrics p50 ({scaled_objects} ScaledObjects + streams, {get_metrics_calls} calls, client side) | {} | |",
        ms(percentile(&get_metrics, 0.50))
    );
    println!(
        "| GetMetrics p99 | {} | <= 1 ms |",
        ms(percentile(&get_metrics, 0.99))
    );
    println!(
        "| broker connections of the scaler (rabbitmqctl) / opened since start (metric) | {connections} / {opened} | 1 |"
    );
    println!(
        "| scaler RSS with {scaled_objects} ScaledObjects: now / peak | {:.1} MB / {:.1} MB | <= 50 MB |",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "| KEDA built-in RabbitMQ scaler activation delay | up to {} s (mean {} s) | |",
        keda_polling.as_secs(),
        keda_polling.as_secs() / 2
    );
    println!(
        "| ratio: KEDA worst case / our p99 | {:.0}x | |",
        keda_polling.as_secs_f64() / p99.as_secs_f64()
    );
    println!(
        "| ratio: KEDA mean / our p50 | {:.0}x | |",
        (keda_polling.as_secs_f64() / 2.0) / p50.as_secs_f64()
    );
    drop(phase2);
}
