//! map-pin end to end: a real RabbitMQ (own vhost), real SQLite and PostgreSQL
//! stores, the real web server on loopback, and (with `SAFECITY_SLOW_TESTS=1`)
//! the page in headless Chromium.

use std::net::SocketAddr;
use std::time::Duration;

use safecity_events::{
    BoundingBox, Camera, CloudEvent, Detection, EventType, FrameSize, Jpeg, Lifecycle, SafetyEvent,
    UpdateReason,
};
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
        frame_age: None,
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

/// The offline geography of `scripts/fetch-map-data.sh` (`$SAFECITY_MAP_DATA`
/// or `target/map-data`).
fn map_data() -> std::path::PathBuf {
    std::env::var_os("SAFECITY_MAP_DATA").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/map-data"),
        std::path::PathBuf::from,
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
        geo_dir: Some(map_data()),
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
/// on the open page after the event is published, without a reload, beside
/// a cleared incident in Seoul stored before (listed as cleared); with no
/// tile server, the page draws the offline geography (land, coastline,
/// province boundaries, labelled cities from `scripts/fetch-map-data.sh`)
/// from Seoul to Busan with readable axes: the screenshot has coastline and
/// sea pixels, and no axis label overlaps another. The screenshot is kept
/// as `safecity-map-pin.png` in the temp folder.
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
    assert!(
        map_data().join("coast.json").is_file(),
        "{} has no coast.json: run scripts/fetch-map-data.sh",
        map_data().display()
    );
    let (url, dir) = sqlite_url("browser");
    let screenshot = dir.join("map.png");
    let store = PinStore::open(&url).await.expect("store");
    // An incident in Seoul, opened and closed an hour ago: a cleared marker.
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut seoul = accident("inc-cleared", 0.7, &hour_ago.to_rfc3339());
    seoul.camera = Camera {
        id: "seoul-gangnam-01".into(),
        region: "seoul".into(),
        latitude: 37.4979,
        longitude: 127.0276,
    };
    let mut closed = seoul.into_cloud_event().with_lifecycle(Lifecycle::Closed);
    closed.attributes.time = hour_ago + chrono::Duration::seconds(30);
    store
        .record(&closed, chrono::Utc::now())
        .await
        .expect("a cleared pin");
    let function = TestFunction::start("map-pin", MapPin::new(store.clone()), &[]).await;
    let stop = CancellationToken::new();
    let addr = start_web(store, &stop).await;
    let mut browser = tokio::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser.py"))
        .arg(format!("http://{addr}/"))
        .arg("inc-browser")
        .arg(&screenshot)
        .arg("inc-cleared")
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
    let geography = lines.next_line().await.ok().flatten().unwrap_or_default();
    assert!(
        status.success(),
        "browser script failed: {verdict:?} {geography}"
    );
    assert_eq!(verdict.as_deref(), Some("pin visible without reload"));
    assert!(geography.starts_with("geography drawn"), "{geography}");
    eprintln!("{geography}; screenshot: {}", screenshot.display());
    let _ = std::fs::copy(
        &screenshot,
        std::env::temp_dir().join("safecity-map-pin.png"),
    );
    stop.cancel();
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The detector's lifecycle for one incident, seen on the map API: the pin
/// is open after `opened` and `updated` (whose better frame becomes the
/// snapshot, and whose zone is added), cleared by `closed` (at the event's
/// time), and a late `updated` never re-opens it. `?state=open` lists only
/// what is still going on.
#[tokio::test]
async fn open_update_close_is_seen_on_the_map_api() {
    let (url, dir) = sqlite_url("lifecycle");
    let store = PinStore::open(&url).await.expect("store");
    let function = TestFunction::start("map-pin-lifecycle", MapPin::new(store.clone()), &[]).await;
    let stop = CancellationToken::new();
    let addr = start_web(store, &stop).await;
    let handled = |n: f64| {
        let function = &function;
        async move {
            eventually(WAIT, &format!("{n} events handled"), || {
                function.metric("safecity_events_succeeded_total", "\"accident\"") == n
            })
            .await;
        }
    };
    let features = |query: &'static str| async move {
        let (status, text) = http_get(addr, &format!("/api/incidents{query}")).await;
        assert_eq!(status, 200, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("GeoJSON");
        value["features"].as_array().expect("features").clone()
    };
    let snapshot_a = Jpeg(vec![0xFF, 0xD8, 0xAA, 0xFF, 0xD9]);
    let snapshot_b = Jpeg(vec![0xFF, 0xD8, 0xBB, 0xFF, 0xD9]);
    let mut opened = accident("inc-life", 0.6, "2026-11-27T10:00:00Z");
    opened.snapshot = Some(snapshot_a);
    function
        .client
        .publish_event(
            &opened
                .clone()
                .into_cloud_event()
                .with_lifecycle(Lifecycle::Opened),
        )
        .await;
    handled(1.0).await;
    let open = features("?state=open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["properties"]["state"], "open");
    // Closer and surer: a bigger box, the better snapshot; a new zone.
    let mut better = accident("inc-life", 0.9, "2026-11-27T10:00:10Z");
    better.detections[0].bounding_box.width = 200.0;
    better.detections[0].bounding_box.height = 150.0;
    better.snapshot = Some(snapshot_b.clone());
    function
        .client
        .publish_event(
            &better
                .clone()
                .into_cloud_event()
                .with_lifecycle(Lifecycle::Updated)
                .with_zones(vec!["crossing".into()])
                .with_update_reasons(vec![UpdateReason::BetterSnapshot, UpdateReason::NewZone]),
        )
        .await;
    handled(2.0).await;
    let (_, jpeg) = http_get(addr, "/api/incidents/inc-life/snapshot.jpg").await;
    // (http_get reads the body as lossy UTF-8: compare it the same way.)
    let as_text = |jpeg: &Jpeg| String::from_utf8_lossy(&jpeg.0).into_owned();
    assert_eq!(
        jpeg,
        as_text(&snapshot_b),
        "the better frame is the snapshot"
    );
    // Closed, carrying the best frame, at 10:00:45.
    let mut closed: CloudEvent<SafetyEvent> = better
        .clone()
        .into_cloud_event()
        .with_lifecycle(Lifecycle::Closed)
        .with_zones(vec!["crossing".into()]);
    closed.attributes.time = "2026-11-27T10:00:45Z".parse().expect("time");
    function.client.publish_event(&closed).await;
    handled(3.0).await;
    assert!(
        features("?state=open").await.is_empty(),
        "nothing open any more"
    );
    let cleared = features("?state=closed").await;
    assert_eq!(cleared.len(), 1);
    let properties = &cleared[0]["properties"];
    assert_eq!(properties["state"], "closed");
    assert_eq!(properties["closed_at"], "2026-11-27T10:00:45.000Z");
    assert_eq!(properties["zones"], serde_json::json!(["crossing"]));
    assert_eq!(properties["last_seen"], "2026-11-27T10:00:10.000Z");
    // A late update (a redelivery) does not re-open it, nor spoil the snapshot.
    let mut late = accident("inc-life", 0.5, "2026-11-27T10:00:05Z");
    late.snapshot = Some(Jpeg(vec![0xFF, 0xD8, 0xCC, 0xFF, 0xD9]));
    function
        .client
        .publish_event(&late.into_cloud_event().with_lifecycle(Lifecycle::Updated))
        .await;
    handled(4.0).await;
    assert!(features("?state=open").await.is_empty());
    assert_eq!(features("").await.len(), 1, "one pin for the incident");
    let (_, jpeg) = http_get(addr, "/api/incidents/inc-life/snapshot.jpg").await;
    assert_eq!(jpeg, as_text(&snapshot_b));
    let (status, text) = http_get(addr, "/api/incidents?state=cleared").await;
    assert_eq!(status, 400);
    assert!(text.contains("query parameter `state`"), "{text}");
    stop.cancel();
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
