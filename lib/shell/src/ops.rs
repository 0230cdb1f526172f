//! The ops HTTP server of every process: `/healthz` (alive), `/readyz`
//! (doing its job: consuming, connected) and `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the process does its job right now; `/readyz` answers 200 or 503
/// with the matching word.
#[derive(Debug, Clone)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    ready_text: &'static str,
    not_ready_text: &'static str,
}

impl Readiness {
    /// Not ready yet; `/readyz` says `ready_text` or `not_ready_text`.
    pub fn new(ready_text: &'static str, not_ready_text: &'static str) -> Self {
        Readiness {
            ready: Arc::default(),
            ready_text,
            not_ready_text,
        }
    }

    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// True while ready.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Renders the process's metrics as OpenMetrics text, at every scrape.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Renders a `prometheus_client` registry.
pub fn render_registry(registry: Arc<Registry>) -> RenderMetrics {
    Arc::new(move || {
        let mut text = String::new();
        // Writing to a String cannot fail; a metric that cannot encode is a bug.
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("metrics encode as text");
        text
    })
}

/// What the ops server serves.
#[derive(Clone)]
pub struct Ops {
    /// Answers `/readyz`.
    pub readiness: Readiness,
    /// Answers `/metrics`.
    pub metrics: RenderMetrics,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

fn router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.readiness.get() {
        (StatusCode::OK, format!("{}\n", ops.readiness.ready_text))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", ops.readiness.not_ready_text),
        )
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], (ops.metrics)())
}

/// Binds `addr` now (a taken port fails start-up) and serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    ops: Ops,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, serve_on(listener, ops, stop)))
}

/// Serves on an already bound listener until `stop`.
pub fn serve_on(listener: TcpListener, ops: Ops, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router(ops))
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "ops HTTP server failed");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let response = client
            .get(format!("http://{addr}{path}").parse().expect("uri"))
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics_on_loopback() {
        let readiness = Readiness::new("consuming", "not consuming");
        let stop = CancellationToken::new();
        let ops = Ops {
            readiness: readiness.clone(),
            metrics: Arc::new(|| "# EOF\n".to_owned()),
        };
        let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), ops, stop.clone())
            .await
            .expect("bound");
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
        assert_eq!(
            get(addr, "/readyz").await,
            (503, "not consuming\n".to_owned())
        );
        readiness.set(true);
        assert_eq!(get(addr, "/readyz").await, (200, "consuming\n".to_owned()));
        assert_eq!(get(addr, "/metrics").await, (200, "# EOF\n".to_owned()));
        stop.cancel();
        task.await.expect("server stops");
    }

    #[tokio::test]
    async fn a_taken_port_fails_at_once() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ops = Ops {
            readiness: Readiness::new("ready", "not ready"),
            metrics: render_registry(Arc::new(Registry::default())),
        };
        let result = serve(
            taken.local_addr().expect("addr"),
            ops,
            CancellationToken::new(),
        )
        .await;
        assert!(result.is_err());
    }
}
