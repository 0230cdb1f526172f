//! `safecity webhook-sink`: a local receiver for the signed-webhook notifier.
//!
//! It plays the social network in the local city demo: every `POST` must carry
//! `X-Safecity-Signature: sha256=<hex of HMAC-SHA256(secret, body)>` (the way
//! `safecity_social::webhook` signs it), checked in constant time; a bad or
//! missing signature gets 401. An accepted post is printed (key, language,
//! text, attached media) and answered `{"id": "post-N"}`. Like a real
//! receiver it honours `Idempotency-Key`: a replayed key gets the first
//! answer again and is counted as a replay, never printed as a second post.
//!
//! `GET /posts` lists what was received (JSON), `GET /healthz` answers `ok`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use clap::Args;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

/// Header holding the body's signature.
pub const SIGNATURE_HEADER: &str = "x-safecity-signature";

/// Errors of the webhook sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// No secret was given.
    #[error(
        "the webhook secret is required: pass --secret, or set SAFECITY_WEBHOOK_SECRET or SAFECITY_WEBHOOK_SECRET_FILE"
    )]
    NoSecret,
    /// The secret file could not be read or is empty.
    #[error("webhook secret file `{path}`: {reason}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving webhooks: {0}")]
    Serve(#[source] std::io::Error),
}

/// Options of `safecity webhook-sink`.
#[derive(Debug, Args)]
pub struct WebhookSinkArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub addr: SocketAddr,
    /// HMAC key the notifier signs with.
    #[arg(long, env = "SAFECITY_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the HMAC key (used when --secret is not given).
    #[arg(long, env = "SAFECITY_WEBHOOK_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

impl WebhookSinkArgs {
    /// The HMAC key, from `--secret` or the secret file.
    pub fn key(&self) -> Result<Vec<u8>, SinkError> {
        if let Some(secret) = self.secret.as_ref().filter(|s| !s.is_empty()) {
            return Ok(secret.as_bytes().to_vec());
        }
        let Some(path) = &self.secret_file else {
            return Err(SinkError::NoSecret);
        };
        let text = std::fs::read_to_string(path).map_err(|e| SinkError::SecretFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(SinkError::SecretFile {
                path: path.clone(),
                reason: "is empty".to_owned(),
            });
        }
        Ok(key.as_bytes().to_vec())
    }
}

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

/// Counters of a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Distinct posts accepted.
    pub posts: usize,
    /// Requests that replayed an accepted key.
    pub replays: u32,
    /// Requests refused (bad signature or body).
    pub rejected: u32,
}

#[derive(Debug, Default)]
struct Received {
    posts: Vec<ReceivedPost>,
    by_key: HashMap<String, usize>,
    rejected: u32,
}

/// The receiver: verifies, records and prints posts.
#[derive(Debug)]
pub struct Sink {
    key: Vec<u8>,
    received: Mutex<Received>,
}

/// What the sink answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
}

impl Answer {
    fn error(status: StatusCode, message: String) -> Self {
        Answer {
            status,
            body: json!({ "error": message }),
        }
    }
}

