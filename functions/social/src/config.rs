//! Choosing and configuring the notifier from the environment.
//!
//! | variable | meaning |
//! |---|---|
//! | `SAFECITY_NOTIFIER` | `mastodon` or `webhook` |
//! | `SAFECITY_MASTODON_URL` | server base URL |
//! | `SAFECITY_MASTODON_TOKEN` / `SAFECITY_MASTODON_TOKEN_FILE` | access token, or a file holding it |
//! | `SAFECITY_MASTODON_VISIBILITY` | `public` (default), `unlisted`, `private` |
//! | `SAFECITY_WEBHOOK_URL` | URL to `POST` to |
//! | `SAFECITY_WEBHOOK_SECRET` / `SAFECITY_WEBHOOK_SECRET_FILE` | HMAC key, or a file holding it |

use crate::mastodon::MastodonNotifier;
use crate::notifier::{Notifier, NotifyError};
use crate::post::{Post, Published};
use crate::secret::Secret;
use crate::webhook::WebhookNotifier;

/// A notifier setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The configured backend.
#[derive(Debug, Clone)]
pub enum NotifierConfig {
    /// A Mastodon-compatible server.
    Mastodon {
        /// Base URL.
        url: String,
        /// Access token.
        token: Secret,
        /// Post visibility.
        visibility: String,
    },
    /// A signed webhook.
    Webhook {
        /// Target URL.
        url: String,
        /// HMAC key.
        secret: Secret,
    },
}

fn required(
    lookup: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<String, ConfigError> {
    lookup(variable)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError {
            variable,
            reason: "is required".to_owned(),
        })
}

fn http_url(
    lookup: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<String, ConfigError> {
    let url = required(lookup, variable)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError {
            variable,
            reason: format!("`{url}` is not an http(s) URL"),
        });
    }
    Ok(url)
}

/// Reads a secret from `NAME` or from the file named by `NAME_FILE`.
fn secret(
    lookup: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
    file_variable: &'static str,
) -> Result<Secret, ConfigError> {
    if let Some(path) = lookup(file_variable) {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            variable: file_variable,
            reason: format!("cannot read `{path}`: {e}"),
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(ConfigError {
                variable: file_variable,
                reason: format!("`{path}` is empty"),
            });
        }
        return Ok(Secret::new(value));
    }
    required(lookup, variable)
        .map(Secret::new)
        .map_err(|_| ConfigError {
            variable,
            reason: format!("is required (or set {file_variable})"),
        })
}

/// Reads `DATABASE_URL` (a `sqlite:` or `postgres` URL), or `default`.
pub fn database_url(
    lookup: &dyn Fn(&str) -> Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let url = lookup("DATABASE_URL").unwrap_or_else(|| default.to_owned());
    if url.starts_with("sqlite:") || url.starts_with("postgres") {
        Ok(url)
    } else {
        Err(ConfigError {
            variable: "DATABASE_URL",
            reason: format!("`{url}` is not a sqlite:// or postgres:// URL"),
        })
    }
}

/// Reads `SAFECITY_HIDE_PEOPLE` (default `true`): pixelate people in public snapshots.
pub fn hide_people(lookup: &dyn Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match lookup("SAFECITY_HIDE_PEOPLE").as_deref().map(str::trim) {
        None | Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError {
            variable: "SAFECITY_HIDE_PEOPLE",
            reason: format!("`{other}` is not true or false"),
        }),
    }
}

impl NotifierConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        NotifierConfig::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match required(lookup, "SAFECITY_NOTIFIER")?.as_str() {
            "mastodon" => {
                let visibility =
                    lookup("SAFECITY_MASTODON_VISIBILITY").unwrap_or_else(|| "public".to_owned());
                if !["public", "unlisted", "private"].contains(&visibility.as_str()) {
                    return Err(ConfigError {
                        variable: "SAFECITY_MASTODON_VISIBILITY",
                        reason: format!("`{visibility}` is not public, unlisted or private"),
                    });
                }
                Ok(NotifierConfig::Mastodon {
                    url: http_url(lookup, "SAFECITY_MASTODON_URL")?,
                    token: secret(
                        lookup,
                        "SAFECITY_MASTODON_TOKEN",
                        "SAFECITY_MASTODON_TOKEN_FILE",
                    )?,
                    visibility,
                })
            }
            "webhook" => Ok(NotifierConfig::Webhook {
                url: http_url(lookup, "SAFECITY_WEBHOOK_URL")?,
                secret: secret(
                    lookup,
                    "SAFECITY_WEBHOOK_SECRET",
                    "SAFECITY_WEBHOOK_SECRET_FILE",
                )?,
            }),
            other => Err(ConfigError {
                variable: "SAFECITY_NOTIFIER",
                reason: format!("`{other}` is not `mastodon` or `webhook`"),
            }),
        }
    }

    /// Builds the notifier.
    pub fn build(self) -> AnyNotifier {
        match self {
            NotifierConfig::Mastodon {
                url,
                token,
                visibility,
            } => AnyNotifier::Mastodon(MastodonNotifier::new(&url, token, &visibility)),
            NotifierConfig::Webhook { url, secret } => {
                AnyNotifier::Webhook(WebhookNotifier::new(&url, secret))
            }
        }
    }
}

/// Whichever backend the configuration chose.
#[derive(Debug, Clone)]
pub enum AnyNotifier {
    /// Mastodon-compatible API.
    Mastodon(MastodonNotifier),
    /// Signed webhook.
    Webhook(WebhookNotifier),
}

impl Notifier for AnyNotifier {
    async fn publish(&self, post: &Post) -> Result<Published, NotifyError> {
        match self {
            AnyNotifier::Mastodon(n) => n.publish(post).await,
            AnyNotifier::Webhook(n) => n.publish(post).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<NotifierConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        NotifierConfig::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn chooses_and_validates_backends() {
        assert!(matches!(
            from(&[
                ("SAFECITY_NOTIFIER", "webhook"),
                ("SAFECITY_WEBHOOK_URL", "http://127.0.0.1:1/hook"),
                ("SAFECITY_WEBHOOK_SECRET", "k"),
            ]),
            Ok(NotifierConfig::Webhook { .. })
        ));
        let err = from(&[("SAFECITY_NOTIFIER", "mastodon")]).expect_err("no url");
        assert_eq!(err.variable, "SAFECITY_MASTODON_URL");
        let err = from(&[
            ("SAFECITY_NOTIFIER", "mastodon"),
            ("SAFECITY_MASTODON_URL", "https://m.example"),
        ])
        .expect_err("no token");
        assert_eq!(err.variable, "SAFECITY_MASTODON_TOKEN");
        assert!(err.to_string().contains("SAFECITY_MASTODON_TOKEN_FILE"));
        let err = from(&[("SAFECITY_NOTIFIER", "fax")]).expect_err("unknown");
        assert_eq!(err.variable, "SAFECITY_NOTIFIER");
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = std::env::temp_dir().join(format!("safecity-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "tok-123\n").expect("write");
        let config = from(&[
            ("SAFECITY_NOTIFIER", "mastodon"),
            ("SAFECITY_MASTODON_URL", "https://m.example"),
            (
                "SAFECITY_MASTODON_TOKEN_FILE",
                path.to_str().expect("utf-8"),
            ),
        ])
        .expect("valid");
        let NotifierConfig::Mastodon { token, .. } = &config else {
            panic!("mastodon expected");
        };
        assert_eq!(token.expose(), "tok-123");
        assert!(!format!("{config:?}").contains("tok-123"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
