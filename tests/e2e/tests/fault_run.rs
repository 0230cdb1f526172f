//! The fault run: thousands of events through functions scaled as FaaS
//! while the broker closes every component's connection, replicas are
//! SIGKILLed at random (the autoscaler starts others, as a Deployment
//! would), the webhook loses answers and connections, and the HPA scales in
//! with SIGTERM while work is still queued. Bad inputs are sprinkled through
//! the stream. Afterwards every published message is accounted for by its
//! id: handled (a pin row, an outbox post, a probe record, an acked frame)
//! or dead-lettered with a reason, and nothing was pinned or posted twice.
//!
//! Everything is real: RabbitMQ, PostgreSQL (the map and the post ledger,
//! shared by replicas), the scaler (in-process), the `map-pin`, `fire-post`,
//! `detector` and `probe-function` binaries, and the signed-webhook receiver
//! on loopback. 600 events in the normal test run; 10,000 with
//! `SAFECITY_SLOW_TESTS=1`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lapin::{BasicProperties, Connection, ConnectionProperties};
use nix::sys::signal::Signal;
use safecity_cli::city::hpa::Behavior;
use safecity_e2e::{MiniCity, build_binaries, probe_object, root};
use safecity_events::dead_letter::header;
use safecity_events::event::CLOUDEVENTS_JSON;
use safecity_events::headers::get_str;
use safecity_events::topology::{EVENTS_EXCHANGE, FunctionQueues};
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, Frame, FrameSize, Publisher, SafetyEvent,
    Subscription,
};
use safecity_social::testkit::{FakeWebhook, TestDatabase};
use tokio::time::Instant;

const PUBLISHER: &str = "safecity-fault-run-publisher";
const SECRET: &str = "fault-run-webhook-secret";
const PROBE: &str = env!("CARGO_BIN_EXE_probe-function");

/// What one published message is, and so where it must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A valid accident event: one pin.
    Accident,
    /// A valid fire event: one post.
    Fire,
    /// A valid gun event: one probe record.
    Gun,
    /// A good frame: analysed and acked.
    GoodFrame,
    /// Malformed JSON, an unknown type, a missing id, a wrong content type:
    /// dead-lettered by the runtime.
    BadEvent,
    /// A cut, damaged, oversized or header-inflated JPEG: dead-lettered by
    /// the detector.
    BadFrame,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Accident => "accident -> map-pin",
            Kind::Fire => "fire -> fire-post",
            Kind::Gun => "gun -> probe",
            Kind::GoodFrame => "good frame -> detector",
            Kind::BadEvent => "bad event",
            Kind::BadFrame => "bad frame -> detector",
        }
    }

    fn dead_letters(self) -> bool {
        matches!(self, Kind::BadEvent | Kind::BadFrame)
    }
}

fn safety_event(event_type: EventType, incident: &str) -> SafetyEvent {
    SafetyEvent {
        event_type,
        incident_id: incident.to_owned(),
        camera: Camera {
            id: "busan-haeundae-07".to_owned(),
            region: "busan".to_owned(),
            latitude: 35.1587,
            longitude: 129.1604,
        },
        detections: vec![Detection {
            class: event_type.as_str().to_owned(),
            confidence: 0.9,
            bounding_box: BoundingBox {
                x: 10.0,
                y: 10.0,
                width: 50.0,
                height: 50.0,
            },
        }],
        captured_at: chrono::Utc::now(),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: None,
        frame_age: None,
    }
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(root().join("target/yolo-assets").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}: run scripts/fetch-yolo-assets.sh"))
}

