//! Runtime configuration, read once from the environment into a typed struct.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SAFECITY_AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | broker to consume from and publish to |
//! | `SAFECITY_CONCURRENCY` | `16` | handlers running at once; also the channel prefetch |
//! | `SAFECITY_RETRY_DELAYS` | `1s,5s,30s` | wait before each retry; attempts = delays + 1 |
//! | `SAFECITY_MAX_RETRY_DELAY` | `1h` | cap on a handler's own `retry_after` |
//! | `SAFECITY_HANDLER_TIMEOUT` | `60s` | an attempt running longer fails and is retried |
//! | `SAFECITY_SHUTDOWN_GRACE` | `25s` | time in-flight handlers get to finish on SIGTERM |
//! | `SAFECITY_RECONNECT_MAX_DELAY` | `10s` | cap of the reconnect backoff |
//! | `SAFECITY_QUEUE_TYPE` | `quorum` | `quorum` or `classic` |
//! | `SAFECITY_HTTP_ADDR` | `0.0.0.0:9090` | `/healthz`, `/readyz`, `/metrics`; `off` disables |
//! | `SAFECITY_LOG_FORMAT` | `text` | `text` or `json` |

use std::net::SocketAddr;
use std::time::Duration;

use crate::topology::QueueType;

/// A configuration variable with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// Its value (redacted where it may hold a secret).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything the runtime needs to know, validated.
#[derive(Clone, PartialEq)]
pub struct RuntimeConfig {
    /// AMQP URL of the broker.
    pub amqp_url: String,
    /// Handlers running at once (and the prefetch count).
    pub concurrency: u16,
    /// Delay before each retry; an input gets `retry_delays.len() + 1` attempts.
    pub retry_delays: Vec<Duration>,
    /// Longest delay a handler may ask for with `retry_after`.
    pub max_retry_delay: Duration,
    /// Time limit of one attempt.
    pub handler_timeout: Duration,
    /// Time in-flight handlers get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Cap of the reconnect backoff.
    pub reconnect_max_delay: Duration,
    /// Queue type of the function's durable queues.
    pub queue_type: QueueType,
    /// Address of the health and metrics endpoint, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// Log line format.
    pub log_format: LogFormat,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("concurrency", &self.concurrency)
            .field("retry_delays", &self.retry_delays)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("handler_timeout", &self.handler_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("queue_type", &self.queue_type)
            .field("http_addr", &self.http_addr)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig::from_lookup(|_| None).expect("the defaults are valid")
    }
}

/// Replaces the password of an AMQP URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| ConfigError {
        variable,
        value: value.to_owned(),
        reason: format!("not a duration like `500ms`, `5s` or `1m` ({e})"),
    })
}

