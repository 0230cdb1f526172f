//! map-pin end to end: a real RabbitMQ (own vhost), real SQLite and PostgreSQL
//! stores, the real web server on loopback, and (with `SAFECITY_SLOW_TESTS=1`)
//! the page in headless Chromium.

use std::net::SocketAddr;
use std::time::Duration;

use safecity_events::{BoundingBox, Camera, Detection, EventType, FrameSize, Jpeg, SafetyEvent};
use safecity_map_pin::web::{WebConfig, serve};
use safecity_map_pin::{MapPin, PinFilter, PinStore};
use safecity_runtime::testing::{TestFunction, eventually, http_get};
use safecity_social::testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn accident(incident: &str, confidence: f32, captured_at: &str) -> SafetyEvent {
    SafetyEvent {
        event_type: EventType::Accident,
        incident_id: incident.into(),
        camera: Camera {
            id: "busan-gwangan-04".into(),
            region: "busan".into(),
            latitude: 35.1532,
            longitude: 129.1187,
        },
        detections: vec![Detection {
            class: "car".into(),
            confidence,
            bounding_box: BoundingBox {
                x: 10.0,
                y: 10.0,
                width: 50.0,
                height: 40.0,
            },
        }],
        captured_at: captured_at.parse().expect("time"),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: Some(Jpeg(vec![0xFF, 0xD8, 0xFF, 0xD9])),
    }
}

fn sqlite_url(tag: &str) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "map-pin-{tag}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    (
        format!("sqlite://{}?mode=rwc", dir.join("pins.db").display()),
        dir,
    )
}

async fn start_web(store: PinStore, stop: &CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = WebConfig {
        tile_url: None,
        poll_interval: Duration::from_millis(100),
    };
    tokio::spawn(serve(listener, store, config, stop.clone()));
    addr
}