/// The four kinds of hostile JPEG, by `n`.
fn bad_jpeg(n: usize, good: &[u8]) -> Vec<u8> {
    match n % 4 {
        // Cut in half: no end-of-image marker.
        0 => good[..good.len() / 2].to_vec(),
        // Damaged entropy data.
        1 => {
            let mut damaged = good.to_vec();
            let scan = damaged
                .windows(2)
                .position(|w| w == [0xFF, 0xDA])
                .expect("a scan");
            let middle = scan + (damaged.len() - scan) / 2;
            for byte in &mut damaged[middle..middle + 300] {
                *byte = 0xFE;
            }
            damaged
        }
        // Over the detector's byte limit (1 MiB here).
        2 => {
            let mut big = good[..good.len() - 2].to_vec();
            big.resize(1_600_000, 0x55);
            big.extend([0xFF, 0xD9]);
            big
        }
        // A frame header claiming 60000x60000 pixels.
        _ => {
            let mut inflated = good.to_vec();
            let sof = inflated
                .windows(2)
                .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
                .expect("a frame header");
            inflated[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
            inflated[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
            inflated
        }
    }
}

/// The four kinds of bad event, by `n`: (routing key, body, content type).
fn bad_event(n: usize, id: &str) -> (&'static str, Vec<u8>, &'static str) {
    match n % 4 {
        0 => ("accident", b"{\"specversion\":\"1.0\",\"id\":".to_vec(), CLOUDEVENTS_JSON),
        1 => (
            "fire",
            format!(
                r#"{{"specversion":"1.0","id":"{id}","type":"com.example.unknown","source":"/x","time":"2026-12-07T00:00:00Z","data":{{}}}}"#
            )
            .into_bytes(),
            CLOUDEVENTS_JSON,
        ),
        2 => (
            "accident",
            br#"{"specversion":"1.0","type":"accident","source":"/x","data":{}}"#.to_vec(),
            CLOUDEVENTS_JSON,
        ),
        _ => ("gun", b"<xml>not an event</xml>".to_vec(), "application/xml"),
    }
}

/// The publishing side: a confirm-mode channel on its own named connection
/// (the faults spare it, so that no publish is ambiguous).
struct Source {
    _connection: Connection,
    publisher: Publisher,
    good_frame: Vec<u8>,
}

impl Source {
    async fn open(url: &str) -> Self {
        let connection = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name(PUBLISHER.into()),
        )
        .await
        .expect("the publisher connects");
        let publisher = Publisher::open(&connection).await.expect("confirm channel");
        Source {
            _connection: connection,
            publisher,
            good_frame: photo("zidane.jpg"),
        }
    }

    /// Publishes message `n` of kind `kind`; returns its id.
    async fn publish(&self, n: usize, kind: Kind) -> String {
        let id = format!("fault-{n:05}");
        match kind {
            Kind::Accident | Kind::Fire | Kind::Gun => {
                let event_type = match kind {
                    Kind::Accident => EventType::Accident,
                    Kind::Fire => EventType::Fire,
                    _ => EventType::Gun,
                };
                let mut cloud =
                    safety_event(event_type, &format!("incident-{id}")).into_cloud_event();
                cloud.attributes.id = id.clone();
                self.publisher
                    .publish_event(&cloud)
                    .await
                    .expect("routed and confirmed");
            }
            Kind::BadEvent => {
                let (routing_key, body, content_type) = bad_event(n / 20, &id);
                self.publisher
                    .publish(
                        EVENTS_EXCHANGE,
                        routing_key,
                        &body,
                        BasicProperties::default()
                            .with_content_type(content_type.into())
                            .with_message_id(id.as_str().into())
                            .with_delivery_mode(2),
                    )
                    .await
                    .expect("routed and confirmed");
            }
            Kind::GoodFrame | Kind::BadFrame => {
                let jpeg = if kind == Kind::GoodFrame {
                    self.good_frame.clone()
                } else {
                    bad_jpeg(n / 20, &self.good_frame)
                };
                let frame = Frame {
                    camera: Camera {
                        id,
                        region: "busan".to_owned(),
                        latitude: 35.1,
                        longitude: 129.0,
                    },
                    captured_at: chrono::Utc::now(),
                    sequence: n as u64,
                    jpeg,
                };
                self.publisher
                    .publish_frame(&frame)
                    .await
                    .expect("routed and confirmed");
                return frame.camera.id;
            }
        }
        id
    }
}

/// Message `n`'s kind: 40 % accidents, 20 % fires, 30 % guns, 10 % bad
/// events; every 25th a frame (good or bad) instead.
fn kind_of(n: usize) -> Kind {
    if n % 25 == 24 {
        return if (n / 25).is_multiple_of(3) {
            Kind::GoodFrame
        } else {
            Kind::BadFrame
        };
    }
    match n % 20 {
        0..=7 => Kind::Accident,
        8..=11 => Kind::Fire,
        12..=17 => Kind::Gun,
        _ => Kind::BadEvent,
    }
}

/// A ScaledObject that scales in quickly, so that scale-ins happen while
/// work is still queued.
fn fast(
    name: &str,
    event_type: EventType,
    max: u32,
) -> safecity_cli::city::scaled_object::ScaledObject {
    let mut so = probe_object(
        name,
        event_type,
        Duration::from_secs(1),
        Duration::from_secs(3),
        max,
    );
    let mut behavior = Behavior::default();
    behavior.scale_down.stabilization = Duration::from_secs(1);
    so.behavior = behavior;
    so
}

/// Every dead letter of `function`: message id (or camera for frames) ->
/// (reason, copies). A dead letter whose publish confirm was lost with its
/// connection is published again after the redelivery: at-least-once, so a
/// second copy of the same id is possible and counted, never a loss.
async fn dead_letters(city: &MiniCity, function: &str) -> BTreeMap<String, (String, usize)> {
    let client = city.vhost.client().await;
    let queue = FunctionQueues::new(function).expect("name").dead_letter();
    let mut out = BTreeMap::new();
    while let Some(message) = client.get(&queue).await {
        let properties = &message.delivery.properties;
        let headers = properties.headers().as_ref();
        let id = properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            // A frame: its camera (each test frame has its own).
            .or_else(|| {
                get_str(headers, safecity_events::frame::header::CAMERA_ID).map(str::to_owned)
            })
            .unwrap_or_else(|| format!("unidentified-{}", out.len()));
        let reason = get_str(headers, header::DEAD_LETTER_REASON)
            .unwrap_or_default()
            .to_owned();
        out.entry(id).or_insert((reason, 0)).1 += 1;
    }
    out
}

async fn pins(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("the map database");
    let rows: Vec<(String,)> = sqlx::query_as("SELECT incident_id FROM pins")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.into_iter().map(|(id,)| id).collect()
}

/// The faults, until `stop`: every 0.4-1.2 s one of them, in turn.
async fn inject_faults(
    city: Arc<MiniCity>,
    webhook: FakeWebhook,
    stop: Arc<AtomicBool>,
    log: Arc<FaultLog>,
) {
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(400 + (round * 337 % 800) as u64)).await;
        round += 1;
        match round % 5 {
            0 | 3 => {
                let closed = city.close_connections_except(PUBLISHER).await;
                log.connections_closed.fetch_add(closed, Ordering::Relaxed);
                if closed > 0 {
                    log.connection_rounds.fetch_add(1, Ordering::Relaxed);
                }
            }
            1 | 4 => {
                let function =
                    ["map-pin", "fire-post", "probe-gun", "detector"][(round / 5 + round % 2) % 4];
                if city
                    .signal_replica(function, round, Signal::SIGKILL)
                    .is_some()
                {
                    log.killed.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                if round.is_multiple_of(2) {
                    webhook.lose_answer_next(1);
                } else {
                    webhook.drop_connection_next(1);
                }
                log.webhook_faults.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Debug, Default)]
struct FaultLog {
    connection_rounds: AtomicUsize,
    connections_closed: AtomicUsize,
    killed: AtomicUsize,
    webhook_faults: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_handled_or_dead_lettered_exactly_once_through_broker_faults_and_killed_replicas()
 {
    let slow = std::env::var("SAFECITY_SLOW_TESTS").is_ok_and(|v| v == "1");
    let total = if slow { 10_000 } else { 600 };
    let bin = build_binaries();
    let mut city = MiniCity::start("e2e-fault").await;
    let map_db = TestDatabase::create("fault_map").await;
    let post_db = TestDatabase::create("fault_posts").await;
    let webhook = FakeWebhook::start(SECRET).await;
    let secret_file = city.logs.join("webhook.secret");
    std::fs::write(&secret_file, SECRET).expect("secret file");
    let assets = root().join("target/yolo-assets");
    let asset = |name: &str| assets.join(name).display().to_string();

    city.declare("map-pin", &[EventType::Accident.into()]).await;
    city.declare("fire-post", &[EventType::Fire.into()]).await;
    city.declare("probe-gun", &[EventType::Gun.into()]).await;
    city.declare("detector", &[Subscription::Frames { region: None }])
        .await;

    let map_pin = city.binary_spec(
        &bin.join("map-pin"),
        "map-pin",
        &[("DATABASE_URL", map_db.url.clone())],
    );
    city.scale(fast("map-pin", EventType::Accident, 4), map_pin);
    let fire_post = city.binary_spec(
        &bin.join("fire-post"),
        "fire-post",
        &[
            ("DATABASE_URL", post_db.url.clone()),
            ("SAFECITY_NOTIFIER", "webhook".to_owned()),
            ("SAFECITY_WEBHOOK_URL", webhook.url()),
            (
                "SAFECITY_WEBHOOK_SECRET_FILE",
                secret_file.display().to_string(),
            ),
            ("SAFECITY_STORM_MAX_POSTS", "1000000".to_owned()),
        ],
    );
    city.scale(fast("fire-post", EventType::Fire, 4), fire_post);
    let record = city.logs.join("probe-gun.ids");
    let probe = city.probe_spec(
        Path::new(PROBE),
        "probe-gun",
        EventType::Gun,
        Duration::from_millis(5),
        &[
            ("PROBE_RECORD", &record.display().to_string()),
            ("SAFECITY_RETRY_DELAYS", "200ms,400ms,800ms"),
        ],
    );
    city.scale(fast("probe-gun", EventType::Gun, 4), probe);
    let detector = city.binary_spec(
        &bin.join("detector"),
        "detector",
        &[
            ("SAFECITY_DETECTOR_CFG", asset("yolov4-tiny.cfg")),
            ("SAFECITY_DETECTOR_WEIGHTS", asset("yolov4-tiny.weights")),
            ("SAFECITY_DETECTOR_NAMES", asset("coco.names")),
            (
                "SAFECITY_DETECTOR_CLASSES",
                root()
                    .join("functions/detector/classes.coco.toml")
                    .display()
                    .to_string(),
            ),
            ("SAFECITY_DETECTOR_MAX_FRAME_BYTES", "1MiB".to_owned()),
        ],
    );
    // As manifests/base/detector.yaml: pending frames (not tapped).
    let mut detector_object = fast("detector", EventType::Accident, 1);
    detector_object.triggers[0]
        .metadata
        .insert("eventType".to_owned(), "frames".to_owned());
    city.scale(detector_object, detector);

    let city = Arc::new(city);
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(FaultLog::default());
    let faults = tokio::spawn(inject_faults(
        city.clone(),
        webhook.clone(),
        stop.clone(),
        log.clone(),
    ));

    // Publish at a steady pace, so that the faults land throughout.
    let source = Source::open(&city.vhost.url).await;
    let pace = Duration::from_secs_f64(if slow { 60.0 } else { 20.0 } / total as f64);
    let started = Instant::now();
    let mut published: BTreeMap<String, Kind> = BTreeMap::new();
    for n in 0..total {
        let kind = kind_of(n);
        let id = source.publish(n, kind).await;
        published.insert(id, kind);
        let due = started + pace * (n as u32 + 1);
        tokio::time::sleep_until(due).await;
    }
    let published_in = started.elapsed();

    // Wait until every handled kind shows all its messages.
    let count = |kind: Kind| published.values().filter(|k| **k == kind).count();
    let deadline = Instant::now() + Duration::from_secs(if slow { 900 } else { 300 });
    let mut last_report = Instant::now();
    loop {
        let pinned = pins(&map_db.url).await.len();
        let posted: BTreeSet<String> = webhook
            .posts()
            .into_iter()
            .map(|p| p.idempotency_key)
            .collect();
        let recorded: BTreeSet<String> = std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let client = city.vhost.client().await;
        let mut dead = 0;
        for function in ["map-pin", "fire-post", "probe-gun", "detector"] {
            dead += client
                .ready_count(&FunctionQueues::new(function).expect("name").dead_letter())
                .await as usize;
        }
        let frames_left = client
            .ready_count(&FunctionQueues::new("detector").expect("name").work())
            .await;
        if pinned >= count(Kind::Accident)
            && posted.len() >= count(Kind::Fire)
            && recorded.len() >= count(Kind::Gun)
            && dead >= count(Kind::BadEvent) + count(Kind::BadFrame)
            && frames_left == 0
        {
            break;
        }
        let progress = format!(
            "{pinned}/{} pins, {}/{} posts, {}/{} probe records, {dead}/{} dead letters, {frames_left} frames queued",
            count(Kind::Accident),
            posted.len(),
            count(Kind::Fire),
            recorded.len(),
            count(Kind::Gun),
            count(Kind::BadEvent) + count(Kind::BadFrame),
        );
        if Instant::now() > deadline {
            // Reconcile anyway: the table below names what is missing.
            println!("not everything arrived in time: {progress}");
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!("waiting: {progress}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    faults.await.expect("the fault task");
    // The functions go back to zero (nothing left in flight), then the
    // queues are read: a late redelivery would show up now.
    let zero_deadline = Instant::now() + Duration::from_secs(120);
    while ["map-pin", "fire-post", "probe-gun", "detector"]
        .iter()
        .any(|f| city.status(f).replicas > 0)
    {
        if Instant::now() > zero_deadline {
            println!("the functions did not go back to zero");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Reconcile by id.
    let pinned = pins(&map_db.url).await;
    let posts = webhook.posts();
    let recorded_lines: Vec<String> = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let recorded: BTreeSet<&str> = recorded_lines.iter().map(String::as_str).collect();
    let mut dead: HashMap<String, (String, String)> = HashMap::new();
    let mut extra_copies = 0;
    for function in ["map-pin", "fire-post", "probe-gun", "detector"] {
        for (id, (reason, copies)) in dead_letters(&city, function).await {
            extra_copies += copies - 1;
            assert!(
                dead.insert(id.clone(), (function.to_owned(), reason))
                    .is_none(),
                "{id} dead-lettered by two functions"
            );
        }
    }
    let pinned_set: BTreeSet<&str> = pinned.iter().map(String::as_str).collect();
    assert_eq!(pinned_set.len(), pinned.len(), "an incident pinned twice");
    let mut post_incidents: BTreeMap<String, usize> = BTreeMap::new();
    for post in &posts {
        let incident = post
            .idempotency_key
            .strip_prefix("fire-post-")
            .unwrap_or(&post.idempotency_key)
            .to_owned();
        *post_incidents.entry(incident).or_default() += 1;
    }
    let replays: u32 = posts.iter().map(|p| p.replays).sum();

    // kind -> (published, handled, dead-lettered, lost, wrongly handled)
    let mut table: BTreeMap<Kind, [usize; 5]> = BTreeMap::new();
    let mut lost = Vec::new();
    for (id, kind) in &published {
        let row = table.entry(*kind).or_default();
        row[0] += 1;
        let incident = format!("incident-{id}");
        let handled = match kind {
            Kind::Accident => pinned_set.contains(incident.as_str()),
            Kind::Fire => post_incidents.contains_key(&incident),
            Kind::Gun => recorded.contains(id.as_str()),
            // Gone from the queue (checked above) and not dead-lettered: acked.
            Kind::GoodFrame => !dead.contains_key(id),
            Kind::BadEvent | Kind::BadFrame => false,
        };
        let dead_lettered = dead.get(id);
        if handled {
            row[1] += 1;
        }
        if let Some((_, reason)) = dead_lettered {
            row[2] += 1;
            assert!(
                !reason.is_empty() && !reason.contains('\n'),
                "{id}: a one-line reason: {reason:?}"
            );
        }
        if !handled && dead_lettered.is_none() {
            row[3] += 1;
            lost.push(id.clone());
        }
        if handled == kind.dead_letters() || dead_lettered.is_some() != kind.dead_letters() {
            row[4] += 1;
        }
    }
    let unknown: Vec<&String> = dead
        .keys()
        .filter(|id| !published.contains_key(*id))
        .collect();
    println!(
        "fault run: {total} messages published in {:.1} s",
        published_in.as_secs_f64()
    );
    println!(
        "faults: {} rounds closing {} broker connections, {} replicas SIGKILLed, {} webhook faults",
        log.connection_rounds.load(Ordering::Relaxed),
        log.connections_closed.load(Ordering::Relaxed),
        log.killed.load(Ordering::Relaxed),
        log.webhook_faults.load(Ordering::Relaxed)
    );
    println!("| messages | published | handled | dead-lettered | lost | misrouted |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (kind, row) in &table {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            kind.name(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4]
        );
    }
    let mut scaling = Vec::new();
    for function in ["map-pin", "fire-post", "probe-gun", "detector"] {
        let status = city.status(function);
        scaling.push(format!(
            "{function}: {} activations, {} restarts after SIGKILL, {} scale-ins ({} with work queued)",
            status.activations, status.restarts, status.scale_ins, status.scale_ins_under_load
        ));
    }
    println!("{}", scaling.join("\n"));
    println!(
        "dead letters: {} ids, {extra_copies} second copies (a dead-letter confirm lost with its connection)",
        dead.len()
    );
    println!(
        "pins: {} (distinct {}), posts: {} (replayed keys {replays}), probe records: {} lines, {} ids",
        pinned.len(),
        pinned_set.len(),
        posts.len(),
        recorded_lines.len(),
        recorded.len()
    );

    let misplaced: Vec<String> = published
        .iter()
        .filter(|(id, kind)| dead.contains_key(*id) != kind.dead_letters())
        .map(|(id, kind)| format!("{id} ({}): {:?}", kind.name(), dead.get(id)))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(misplaced.is_empty(), "misplaced: {misplaced:?}");
    assert!(
        unknown.is_empty(),
        "dead letters that were never published: {unknown:?}"
    );
    assert!(
        table.values().all(|row| row[4] == 0),
        "a message ended in the wrong place: {table:?}"
    );
    assert_eq!(
        pinned.len(),
        count(Kind::Accident),
        "one pin per accident incident, no more"
    );
    assert!(
        post_incidents.values().all(|n| *n == 1),
        "an incident posted twice: {post_incidents:?}"
    );
    assert_eq!(
        posts.len(),
        count(Kind::Fire),
        "one post per fire incident, no more"
    );
    assert!(
        log.connection_rounds.load(Ordering::Relaxed) >= 3,
        "connections closed several times"
    );
    assert!(
        log.killed.load(Ordering::Relaxed) >= 3,
        "replicas were killed"
    );
    let restarts: u64 = ["map-pin", "fire-post", "probe-gun", "detector"]
        .iter()
        .map(|f| city.status(f).restarts)
        .sum();
    assert!(
        restarts >= 3,
        "the autoscaler restarted killed replicas ({restarts})"
    );
    let under_load: u64 = ["map-pin", "fire-post", "probe-gun"]
        .iter()
        .map(|f| city.status(f).scale_ins_under_load)
        .sum();
    assert!(
        under_load >= 1,
        "a SIGTERM scale-in happened while work was queued"
    );
    // A copy that was in flight when a replica was killed or drained comes
    // back from its retry queue up to 30 s later and wakes its function
    // again (handled idempotently: the counts above are exact). Every
    // function must still end at zero once that is done.
    let zero_deadline = Instant::now() + Duration::from_secs(120);
    while ["map-pin", "fire-post", "probe-gun", "detector"]
        .iter()
        .any(|f| city.status(f).replicas > 0)
        && Instant::now() < zero_deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for function in ["map-pin", "fire-post", "probe-gun", "detector"] {
        assert_eq!(city.status(function).replicas, 0, "{function} back at zero");
    }

    Arc::try_unwrap(city).expect("the last handle").stop().await;
    map_db.drop_database().await;
    post_db.drop_database().await;
}
