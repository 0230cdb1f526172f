//! `map-pin serve`: the always-on map page and the API for navigation apps.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the live map page |
//! | `GET /api/incidents?bbox=&since=&region=&state=` | GeoJSON FeatureCollection (400 with a message on bad parameters); `state=open` for navigation apps |
//! | `GET /api/incidents/stream` | Server-Sent Events: one `pin` event (a GeoJSON Feature) per created or updated pin |
//! | `GET /api/incidents/{id}/snapshot.jpg` | the incident's snapshot |
//! | `GET /api/config` | `{"tile_url": …, "geo": [files]}` for the page |
//! | `GET /geo/{name}.json` | the offline geography (`coast.json`, `cities.json`) that `scripts/fetch-map-data.sh` prepared; 404 naming the script when absent |
//! | `GET /healthz` | `ok` |
//!
//! Changes reach the stream from a feed that polls the store every
//! `poll_interval`, so any number of function replicas can write pins.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::query::{feature, feature_collection, parse_filter};
use crate::store::PinStore;

const PAGE: &str = include_str!("page.html");

/// Settings of the web mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// OpenStreetMap-style tile URL template (`…/{z}/{x}/{y}.png`); none draws a plain projection.
    pub tile_url: Option<String>,
    /// How often the change feed polls the store.
    pub poll_interval: Duration,
    /// The offline geography's folder (`scripts/fetch-map-data.sh` writes
    /// `target/map-data`); none or missing files: the page draws a bare grid.
    pub geo_dir: Option<PathBuf>,
}

/// The offline geography files the page asks for, in drawing order.
pub const GEO_FILES: [&str; 2] = ["coast.json", "cities.json"];

#[derive(Clone)]
struct WebState {
    store: PinStore,
    changes: broadcast::Sender<Value>,
    tile_url: Option<String>,
    geo_dir: Option<PathBuf>,
    stop: CancellationToken,
}

impl WebState {
    /// The geography files present.
    fn geo_files(&self) -> Vec<&'static str> {
        let Some(dir) = &self.geo_dir else {
            return Vec::new();
        };
        GEO_FILES
            .into_iter()
            .filter(|name| dir.join(name).is_file())
            .collect()
    }
}

async fn geo(State(state): State<WebState>, Path(name): Path<String>) -> Response {
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!(
                "no offline map data `{name}`: run scripts/fetch-map-data.sh (it writes target/map-data; \
                 SAFECITY_MAP_DATA points map-pin serve elsewhere)"
            )})),
        )
            .into_response()
    };
    let (Some(dir), true) = (&state.geo_dir, GEO_FILES.contains(&name.as_str())) else {
        return missing();
    };
    match tokio::fs::read(dir.join(&name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/geo+json"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => missing(),
    }
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message})),
    )
        .into_response()
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    warn!(%error, "store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": "the pin store is unavailable, try again"})),
    )
        .into_response()
}

async fn incidents(
    State(state): State<WebState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let filter = match parse_filter(&params) {
        Ok(filter) => filter,
        Err(error) => return bad_request(error.to_string()),
    };
    match state.store.pins(&filter).await {
        Ok(pins) => (
            [(header::CONTENT_TYPE, "application/geo+json")],
            feature_collection(&pins).to_string(),
        )
            .into_response(),
        Err(error) => unavailable(error),
    }
}

async fn snapshot(State(state): State<WebState>, Path(incident): Path<String>) -> Response {
    match state.store.snapshot(&incident).await {
        Ok(Some(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such snapshot").into_response(),
        Err(error) => unavailable(error),
    }
}

async fn stream(
    State(state): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.changes.subscribe();
    let events = futures_util::stream::unfold(
        (receiver, state.stop.clone()),
        |(mut receiver, stop)| async move {
            let next = tokio::select! {
                () = stop.cancelled() => return None,
                next = receiver.recv() => next,
            };
            let event = match next {
                Ok(feature) => Event::default().event("pin").data(feature.to_string()),
                // A slow client missed updates: tell it to reload the list.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("resync").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), (receiver, stop)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The routes, for embedding or testing.
fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/api/config",
            get(|State(state): State<WebState>| async move {
                axum::Json(json!({"tile_url": state.tile_url, "geo": state.geo_files()}))
            }),
        )
        .route("/geo/{name}", get(geo))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/stream", get(stream))
        .route("/api/incidents/{id}/snapshot.jpg", get(snapshot))
        .with_state(state)
}

/// Broadcasts every pin changed since the feed started.
async fn feed(
    store: PinStore,
    changes: broadcast::Sender<Value>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut cursor = chrono::Utc::now().timestamp_millis();
    // Pins already sent for the cursor's millisecond (the query is `>=`).
    let mut sent_at_cursor: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let changed = match store.changed_since(cursor).await {
            Ok(changed) => changed,
            Err(error) => {
                warn!(%error, "change feed: store unavailable");
                continue;
            }
        };
        for pin in changed {
            if pin.updated_at == cursor && sent_at_cursor.contains(&pin.incident_id) {
                continue;
            }
            if pin.updated_at > cursor {
                cursor = pin.updated_at;
                sent_at_cursor.clear();
            }
            sent_at_cursor.insert(pin.incident_id.clone());
            // No subscriber is not an error.
            let _ = changes.send(feature(&pin));
        }
    }
}

/// Serves the page and the API on `listener` until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    store: PinStore,
    config: WebConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (changes, _) = broadcast::channel(1024);
    let feed_task = tokio::spawn(feed(
        store.clone(),
        changes.clone(),
        config.poll_interval,
        stop.clone(),
    ));
    let state = WebState {
        store,
        changes,
        tile_url: config.tile_url,
        geo_dir: config.geo_dir,
        stop: stop.clone(),
    };
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    feed_task.abort();
    served
}
