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
//! | `SAFECITY_QUEUE_TYPE` | `quorum` | `quorum` or `classic` (events; a frames-only work queue is always a bounded classic queue) |
//! | `SAFECITY_FRAME_BUDGET` | `10s` | frames queue: the longest a frame waits (message TTL); the detector marks alerts from older frames `late` |
//! | `SAFECITY_FRAMES_MAX_LENGTH` | `1000` | frames queue: the most frames waiting; the oldest is dropped first |
//! | `SAFECITY_HTTP_ADDR` | `0.0.0.0:9090` | `/healthz`, `/readyz`, `/metrics`; `off` disables |
//! | `SAFECITY_LOG_FORMAT` | `text` | `text` or `json` |

use std::net::SocketAddr;
use std::time::Duration;

use safecity_events::QueueType;
use safecity_events::topology::FrameBounds;
use safecity_shell::LogFormat;
use safecity_shell::env::{Env, EnvError, parse_duration, process_env, redact_url};

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
    /// The bounds of a frames-only work queue.
    pub frame_bounds: FrameBounds,
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
            .field("frame_bounds", &self.frame_bounds)
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

/// `SAFECITY_RETRY_DELAYS`: comma-separated positive durations, or `none`.
fn retry_delays(text: &str) -> Result<Vec<Duration>, String> {
    if text == "none" {
        return Ok(Vec::new());
    }
    let delays = text
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if delays.iter().any(Duration::is_zero) {
        return Err(format!("`{text}`: every delay must be above zero"));
    }
    Ok(delays)
}

impl RuntimeConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        RuntimeConfig::from_lookup(process_env)
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env::new(&lookup);
        let amqp_url = env.parse(
            "SAFECITY_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            |url| match url.parse::<lapin::uri::AMQPUri>() {
                Ok(_) => Ok(url.to_owned()),
                Err(reason) => Err(format!(
                    "`{}` is not an AMQP URL ({reason})",
                    redact_url(url)
                )),
            },
        )?;
        Ok(RuntimeConfig {
            amqp_url,
            concurrency: env.integer("SAFECITY_CONCURRENCY", "16", 1..=u16::MAX)?,
            // Set but blank means no retries, like `none`.
            retry_delays: match env.raw("SAFECITY_RETRY_DELAYS") {
                Some(text) if text.trim().is_empty() => Vec::new(),
                _ => env.parse("SAFECITY_RETRY_DELAYS", "1s,5s,30s", retry_delays)?,
            },
            max_retry_delay: env.positive_duration("SAFECITY_MAX_RETRY_DELAY", "1h")?,
            handler_timeout: env.positive_duration("SAFECITY_HANDLER_TIMEOUT", "60s")?,
            shutdown_grace: env.duration("SAFECITY_SHUTDOWN_GRACE", "25s")?,
            reconnect_max_delay: env.positive_duration("SAFECITY_RECONNECT_MAX_DELAY", "10s")?,
            queue_type: env.from_str("SAFECITY_QUEUE_TYPE", "quorum")?,
            frame_bounds: FrameBounds {
                budget: env.positive_duration("SAFECITY_FRAME_BUDGET", "10s")?,
                max_frames: env.integer("SAFECITY_FRAMES_MAX_LENGTH", "1000", 1..=u32::MAX)?,
            },
            http_addr: env.listen_addr("SAFECITY_HTTP_ADDR", "0.0.0.0:9090")?,
            log_format: env.from_str("SAFECITY_LOG_FORMAT", "text")?,
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

    fn from(vars: &[(&str, &str)]) -> Result<RuntimeConfig, EnvError> {
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