#[tokio::test]
async fn accidents_become_one_pin_per_incident_served_as_geojson() {
    let (url, dir) = sqlite_url("e2e");
    let store = PinStore::open(&url).await.expect("store");
    let function = TestFunction::start("map-pin", MapPin::new(store.clone()), &[]).await;
    let first = accident("inc-1", 0.7, "2026-11-27T10:00:00Z").into_cloud_event();
    let body = function.client.publish_event(&first).await;
    function
        .client
        .publish_raw("accident", &body, Some("application/cloudevents+json"))
        .await;
    function
        .client
        .publish_event(&accident("inc-1", 0.9, "2026-11-27T10:02:00Z").into_cloud_event())
        .await;
    function
        .client
        .publish_event(&accident("inc-2", 0.6, "2026-11-27T10:01:00Z").into_cloud_event())
        .await;
    eventually(WAIT, "4 events handled", || {
        function.metric("safecity_events_succeeded_total", "\"accident\"") == 4.0
    })
    .await;
    assert_eq!(
        store.count().await.expect("count"),
        2,
        "one row per incident"
    );
    let pins = store.pins(&PinFilter::default()).await.expect("pins");
    let pin = pins
        .iter()
        .find(|p| p.incident_id == "inc-1")
        .expect("inc-1");
    assert_eq!(
        pin.first_seen,
        "2026-11-27T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("t")
    );
    assert_eq!(
        pin.last_seen,
        "2026-11-27T10:02:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("t")
    );
    assert!((pin.confidence - 0.9).abs() < 1e-6);

    let stop = CancellationToken::new();
    let addr = start_web(store.clone(), &stop).await;
    let (status, text) = http_get(addr, "/api/incidents").await;
    assert_eq!(status, 200);
    let collection: serde_json::Value = serde_json::from_str(&text).expect("GeoJSON");
    assert_eq!(
        collection["features"].as_array().expect("features").len(),
        2
    );
    assert_eq!(
        collection["features"][0]["geometry"]["coordinates"],
        serde_json::json!([129.1187, 35.1532])
    );
    let (_, text) = http_get(addr, "/api/incidents?bbox=126.0,37.0,127.5,38.0").await;
    assert_eq!(text, r#"{"features":[],"type":"FeatureCollection"}"#);
    let (_, text) = http_get(
        addr,
        "/api/incidents?since=2026-11-27T10:01:30Z&region=busan",
    )
    .await;
    let collection: serde_json::Value = serde_json::from_str(&text).expect("GeoJSON");
    assert_eq!(
        collection["features"].as_array().expect("features").len(),
        1
    );
    let (status, text) = http_get(addr, "/api/incidents?bbox=1,2,3").await;
    assert_eq!(status, 400);
    assert!(text.contains("query parameter `bbox`"), "{text}");
    let (status, _) = http_get(addr, "/api/incidents?zoom=3").await;
    assert_eq!(status, 400);
    let (status, jpeg) = http_get(addr, "/api/incidents/inc-1/snapshot.jpg").await;
    assert_eq!(status, 200);
    assert!(!jpeg.is_empty());
    assert_eq!(
        http_get(addr, "/api/incidents/nope/snapshot.jpg").await.0,
        404
    );
    let (status, page) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("EventSource(\"/api/incidents/stream\")"));

    stop.cancel();
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn malformed_accidents_are_dead_lettered_and_pinning_goes_on() {
    let (url, dir) = sqlite_url("poison");
    let store = PinStore::open(&url).await.expect("store");
    let function = TestFunction::start("map-pin", MapPin::new(store.clone()), &[]).await;
    let mut wire: serde_json::Value = serde_json::from_slice(
        &accident("bad", 0.5, "2026-11-27T10:00:00Z")
            .into_cloud_event()
            .to_json(),
    )
    .expect("json");
    wire["data"]["camera"]["longitude"] = serde_json::json!(500.0);
    function
        .client
        .publish_raw(
            "accident",
            &serde_json::to_vec(&wire).expect("json"),
            Some("application/cloudevents+json"),
        )
        .await;
    let dead = function
        .client
        .wait_dead_letter("map-pin", WAIT)
        .await
        .expect("dead-lettered");
    let reason = safecity_events::headers::get_str(
        dead.delivery.properties.headers().as_ref(),
        safecity_events::dead_letter::header::DEAD_LETTER_REASON,
    )
    .expect("reason")
    .to_owned();
    assert!(reason.contains("data.camera.longitude"), "{reason}");
    function
        .client
        .publish_event(&accident("good", 0.5, "2026-11-27T10:00:00Z").into_cloud_event())
        .await;
    eventually(WAIT, "the good event pinned", || {
        function.metric("safecity_events_succeeded_total", "\"accident\"") == 1.0
    })
    .await;
    assert_eq!(store.count().await.expect("count"), 1);
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn new_pins_are_pushed_over_server_sent_events() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (url, dir) = sqlite_url("sse");
    let store = PinStore::open(&url).await.expect("store");
    let function = TestFunction::start("map-pin", MapPin::new(store.clone()), &[]).await;
    let stop = CancellationToken::new();
    let addr = start_web(store, &stop).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /api/incidents/stream HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("request");
    // Let the feed start before the event arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = chrono::Utc::now().to_rfc3339();
    function
        .client
        .publish_event(&accident("inc-live", 0.8, &now).into_cloud_event())
        .await;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !received.contains("inc-live") {
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .expect("pin pushed in time")
            .expect("read");
        assert!(n > 0, "stream closed: {received}");
        received.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(received.contains("event: pin"), "{received}");
    assert!(
        received.contains("\"camera_id\":\"busan-gwangan-04\""),
        "{received}"
    );
    stop.cancel();
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_store_works_on_postgresql() {
    let database = TestDatabase::create("pins").await;
    let url = database.url.clone();
    let store = PinStore::open(&url).await.expect("open on PostgreSQL");
    let now = chrono::Utc::now();
    store
        .upsert(&accident("pg-1", 0.5, "2026-11-27T10:00:00Z"), now)
        .await
        .expect("insert");
    store
        .upsert(&accident("pg-1", 0.8, "2026-11-27T09:59:00Z"), now)
        .await
        .expect("update");
    store
        .upsert(&accident("pg-1", 0.8, "2026-11-27T09:59:00Z"), now)
        .await
        .expect("same again");
    let pins = store.pins(&PinFilter::default()).await.expect("pins");
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].first_seen.to_rfc3339(), "2026-11-27T09:59:00+00:00");
    assert_eq!(pins[0].last_seen.to_rfc3339(), "2026-11-27T10:00:00+00:00");
    assert!(pins[0].has_snapshot);
    drop(store);
    database.drop_database().await;
}

/// Headless Chromium (Debian `chromium`) driven by Playwright: the pin appears
/// on the open page after the event is published, without a reload.
#[tokio::test]
async fn the_map_page_shows_a_new_pin_without_reloading() {
    if std::env::var("SAFECITY_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set SAFECITY_SLOW_TESTS=1 (CI does) to run the browser test");
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let python = format!("{root}/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run scripts/python-peers.sh"
    );
    let (url, dir) = sqlite_url("browser");
    let store = PinStore::open(&url).await.expect("store");
    let function = TestFunction::start("map-pin", MapPin::new(store.clone()), &[]).await;
    let stop = CancellationToken::new();
    let addr = start_web(store, &stop).await;
    let mut browser = tokio::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser.py"))
        .arg(format!("http://{addr}/"))
        .arg("inc-browser")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the browser script");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        browser.stdout.take().expect("stdout"),
    ));
    let ready = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("page ready in time")
        .expect("read");
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "the page connected its live stream"
    );
    let now = chrono::Utc::now().to_rfc3339();
    function
        .client
        .publish_event(&accident("inc-browser", 0.8, &now).into_cloud_event())
        .await;
    let status = tokio::time::timeout(WAIT, browser.wait())
        .await
        .expect("browser script finished")
        .expect("wait");
    let verdict = lines.next_line().await.ok().flatten();
    assert!(status.success(), "browser script failed: {verdict:?}");
    assert_eq!(verdict.as_deref(), Some("pin visible without reload"));
    stop.cancel();
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
