//! Benchmark of the scaler binary against the real local RabbitMQ:
//! activation latency (publish → `true` on StreamIsActive), GetMetrics latency
//! with many ScaledObjects registered, broker connections opened, and RSS.
//!
//! `cargo bench -p safecity-scaler` (env: BENCH_ACTIVATIONS, default 1000;
//! BENCH_SCALED_OBJECTS, default 1000; BENCH_GET_METRICS, default 10000;
//! BENCH_GET_METRICS_CONCURRENCY, default 4; BENCH_LOADED_ACTIVATIONS, default 100).
//! Quick mode (`SAFECITY_BENCH_QUICK=1`): 100 activations, 2,000 GetMetrics,
//! 20 loaded activations, 2 s of idle watching, still 1,000 ScaledObjects.
//! With `SAFECITY_BENCH_ROWS` set, the headline measures are also appended
//! as rows for `safecity bench` (KEDA's 30 s `pollingInterval` is a
//! configured constant, not a measurement; the health Check is measured).
//!
//! The client runs on one thread (a current-thread runtime) so that it cannot
//! take both cores of a small machine from the scaler and the broker. GetMetrics
//! latency is measured twice after a warm-up of 1,000 calls: one request in
//! flight at a time, then a fixed number in flight on the one HTTP/2 connection
//! (KEDA multiplexes every ScaledObject's loop on one). Each is reported at the
//! client (loopback round trip, HTTP/2, protobuf, scheduling of both processes)
//! and at the server: the scaler's own `safecity_scaler_rpc_duration_seconds`
//! histogram (handler time), read from `/metrics` before and after the calls;
//! its buckets are 25 % apart, so the server quantiles are interpolated within
//! ±12.5 %.
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

