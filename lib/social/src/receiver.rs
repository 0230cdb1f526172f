//! A signed-webhook receiver: the social network of the local city (the
//! `safecity webhook-sink` outbox) and of the tests (`testkit::FakeWebhook`).
//!
//! Every `POST` must carry `X-Safecity-Signature: sha256=<hex of
//! HMAC-SHA256(secret, body)>` (the way [`crate::webhook`] signs it), checked
//! in constant time; a bad or missing signature gets 401. The body must be the
//! webhook JSON with a non-empty text, and the `Idempotency-Key` header must
//! be present and equal the body's key (else 400). An accepted post is
//! recorded (and printed when [`Echo::Stdout`]) and answered `{"id": "post-N"}`.
//! Like a real network it honours `Idempotency-Key`: a replayed key gets the
//! first answer again and is counted as a replay, never recorded twice.
//!
//! Faults, for tests: [`WebhookReceiver::fail_next`] answers the next requests
//! with an error status without recording them; [`WebhookReceiver::lose_answer_next`]
//! records the next posts and then answers 503, and
//! [`WebhookReceiver::drop_connection_next`] records them and closes the
//! connection unanswered, as a network that stored a post but lost the
//! answer does.
//!
//! `GET /posts` lists what was received (JSON), `GET /healthz` answers `ok`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

/// The signature header, lower-case as HTTP/2 and axum spell it.
const SIGNATURE_HEADER: &str = "x-safecity-signature";

/// An image attached to a received post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMedia {
    /// Declared content type.
    pub content_type: String,
    /// Decoded size in bytes.
    pub bytes: usize,
    /// Whether the bytes start like a JPEG (`FF D8`).
    pub looks_like_jpeg: bool,
    /// Alt text.
    pub description: String,
}

/// One accepted post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPost {
    /// 1-based order of arrival; the answer's id is `post-<number>`.
    pub number: usize,
    /// The post's idempotency key.
    pub idempotency_key: String,
    /// BCP 47 language of the text.
    pub language: String,
    /// The text.
    pub text: String,
    /// Attached images.
    pub media: Vec<ReceivedMedia>,
    /// How many times the same key was sent again afterwards.
    pub replays: u32,
    /// When it was first received.
    pub received_at: std::time::SystemTime,
}

impl ReceivedPost {
    fn to_json(&self) -> Value {
        json!({
            "id": format!("post-{}", self.number),
            "idempotency_key": self.idempotency_key,
            "language": self.language,
            "text": self.text,
            "media": self.media.iter().map(|m| json!({
                "content_type": m.content_type,
                "bytes": m.bytes,
                "jpeg": m.looks_like_jpeg,
                "description": m.description,
            })).collect::<Vec<_>>(),
            "replays": self.replays,
        })
    }
}

/// Counters of a receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Distinct posts accepted.
    pub posts: usize,
    /// Requests that replayed an accepted key.
    pub replays: u32,
    /// Requests refused (bad signature or body).
    pub rejected: u32,
}

/// Where accepted posts are echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Nowhere: tests read [`WebhookReceiver::posts`].
    Quiet,
    /// Printed to stdout, one block per post (the local city's outbox).
    Stdout,
}

/// An injected fault.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer with this status without recording the post.
    Fail {
        status: StatusCode,
        retry_after: Option<String>,
    },
    /// Record the post, then answer 503: the outcome is unknown to the sender.
    LoseAnswer,
    /// Record the post, then close the connection without an answer.
    DropConnection,
}

#[derive(Debug, Default)]
struct Received {
    posts: Vec<ReceivedPost>,
    by_key: HashMap<String, usize>,
    rejected: u32,
    faults: VecDeque<Fault>,
}

/// The receiver: verifies, records (once per key) and optionally prints posts.
#[derive(Debug)]
pub struct WebhookReceiver {
    key: Vec<u8>,
    echo: Echo,
    received: Mutex<Received>,
}

/// What the receiver answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
    /// `Retry-After`, when the answer is an injected failure that has one.
    pub retry_after: Option<String>,
    /// Close the connection instead of answering (a server that sends
    /// nothing can do this; the axum router answers 503 instead).
    pub drop_connection: bool,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body,
            retry_after: None,
            drop_connection: false,
        }
    }

    fn error(status: StatusCode, message: String) -> Self {
        Answer {
            status,
            body: json!({ "error": message }),
            retry_after: None,
            drop_connection: false,
        }
    }
}

