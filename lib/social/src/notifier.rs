//! The [`Notifier`] trait and how its failures become handler verdicts.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use safecity_runtime::HandlerError;

use crate::post::{Post, Published};

/// Posts alerts somewhere the public sees them.
pub trait Notifier: Send + Sync + 'static {
    /// Publishes `post`. Publishing the same `idempotency_key` again must not
    /// create a second post.
    fn publish(&self, post: &Post) -> impl Future<Output = Result<Published, NotifyError>> + Send;
}

/// Why a post did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The network asks us to slow down (HTTP 429).
    #[error("rate limited by {service}{}", retry_hint(.retry_after))]
    RateLimited {
        /// Which backend.
        service: &'static str,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The network is down or failing (HTTP 5xx, connection errors).
    #[error("{service} unavailable: {detail}{}{}", retry_hint(.retry_after), if *.may_have_posted { " (the post may be out)" } else { "" })]
    Unavailable {
        /// Which backend.
        service: &'static str,
        /// Status or transport error.
        detail: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// Whether the post may have gone out even so: the request reached
        /// the server and the answer was a 5xx, a timeout or a dropped
        /// connection. Only a failure before the request was sent
        /// (connection refused) is a definite "not posted".
        may_have_posted: bool,
    },
    /// The network refused the post for good (HTTP 4xx other than 429).
    #[error("{service} rejected the post with HTTP {status}: {answer}")]
    Rejected {
        /// Which backend.
        service: &'static str,
        /// HTTP status.
        status: u16,
        /// The server's answer (body), shortened.
        answer: String,
    },
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (retry after {})", humantime::format_duration(*after)),
        None => String::new(),
    }
}

impl NotifyError {
    /// Whether the post may be out despite the error: the outcome is unknown,
    /// so the post's slot and idempotency key must be kept and replayed.
    pub fn may_have_posted(&self) -> bool {
        match self {
            NotifyError::Unavailable {
                may_have_posted, ..
            } => *may_have_posted,
            NotifyError::RateLimited { .. } | NotifyError::Rejected { .. } => false,
        }
    }

    /// The same error, known to have happened before the post was sent (a
    /// media upload that failed, say).
    pub fn before_posting(self) -> Self {
        match self {
            NotifyError::Unavailable {
                service,
                detail,
                retry_after,
                ..
            } => NotifyError::Unavailable {
                service,
                detail,
                retry_after,
                may_have_posted: false,
            },
            other => other,
        }
    }

    /// A transport error of the posting request: refused connections never
    /// reached the server; anything else (a timeout, a dropped connection)
    /// may have happened after the server stored the post.
    pub fn transport(service: &'static str, error: &reqwest::Error) -> Self {
        NotifyError::Unavailable {
            service,
            detail: error_chain(error),
            retry_after: None,
            may_have_posted: !(error.is_connect() || error.is_builder()),
        }
    }

    /// The runtime verdict: retry transient failures (honouring `Retry-After`),
    /// dead-letter permanent ones with the server's answer as the reason.
    pub fn into_verdict(self) -> HandlerError {
        let reason = self.to_string();
        match self {
            NotifyError::RateLimited { retry_after, .. }
            | NotifyError::Unavailable { retry_after, .. } => match retry_after {
                Some(after) => HandlerError::retry_after(reason, after),
                None => HandlerError::retry(reason),
            },
            NotifyError::Rejected { .. } => HandlerError::dead_letter(reason),
        }
    }

    /// Classifies an HTTP error answer.
    pub fn from_status(
        service: &'static str,
        status: u16,
        retry_after: Option<&str>,
        body: &str,
    ) -> Self {
        let retry_after = retry_after.and_then(|value| parse_retry_after(value, Utc::now()));
        match status {
            429 => NotifyError::RateLimited {
                service,
                retry_after,
            },
            500..=599 => NotifyError::Unavailable {
                service,
                detail: format!("HTTP {status}: {}", shorten(body)),
                retry_after,
                may_have_posted: true,
            },
            _ => NotifyError::Rejected {
                service,
                status,
                answer: shorten(body),
            },
        }
    }
}

/// A transport error with its causes, without the URL.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Cuts a server answer to a length that fits in a header and a log line.
pub fn shorten(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() <= 500 {
        return body.to_owned();
    }
    let mut cut: String = body.chars().take(500).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_verdicts() {
        let limited = NotifyError::from_status("mastodon", 429, Some("7"), "slow down");
        assert_eq!(
            limited.clone().into_verdict(),
            HandlerError::retry_after(limited.to_string(), Duration::from_secs(7))
        );
        let down = NotifyError::from_status("mastodon", 503, None, "maintenance");
        assert!(matches!(
            down.into_verdict(),
            HandlerError::Retry { after: None, .. }
        ));
        let bad_token =
            NotifyError::from_status("mastodon", 401, None, r#"{"error":"invalid token"}"#);
        match bad_token.into_verdict() {
            HandlerError::DeadLetter { reason } => {
                assert!(
                    reason.contains("401") && reason.contains("invalid token"),
                    "{reason}"
                );
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().expect("time");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
