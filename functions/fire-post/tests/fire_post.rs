//! fire-post end to end: a real RabbitMQ (own vhost), a real SQLite ledger and
//! real HTTP servers on loopback playing Mastodon and a webhook receiver.

use std::time::Duration;

use safecity_events::dead_letter::header;
use safecity_events::event::CLOUDEVENTS_JSON;
use safecity_events::headers::get_str;
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, FrameSize, Jpeg, Lifecycle, SafetyEvent,
    UpdateReason,
};
use safecity_fire_post::{FirePost, StormLimit};
use safecity_runtime::testing::{TestFunction, eventually};
use safecity_social::mastodon::MastodonNotifier;
use safecity_social::testkit::{FakeMastodon, FakeWebhook};
use safecity_social::webhook::WebhookNotifier;
use safecity_social::{Ledger, Notifier, Secret};

const WAIT: Duration = Duration::from_secs(30);

fn snapshot() -> Jpeg {
    // A fine checkerboard: pixelation cannot preserve it.
    let image = image::RgbImage::from_fn(320, 180, |x, y| {
        if (x / 2 + y / 2) % 2 == 0 {
            image::Rgb([240, 240, 240])
        } else {
            image::Rgb([15, 15, 15])
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&image)
        .expect("encode");
    Jpeg(out)
}

fn fire(incident: &str, region: &str) -> SafetyEvent {
    SafetyEvent {
        event_type: EventType::Fire,
        incident_id: incident.to_owned(),
        camera: Camera {
            id: format!("{region}-cam-01"),
            region: region.to_owned(),
            latitude: 35.1587,
            longitude: 129.1604,
        },
        detections: vec![
            Detection {
                class: "fire".into(),
                confidence: 0.93,
                bounding_box: BoundingBox {
                    x: 10.0,
                    y: 10.0,
                    width: 100.0,
                    height: 80.0,
                },
            },
            Detection {
                class: "person".into(),
                confidence: 0.8,
                bounding_box: BoundingBox {
                    x: 400.0,
                    y: 100.0,
                    width: 120.0,
                    height: 240.0,
                },
            },
        ],
        captured_at: chrono::Utc::now(),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: Some(snapshot()),
        frame_age: None,
    }
}

/// fire-post on its own vhost with a SQLite ledger in a temporary directory.
struct Harness {
    function: TestFunction,
    ledger_dir: std::path::PathBuf,
}

impl Harness {
    async fn start<N: Notifier>(notifier: N, storm: StormLimit) -> Self {
        Self::start_with(notifier, storm, false).await
    }

    async fn start_with<N: Notifier>(notifier: N, storm: StormLimit, close_posts: bool) -> Self {
        let ledger_dir = std::env::temp_dir().join(format!(
            "fire-post-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&ledger_dir).expect("dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            ledger_dir.join("ledger.db").display()
        );
        let ledger = Ledger::open(&url, "fire-post").await.expect("ledger");
        let function = TestFunction::start(
            "fire-post",
            FirePost::new(notifier, ledger, storm, true).with_close_posts(close_posts),
            &[("SAFECITY_RETRY_DELAYS", "200ms,200ms,200ms,200ms")],
        )
        .await;
        Harness {
            function,
            ledger_dir,
        }
    }

    async fn publish(&self, event: &SafetyEvent) -> Vec<u8> {
        self.function
            .client
            .publish_event(&event.clone().into_cloud_event())
            .await
    }

    async fn publish_raw(&self, body: &[u8]) {
        self.function
            .client
            .publish_raw("fire", body, Some(CLOUDEVENTS_JSON))
            .await;
    }

    fn succeeded(&self) -> f64 {
        self.function
            .metric("safecity_events_succeeded_total", "\"fire\"")
    }

    async fn until(&self, what: &str, mut condition: impl FnMut(&Self) -> bool) {
        eventually(WAIT, what, || condition(self)).await;
    }

    async fn dead_letter(&self) -> lapin::message::BasicGetMessage {
        self.function
            .client
            .wait_dead_letter("fire-post", WAIT)
            .await
            .expect("a dead letter")
    }

    async fn stop(self) {
        self.function.stop().await;
        let _ = std::fs::remove_dir_all(&self.ledger_dir);
    }
}

fn limit(max_posts: u32, window: Duration) -> StormLimit {
    StormLimit { max_posts, window }
}

#[tokio::test]
async fn each_fire_is_posted_once_with_people_hidden_in_its_snapshot() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    let event = fire("inc-1", "busan");
    let body = harness.publish(&event).await;
    harness
        .until("the alert", |_| server.statuses().len() == 1)
        .await;
    // The same event delivered again, and the same incident detected again.
    harness.publish_raw(&body).await;
    harness.publish(&fire("inc-1", "busan")).await;
    harness
        .until("three events handled", |h| h.succeeded() == 3.0)
        .await;

    let statuses = server.statuses();
    assert_eq!(statuses.len(), 1, "exactly one post");
    let status = &statuses[0];
    assert!(
        status.text.contains("busan-cam-01") && status.text.contains("Fire detected"),
        "{}",
        status.text
    );
    assert_eq!(status.idempotency_key.as_deref(), Some("fire-post-inc-1"));
    assert_eq!(
        status.media.len(),
        1,
        "snapshot uploaded first and attached"
    );
    let posted = image::load_from_memory(&status.media[0].bytes)
        .expect("a JPEG")
        .to_rgb8();
    let original = image::load_from_memory(&event.snapshot.as_ref().expect("snapshot").0)
        .expect("jpeg")
        .to_rgb8();
    // The person box (400..520 x 100..340 in the 640x360 frame) is 200..260 x 50..170 here:
    // its pattern is flattened into blocks; the rest of the picture is kept.
    let changed = |x: u32, y: u32| {
        let (a, b) = (posted.get_pixel(x, y).0, original.get_pixel(x, y).0);
        (i32::from(a[0]) - i32::from(b[0])).abs()
    };
    let inside: i32 = (205..255).map(|x| changed(x, 100)).sum();
    let outside: i32 = (20..70).map(|x| changed(x, 20)).sum();
    assert!(inside > outside * 5, "inside {inside} outside {outside}");
    harness.stop().await;
}

#[tokio::test]
async fn outages_and_rate_limits_are_retried_until_the_post_goes_out() {
    let server = FakeMastodon::start("tok").await;
    server.fail_next(2, 503, None);
    server.fail_next(1, 429, Some("1"));
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    let started = tokio::time::Instant::now();
    harness.publish(&fire("inc-2", "seoul")).await;
    harness
        .until("the post after the outage", |_| {
            server.statuses().len() == 1
        })
        .await;
    assert_eq!(
        server.status_requests(),
        4,
        "two 503s, one 429, then success"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    harness.until("acked", |h| h.succeeded() == 1.0).await;
    harness.stop().await;
}

#[tokio::test]
async fn a_permanent_rejection_is_dead_lettered_with_the_servers_answer() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("expired"), "public");
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    harness.publish(&fire("inc-3", "busan")).await;
    let message = harness.dead_letter().await;
    let headers = message.delivery.properties.headers().as_ref();
    let reason = get_str(headers, header::DEAD_LETTER_REASON).expect("reason");
    assert!(
        reason.contains("HTTP 401") && reason.contains("access token is invalid"),
        "{reason}"
    );
    assert_eq!(
        get_str(headers, header::DEAD_LETTER_CAUSE),
        Some("rejected")
    );
    assert!(server.statuses().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn malformed_events_are_dead_lettered_and_the_function_lives_on() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    let mut bad = serde_json::to_value(fire("inc-4", "busan")).expect("json");
    bad["camera"]["latitude"] = serde_json::json!("north");
    let envelope = serde_json::json!({
        "specversion": "1.0", "id": "x1", "source": "/cameras/x", "type": "fire",
        "time": "2026-11-27T10:00:00Z", "data": bad,
    });
    harness
        .publish_raw(&serde_json::to_vec(&envelope).expect("json"))
        .await;
    let message = harness.dead_letter().await;
    let reason = get_str(
        message.delivery.properties.headers().as_ref(),
        header::DEAD_LETTER_REASON,
    )
    .expect("reason")
    .to_owned();
    assert!(reason.contains("data.camera.latitude"), "{reason}");
    harness.publish(&fire("inc-5", "busan")).await;
    harness
        .until("the valid event posted", |_| server.statuses().len() == 1)
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn a_storm_becomes_the_allowed_alerts_plus_one_follow_up() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start(notifier, limit(2, Duration::from_secs(2))).await;
    for i in 0..5 {
        harness
            .publish(&fire(&format!("storm-{i}"), "daejeon"))
            .await;
    }
    harness.publish(&fire("elsewhere", "seoul")).await;
    harness
        .until(
            "2 alerts + 1 follow-up in daejeon, 1 alert in seoul",
            |_| server.statuses().len() == 4,
        )
        .await;
    harness
        .until("every event acknowledged", |h| h.succeeded() == 6.0)
        .await;
    let statuses = server.statuses();
    let follow_ups: Vec<_> = statuses
        .iter()
        .filter(|s| s.text.contains("More fire alerts"))
        .collect();
    assert_eq!(follow_ups.len(), 1, "{statuses:#?}");
    assert!(
        follow_ups[0]
            .text
            .contains("3 more fire incident(s) detected in daejeon"),
        "{}",
        follow_ups[0].text
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| s.text.contains("Fire detected"))
            .count(),
        3
    );
    // Nothing more comes later: every held incident is merged.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.statuses().len(), 4);
    harness.stop().await;
}

#[tokio::test]
async fn the_webhook_backend_delivers_signed_alerts_once() {
    let server = FakeWebhook::start("hook-secret").await;
    let notifier = WebhookNotifier::new(&server.url(), Secret::new("hook-secret"));
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    let body = harness.publish(&fire("inc-6", "busan")).await;
    harness.publish_raw(&body).await;
    harness
        .until("two deliveries handled", |h| h.succeeded() == 2.0)
        .await;
    let posts = server.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].idempotency_key, "fire-post-inc-6");
    assert!(posts[0].text.contains("화재 경보"));
    assert_eq!(posts[0].media.len(), 1);
    harness.stop().await;
}