impl WebhookReceiver {
    /// A receiver that accepts bodies signed with `key`.
    pub fn new(key: Vec<u8>, echo: Echo) -> Self {
        WebhookReceiver {
            key,
            echo,
            received: Mutex::new(Received::default()),
        }
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Posts accepted so far, in order of arrival.
    pub fn posts(&self) -> Vec<ReceivedPost> {
        self.received().posts.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiverStats {
        let received = self.received();
        ReceiverStats {
            posts: received.posts.len(),
            replays: received.posts.iter().map(|p| p.replays).sum(),
            rejected: received.rejected,
        }
    }

    /// Answers the next `count` requests with `status` (and `Retry-After`),
    /// recording nothing: a definite "not posted".
    pub fn fail_next(&self, count: usize, status: u16, retry_after: Option<&str>) {
        let fault = Fault::Fail {
            status: StatusCode::from_u16(status).expect("a valid HTTP status"),
            retry_after: retry_after.map(str::to_owned),
        };
        self.received()
            .faults
            .extend(std::iter::repeat_n(fault, count));
    }

    /// Records the next `count` valid posts and then answers 503: the post is
    /// out, but the sender cannot know it.
    pub fn lose_answer_next(&self, count: usize) {
        self.received()
            .faults
            .extend(std::iter::repeat_n(Fault::LoseAnswer, count));
    }

    /// Records the next `count` valid posts and then closes the connection
    /// without answering.
    pub fn drop_connection_next(&self, count: usize) {
        self.received()
            .faults
            .extend(std::iter::repeat_n(Fault::DropConnection, count));
    }

    /// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under the key.
    pub fn verify(&self, signature: &str, body: &[u8]) -> bool {
        let Some(hex_digest) = signature.trim().strip_prefix("sha256=") else {
            return false;
        };
        let Ok(digest) = hex::decode(hex_digest) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(&digest).is_ok()
    }

    fn reject(&self, status: StatusCode, message: String) -> Answer {
        self.received().rejected += 1;
        if self.echo == Echo::Stdout {
            println!(
                "webhook-sink: rejected a request ({}): {message}",
                status.as_u16()
            );
        }
        Answer::error(status, message)
    }

    /// Handles one `POST`: faults, verify, parse, record once per idempotency key.
    pub fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let fault = self.received().faults.pop_front();
        if let Some(Fault::Fail {
            status,
            retry_after,
        }) = fault
        {
            return Answer {
                retry_after,
                ..Answer::error(status, format!("injected {}", status.as_u16()))
            };
        }
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !self.verify(signature, body) {
            let why = if signature.is_empty() {
                "missing X-Safecity-Signature"
            } else {
                "X-Safecity-Signature does not match the body"
            };
            return self.reject(StatusCode::UNAUTHORIZED, why.to_owned());
        }
        let post = match parse(body) {
            Ok(post) => post,
            Err(message) => return self.reject(StatusCode::BAD_REQUEST, message),
        };
        match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
            None => {
                return self.reject(
                    StatusCode::BAD_REQUEST,
                    "Idempotency-Key header required".to_owned(),
                );
            }
            Some(key) if key != post.idempotency_key => {
                let message = format!(
                    "Idempotency-Key header `{key}` differs from the body's `{}`",
                    post.idempotency_key
                );
                return self.reject(StatusCode::BAD_REQUEST, message);
            }
            Some(_) => {}
        }
        let answer = self.record(post);
        match fault {
            Some(Fault::LoseAnswer) => {
                Answer::error(StatusCode::SERVICE_UNAVAILABLE, "answer lost".to_owned())
            }
            Some(Fault::DropConnection) => Answer {
                drop_connection: true,
                ..Answer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "connection dropped".to_owned(),
                )
            },
            _ => answer,
        }
    }

    /// Records `post` unless its key was seen; the answer names the post.
    fn record(&self, post: ReceivedPost) -> Answer {
        let mut received = self.received();
        if let Some(&index) = received.by_key.get(&post.idempotency_key) {
            let first = &mut received.posts[index];
            first.replays += 1;
            if self.echo == Echo::Stdout {
                println!(
                    "webhook-sink: replay of `{}` answered with post-{} (not posted again)",
                    first.idempotency_key, first.number
                );
            }
            return Answer::ok(json!({ "id": format!("post-{}", first.number) }));
        }
        let number = received.posts.len() + 1;
        let post = ReceivedPost { number, ..post };
        if self.echo == Echo::Stdout {
            print_post(&post);
        }
        let index = received.posts.len();
        received.by_key.insert(post.idempotency_key.clone(), index);
        received.posts.push(post);
        Answer::ok(json!({ "id": format!("post-{number}") }))
    }
}

