//! A generic webhook backend: one JSON `POST` signed with HMAC-SHA256.
//!
//! Headers: `X-Safecity-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`
//! and `Idempotency-Key`. Body:
//! `{"idempotency_key", "text", "language", "media": [{"content_type", "data_base64", "description"}]}`.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::notifier::{Notifier, NotifyError};
use crate::post::{Post, Published};
use crate::secret::Secret;

const SERVICE: &str = "webhook";

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "X-Safecity-Signature";

/// Posts alerts to a URL as signed JSON.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    url: String,
    secret: Secret,
    http: reqwest::Client,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookNotifier {
    /// A notifier posting to `url`, signing with `secret`.
    pub fn new(url: &str, secret: Secret) -> Self {
        WebhookNotifier {
            url: url.to_owned(),
            secret,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("a TLS-capable HTTP client builds"),
        }
    }
}

impl Notifier for WebhookNotifier {
    async fn publish(&self, post: &Post) -> Result<Published, NotifyError> {
        let media: Vec<_> = post
            .media
            .iter()
            .map(|m| {
                serde_json::json!({
                    "content_type": "image/jpeg",
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(&m.jpeg),
                    "description": m.description,
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "idempotency_key": post.idempotency_key,
            "text": post.text,
            "language": post.language,
            "media": media,
        }))
        .expect("JSON of strings serialises");
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, &body))
            .header("Idempotency-Key", &post.idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| NotifyError::transport(SERVICE, &e.without_url()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(NotifyError::from_status(
                SERVICE,
                status.as_u16(),
                retry_after.as_deref(),
                &text,
            ));
        }
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| post.idempotency_key.clone());
        Ok(Published { id, url: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
