//! Consumer throughput of a safecity function against its baselines, on one broker, in one run.
//!
//! ```text
//! cargo bench -p safecity-runtime --bench throughput
//! ```
//!
//! For each queue type (quorum, the default of functions, and classic) the same
//! N small CloudEvents are queued, then drained by:
//!   (a) a no-op safecity function (full runtime: decode, span, metrics, ack),
//!   (b) a bare lapin consume-and-ack loop with the same prefetch, acks spawned
//!       concurrently like the runtime's (the ceiling),
//!   (c) a Python pika consumer with the same prefetch and manual ack.
//! Then a no-op function process is started to measure start-to-consuming and
//! idle RSS. Needs a local RabbitMQ with rabbitmqctl, and `.venv` with pika
//! (`scripts/python-peers.sh`). `SAFECITY_BENCH_EVENTS` overrides N (100000).
//!
//! Quick mode (`SAFECITY_BENCH_QUICK=1`): 10,000 events, one round. With
//! `SAFECITY_BENCH_ROWS` set, each a/b and a/c ratio is also appended as a
//! row for `safecity bench`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use safecity_bench_rows::{Better, Row};
use safecity_runtime::events::event::CLOUDEVENTS_JSON;
use safecity_runtime::events::topology::FunctionQueues;
use safecity_runtime::{
    CloudEvent, Context, EventType, Function, HandlerError, RuntimeConfig, Subscription,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PREFETCH: u16 = 256;
const VHOST: &str = "safecity-bench";

struct NoOp {
    handled: Arc<AtomicU64>,
    target: u64,
    done: Arc<Notify>,
}

impl Function for NoOp {
    type Input = CloudEvent<serde_json::Value>;

    fn name(&self) -> &str {
        "bench-noop"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Fire.into()]
    }

    async fn handle(&self, _event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
        Ok(())
    }
}

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

fn url() -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}")
}

fn config(queue_type: &str, http: &str) -> RuntimeConfig {
    let url = url();
    let concurrency = PREFETCH.to_string();
    RuntimeConfig::from_lookup(|name| match name {
        "SAFECITY_AMQP_URL" => Some(url.clone()),
        "SAFECITY_CONCURRENCY" => Some(concurrency.clone()),
        "SAFECITY_QUEUE_TYPE" => Some(queue_type.to_owned()),
        "SAFECITY_HTTP_ADDR" => Some(http.to_owned()),
        _ => None,
    })
    .expect("bench config")
}

async fn fill(channel: &Channel, queue: &str, n: u64) {
    let body = CloudEvent::new(
        "/cameras/bench",
        EventType::Fire,
        serde_json::json!({"camera": "bench-01", "score": 0.5}),
    )
    .to_json();
    let properties = BasicProperties::default().with_content_type(CLOUDEVENTS_JSON.into());
    for i in 0..n {
        let _pending = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
            .expect("publish");
        if i % 5_000 == 4_999 {
            channel.wait_for_confirms().await.expect("confirms");
        }
    }
    channel.wait_for_confirms().await.expect("confirms");
}

async fn bare_lapin(queue: &str, n: u64) -> Duration {
    let started = Instant::now();
    let connection = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    // Acks run concurrently, as in the runtime: awaiting each ack in turn would
    // make this "ceiling" slower than the function it bounds.
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut received = 0;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.expect("delivery");
        let (acked, done) = (acked.clone(), done.clone());
        tokio::spawn(async move {
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            if acked.fetch_add(1, Ordering::Relaxed) + 1 == n {
                done.notify_one();
            }
        });
        received += 1;
        if received == n {
            break;
        }
    }
    done.notified().await;
    let elapsed = started.elapsed();
    let _ = connection.close(200, "done".into()).await;
    elapsed
}

async fn safecity_function(queue_type: &str, n: u64) -> Duration {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = safecity_runtime::start(
        NoOp {
            handled: handled.clone(),
            target: n,
            done: done.clone(),
        },
        config(queue_type, "off"),
        stop.clone(),
    )
    .await
    .expect("start");
    done.notified().await;
    let elapsed = started.elapsed();
    stop.cancel();
    running.join().await.expect("stop");
    elapsed
}

fn pika(queue: &str, n: u64) -> Option<Duration> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = format!("{root}/.venv/bin/python");
    if !std::path::Path::new(&python).exists() {
        eprintln!("(c) skipped: {python} is missing; run scripts/python-peers.sh");
        return None;
    }
    let output = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/pika_consumer.py"
        ))
        .args([&url(), queue, &n.to_string(), &PREFETCH.to_string()])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "pika consumer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("seconds");
    Some(Duration::from_secs_f64(seconds))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Child mode: a no-op function process, for start-up time and idle RSS.
fn child_function() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let noop = NoOp {
            handled: Arc::default(),
            target: u64::MAX,
            done: Arc::default(),
        };
        safecity_runtime::run(noop).await.expect("run");
    });
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