impl Sink {
    /// A sink that accepts bodies signed with `key`.
    pub fn new(key: Vec<u8>) -> Self {
        Sink {
            key,
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
    pub fn stats(&self) -> SinkStats {
        let received = self.received();
        SinkStats {
            posts: received.posts.len(),
            replays: received.posts.iter().map(|p| p.replays).sum(),
            rejected: received.rejected,
        }
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

    /// Handles one `POST`: verify, parse, record once per idempotency key, print.
    pub fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !self.verify(signature, body) {
            self.received().rejected += 1;
            let why = if signature.is_empty() {
                "missing X-Safecity-Signature"
            } else {
                "X-Safecity-Signature does not match the body"
            };
            println!("webhook-sink: rejected a request (401): {why}");
            return Answer::error(StatusCode::UNAUTHORIZED, why.to_owned());
        }
        let post = match parse(body) {
            Ok(post) => post,
            Err(message) => {
                self.received().rejected += 1;
                println!("webhook-sink: rejected a request (400): {message}");
                return Answer::error(StatusCode::BAD_REQUEST, message);
            }
        };
        if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok())
            && key != post.idempotency_key
        {
            self.received().rejected += 1;
            let message = format!(
                "Idempotency-Key header `{key}` differs from the body's `{}`",
                post.idempotency_key
            );
            println!("webhook-sink: rejected a request (400): {message}");
            return Answer::error(StatusCode::BAD_REQUEST, message);
        }
        let mut received = self.received();
        if let Some(&index) = received.by_key.get(&post.idempotency_key) {
            let first = &mut received.posts[index];
            first.replays += 1;
            println!(
                "webhook-sink: replay of `{}` answered with post-{} (not posted again)",
                first.idempotency_key, first.number
            );
            return Answer {
                status: StatusCode::OK,
                body: json!({ "id": format!("post-{}", first.number) }),
            };
        }
        let number = received.posts.len() + 1;
        let post = ReceivedPost { number, ..post };
        print_post(&post);
        let index = received.posts.len();
        received.by_key.insert(post.idempotency_key.clone(), index);
        received.posts.push(post);
        Answer {
            status: StatusCode::OK,
            body: json!({ "id": format!("post-{number}") }),
        }
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

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn post_handler(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = sink.receive(&headers, &body);
    json_response(answer.status, &answer.body)
}

async fn list_handler(State(sink): State<Arc<Sink>>) -> Response {
    let posts: Vec<Value> = sink.posts().iter().map(ReceivedPost::to_json).collect();
    json_response(StatusCode::OK, &Value::Array(posts))
}

/// The HTTP routes: `POST` anywhere receives, `GET /posts` lists, `GET /healthz`.
pub fn router(sink: Arc<Sink>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/posts", get(list_handler))
        .fallback(axum::routing::post(post_handler))
        .with_state(sink)
}

/// Serves `sink` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sink: Arc<Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SinkError> {
    axum::serve(listener, router(sink))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SinkError::Serve)
}

/// `safecity webhook-sink`: serves until SIGTERM/SIGINT, then prints the counts.
pub async fn run(args: WebhookSinkArgs) -> Result<(), SinkError> {
    let sink = Arc::new(Sink::new(args.key()?));
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|source| SinkError::Bind {
            addr: args.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SinkError::Bind {
        addr: args.addr,
        source,
    })?;
    println!("webhook-sink: listening on http://{addr}/ (posts must be signed)");
    let cancel = safecity_runtime::shutdown::on_signals();
    serve(
        listener,
        sink.clone(),
        async move { cancel.cancelled().await },
    )
    .await?;
    let stats = sink.stats();
    println!(
        "webhook-sink: stopped; {} post(s), {} replay(s) answered without posting, {} rejected",
        stats.posts, stats.replays, stats.rejected
    );
    Ok(())
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
        let sink = Sink::new(b"Jefe".to_vec());
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
        let sink = Sink::new(b"k".to_vec());
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

    #[test]
    fn secret_comes_from_the_flag_or_a_file() {
        let args = |secret: Option<&str>, file: Option<PathBuf>| WebhookSinkArgs {
            addr: "127.0.0.1:0".parse().expect("addr"),
            secret: secret.map(str::to_owned),
            secret_file: file,
        };
        assert_eq!(args(Some("s"), None).key().expect("flag"), b"s");
        assert!(matches!(args(None, None).key(), Err(SinkError::NoSecret)));
        let dir = std::env::temp_dir().join(format!("safecity-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        assert_eq!(
            args(None, Some(path.clone())).key().expect("file"),
            b"from-file"
        );
        std::fs::write(&path, "  \n").expect("write");
        let err = args(None, Some(path)).key().expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