use futures_util::StreamExt as _;
use lapin::BasicProperties;
use lapin::options::{
    BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use safecity_bench_rows::{Better, Row};
use safecity_events::EventType;
use safecity_events::topology::EVENTS_EXCHANGE;
use safecity_scaler::pb::GetMetricsRequest;
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use support::{ScalerVhost, TestVhost, scaled_object};

/// A size from the environment, else the full or the quick default.
fn env_count(name: &str, full: usize, quick: usize) -> usize {
    safecity_bench_rows::setting(name, full, quick)
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

/// CPU seconds (user + system) a process used so far (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces): utime, stime are 12 and 13.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

/// The broker's Erlang VM, for its CPU time.
fn broker_pid() -> Option<u32> {
    let output = Command::new("pgrep")
        .args(["-f", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A counter of the scaler's `/metrics` page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// What watching the registered queues costs while nothing happens.
struct IdleCost {
    seconds: f64,
    scaler_cores: f64,
    broker_cores: Option<f64>,
    rounds_per_second: f64,
    declares_per_second: f64,
}

async fn measure_idle(pid: u32, metrics_port: u16, seconds: u64) -> IdleCost {
    let broker = broker_pid();
    let before_page = metrics_page(metrics_port).await;
    let (scaler_before, broker_before) = (cpu_seconds(pid), broker.map(cpu_seconds));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let wall = started.elapsed().as_secs_f64();
    let after_page = metrics_page(metrics_port).await;
    let delta = |name: &str| counter(&after_page, name) - counter(&before_page, name);
    IdleCost {
        seconds: wall,
        scaler_cores: (cpu_seconds(pid) - scaler_before) / wall,
        broker_cores: broker
            .zip(broker_before)
            .map(|(p, b)| (cpu_seconds(p) - b) / wall),
        rounds_per_second: delta("safecity_scaler_depth_rounds_total") / wall,
        declares_per_second: delta("safecity_scaler_depth_declares_total") / wall,
    }
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
    /// The client's one HTTP/2 connection.
    channel: tonic::transport::Channel,
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
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
                .expect("endpoint")
                .tcp_nodelay(true);
        let client = loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        (
            ScalerProcess {
                process,
                metrics_port,
                channel: client.clone(),
            },
            ExternalScalerClient::new(client),
        )
    }
}

/// The cumulative buckets `(le, count)` of the scaler's handler-time histogram of `method`.
fn handler_histogram(page: &str, method: &str) -> Vec<(f64, u64)> {
    let method_label = format!("method=\"{method}\"");
    let mut buckets: Vec<(f64, u64)> = page
        .lines()
        .filter(|line| {
            line.starts_with("safecity_scaler_rpc_duration_seconds_bucket{")
                && line.contains(&method_label)
        })
        .map(|line| {
            let le = line
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("le label");
            let le: f64 = le.parse().expect("le is a number or +Inf");
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .expect("bucket count");
            (le, count)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(!buckets.is_empty(), "no {method} histogram on /metrics");
    buckets
}

/// Quantile `q` of the observations between two cumulative histograms,
/// interpolated linearly inside the bucket that holds it.
fn histogram_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Duration {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    let total = delta.last().map_or(0, |(_, c)| *c) as f64;
    let target = q * total;
    let mut lower = (0.0, 0.0);
    for (le, count) in delta {
        let count = count as f64;
        if count >= target && count > lower.1 {
            if le.is_infinite() {
                return Duration::from_secs_f64(lower.0);
            }
            let fraction = (target - lower.1) / (count - lower.1);
            return Duration::from_secs_f64(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Duration::from_secs_f64(lower.0)
}

/// GetMetrics latencies of one measured run.
struct GetMetricsRun {
    concurrency: usize,
    /// Sorted, as seen by the client.
    client: Vec<Duration>,
    server_p50: Duration,
    server_p99: Duration,
    /// Calls the server's histogram counted (must equal the calls made).
    server_count: u64,
    wall: Duration,
}

/// `calls` GetMetrics over `requests`, `concurrency` in flight on one connection.
async fn measure_get_metrics(
    client: &ExternalScalerClient<tonic::transport::Channel>,
    requests: &[GetMetricsRequest],
    calls: usize,
    concurrency: usize,
    metrics_port: u16,
) -> GetMetricsRun {
    let before = handler_histogram(&metrics_page(metrics_port).await, "GetMetrics");
    let started = Instant::now();
    let workers = (0..concurrency).map(|worker| {
        let mut client = client.clone();
        async move {
            let mine = (worker..calls).step_by(concurrency);
            let mut latencies = Vec::with_capacity(mine.len());
            for call in mine {
                let request = requests[call % requests.len()].clone();
                let sent = Instant::now();
                client.get_metrics(request).await.expect("GetMetrics");
                latencies.push(sent.elapsed());
            }
            latencies
        }
    });
    let mut latencies = futures_util::future::join_all(workers).await.concat();
    let wall = started.elapsed();
    latencies.sort();
    let after = handler_histogram(&metrics_page(metrics_port).await, "GetMetrics");
    GetMetricsRun {
        concurrency,
        client: latencies,
        server_p50: histogram_quantile(&before, &after, 0.50),
        server_p99: histogram_quantile(&before, &after, 0.99),
        server_count: after.last().map_or(0, |b| b.1) - before.last().map_or(0, |b| b.1),
        wall,
    }
}

/// The transport baseline: `calls` `grpc.health.v1.Health/Check` on the same
/// connection and server, 1 in flight. The handler reads a map; the rest is the
/// loopback HTTP/2 round trip and the scheduling both sides share with GetMetrics.
async fn measure_health_check(channel: &tonic::transport::Channel, calls: usize) -> Vec<Duration> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let request = tonic_health::pb::HealthCheckRequest {
            service: safecity_scaler::server::SERVICE_NAME.into(),
        };
        let sent = Instant::now();
        health.check(request).await.expect("health check");
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    latencies
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
    let body = safecity_events::CloudEvent::new(
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
        let idle_by = Instant::now() + Duration::from_secs(30);
        while client
            .is_active(object.clone())
            .await
            .expect("IsActive")
            .into_inner()
            .result
        {
            assert!(
                Instant::now() < idle_by,
                "activation round {round}: the scaler still says active after 30 s (queue `{queue}` not empty?)"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(safecity_scaler::server::MIN_PUSH_GAP).await;
        // Drop re-sent `true`s so the next message is this event's push.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), stream.message())
            .await
            .map(|m| m.ok().flatten())
        {}
        let started = Instant::now();
        let confirm = publisher
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "fire".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        let pushed = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
        // The push comes from the tap, possibly before the quorum queue stored
        // the event: purge only once the broker confirmed it (stored), so the
        // purge below always finds it.
        tokio::time::timeout(Duration::from_secs(10), confirm)
            .await
            .unwrap_or_else(|_| panic!("activation round {round}: no publisher confirm in 10 s"))
            .expect("confirm");
        match pushed {
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

/// The headline measures as rows for `safecity bench` (in ms).
fn emit_rows(
    activations: usize,
    scaled_objects: usize,
    latencies: &[Duration],
    health_baseline: &[Duration],
    get_metrics_runs: &[GetMetricsRun],
) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let keda = |what: &str| format!("KEDA pollingInterval 30 s, {what} (configured, not measured)");
    Row::new(
        "scaler",
        format!("activation from zero, p50 ({activations} activations)"),
        ms(percentile(latencies, 0.50)),
        "ms",
        Better::Lower,
    )
    .baseline(keda("mean wait"), 15_000.0)
    .emit()
    .expect("bench rows");
    Row::new(
        "scaler",
        format!("activation from zero, p99 ({activations} activations)"),
        ms(percentile(latencies, 0.99)),
        "ms",
        Better::Lower,
    )
    .baseline(keda("worst case"), 30_000.0)
    .target("p99 <= 5 ms")
    .emit()
    .expect("bench rows");
    for run in get_metrics_runs {
        Row::new(
            "scaler",
            format!(
                "GetMetrics p99, {} in flight, {scaled_objects} ScaledObjects ({} calls, client)",
                run.concurrency,
                run.client.len()
            ),
            ms(percentile(&run.client, 0.99)),
            "ms",
            Better::Lower,
        )
        .baseline(
            "grpc.health Check p99, 1 in flight, same connection",
            ms(percentile(health_baseline, 0.99)),
        )
        .target("p99 <= 1 ms")
        .emit()
        .expect("bench rows");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bench_started = Instant::now();
    let activations = env_count("BENCH_ACTIVATIONS", 1000, 100);
    let scaled_objects = env_count("BENCH_SCALED_OBJECTS", 1000, 1000);
    let get_metrics_calls = env_count("BENCH_GET_METRICS", 10_000, 2_000);
    let concurrency = env_count("BENCH_GET_METRICS_CONCURRENCY", 4, 4).max(1);
    let loaded_activations = env_count("BENCH_LOADED_ACTIVATIONS", 100, 20);
    let vhost = TestVhost::new("bench");
    let amqp = vhost.amqp().await;
    let queue = amqp.declare_function("bench-fire", EventType::Fire).await;
    let publisher = amqp.connection.create_channel().await.expect("channel");
    publisher
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
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
    // IsActive, and one StreamIsActive stream each, all on one HTTP/2
    // connection; 64 at a time, as KEDA's operator starts them concurrently.
    let others: Vec<_> = (0..scaled_objects)
        .map(|i| {
            scaled_object(
                &format!("so-{i}"),
                &[
                    ("eventType", others_types[i % 3]),
                    ("queue", &format!("bench.q.{i}")),
                ],
            )
        })
        .collect();
    let registered = Instant::now();
    futures_util::stream::iter(others.iter().cloned())
        .for_each_concurrent(64, |object| {
            let mut client = client.clone();
            async move {
                support::poll(&mut client, &object)
                    .await
                    .expect("registered");
                let mut stream = client
                    .stream_is_active(object)
                    .await
                    .expect("stream")
                    .into_inner();
                tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
            }
        })
        .await;
    let registration_time = registered.elapsed();
    // Let the first-sample wave settle, then measure what idle watching costs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = measure_idle(
        pid,
        phase2.metrics_port,
        env_count("BENCH_IDLE_SECONDS", 10, 2) as u64,
    )
    .await;
    let requests: Vec<GetMetricsRequest> = others
        .iter()
        .map(|o| GetMetricsRequest {
            scaled_object_ref: Some(o.clone()),
            metric_name: format!("pending-bench-q-{}", &o.name[3..]),
        })
        .collect();
    let spec = client
        .get_metric_spec(others[0].clone())
        .await
        .expect("spec")
        .into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, requests[0].metric_name);
    // Warm-up (connections, allocator, caches), then the measured runs.
    measure_get_metrics(&client, &requests, 1000, 1, phase2.metrics_port).await;
    measure_health_check(&phase2.channel, 1000).await;
    let health_baseline = measure_health_check(&phase2.channel, get_metrics_calls).await;
    let get_metrics_runs = [
        measure_get_metrics(
            &client,
            &requests,
            get_metrics_calls,
            1,
            phase2.metrics_port,
        )
        .await,
        measure_get_metrics(
            &client,
            &requests,
            get_metrics_calls,
            concurrency,
            phase2.metrics_port,
        )
        .await,
    ];
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
        "| baseline: grpc.health.v1 Check p50 / p99, 1 in flight, same connection ({} calls): client | {} / {} | |",
        health_baseline.len(),
        ms(percentile(&health_baseline, 0.50)),
        ms(percentile(&health_baseline, 0.99)),
    );
    for run in &get_metrics_runs {
        println!(
            "| GetMetrics p50 / p99, {} in flight ({scaled_objects} ScaledObjects + streams, {} calls): client | {} / {} | p99 <= 1 ms |",
            run.concurrency,
            run.client.len(),
            ms(percentile(&run.client, 0.50)),
            ms(percentile(&run.client, 0.99)),
        );
        println!(
            "| ... server handler time (scaler's histogram, {} calls counted) | {} / {} | p99 <= 1 ms |",
            run.server_count,
            ms(run.server_p50),
            ms(run.server_p99),
        );
        println!(
            "| ... client max; throughput; client p99 / baseline p99 | {}; {:.0} calls/s; {:.2}x | |",
            ms(*run.client.last().expect("some")),
            run.client.len() as f64 / run.wall.as_secs_f64(),
            percentile(&run.client, 0.99).as_secs_f64()
                / percentile(&health_baseline, 0.99).as_secs_f64(),
        );
    }
    println!(
        "| registering {scaled_objects} ScaledObjects (KEDA's first poll + stream, 64 at a time) | {:.1} s | |",
        registration_time.as_secs_f64()
    );
    println!(
        "| idle watching of {scaled_objects} queues ({:.0} s, default 500 ms interval): depth rounds/s achieved; passive declares/s | {:.2} (configured 2.00); {:.0} | >= 1.9 |",
        idle.seconds, idle.rounds_per_second, idle.declares_per_second
    );
    println!(
        "| ... CPU while idle: scaler; broker (beam.smp) | {:.3} cores; {} | |",
        idle.scaler_cores,
        idle.broker_cores
            .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.3} cores")),
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
    println!(
        "| ratio: KEDA polling interval / GetMetrics p99 (client, 1 in flight) | {:.0}x | |",
        keda_polling.as_secs_f64() / percentile(&get_metrics_runs[0].client, 0.99).as_secs_f64()
    );
    println!(
        "| bench wall time | {:.0} s | < 300 s |",
        bench_started.elapsed().as_secs_f64()
    );
    emit_rows(
        activations,
        scaled_objects,
        &latencies,
        &health_baseline,
        &get_metrics_runs,
    );
    drop(phase2);
}
