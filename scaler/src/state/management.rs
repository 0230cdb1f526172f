//! In-flight counts and ack rates from the RabbitMQ management API: one
//! `GET /api/queues/{vhost}` per interval for all watched queues together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::ScalerState;
use safecity_shell::env::{UrlParts, percent_decode};

/// The statistics of one queue the scaler uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    /// `messages_unacknowledged`: delivered, not yet acked.
    pub unacked: u64,
    /// `message_stats.ack_details.rate`: acks per second.
    pub ack_rate: f64,
}

/// Errors reading the management API (never containing credentials).
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The request could not be sent or answered.
    #[error("management API request failed: {0}")]
    Request(String),
    /// The API answered with an error status.
    #[error("management API answered HTTP {0}")]
    Status(u16),
    /// The answer was not the expected JSON.
    #[error("management API answer is not a queue list: {0}")]
    Body(String),
}

#[derive(Deserialize)]
struct QueueRow {
    name: String,
    #[serde(default)]
    messages_unacknowledged: u64,
    #[serde(default)]
    message_stats: Option<MessageStats>,
}

#[derive(Deserialize)]
struct MessageStats {
    #[serde(default)]
    ack_details: Option<Rate>,
}

#[derive(Deserialize)]
struct Rate {
    #[serde(default)]
    rate: f64,
}

/// A client of the management API's queue list of one vhost.
pub struct ManagementClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    uri: hyper::Uri,
    authorization: Option<String>,
}

impl std::fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI carries no credentials; the authorization header does.
        f.debug_struct("ManagementClient")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl ManagementClient {
    /// A client for `base_url` (`http://user:password@host:port`) and `vhost`.
    pub fn new(base_url: &str, vhost: &str) -> Result<Self, ManagementError> {
        let parts = UrlParts::parse(base_url)
            .ok_or_else(|| ManagementError::Request("management URL is not a URL".into()))?;
        let authorization = parts.password.map(|password| {
            let user = percent_decode(parts.user).unwrap_or_else(|| parts.user.to_owned());
            let password = percent_decode(password).unwrap_or_else(|| password.to_owned());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let host = parts.rest.trim_end_matches('/');
        let vhost: String = vhost
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let uri = format!(
            "{}://{host}/api/queues/{vhost}?columns=name,messages_unacknowledged,message_stats.ack_details",
            parts.scheme
        )
        .parse()
        .map_err(|_| ManagementError::Request("management URL does not parse".into()))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Ok(ManagementClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
            authorization,
        })
    }

    /// Reads the statistics of every queue of the vhost.
    pub async fn queue_stats(&self) -> Result<HashMap<String, QueueStats>, ManagementError> {
        let mut request = hyper::Request::get(self.uri.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| ManagementError::Request(e.to_string()))?;
        let response = tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
            .await
            .map_err(|_| ManagementError::Request("timed out after 5s".into()))?
            .map_err(|e| ManagementError::Request(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ManagementError::Status(response.status().as_u16()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ManagementError::Request(e.to_string()))?
            .to_bytes();
        let rows: Vec<QueueRow> =
            serde_json::from_slice(&body).map_err(|e| ManagementError::Body(e.to_string()))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let ack_rate = row
                    .message_stats
                    .and_then(|s| s.ack_details)
                    .map_or(0.0, |r| r.rate);
                (
                    row.name,
                    QueueStats {
                        unacked: row.messages_unacknowledged,
                        ack_rate,
                    },
                )
            })
            .collect())
    }
}

/// Polls the management API every `interval` (and at once when a queue is
/// added) until `cancel`.
pub async fn run(
    state: Arc<ScalerState>,
    client: ManagementClient,
    interval: Duration,
    cancel: CancellationToken,
) {
    let wake = state.new_queue_management.clone();
    loop {
        if state.queue_count() > 0 {
            let read_at = tokio::time::Instant::now();
            let read = tokio::select! {
                () = cancel.cancelled() => return,
                read = client.queue_stats() => read,
            };
            match read {
                Ok(stats) => {
                    debug!(queues = stats.len(), "management statistics read");
                    state.record_management(&stats, read_at);
                }
                Err(error) => {
                    warn!(%error, "management API unreadable: in-flight counts are going stale");
                    state.record_management_error(error.to_string());
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => {}
        }
    }
}