fn http_status(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

fn startup_and_rss() -> (Duration, f64, u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let exe = std::env::current_exe().expect("bench binary");
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("--child-function")
        .env("SAFECITY_AMQP_URL", url())
        .env("SAFECITY_QUEUE_TYPE", "quorum")
        .env("SAFECITY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn child function");
    let ready_after = loop {
        if let Some((200, _)) = http_status(port, "/readyz") {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "child never ready"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(child.id());
    let internal = http_status(port, "/metrics")
        .and_then(|(_, text)| {
            text.lines()
                .find(|l| l.starts_with("safecity_start_to_consuming_seconds"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    (ready_after, internal, rss)
}

fn main() {
    if std::env::args().any(|a| a == "--child-function") {
        child_function();
        return;
    }
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --all-targets` runs benches as tests: nothing to test here.
    }
    let n: u64 = safecity_bench_rows::setting("SAFECITY_BENCH_EVENTS", 100_000, 10_000);
    let rounds: usize = if safecity_bench_rows::quick() { 1 } else { 3 };
    let _ = Command::new("rabbitmqctl")
        .args(["delete_vhost", VHOST])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    rabbitmqctl(&["add_vhost", VHOST]);
    rabbitmqctl(&["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]);
    safecity_shell::telemetry::init(safecity_shell::LogFormat::Text);

    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let queue = FunctionQueues::new("bench-noop").expect("name").work();
    println!(
        "safecity runtime throughput: {n} events of {} bytes, prefetch {PREFETCH}, one broker, median of {rounds} interleaved rounds",
        CloudEvent::new(
            "/cameras/bench",
            EventType::Fire,
            serde_json::json!({"camera": "bench-01", "score": 0.5})
        )
        .to_json()
        .len()
    );
    println!();
    println!(
        "| queue | (a) safecity no-op fn | (b) bare lapin loop | (c) Python pika | a/b | a/c |"
    );
    println!("|---|---|---|---|---|---|");
    for queue_type in ["quorum", "classic"] {
        let (a, b, c) = runtime.block_on(async {
            // Declares the function's topology (queue of this type), then stops.
            let stop = CancellationToken::new();
            let running = safecity_runtime::start(
                NoOp {
                    handled: Arc::default(),
                    target: u64::MAX,
                    done: Arc::default(),
                },
                config(queue_type, "off"),
                stop.clone(),
            )
            .await
            .expect("declare");
            while !running.is_ready() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.cancel();
            running.join().await.expect("stop");

            let connection = Connection::connect(&url(), ConnectionProperties::default())
                .await
                .expect("connect");
            let channel = connection.create_channel().await.expect("channel");
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirms");

            // Interleaved rounds, median of each: drift on a shared machine
            // hits all three contenders alike.
            let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                fill(&channel, &queue, n).await;
                a.push(safecity_function(queue_type, n).await);
                fill(&channel, &queue, n).await;
                b.push(bare_lapin(&queue, n).await);
                fill(&channel, &queue, n).await;
                if let Some(elapsed) = tokio::task::block_in_place(|| pika(&queue, n)) {
                    c.push(elapsed);
                }
            }
            let (a, b, c) = (median(a), median(b), (!c.is_empty()).then(|| median(c)));
            // Leave no queue of this type behind for the next round.
            for name in [
                queue.clone(),
                format!("{queue}.dead"),
                format!("{queue}.retry.1000ms"),
                format!("{queue}.retry.5000ms"),
                format!("{queue}.retry.30000ms"),
            ] {
                let _ = channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(200, "done".into()).await;
            (a, b, c)
        });
        let (ra, rb) = (rate(n, a), rate(n, b));
        let (c_text, ac_text) = match c {
            Some(c) => {
                let rc = rate(n, c);
                (format!("{rc:.0}/s"), format!("{:.2}x", ra / rc))
            }
            None => ("skipped".to_owned(), "-".to_owned()),
        };
        // The targets are the quorum queue's (the functions' default).
        let quorum = queue_type == "quorum";
        let row = |target: &str| {
            let row = Row::new(
                "runtime",
                format!("{queue_type} queue: no-op function, {n} events"),
                ra,
                "events/s",
                Better::Higher,
            );
            if quorum { row.target(target) } else { row }
        };
        row(">= 0.9x")
            .baseline("bare lapin consume+ack loop", rb)
            .emit()
            .expect("bench rows");
        let pika = "Python pika consumer";
        match c {
            Some(c) => row(">= 1.5x").baseline(pika, rate(n, c)),
            None => row(">= 1.5x").baseline_missing(pika, ".venv missing: scripts/python-peers.sh"),
        }
        .emit()
        .expect("bench rows");
        println!(
            "| {queue_type} | {ra:.0}/s | {rb:.0}/s | {c_text} | {:.2}x | {ac_text} |",
            ra / rb
        );
    }
    println!();
    let (ready_after, internal, rss) = startup_and_rss();
    println!("| function process (quorum queues) | value |");
    println!("|---|---|");
    println!(
        "| spawn to /readyz = 200 (1 ms polling) | {:.1} ms |",
        ready_after.as_secs_f64() * 1000.0
    );
    println!(
        "| runtime start to consuming (safecity_start_to_consuming_seconds) | {:.1} ms |",
        internal * 1000.0
    );
    println!("| idle RSS after 2 s | {:.1} MB |", rss as f64 / 1024.0);
    let _ = Command::new("rabbitmqctl")
        .args(["delete_vhost", VHOST])
        .stdout(Stdio::null())
        .status();
}
