//! caption end to end: a real RabbitMQ (own vhost), a real SQLite ledger, and
//! a Mastodon-compatible HTTP server on loopback.

use std::time::Duration;

use safecity_caption::{CameraRegistry, CaptionFunction, TemplateCaptioner};
use safecity_events::dead_letter::header;
use safecity_events::headers::get_str;
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, FrameSize, Jpeg, Lifecycle, SafetyEvent,
};
use safecity_runtime::testing::{TestFunction, eventually};
use safecity_social::mastodon::MastodonNotifier;
use safecity_social::testkit::FakeMastodon;
use safecity_social::{Ledger, Secret};

const WAIT: Duration = Duration::from_secs(30);

const REGISTRY: &str = r#"
[[cameras]]
id = "busan-seomyeon-02"
region = "busan"
latitude = 35.1577
longitude = 129.0594
source = "http://127.0.0.1:1/seomyeon.mjpg"
name = "Seomyeon Station exit 7"
name_ko = "서면역 7번 출구"
[[cameras.zones]]
name = "school-gate"
label = "the school gate"
label_ko = "학교 정문"
points = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
"#;

fn detection(class: &str, confidence: f32, x: f32, y: f32) -> Detection {
    Detection {
        class: class.into(),
        confidence,
        bounding_box: BoundingBox {
            x,
            y,
            width: 80.0,
            height: 160.0,
        },
    }
}

fn scene(event_type: EventType, incident: &str, detections: Vec<Detection>) -> SafetyEvent {
    let mut jpeg = Vec::new();
    image_jpeg(&mut jpeg);
    SafetyEvent {
        event_type,
        incident_id: incident.into(),
        camera: Camera {
            id: "busan-seomyeon-02".into(),
            region: "busan".into(),
            latitude: 35.1577,
            longitude: 129.0594,
        },
        detections,
        captured_at: "2026-11-27T13:15:00Z".parse().expect("time"),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: Some(Jpeg(jpeg)),
        frame_age: None,
    }
}

/// A small grey JPEG snapshot.
fn image_jpeg(out: &mut Vec<u8>) {
    let pixels = vec![128u8; 64 * 36 * 3];
    safecity_social::privacy::encode_rgb_jpeg(&pixels, 64, 36, out).expect("encode");
}

async fn start(server: &FakeMastodon, token: &str) -> (TestFunction, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "caption-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let ledger = Ledger::open(&url, "caption").await.expect("ledger");
    let function = CaptionFunction::new(
        MastodonNotifier::new(&server.url(), Secret::new(token), "public"),
        TemplateCaptioner,
        ledger,
        CameraRegistry::parse(REGISTRY, "test registry").expect("registry"),
        true,
    );
    let running = TestFunction::start(
        "caption",
        function,
        &[("SAFECITY_RETRY_DELAYS", "200ms,200ms,200ms")],
    )
    .await;
    (running, dir)
}

