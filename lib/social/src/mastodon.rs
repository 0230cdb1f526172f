//! A Mastodon-compatible backend: media first (`POST /api/v2/media`), then the
//! status (`POST /api/v1/statuses`) with an `Idempotency-Key`.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use crate::notifier::{Notifier, NotifyError};
use crate::post::{Post, Published};
use crate::secret::Secret;

const SERVICE: &str = "mastodon";

/// Posts to a Mastodon-compatible server with an access token.
#[derive(Debug, Clone)]
pub struct MastodonNotifier {
    base_url: String,
    token: Secret,
    visibility: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    url: Option<String>,
}

impl MastodonNotifier {
    /// A notifier for the server at `base_url` (e.g. `https://mastodon.example`).
    pub fn new(base_url: &str, token: Secret, visibility: &str) -> Self {
        MastodonNotifier {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            visibility: visibility.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("a TLS-capable HTTP client builds"),
        }
    }

    async fn upload(&self, jpeg: &[u8], description: &str) -> Result<String, NotifyError> {
        let part = Part::bytes(jpeg.to_vec())
            .file_name("snapshot.jpg")
            .mime_str("image/jpeg")
            .expect("a valid MIME type");
        let form = Form::new()
            .part("file", part)
            .text("description", description.to_owned());
        let response = self
            .http
            .post(format!("{}/api/v2/media", self.base_url))
            .bearer_auth(self.token.expose())
            .multipart(form)
            .send()
            .await
            .map_err(transport)?;
        // A media upload is not the post: whatever happened, no post is out.
        Ok(created(response)
            .await
            .map_err(NotifyError::before_posting)?
            .id)
    }
}

fn transport(error: reqwest::Error) -> NotifyError {
    NotifyError::transport(SERVICE, &error.without_url())
}

async fn created(response: reqwest::Response) -> Result<Created, NotifyError> {
    let status = response.status();
    if status.is_success() {
        return response
            .json::<Created>()
            .await
            .map_err(|e| NotifyError::Unavailable {
                service: SERVICE,
                detail: format!("unreadable answer: {e}"),
                retry_after: None,
                may_have_posted: true,
            });
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    Err(NotifyError::from_status(
        SERVICE,
        status.as_u16(),
        retry_after.as_deref(),
        &body,
    ))
}

impl Notifier for MastodonNotifier {
    async fn publish(&self, post: &Post) -> Result<Published, NotifyError> {
        let mut media_ids = Vec::new();
        if let Some(media) = &post.media {
            let uploaded = self.upload(&media.jpeg, &media.description).await;
            media_ids.push(uploaded.map_err(NotifyError::before_posting)?);
        }
        let body = serde_json::json!({
            "status": post.text,
            "media_ids": media_ids,
            "visibility": self.visibility,
            "language": post.language,
        });
        let response = self
            .http
            .post(format!("{}/api/v1/statuses", self.base_url))
            .bearer_auth(self.token.expose())
            .header("Idempotency-Key", &post.idempotency_key)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = created(response).await?;
        Ok(Published {
            id: status.id,
            url: status.url,
        })
    }
}
