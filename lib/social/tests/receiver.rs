//! The webhook receiver (the local city's outbox) against the real
//! signed-webhook notifier, over HTTP on loopback.

use std::sync::Arc;

use safecity_social::receiver::{Echo, ReceiverStats, WebhookReceiver, serve};
use safecity_social::webhook::WebhookNotifier;
use safecity_social::{Media, Notifier as _, NotifyError, Post, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Running {
    sink: Arc<WebhookReceiver>,
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(key: &str) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let sink = Arc::new(WebhookReceiver::new(key.as_bytes().to_vec(), Echo::Quiet));
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn({
        let sink = sink.clone();
        async move {
            serve(listener, sink, async move { shutdown.cancelled().await })
                .await
                .expect("serve");
        }
    });
    Running {
        sink,
        url,
        stop,
        task,
    }
}

fn post(key: &str, with_image: bool) -> Post {
    Post {
        text: "화재 발생 / Fire reported\nsecond line".to_owned(),
        language: "ko".to_owned(),
        media: with_image.then(|| Media {
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
            description: "camera view".to_owned(),
        }),
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn signed_posts_are_recorded_once_per_key() {
    let running = start("demo-secret").await;
    let notifier = WebhookNotifier::new(&running.url, Secret::new("demo-secret"));

    let first = notifier
        .publish(&post("fire-post-inc-1", true))
        .await
        .expect("accepted");
    assert_eq!(first.id, "post-1");
    let second = notifier
        .publish(&post("caption-inc-2", false))
        .await
        .expect("accepted");
    assert_eq!(second.id, "post-2");
    // A redelivery replays the key: the first answer, no second post.
    let replay = notifier
        .publish(&post("fire-post-inc-1", true))
        .await
        .expect("replay accepted");
    assert_eq!(replay.id, "post-1");

    let posts = running.sink.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].idempotency_key, "fire-post-inc-1");
    assert_eq!(posts[0].text, "화재 발생 / Fire reported\nsecond line");
    assert_eq!(posts[0].replays, 1);
    assert_eq!(posts[0].media.len(), 1);
    assert_eq!(posts[0].media[0].bytes, 7);
    assert!(posts[0].media[0].looks_like_jpeg);
    assert_eq!(posts[0].media[0].description, "camera view");
    assert!(posts[1].media.is_empty());
    assert_eq!(
        running.sink.stats(),
        ReceiverStats {
            posts: 2,
            replays: 1,
            rejected: 0
        }
    );

    // The listing the demo reads.
    let listing: serde_json::Value = reqwest::get(running.url.replace("/hook", "/posts"))
        .await
        .expect("GET /posts")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listing[0]["id"], "post-1");
    assert_eq!(listing[1]["idempotency_key"], "caption-inc-2");

    running.stop.cancel();
    running.task.await.expect("stopped cleanly");
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_401() {
    let running = start("demo-secret").await;
    let notifier = WebhookNotifier::new(&running.url, Secret::new("not-the-secret"));
    let error = notifier
        .publish(&post("fire-post-inc-9", false))
        .await
        .expect_err("refused");
    assert!(
        matches!(error, NotifyError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert!(running.sink.posts().is_empty());
    assert_eq!(running.sink.stats().rejected, 1);
    running.stop.cancel();
    running.task.await.expect("stopped cleanly");
}
