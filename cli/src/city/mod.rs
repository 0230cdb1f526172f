//! `safecity up`: the whole city on this machine, run as FaaS.
//!
//! It starts the KEDA external scaler, the outbox (posts land here), the map
//! web, the logical CCTV with its scripted scenes, one motion gate per region
//! and the control API, and then **no function process at all**: the local
//! autoscaler ([`autoscaler`]) reads the ScaledObjects of
//! `manifests/overlays/local` and starts each function from zero when the
//! scaler pushes activation, sizes it with the HPA rule, and scales it back
//! to zero after its cooldown. The events COCO cannot see come from a
//! labelled injector ([`scenes`]).
//!
//! The terminal shows a live view ([`view`]); logs go to files. Ctrl-C stops
//! everything in order: cameras, gates, functions (they drain), the rest.
//! `--once` plays the scenes to the end, waits for every function to go
//! back to zero, prints the summary and the checks ([`summary`]) and exits
//! non-zero if one failed.

pub mod autoscaler;
pub mod control;
pub mod hpa;
pub mod observe;
pub mod plan;
pub mod process;
pub mod prometheus;
pub mod scaled_object;
pub mod scenes;
pub mod summary;
pub mod view;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use lapin::{Connection, ConnectionProperties};
use safecity_events::topology::{self, FunctionQueues, QueueType};
use safecity_events::{EventType, Publisher, Subscription};
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::autoscaler::{ReplicaSpec, Statuses};
use self::observe::{Observer, Snapshot};
use self::plan::{CAMERA_IDS, Plan, REGIONS, SCENE_FRAMES};
use self::process::Process;

/// Options of `safecity up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Play the scripted scenes to the end, print the summary and the checks,
    /// and exit (non-zero if a check failed).
    #[arg(long)]
    pub once: bool,
    /// The repository root (manifests, class map).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Where the release binaries are (default: next to this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The YOLO assets (scripts/fetch-yolo-assets.sh puts them in target/yolo-assets).
    #[arg(
        long,
        env = "SAFECITY_YOLO_ASSETS",
        default_value = "target/yolo-assets"
    )]
    pub assets: PathBuf,
    /// The kustomization whose ScaledObjects scale the functions.
    #[arg(long, default_value = "manifests/overlays/local")]
    pub scaled_objects: PathBuf,
    /// `kubectl` (for `kubectl kustomize`; default: PATH, then .venv/bin).
    #[arg(long, env = "SAFECITY_KUBECTL")]
    pub kubectl: Option<PathBuf>,
    /// The broker, `host:port`.
    #[arg(long, default_value = "127.0.0.1:5672")]
    pub amqp_host: String,
    /// The broker's management API (guest/guest).
    #[arg(long, default_value = "http://guest:guest@127.0.0.1:15672")]
    pub management: String,
    /// The city's virtual host (recreated at start, deleted at the end).
    #[arg(long, default_value = "safecity-city")]
    pub vhost: String,
    /// With `--once`: also write the checks and the facts behind them as
    /// JSON to this file.
    #[arg(long, requires = "once")]
    pub report: Option<PathBuf>,
    /// The longest wait for any one step of `--once`.
    #[arg(long, default_value = "180s", value_parser = safecity_shell::env::parse_duration)]
    pub timeout: Duration,
}

/// The long-running (never scaled) processes, in start order.
struct Services {
    running: Vec<Process>,
}

impl Services {
    /// Stops the newest first (cameras before the functions they feed).
    async fn stop_all(&mut self) {
        while let Some(process) = self.running.pop() {
            let name = process.spec.name.clone();
            let status = process.stop(Duration::from_secs(30)).await;
            println!("   {name:<14} {status}");
        }
    }
}