fn parse(body: &[u8]) -> Result<ReceivedPost, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let text_field = |name: &str| -> Result<String, String> {
        value[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("field `{name}` is missing or not a string"))
    };
    let idempotency_key = text_field("idempotency_key")?;
    let language = text_field("language")?;
    let text = text_field("text")?;
    if text.trim().is_empty() {
        return Err("field `text` is empty".to_owned());
    }
    let media = match &value["media"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let data = m["data_base64"]
                    .as_str()
                    .ok_or_else(|| format!("field `media[{i}].data_base64` is missing"))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| format!("field `media[{i}].data_base64` is not base64: {e}"))?;
                Ok(ReceivedMedia {
                    content_type: m["content_type"].as_str().unwrap_or_default().to_owned(),
                    bytes: bytes.len(),
                    looks_like_jpeg: bytes.starts_with(&[0xFF, 0xD8]),
                    description: m["description"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect::<Result<_, String>>()?,
        _ => return Err("field `media` is not an array".to_owned()),
    };
    Ok(ReceivedPost {
        number: 0,
        idempotency_key,
        language,
        text,
        media,
        replays: 0,
        received_at: std::time::SystemTime::now(),
    })
}

fn print_post(post: &ReceivedPost) {
    let mut out = format!(
        "webhook-sink: post-{} (signature ok) key={} language={}\n",
        post.number, post.idempotency_key, post.language
    );
    for line in post.text.lines() {
        out.push_str("    | ");
        out.push_str(line);
        out.push('\n');
    }
    for media in &post.media {
        out.push_str(&format!(
            "    + image: {} bytes {}{}, alt text: {:?}\n",
            media.bytes,
            media.content_type,
            if media.looks_like_jpeg {
                ""
            } else {
                " (not a JPEG!)"
            },
            media.description
        ));
    }
    print!("{out}");
}

/// The HTTP response of an answer.
pub fn json_response(answer: &Answer) -> Response {
    let mut response = (
        answer.status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", answer.body),
    )
        .into_response();
    if let Some(after) = &answer.retry_after
        && let Ok(value) = HeaderValue::from_str(after)
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn post_handler(
    State(receiver): State<Arc<WebhookReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    json_response(&receiver.receive(&headers, &body))
}

async fn list_handler(State(receiver): State<Arc<WebhookReceiver>>) -> Response {
    let posts: Vec<Value> = receiver.posts().iter().map(ReceivedPost::to_json).collect();
    json_response(&Answer::ok(Value::Array(posts)))
}

/// The HTTP routes: `POST` anywhere receives, `GET /posts` lists, `GET /healthz`.
pub fn router(receiver: Arc<WebhookReceiver>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/posts", get(list_handler))
        .fallback(axum::routing::post(post_handler))
        .with_state(receiver)
}

/// Serves `receiver` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<WebhookReceiver>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(receiver))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &[u8], body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
        mac.update(body);
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
                .parse()
                .expect("header"),
        );
        headers
    }

    #[test]
    fn verifies_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sink = WebhookReceiver::new(b"Jefe".to_vec(), Echo::Quiet);
        let body = b"what do ya want for nothing?";
        assert!(sink.verify(
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            body
        ));
        assert!(!sink.verify(
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3844",
            body
        ));
        assert!(!sink.verify(
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            body
        ));
        assert!(!sink.verify("sha256=zz", body));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let sink = WebhookReceiver::new(b"k".to_vec(), Echo::Quiet);
        for (body, expected) in [
            (&b"nope"[..], "not JSON"),
            (
                br#"{"idempotency_key":"a","language":"ko"}"#,
                "field `text`",
            ),
            (
                br#"{"idempotency_key":"a","language":"ko","text":"t","media":[{"data_base64":"!!"}]}"#,
                "media[0].data_base64",
            ),
        ] {
            let answer = sink.receive(&signed(b"k", body), body);
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            let message = answer.body["error"].as_str().expect("error text");
            assert!(message.contains(expected), "{message}");
        }
        assert_eq!(sink.stats().rejected, 3);
        assert!(sink.posts().is_empty());
    }
}
