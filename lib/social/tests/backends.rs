//! The notifier backends against real HTTP servers on loopback, and the ledger
//! against real SQLite and PostgreSQL databases.

use std::time::Duration;

use chrono::Utc;
use safecity_social::ledger::PostKind;
use safecity_social::mastodon::MastodonNotifier;
use safecity_social::testkit::{FakeMastodon, FakeWebhook, TestDatabase};
use safecity_social::webhook::WebhookNotifier;
use safecity_social::{
    IncidentState, Ledger, Media, Notifier, NotifyError, Post, Published, Secret,
};

fn post(key: &str) -> Post {
    Post {
        text: "화재 경보 / Fire alert".to_owned(),
        language: "ko".to_owned(),
        media: Some(Media {
            jpeg: vec![0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9],
            description: "snapshot".to_owned(),
        }),
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn mastodon_uploads_media_first_and_replays_are_idempotent() {
    let server = FakeMastodon::start("tok").await;
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    let first = notifier.publish(&post("inc-1")).await.expect("posted");
    let again = notifier.publish(&post("inc-1")).await.expect("replayed");
    assert_eq!(first.id, again.id, "same key, same status");
    let statuses = server.statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].media.len(), 1);
    assert_eq!(
        statuses[0].media[0].bytes,
        post("x").media.expect("media").jpeg
    );
    assert_eq!(statuses[0].idempotency_key.as_deref(), Some("inc-1"));
}

#[tokio::test]
async fn mastodon_failures_are_classified() {
    let server = FakeMastodon::start("tok").await;
    let wrong = MastodonNotifier::new(&server.url(), Secret::new("nope"), "public");
    match wrong.publish(&post("k")).await {
        Err(NotifyError::Rejected {
            status: 401,
            answer,
            ..
        }) => {
            assert!(answer.contains("access token is invalid"), "{answer}");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let notifier = MastodonNotifier::new(&server.url(), Secret::new("tok"), "public");
    server.fail_next(1, 429, Some("3"));
    assert_eq!(
        notifier.publish(&post("k")).await,
        Err(NotifyError::RateLimited {
            service: "mastodon",
            retry_after: Some(Duration::from_secs(3))
        })
    );
    server.fail_next(1, 503, None);
    assert!(matches!(
        notifier.publish(&post("k")).await,
        Err(NotifyError::Unavailable { .. })
    ));
    let closed = MastodonNotifier::new("http://127.0.0.1:9", Secret::new("tok"), "public");
    assert!(matches!(
        closed.publish(&post("k")).await,
        Err(NotifyError::Unavailable { .. })
    ));
    assert_eq!(server.statuses().len(), 0);
}

#[tokio::test]
async fn webhook_signs_and_is_idempotent() {
    let server = FakeWebhook::start("s3cret").await;
    let notifier = WebhookNotifier::new(&server.url(), Secret::new("s3cret"));
    notifier.publish(&post("inc-9")).await.expect("accepted");
    notifier
        .publish(&post("inc-9"))
        .await
        .expect("replay accepted");
    let posts = server.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, "화재 경보 / Fire alert");
    assert_eq!(posts[0].media[0].content_type, "image/jpeg");

    let forged = WebhookNotifier::new(&server.url(), Secret::new("guess"));
    assert!(matches!(
        forged.publish(&post("inc-10")).await,
        Err(NotifyError::Rejected { status: 401, .. })
    ));
}

async fn exercise_ledger(ledger: &Ledger) {
    let now = Utc::now();
    let window_start = now - chrono::Duration::seconds(60);
    let published = |id: &str| Published {
        id: id.into(),
        url: None,
    };
    assert_eq!(ledger.state("a").await.expect("state"), None);
    let reserve = |slot: &'static str, region: &'static str| async move {
        ledger
            .reserve(slot, region, now, window_start, 2)
            .await
            .expect("reserve")
    };
    assert!(reserve("slot-a", "busan").await);
    assert!(reserve("slot-a", "busan").await, "a retry keeps its slot");
    let alert = [("a", "fire at cam-1")];
    ledger
        .record(
            PostKind::Alert,
            "slot-a",
            &alert,
            "busan",
            &published("s1"),
            now,
        )
        .await
        .expect("record");
    assert_eq!(
        ledger.state("a").await.expect("state"),
        Some(IncidentState::Posted)
    );

    ledger
        .hold("b", "busan", "fire at cam-2", now)
        .await
        .expect("hold");
    ledger
        .hold("c", "busan", "fire at cam-3", now)
        .await
        .expect("hold");
    ledger
        .hold("b", "busan", "again", now)
        .await
        .expect("holding twice is a no-op");
    let held = ledger.held("busan").await.expect("held");
    let ids: Vec<&str> = held.iter().map(|h| h.incident_id.as_str()).collect();
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(held[0].summary, "fire at cam-2");

    assert!(reserve("slot-f", "busan").await);
    assert!(
        !reserve("slot-x", "busan").await,
        "a third post in the window is refused"
    );
    let merged = [("b", "fire at cam-2"), ("c", "fire at cam-3")];
    ledger
        .record(
            PostKind::FollowUp,
            "slot-f",
            &merged,
            "busan",
            &published("s2"),
            now,
        )
        .await
        .expect("follow-up");
    assert_eq!(
        ledger.state("b").await.expect("state"),
        Some(IncidentState::Merged)
    );
    assert!(ledger.held("busan").await.expect("held").is_empty());
    assert_eq!(
        ledger
            .posts_since("busan", window_start)
            .await
            .expect("count"),
        2
    );

    assert!(
        reserve("slot-s", "seoul").await,
        "regions are limited separately"
    );
    ledger.release("slot-s").await.expect("release");
    assert_eq!(
        ledger
            .posts_since("seoul", window_start)
            .await
            .expect("count"),
        0
    );
}

#[tokio::test]
async fn the_ledger_works_on_sqlite_and_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("safecity-ledger-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let ledger = Ledger::open(&url, "fire-post").await.expect("open");
    exercise_ledger(&ledger).await;
    drop(ledger);
    let reopened = Ledger::open(&url, "fire-post")
        .await
        .expect("reopen migrates nothing");
    assert_eq!(
        reopened.state("a").await.expect("state"),
        Some(IncidentState::Posted)
    );
    let other = Ledger::open(&url, "caption").await.expect("open");
    assert_eq!(other.state("a").await.expect("state"), None, "per function");
    std::fs::remove_dir_all(&dir).ok();
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

#[tokio::test]
async fn the_ledger_works_on_postgresql() {
    let database = TestDatabase::create("ledger").await;
    let url = database.url.clone();
    let ledger = Ledger::open(&url, "fire-post").await.expect("open");
    exercise_ledger(&ledger).await;
    drop(ledger);
    database.drop_database().await;
}