/// The functions the local city scales: each Deployment's subscriptions,
/// declared before anything runs so that no event is unroutable while a
/// function is at zero (it has never run yet on a fresh virtual host).
fn topology_of(deployment: &str) -> Vec<Subscription> {
    match deployment {
        "detector" => vec![Subscription::Frames { region: None }],
        "map-pin" => vec![EventType::Accident.into()],
        "fire-post" => vec![EventType::Fire.into()],
        "caption" => vec![EventType::Gun.into(), EventType::Knife.into()],
        _ => Vec::new(),
    }
}

/// The retry delays the local functions run with (SAFECITY_RETRY_DELAYS in the plan).
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

fn kubectl(args: &UpArgs) -> PathBuf {
    if let Some(path) = &args.kubectl {
        return path.clone();
    }
    let venv = args.root.join(".venv/bin/kubectl");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("kubectl")
    }
}

async fn management(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let mut request = http.request(method, format!("{}{path}", base.trim_end_matches('/')));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| {
        format!("the management API at {base}: is RabbitMQ running (scripts/ensure-rabbitmq.sh)?")
    })?;
    if !response.status().is_success() && response.status() != reqwest::StatusCode::NOT_FOUND {
        bail!("management API {path}: HTTP {}", response.status());
    }
    Ok(())
}

/// A fresh virtual host for the city, `guest` allowed.
async fn fresh_vhost(http: &reqwest::Client, plan: &Plan) -> anyhow::Result<()> {
    let vhost = observe::urlencode(&plan.vhost);
    management(
        http,
        &plan.management,
        reqwest::Method::DELETE,
        &format!("/api/vhosts/{vhost}"),
        None,
    )
    .await?;
    management(
        http,
        &plan.management,
        reqwest::Method::PUT,
        &format!("/api/vhosts/{vhost}"),
        None,
    )
    .await?;
    management(
        http,
        &plan.management,
        reqwest::Method::PUT,
        &format!("/api/permissions/{vhost}/guest"),
        Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
    )
    .await
}

/// Runs the local city; the exit code is 1 when `--once` found a failed check.
pub async fn up(args: UpArgs) -> anyhow::Result<i32> {
    let bin = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the binary's folder")?
            .to_owned(),
    };
    let root = std::fs::canonicalize(&args.root).context("--root")?;
    let assets = root.join(&args.assets);
    for file in [
        "yolov4-tiny.cfg",
        "yolov4-tiny.weights",
        "coco.names",
        "bus.jpg",
        "zidane.jpg",
    ] {
        if !assets.join(file).is_file() {
            bail!(
                "{} is missing: run scripts/fetch-yolo-assets.sh",
                assets.join(file).display()
            );
        }
    }
    let scaled_objects = scaled_object::render(&kubectl(&args), &root.join(&args.scaled_objects))?;
    let plan = Plan::new(
        root.clone(),
        bin,
        assets,
        args.amqp_host.clone(),
        args.management.clone(),
        args.vhost.clone(),
    )?;
    let logs = plan.logs();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    println!("==> safecity up: logs in {}", logs.display());
    fresh_vhost(&http, &plan).await?;

    // The topology first: on a fresh vhost no function has declared its queue.
    let connection = Connection::connect(&plan.amqp_url(), ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let publisher = Publisher::open(&connection).await?;
    for so in &scaled_objects {
        let subscriptions = topology_of(&so.target);
        if subscriptions.is_empty() {
            continue;
        }
        topology::declare_function(
            publisher.channel(),
            &FunctionQueues::new(&so.target)?,
            &subscriptions,
            QueueType::Quorum,
            &RETRY_DELAYS,
        )
        .await?;
    }

    let cancel = CancellationToken::new();
    let mut services = Services {
        running: Vec::new(),
    };
    let started = start_city(&plan, &mut services, &http, &scaled_objects, &logs, &cancel).await;
    let result = match started {
        Ok((statuses, observer)) => {
            run_city(&args, &plan, &publisher, &statuses, &observer, &cancel).await
        }
        Err(error) => Err(error),
    };
    println!("==> stopping: cameras and gates, then the functions (they drain), then the rest");
    stop_city(&mut services, &cancel).await;
    let _ = connection.close(200, "safecity up ends".into()).await;
    let _ = std::fs::remove_file(control::discovery_file());
    let vhost = observe::urlencode(&plan.vhost);
    let _ = management(
        &http,
        &plan.management,
        reqwest::Method::DELETE,
        &format!("/api/vhosts/{vhost}"),
        None,
    )
    .await;
    println!("==> logs kept in {}", logs.display());
    result
}

