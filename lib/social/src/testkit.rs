//! Real HTTP servers on loopback that play a Mastodon instance and a webhook
//! receiver in tests, enforcing the API rules the backends must respect.
//!
//! These are test peers, not mocks of our code: they speak HTTP on
//! `127.0.0.1:0` and reject what a real server would reject.
//!
//! Mastodon rules enforced: a wrong bearer token gets 401; `media_ids` must
//! name uploaded media (else 422); an empty status gets 422; replaying an
//! `Idempotency-Key` returns the first status without creating another.
//! The webhook peer is the [`WebhookReceiver`] itself (the same receiver
//! `safecity webhook-sink` serves). Both can be told to fail the next
//! requests with a status and an optional `Retry-After`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::receiver::{self, Echo, ReceivedPost, WebhookReceiver};

/// A status the fake Mastodon created.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedStatus {
    /// Its id.
    pub id: String,
    /// The text.
    pub text: String,
    /// Attached media, as uploaded.
    pub media: Vec<UploadedMedia>,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
}

/// An uploaded media attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedMedia {
    /// Its id.
    pub id: String,
    /// Alt text.
    pub description: String,
    /// Bytes of the file.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Failure {
    status: StatusCode,
    retry_after: Option<String>,
}

impl Failure {
    fn repeated(
        count: usize,
        status: u16,
        retry_after: Option<&str>,
    ) -> impl Iterator<Item = Failure> {
        let failure = Failure {
            status: StatusCode::from_u16(status).expect("valid status"),
            retry_after: retry_after.map(str::to_owned),
        };
        std::iter::repeat_n(failure, count)
    }
}

#[derive(Debug, Default)]
struct MastodonState {
    token: String,
    media: HashMap<String, UploadedMedia>,
    statuses: Vec<CreatedStatus>,
    by_key: HashMap<String, String>,
    failures: Vec<Failure>,
    requests: u64,
    next_id: u64,
}

/// A Mastodon-compatible server on loopback.
#[derive(Debug, Clone)]
pub struct FakeMastodon {
    addr: SocketAddr,
    state: Arc<Mutex<MastodonState>>,
}

fn failure_response(failure: Failure) -> Response {
    let mut response = (
        failure.status,
        axum::Json(json!({"error": format!("injected {}", failure.status.as_u16())})),
    )
        .into_response();
    if let Some(after) = failure.retry_after
        && let Ok(value) = HeaderValue::from_str(&after)
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "The access token is invalid"})),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn upload_media(
    State(state): State<Arc<Mutex<MastodonState>>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let token = state.lock().expect("state").token.clone();
    if bearer(&headers) != Some(token.as_str()) {
        return unauthorized();
    }
    let mut bytes = None;
    let mut description = String::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("file") => bytes = field.bytes().await.ok().map(|b| b.to_vec()),
            Some("description") => description = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": "Validation failed: File can't be blank"})),
        )
            .into_response();
    };
    let mut state = state.lock().expect("state");
    state.next_id += 1;
    let id = format!("m{}", state.next_id);
    state.media.insert(
        id.clone(),
        UploadedMedia {
            id: id.clone(),
            description,
            bytes,
        },
    );
    axum::Json(json!({"id": id, "type": "image"})).into_response()
}

async fn create_status(
    State(state): State<Arc<Mutex<MastodonState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().expect("state");
    state.requests += 1;
    if !state.failures.is_empty() {
        let failure = state.failures.remove(0);
        return failure_response(failure);
    }
    if bearer(&headers) != Some(state.token.as_str()) {
        return unauthorized();
    }
    let key = headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(existing) = key.as_ref().and_then(|k| state.by_key.get(k)) {
        let id = existing.clone();
        return axum::Json(json!({"id": id, "url": format!("https://fake.social/@city/{id}")}))
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "body is not JSON"})),
        )
            .into_response();
    };
    let text = request["status"].as_str().unwrap_or("").to_owned();
    if text.trim().is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": "Validation failed: Text can't be blank"})),
        )
            .into_response();
    }
    let mut media = Vec::new();
    for id in request["media_ids"].as_array().into_iter().flatten() {
        match id.as_str().and_then(|id| state.media.get(id)) {
            Some(found) => media.push(found.clone()),
            None => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(
                        json!({"error": format!("Validation failed: media {id} not found")}),
                    ),
                )
                    .into_response();
            }
        }
    }
    state.next_id += 1;
    let id = format!("s{}", state.next_id);
    if let Some(key) = &key {
        state.by_key.insert(key.clone(), id.clone());
    }
    state.statuses.push(CreatedStatus {
        id: id.clone(),
        text,
        media,
        idempotency_key: key,
    });
    axum::Json(json!({"id": id, "url": format!("https://fake.social/@city/{id}")})).into_response()
}

