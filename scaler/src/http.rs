//! The metrics and liveness HTTP endpoint (`/metrics`, `/healthz`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::ScalerMetrics;
use crate::state::ScalerState;

#[derive(Clone)]
struct HttpState {
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
}

async fn metrics(State(http): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        http.metrics.render(&http.state),
    )
}

/// Serves `/metrics` and `/healthz` on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(HttpState { state, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}