impl RuntimeConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        RuntimeConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());

        let amqp_url = get("SAFECITY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        if let Err(reason) = amqp_url.parse::<lapin::uri::AMQPUri>() {
            return Err(ConfigError {
                variable: "SAFECITY_AMQP_URL",
                value: redact_url(&amqp_url),
                reason: format!("not an AMQP URL ({reason})"),
            });
        }

        let concurrency_text = get("SAFECITY_CONCURRENCY", "16");
        let concurrency = concurrency_text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError {
                variable: "SAFECITY_CONCURRENCY",
                value: concurrency_text.clone(),
                reason: "not an integer in 1..=65535".to_owned(),
            })?;

        let delays_text = get("SAFECITY_RETRY_DELAYS", "1s,5s,30s");
        let retry_delays = if delays_text.trim().is_empty() || delays_text.trim() == "none" {
            Vec::new()
        } else {
            delays_text
                .split(',')
                .map(|part| duration("SAFECITY_RETRY_DELAYS", part))
                .collect::<Result<Vec<_>, _>>()?
        };
        if retry_delays.iter().any(Duration::is_zero) {
            return Err(ConfigError {
                variable: "SAFECITY_RETRY_DELAYS",
                value: delays_text,
                reason: "every delay must be above zero".to_owned(),
            });
        }

        let positive = |variable: &'static str, default: &str| {
            let text = get(variable, default);
            let value = duration(variable, &text)?;
            if value.is_zero() {
                return Err(ConfigError {
                    variable,
                    value: text,
                    reason: "must be above zero".to_owned(),
                });
            }
            Ok(value)
        };
        let max_retry_delay = positive("SAFECITY_MAX_RETRY_DELAY", "1h")?;
        let handler_timeout = positive("SAFECITY_HANDLER_TIMEOUT", "60s")?;
        let shutdown_grace = duration(
            "SAFECITY_SHUTDOWN_GRACE",
            &get("SAFECITY_SHUTDOWN_GRACE", "25s"),
        )?;
        let reconnect_max_delay = positive("SAFECITY_RECONNECT_MAX_DELAY", "10s")?;

        let queue_type_text = get("SAFECITY_QUEUE_TYPE", "quorum");
        let queue_type = queue_type_text
            .trim()
            .parse::<QueueType>()
            .map_err(|reason| ConfigError {
                variable: "SAFECITY_QUEUE_TYPE",
                value: queue_type_text.clone(),
                reason,
            })?;

        let http_text = get("SAFECITY_HTTP_ADDR", "0.0.0.0:9090");
        let http_addr = match http_text.trim() {
            "off" | "" => None,
            addr => Some(addr.parse::<SocketAddr>().map_err(|e| ConfigError {
                variable: "SAFECITY_HTTP_ADDR",
                value: http_text.clone(),
                reason: format!("not `host:port` or `off` ({e})"),
            })?),
        };

        let log_text = get("SAFECITY_LOG_FORMAT", "text");
        let log_format = match log_text.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(ConfigError {
                    variable: "SAFECITY_LOG_FORMAT",
                    value: log_text,
                    reason: "not `text` or `json`".to_owned(),
                });
            }
        };

        Ok(RuntimeConfig {
            amqp_url,
            concurrency,
            retry_delays,
            max_retry_delay,
            handler_timeout,
            shutdown_grace,
            reconnect_max_delay,
            queue_type,
            http_addr,
            log_format,
        })
    }

    /// Attempts an input gets before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX - 1) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<RuntimeConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RuntimeConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_sane() {
        let config = from(&[]).expect("defaults");
        assert_eq!(config.concurrency, 16);
        assert_eq!(
            config.retry_delays,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30)
            ]
        );
        assert_eq!(config.max_attempts(), 4);
        assert_eq!(config.queue_type, QueueType::Quorum);
        assert_eq!(
            config.http_addr,
            Some("0.0.0.0:9090".parse().expect("addr"))
        );
    }

    #[test]
    fn values_are_parsed() {
        let config = from(&[
            ("SAFECITY_CONCURRENCY", "4"),
            ("SAFECITY_RETRY_DELAYS", "200ms, 1s"),
            ("SAFECITY_SHUTDOWN_GRACE", "0s"),
            ("SAFECITY_QUEUE_TYPE", "classic"),
            ("SAFECITY_HTTP_ADDR", "off"),
            ("SAFECITY_LOG_FORMAT", "json"),
        ])
        .expect("valid");
        assert_eq!(config.concurrency, 4);
        assert_eq!(
            config.retry_delays,
            vec![Duration::from_millis(200), Duration::from_secs(1)]
        );
        assert_eq!(config.shutdown_grace, Duration::ZERO);
        assert_eq!(config.queue_type, QueueType::Classic);
        assert_eq!(config.http_addr, None);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(
            from(&[("SAFECITY_RETRY_DELAYS", "none")])
                .expect("none")
                .max_attempts(),
            1
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (variable, value) in [
            ("SAFECITY_CONCURRENCY", "0"),
            ("SAFECITY_CONCURRENCY", "many"),
            ("SAFECITY_RETRY_DELAYS", "1s,soon"),
            ("SAFECITY_RETRY_DELAYS", "0s"),
            ("SAFECITY_HANDLER_TIMEOUT", "0s"),
            ("SAFECITY_SHUTDOWN_GRACE", "-1s"),
            ("SAFECITY_QUEUE_TYPE", "lazy"),
            ("SAFECITY_HTTP_ADDR", "9090"),
            ("SAFECITY_LOG_FORMAT", "xml"),
            ("SAFECITY_AMQP_URL", "http://broker"),
        ] {
            let err = from(&[(variable, value)]).expect_err(variable);
            assert_eq!(err.variable, variable);
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let err = from(&[("SAFECITY_AMQP_URL", "amqp://user:s3cret@host:99999999/")])
            .expect_err("bad port");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let config =
            from(&[("SAFECITY_AMQP_URL", "amqp://user:s3cret@broker:5672/%2f")]).expect("valid");
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