impl FakeMastodon {
    /// Starts a server on `127.0.0.1:0` accepting `token`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(Mutex::new(MastodonState {
            token: token.to_owned(),
            ..MastodonState::default()
        }));
        let app = Router::new()
            .route("/api/v2/media", post(upload_media))
            .route("/api/v1/statuses", post(create_status))
            .with_state(state.clone());
        let addr = serve(app).await;
        FakeMastodon { addr, state }
    }

    /// Base URL of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Statuses created so far, in order.
    pub fn statuses(&self) -> Vec<CreatedStatus> {
        self.state.lock().expect("state").statuses.clone()
    }

    /// Requests to `/api/v1/statuses` so far, failed ones included.
    pub fn status_requests(&self) -> u64 {
        self.state.lock().expect("state").requests
    }

    /// Makes the next `count` status requests fail with `status`.
    pub fn fail_next(&self, count: usize, status: u16, retry_after: Option<&str>) {
        self.state
            .lock()
            .expect("state")
            .failures
            .extend(Failure::repeated(count, status, retry_after));
    }
}

/// The webhook receiver ([`WebhookReceiver`]) served on loopback at `/hook`.
#[derive(Debug, Clone)]
pub struct FakeWebhook {
    addr: SocketAddr,
    receiver: Arc<WebhookReceiver>,
}

impl FakeWebhook {
    /// Starts a receiver on `127.0.0.1:0` that verifies signatures with `secret`.
    ///
    /// Served with hyper directly (not the axum router) so that a
    /// [`WebhookReceiver::drop_connection_next`] fault really closes the
    /// connection unanswered.
    pub async fn start(secret: &str) -> Self {
        let receiver = Arc::new(WebhookReceiver::new(
            secret.as_bytes().to_vec(),
            Echo::Quiet,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(accept_dropping(listener, receiver.clone()));
        FakeWebhook { addr, receiver }
    }

    /// Records the next `count` posts, then closes the connection unanswered.
    pub fn drop_connection_next(&self, count: usize) {
        self.receiver.drop_connection_next(count);
    }

    /// Records the next `count` posts, then answers 503.
    pub fn lose_answer_next(&self, count: usize) {
        self.receiver.lose_answer_next(count);
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Accepted posts (each idempotency key once), in order.
    pub fn posts(&self) -> Vec<ReceivedPost> {
        self.receiver.posts()
    }

    /// The receiver itself: counters and fault injection.
    pub fn receiver(&self) -> &WebhookReceiver {
        &self.receiver
    }

    /// Makes the next `count` requests fail with `status`, recording nothing.
    pub fn fail_next(&self, count: usize, status: u16, retry_after: Option<&str>) {
        self.receiver.fail_next(count, status, retry_after);
    }
}

/// Why a connection was closed unanswered.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped after the post was stored")
    }
}

impl std::error::Error for Dropped {}

/// Serves `receiver`: every request is a post; an answer marked
/// `drop_connection` closes the connection instead (hyper closes a
/// connection whose service fails).
async fn accept_dropping(listener: tokio::net::TcpListener, receiver: Arc<WebhookReceiver>) {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;
    while let Ok((stream, _)) = listener.accept().await {
        let receiver = receiver.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let receiver = receiver.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
                        let answer = receiver.receive(&parts.headers, &body);
                        if answer.drop_connection {
                            return Err(Dropped);
                        }
                        Ok::<_, Dropped>(receiver::json_response(&answer))
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A throw-away PostgreSQL database on the local server (`SAFECITY_TEST_POSTGRES_URL`,
/// default `postgres://postgres@127.0.0.1:5432/postgres`); call [`TestDatabase::drop_database`] at the end.
#[derive(Debug)]
pub struct TestDatabase {
    admin: sqlx::AnyPool,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates `safecity_<tag>_<pid>_<nanos>`.
    pub async fn create(tag: &str) -> Self {
        let admin_url = std::env::var("SAFECITY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!(
            "safecity_{tag}_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("the local PostgreSQL is running (scripts/ensure-postgres.sh starts it)");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        let url = format!(
            "{}/{name}",
            admin_url
                .rsplit_once('/')
                .expect("SAFECITY_TEST_POSTGRES_URL names a database")
                .0
        );
        TestDatabase { admin, name, url }
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_database(self) {
        sqlx::raw_sql(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .expect("drop database");
    }
}