/// Everything but the functions, then one controller per ScaledObject.
async fn start_city(
    plan: &Plan,
    services: &mut Services,
    http: &reqwest::Client,
    scaled_objects: &[scaled_object::ScaledObject],
    logs: &std::path::Path,
    cancel: &CancellationToken,
) -> anyhow::Result<(Statuses, Observer)> {
    for (spec, ready) in [
        (plan.scaler(), "/healthz"),
        (plan.outbox(), "/healthz"),
        (plan.map(), "/healthz"),
    ] {
        println!("==> starting {}", spec.name);
        let mut process = Process::spawn(spec, logs)?;
        process.ready(http, ready, Duration::from_secs(60)).await?;
        services.running.push(process);
    }
    let channel = tonic::transport::Endpoint::from_shared(Plan::local(plan.ports.scaler_grpc))?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to the scaler")?;
    let client = ExternalScalerClient::new(channel);
    let statuses: Statuses = Arc::new(Mutex::new(BTreeMap::new()));
    for so in scaled_objects {
        let deployment = so.target.clone();
        let replica_plan = plan.clone();
        if replica_plan.replica(&deployment, 0, 1).is_none() {
            println!(
                "    (no local process for Deployment `{deployment}`: ScaledObject {} not run)",
                so.name
            );
            continue;
        }
        let spec: ReplicaSpec = Arc::new(move |index, port| {
            replica_plan
                .replica(&deployment, index, port)
                .expect("checked above")
        });
        tokio::spawn(autoscaler::control(
            so.clone(),
            spec,
            client.clone(),
            logs.to_owned(),
            statuses.clone(),
            cancel.clone(),
        ));
        println!(
            "==> {} scales `{}` from zero (cooldown {} s, polling {} s, at most {} replicas)",
            so.name,
            so.target,
            so.cooldown.as_secs(),
            so.polling_interval.as_secs(),
            so.max_replicas
        );
    }
    let observer = Observer::new(plan.clone(), statuses.clone());
    tokio::spawn(observer.clone().run(Duration::from_secs(1), cancel.clone()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", plan.ports.control)).await?;
    tokio::spawn(control::serve(
        listener,
        statuses.clone(),
        observer.clone(),
        plan.scrape_targets(),
        cancel.clone(),
    ));
    std::fs::write(
        control::discovery_file(),
        serde_json::to_string(&control::Discovery {
            control: Plan::local(plan.ports.control),
            amqp_url: plan.amqp_url(),
            work: plan.work.display().to_string(),
            pid: std::process::id(),
        })?,
    )?;
    println!("==> starting the logical CCTV and a motion gate per region");
    let mut cctv = Process::spawn(plan.cctv(), logs)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = cctv.exited() {
        bail!(
            "cctv-sim exited ({status}); its log: {}",
            cctv.log.display()
        );
    }
    services.running.push(cctv);
    for region in REGIONS {
        let mut gate = Process::spawn(plan.gate(region), logs)?;
        gate.ready(http, "/readyz", Duration::from_secs(60)).await?;
        services.running.push(gate);
    }
    println!(
        "    map: {}/   outbox: {}/posts",
        Plan::local(plan.ports.map),
        Plan::local(plan.ports.outbox)
    );
    Ok((statuses, observer))
}

async fn stop_city(services: &mut Services, cancel: &CancellationToken) {
    // Cameras and gates first (the newest), then the functions, then the rest.
    let mut rest: Vec<Process> = Vec::new();
    while let Some(process) = services.running.pop() {
        if ["cctv-sim", "gate-seoul", "gate-daejeon"].contains(&process.spec.name.as_str()) {
            let name = process.spec.name.clone();
            println!(
                "   {name:<14} {}",
                process.stop(Duration::from_secs(30)).await
            );
        } else {
            rest.push(process);
        }
    }
    cancel.cancel();
    // The controllers scale every function to zero: give the drains time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    services.running = rest.into_iter().rev().collect();
    services.stop_all().await;
}

async fn wait_for(
    what: &str,
    observer: &Observer,
    timeout: Duration,
    mut done: impl FnMut(&Snapshot) -> bool,
) -> anyhow::Result<Snapshot> {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = observer.refresh().await;
        if done(&snapshot) {
            return Ok(snapshot);
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_city(
    args: &UpArgs,
    plan: &Plan,
    publisher: &Publisher,
    statuses: &Statuses,
    observer: &Observer,
    cancel: &CancellationToken,
) -> anyhow::Result<i32> {
    let injected = scenes::inject(publisher).await?;
    let labels: Vec<String> = injected.iter().map(|i| i.label.clone()).collect();
    for label in &labels {
        println!("    injected: {label}");
    }
    if !args.once {
        return live(plan, observer, cancel).await;
    }
    println!("==> the scenes play: {SCENE_FRAMES} frames per camera at 10 frames/s");
    wait_for("the camera scenes to end", observer, args.timeout, |s| {
        CAMERA_IDS.iter().all(|camera| {
            s.gates.values().fold(0.0, |total, p| {
                total + p.sum("safecity_gate_frames_read_total", &[("camera", camera)])
            }) >= SCENE_FRAMES as f64
        })
    })
    .await?;
    println!("==> the gates drain, the detector and the functions work through it all");
    wait_for("every queue to empty", observer, args.timeout, |s| {
        let drained = s.gates.values().all(|p| {
            p.sum("safecity_gate_frames_forwarded_total", &[])
                == p.sum("safecity_gate_frames_published_total", &[])
                    + p.sum("safecity_gate_frames_dropped_total", &[])
        });
        drained
            && summary::SCALED.iter().all(|f| s.pending(f) == 0)
            && summary::SCALED.iter().all(|f| {
                s.status
                    .values()
                    .any(|st| st.deployment == *f && st.activations >= 1)
            })
    })
    .await?;
    println!("==> every function goes back to zero after its cooldown");
    let snapshot = wait_for(
        "every function to scale to zero",
        observer,
        args.timeout,
        |s| s.status.values().all(|st| st.replicas == 0),
    )
    .await?;
    let _ = statuses;
    let (text, checks) = summary::summarize(&snapshot, &labels);
    println!("\n{text}");
    if let Some(path) = &args.report {
        let report = summary::report(&snapshot, checks.clone());
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        println!("\n{failed} check(s) failed");
        return Ok(1);
    }
    println!("\nall {} checks passed", checks.len());
    Ok(0)
}

/// The live view until Ctrl-C.
async fn live(plan: &Plan, observer: &Observer, cancel: &CancellationToken) -> anyhow::Result<i32> {
    let stop = safecity_shell::signals::on_signals();
    let terminal = std::io::stdout().is_terminal();
    let header = format!(
        "safecity up: the local city (vhost `{}`)   map {}/   outbox {}/posts",
        plan.vhost,
        Plan::local(plan.ports.map),
        Plan::local(plan.ports.outbox)
    );
    let footer = format!(
        "logs: {}   `safecity status`, `safecity coldstart <function>` in another terminal; Ctrl-C stops",
        plan.logs().display()
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut printed = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(0),
            () = cancel.cancelled() => return Ok(0),
            _ = tick.tick() => {
                let screen = view::render(&observer.snapshot(), &header, &footer);
                if terminal {
                    view::redraw(&screen);
                } else if printed.elapsed() >= Duration::from_secs(10) {
                    println!("{screen}");
                    printed = Instant::now();
                }
            }
        }
    }
}
