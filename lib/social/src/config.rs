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

use safecity_shell::env::{Env, EnvError, process_env, redact_url};

use crate::mastodon::MastodonNotifier;
use crate::notifier::{Notifier, NotifyError};
use crate::post::{Post, Published};
use crate::secret::Secret;
use crate::webhook::WebhookNotifier;

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

fn http_url(env: &Env<'_>, variable: &'static str) -> Result<String, EnvError> {
    env.required(variable, "the server's http(s) URL")?;
    env.url(variable, "", &["http", "https"])
}

/// A secret from `NAME` or from the file named by `NAME_FILE`; required.
fn secret(
    env: &Env<'_>,
    variable: &'static str,
    file_variable: &'static str,
) -> Result<Secret, EnvError> {
    env.secret(variable, file_variable)?
        .map(Secret::new)
        .ok_or_else(|| EnvError::new(variable, format!("is required (or set {file_variable})")))
}

/// Reads `DATABASE_URL` (a `sqlite:` or `postgres` URL), or `default`.
pub fn database_url(env: &Env<'_>, default: &str) -> Result<String, EnvError> {
    env.parse("DATABASE_URL", default, |url| {
        if url.starts_with("sqlite:") || url.starts_with("postgres") {
            Ok(url.to_owned())
        } else {
            Err(format!(
                "`{}` is not a sqlite:// or postgres:// URL",
                redact_url(url)
            ))
        }
    })
}

/// Reads `SAFECITY_HIDE_PEOPLE` (default `true`): pixelate people in public snapshots.
pub fn hide_people(env: &Env<'_>) -> Result<bool, EnvError> {
    env.flag("SAFECITY_HIDE_PEOPLE", true)
}

impl NotifierConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        NotifierConfig::from_env_reader(&Env::new(&process_env))
    }

    /// Reads the configuration through `env`.
    pub fn from_env_reader(env: &Env<'_>) -> Result<Self, EnvError> {
        match env
            .required("SAFECITY_NOTIFIER", "`mastodon` or `webhook`")?
            .as_str()
        {
            "mastodon" => Ok(NotifierConfig::Mastodon {
                url: http_url(env, "SAFECITY_MASTODON_URL")?,
                token: secret(
                    env,
                    "SAFECITY_MASTODON_TOKEN",
                    "SAFECITY_MASTODON_TOKEN_FILE",
                )?,
                visibility: env.parse("SAFECITY_MASTODON_VISIBILITY", "public", |v| {
                    if ["public", "unlisted", "private"].contains(&v) {
                        Ok(v.to_owned())
                    } else {
                        Err(format!("`{v}` is not public, unlisted or private"))
                    }
                })?,
            }),
            "webhook" => Ok(NotifierConfig::Webhook {
                url: http_url(env, "SAFECITY_WEBHOOK_URL")?,
                secret: secret(
                    env,
                    "SAFECITY_WEBHOOK_SECRET",
                    "SAFECITY_WEBHOOK_SECRET_FILE",
                )?,
            }),
            other => Err(EnvError::new(
                "SAFECITY_NOTIFIER",
                format!("`{other}` is not `mastodon` or `webhook`"),
            )),
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

    fn from(vars: &[(&str, &str)]) -> Result<NotifierConfig, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        NotifierConfig::from_env_reader(&Env::new(&|name| map.get(name).cloned()))
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