/// `fire(incident, region)` seen by a camera named after the incident, so
/// that every post (alert or follow-up) says which incidents it covers.
fn fire_at(incident: &str, region: &str) -> SafetyEvent {
    let mut event = fire(incident, region);
    event.camera.id = format!("cam-{incident}");
    event
}

/// Which incidents each post received names, and the most posts of `region`
/// in any `window` (as the server counts them).
fn audit(
    posts: &[safecity_social::receiver::ReceivedPost],
    incidents: &[String],
    window: Duration,
) -> (Vec<usize>, usize) {
    let appearances = incidents
        .iter()
        .map(|incident| {
            let camera = format!("cam-{incident} ");
            let alone = format!("cam-{incident}\n");
            posts
                .iter()
                .filter(|p| p.text.contains(&camera) || p.text.contains(&alone))
                .count()
        })
        .collect();
    let mut times: Vec<_> = posts.iter().map(|p| p.received_at).collect();
    times.sort();
    let most_in_window = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]).unwrap_or_default() < window)
                .count()
        })
        .max()
        .unwrap_or(0);
    (appearances, most_in_window)
}

/// The network stores a post but its answer is lost (503, or the connection
/// dropped): the attempt's outcome is unknown, so it keeps its slot and its
/// key; the retry replays it and the incident never lands in a follow-up
/// too. Exactly one post per incident, and never more than the storm limit
/// in a window, as the server counts them.
async fn lost_answers(storm: StormLimit, incidents: usize, lose: usize, drop: usize) {
    let server = FakeWebhook::start("hook-secret").await;
    let notifier = WebhookNotifier::new(&server.url(), Secret::new("hook-secret"));
    let harness = Harness::start(notifier, storm).await;
    server.lose_answer_next(lose);
    server.drop_connection_next(drop);
    let names: Vec<String> = (0..incidents).map(|i| format!("lost-{i}")).collect();
    for name in &names {
        harness.publish(&fire_at(name, "busan")).await;
    }
    harness
        .until("every event acknowledged", |h| {
            h.succeeded() == incidents as f64
        })
        .await;
    // Anything still deferred or retrying would post within the window.
    tokio::time::sleep(storm.window.min(Duration::from_secs(5)) + Duration::from_secs(1)).await;
    let posts = server.posts();
    let (appearances, most_in_window) = audit(&posts, &names, storm.window);
    let texts: Vec<&str> = posts.iter().map(|p| p.text.as_str()).collect();
    assert!(
        appearances.iter().all(|n| *n == 1),
        "each incident in exactly one post: {appearances:?}\n{texts:#?}"
    );
    assert!(
        most_in_window <= storm.max_posts as usize,
        "{most_in_window} posts in one window, limit {}",
        storm.max_posts
    );
    let replays: u32 = posts.iter().map(|p| p.replays).sum();
    assert!(
        replays as usize >= lose + drop,
        "the lost posts were replayed under their key ({replays} replays)"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_lost_answer_never_posts_an_incident_twice_with_storm_control_on() {
    lost_answers(limit(3, Duration::from_secs(4)), 6, 2, 1).await;
}

#[tokio::test]
async fn a_lost_answer_never_posts_an_incident_twice_with_storm_control_off() {
    lost_answers(StormLimit::UNLIMITED, 4, 2, 2).await;
}

/// The detector's lifecycle for one fire, with close posts on: one post on
/// `opened`, none for `updated` (however often, redelivered or not), one
/// "no longer detected" post on `closed` with its own idempotency key, and
/// nothing more when `closed` is delivered again. A `closed` that overtakes
/// its alert waits for it. Exactly two posts in all.
#[tokio::test]
async fn a_fire_is_posted_once_on_open_and_once_on_close() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start_with(notifier, limit(10, Duration::from_secs(60)), true).await;
    let publish = |event: SafetyEvent, state: Lifecycle| {
        let harness = &harness;
        async move {
            let mut cloud = event.into_cloud_event().with_lifecycle(state);
            if state == Lifecycle::Updated {
                cloud = cloud.with_update_reasons(vec![UpdateReason::BetterSnapshot]);
            }
            harness.function.client.publish_event(&cloud).await
        }
    };
    // A close overtaking its alert (another incident): it waits for the alert.
    publish(fire("inc-early", "busan"), Lifecycle::Closed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.statuses().is_empty(), "no close before the alert");
    publish(fire("inc-early", "busan"), Lifecycle::Opened).await;
    harness
        .until("the early alert and its close", |_| {
            server.statuses().len() == 2
        })
        .await;

    publish(fire("inc-1", "busan"), Lifecycle::Opened).await;
    harness
        .until("the alert", |_| server.statuses().len() == 3)
        .await;
    for _ in 0..3 {
        publish(fire("inc-1", "busan"), Lifecycle::Updated).await;
    }
    let closed = publish(fire("inc-1", "busan"), Lifecycle::Closed).await;
    harness
        .until("the close post", |_| server.statuses().len() == 4)
        .await;
    harness.publish_raw(&closed).await;
    harness
        .until("every event handled", |h| h.succeeded() == 8.0)
        .await;
    let statuses = server.statuses();
    let keys: Vec<&str> = statuses
        .iter()
        .filter_map(|s| s.idempotency_key.as_deref())
        .collect();
    assert_eq!(
        keys,
        [
            "fire-post-inc-early",
            "fire-post-inc-early-closed",
            "fire-post-inc-1",
            "fire-post-inc-1-closed"
        ]
    );
    let close = &statuses[3];
    assert!(
        close.text.contains("no longer detected") && close.text.contains("busan-cam-01"),
        "{}",
        close.text
    );
    assert!(close.media.is_empty(), "the close post has no picture");
    harness.stop().await;
}

/// With close posts off (the default), `closed` is acknowledged without a post.
#[tokio::test]
async fn close_posts_are_off_by_default() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let harness = Harness::start(notifier, limit(10, Duration::from_secs(60))).await;
    let opened = fire("inc-2", "busan")
        .into_cloud_event()
        .with_lifecycle(Lifecycle::Opened);
    harness.function.client.publish_event(&opened).await;
    let closed = fire("inc-2", "busan")
        .into_cloud_event()
        .with_lifecycle(Lifecycle::Closed);
    harness.function.client.publish_event(&closed).await;
    harness
        .until("both events handled", |h| h.succeeded() == 2.0)
        .await;
    let keys: Vec<Option<String>> = server
        .statuses()
        .into_iter()
        .map(|s| s.idempotency_key)
        .collect();
    assert_eq!(keys, [Some("fire-post-inc-2".to_owned())]);
    harness.stop().await;
}