#[tokio::test]
async fn a_knife_scene_is_posted_once_in_korean_and_english() {
    let server = FakeMastodon::start("tok").await;
    let (function, dir) = start(&server, "tok").await;
    let event = scene(
        EventType::Knife,
        "inc-k1",
        vec![
            detection("person", 0.91, 500.0, 150.0),
            detection("knife", 0.83, 520.0, 250.0),
        ],
    )
    .into_cloud_event();
    let body = function.client.publish_event(&event).await;
    eventually(WAIT, "the post", || server.statuses().len() == 1).await;
    // A redelivery and a re-detection of the same incident.
    function
        .client
        .publish_raw("knife", &body, Some("application/cloudevents+json"))
        .await;
    function
        .client
        .publish_event(
            &scene(
                EventType::Knife,
                "inc-k1",
                vec![detection("knife", 0.9, 500.0, 250.0)],
            )
            .into_cloud_event(),
        )
        .await;
    eventually(WAIT, "three events handled", || {
        function.metric("safecity_events_succeeded_total", "\"knife\"") == 3.0
    })
    .await;
    let statuses = server.statuses();
    assert_eq!(statuses.len(), 1, "one post per incident");
    let text = &statuses[0].text;
    assert!(
        text.contains("서면역 7번 출구(busan)에서 흉기(칼)를 든 사람이 화면 오른쪽 아래쪽에 감지되었습니다 (신뢰도 83%)"),
        "{text}"
    );
    assert!(text.contains("22:15 KST"), "{text}");
    assert!(
        text.contains("a person with a knife was seen at Seomyeon Station exit 7 (busan)"),
        "{text}"
    );
    assert!(text.contains("One person is in view."), "{text}");
    assert_eq!(statuses[0].media.len(), 1, "snapshot attached");
    assert_eq!(
        statuses[0].idempotency_key.as_deref(),
        Some("caption-inc-k1")
    );
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn gun_scenes_survive_an_outage_and_unusable_scenes_are_dead_lettered() {
    let server = FakeMastodon::start("tok").await;
    server.fail_next(2, 502, None);
    let (function, dir) = start(&server, "tok").await;
    function
        .client
        .publish_event(
            &scene(
                EventType::Gun,
                "inc-g1",
                vec![detection("gun", 0.77, 40.0, 20.0)],
            )
            .into_cloud_event(),
        )
        .await;
    eventually(WAIT, "the post after the outage", || {
        server.statuses().len() == 1
    })
    .await;
    assert!(
        server.statuses()[0]
            .text
            .contains("총기를 든 사람이 화면 왼쪽")
    );
    assert_eq!(server.status_requests(), 3);

    function
        .client
        .publish_event(&scene(EventType::Gun, "inc-g2", Vec::new()).into_cloud_event())
        .await;
    let dead = function
        .client
        .wait_dead_letter("caption", WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(
        get_str(
            dead.delivery.properties.headers().as_ref(),
            header::DEAD_LETTER_REASON
        ),
        Some("captioning failed: the event has no detections")
    );
    assert_eq!(server.statuses().len(), 1);
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_rejected_token_is_dead_lettered_with_the_servers_answer() {
    let server = FakeMastodon::start("tok").await;
    let (function, dir) = start(&server, "revoked").await;
    function
        .client
        .publish_event(
            &scene(
                EventType::Knife,
                "inc-k9",
                vec![detection("knife", 0.8, 300.0, 100.0)],
            )
            .into_cloud_event(),
        )
        .await;
    let dead = function
        .client
        .wait_dead_letter("caption", WAIT)
        .await
        .expect("dead-lettered");
    let reason = get_str(
        dead.delivery.properties.headers().as_ref(),
        header::DEAD_LETTER_REASON,
    )
    .expect("reason");
    assert!(reason.contains("HTTP 401"), "{reason}");
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The detector tracked the knife carrier towards the camera's school gate:
/// the caption says so with the registry's words for the zone (not the
/// box-size guess), is posted once for the incident's `opened`, and the
/// incident's `updated` and `closed` events post nothing more.
#[tokio::test]
async fn the_caption_uses_the_tracked_movement_towards_a_zone() {
    let server = FakeMastodon::start("tok").await;
    let (function, dir) = start(&server, "tok").await;
    let knife = || {
        scene(
            EventType::Knife,
            "inc-gate",
            vec![detection("knife", 0.88, 200.0, 150.0)],
        )
    };
    let opened = knife()
        .into_cloud_event()
        .with_lifecycle(Lifecycle::Opened)
        .with_track_id("3")
        .with_movement(vec!["school-gate:approaching".parse().expect("movement")]);
    function.client.publish_event(&opened).await;
    eventually(WAIT, "the post", || server.statuses().len() == 1).await;
    for state in [Lifecycle::Updated, Lifecycle::Closed] {
        function
            .client
            .publish_event(&knife().into_cloud_event().with_lifecycle(state))
            .await;
    }
    eventually(WAIT, "three events handled", || {
        function.metric("safecity_events_succeeded_total", "\"knife\"") == 3.0
    })
    .await;
    let statuses = server.statuses();
    assert_eq!(statuses.len(), 1, "one post for the incident");
    let text = &statuses[0].text;
    assert!(
        text.contains("They are approaching the school gate."),
        "{text}"
    );
    assert!(
        text.contains("학교 정문 쪽으로 다가가고 있습니다."),
        "{text}"
    );
    assert_eq!(
        statuses[0].idempotency_key.as_deref(),
        Some("caption-inc-gate")
    );
    function.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
