//! The scaler's configuration: read once from the environment (and files named
//! by `*_FILE` variables) into a typed struct that fails fast, naming the
//! variable at fault.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors reading the configuration; each names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value that does not parse.
    #[error("{variable}: {reason}")]
    Invalid {
        /// The environment variable.
        variable: &'static str,
        /// Why its value was refused (never the value itself: it may be a secret).
        reason: String,
    },
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("{variable}: cannot read `{path}`: {source}")]
    File {
        /// The environment variable.
        variable: &'static str,
        /// The file it names.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Server TLS settings (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (`SAFECITY_SCALER_TLS_CERT_FILE`).
    pub cert: PathBuf,
    /// Server private key (`SAFECITY_SCALER_TLS_KEY_FILE`).
    pub key: PathBuf,
    /// CA that signs accepted client certificates (`SAFECITY_SCALER_TLS_CLIENT_CA_FILE`);
    /// when set, clients must present a certificate signed by it.
    pub client_ca: Option<PathBuf>,
}

/// Everything the scaler reads from its environment.
#[derive(Clone)]
pub struct ScalerConfig {
    /// AMQP URL of the broker, with credentials (`SAFECITY_AMQP_URL` or `SAFECITY_AMQP_URL_FILE`).
    pub amqp_url: String,
    /// Base URL of the RabbitMQ management API, with credentials
    /// (`SAFECITY_MANAGEMENT_URL` or `_FILE`; default: the AMQP host on port 15672
    /// with the AMQP credentials).
    pub management_url: String,
    /// The vhost of the AMQP URL (`/` when the URL has none).
    pub vhost: String,
    /// gRPC listen address (`SAFECITY_SCALER_GRPC_ADDR`, default `0.0.0.0:6000`).
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address (`SAFECITY_SCALER_METRICS_ADDR`, default `0.0.0.0:9090`).
    pub metrics_addr: SocketAddr,
    /// How often queue depths are read over AMQP (`SAFECITY_SCALER_DEPTH_INTERVAL`, default `500ms`).
    pub depth_interval: Duration,
    /// How often the management API is read for in-flight counts and ack rates
    /// (`SAFECITY_SCALER_MANAGEMENT_INTERVAL`, default `2s`).
    pub management_interval: Duration,
    /// How long the management API's statistics may lag
    /// (`SAFECITY_SCALER_STATS_LAG`, default `6s`, the broker's 5 s collection interval plus margin).
    pub stats_lag: Duration,
    /// How often `true` is re-sent on open streams while work is pending
    /// (`SAFECITY_SCALER_ACTIVE_RESEND`, default `3s`).
    pub active_resend: Duration,
    /// A state older than this is not served: RPCs answer `Unavailable`
    /// (`SAFECITY_SCALER_MAX_STALENESS`, default `5s`).
    pub max_staleness: Duration,
    /// How long the first RPC of a new ScaledObject waits for its first sample
    /// (`SAFECITY_SCALER_FIRST_SAMPLE_TIMEOUT`, default `2s`).
    pub first_sample_timeout: Duration,
    /// Longest pause between broker reconnect attempts (`SAFECITY_SCALER_RECONNECT_MAX_DELAY`, default `5s`).
    pub reconnect_max_delay: Duration,
    /// A ScaledObject trigger that no RPC touched for this long, with no open
    /// `StreamIsActive` stream, is forgotten: its queue is no longer sampled and its
    /// tap binding goes when no other trigger needs it. KEDA never says that a
    /// ScaledObject was deleted, it just stops calling
    /// (`SAFECITY_SCALER_WATCH_IDLE_TIMEOUT`, default `10m`; keep it above the
    /// longest `pollingInterval`).
    pub watch_idle_timeout: Duration,
    /// Optional server TLS.
    pub tls: Option<TlsFiles>,
}

impl std::fmt::Debug for ScalerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalerConfig")
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("management_url", &redact_url(&self.management_url))
            .field("vhost", &self.vhost)
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("depth_interval", &self.depth_interval)
            .field("management_interval", &self.management_interval)
            .field("stats_lag", &self.stats_lag)
            .field("active_resend", &self.active_resend)
            .field("max_staleness", &self.max_staleness)
            .field("first_sample_timeout", &self.first_sample_timeout)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("watch_idle_timeout", &self.watch_idle_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    match split_url(url) {
        Some(parts) if parts.password.is_some() => {
            format!("{}://{}:***@{}", parts.scheme, parts.user, parts.rest)
        }
        _ => url.to_owned(),
    }
}

pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) user: &'a str,
    pub(crate) password: Option<&'a str>,
    /// `host[:port][/path]`
    pub(crate) rest: &'a str,
}

pub(crate) fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let authority_end = after.find('/').unwrap_or(after.len());
    let (user, password, rest) = match after[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &after[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            (user, password, &after[at + 1..])
        }
        None => ("", None, after),
    };
    Some(UrlParts {
        scheme,
        user,
        password,
        rest,
    })
}

impl ScalerConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let amqp_url = secret(&lookup, "SAFECITY_AMQP_URL", "SAFECITY_AMQP_URL_FILE")?
            .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        let parts = split_url(&amqp_url).ok_or_else(|| ConfigError::Invalid {
            variable: "SAFECITY_AMQP_URL",
            reason: "not a URL of the form amqp://user:password@host:port/vhost".into(),
        })?;
        if parts.scheme != "amqp" && parts.scheme != "amqps" {
            return Err(ConfigError::Invalid {
                variable: "SAFECITY_AMQP_URL",
                reason: format!("scheme `{}` is not amqp or amqps", parts.scheme),
            });
        }
        let (host_port, path) = match parts.rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (parts.rest, ""),
        };
        let vhost = match path.split('?').next().unwrap_or("") {
            "" => "/".to_owned(),
            encoded => percent_decode(encoded).ok_or_else(|| ConfigError::Invalid {
                variable: "SAFECITY_AMQP_URL",
                reason: "the vhost is not valid percent-encoding".into(),
            })?,
        };
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        let management_url = match secret(
            &lookup,
            "SAFECITY_MANAGEMENT_URL",
            "SAFECITY_MANAGEMENT_URL_FILE",
        )? {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => match parts.password {
                Some(password) => format!("http://{}:{password}@{host}:15672", parts.user),
                None => format!("http://guest:guest@{host}:15672"),
            },
        };
        if !management_url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                variable: "SAFECITY_MANAGEMENT_URL",
                reason: "only http:// management URLs are supported (run the scaler next to the broker or behind a mesh)".into(),
            });
        }

        let tls = match (
            lookup("SAFECITY_SCALER_TLS_CERT_FILE"),
            lookup("SAFECITY_SCALER_TLS_KEY_FILE"),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
                client_ca: lookup("SAFECITY_SCALER_TLS_CLIENT_CA_FILE").map(PathBuf::from),
            }),
            (None, None) => {
                if lookup("SAFECITY_SCALER_TLS_CLIENT_CA_FILE").is_some() {
                    return Err(ConfigError::Invalid {
                        variable: "SAFECITY_SCALER_TLS_CLIENT_CA_FILE",
                        reason: "client verification needs server TLS: set SAFECITY_SCALER_TLS_CERT_FILE and SAFECITY_SCALER_TLS_KEY_FILE".into(),
                    });
                }
                None
            }
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    variable: "SAFECITY_SCALER_TLS_KEY_FILE",
                    reason: "required when SAFECITY_SCALER_TLS_CERT_FILE is set".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    variable: "SAFECITY_SCALER_TLS_CERT_FILE",
                    reason: "required when SAFECITY_SCALER_TLS_KEY_FILE is set".into(),
                });
            }
        };

        Ok(ScalerConfig {
            amqp_url,
            management_url,
            vhost,
            grpc_addr: addr(&lookup, "SAFECITY_SCALER_GRPC_ADDR", "0.0.0.0:6000")?,
            metrics_addr: addr(&lookup, "SAFECITY_SCALER_METRICS_ADDR", "0.0.0.0:9090")?,
            depth_interval: duration(&lookup, "SAFECITY_SCALER_DEPTH_INTERVAL", "500ms")?,
            management_interval: duration(&lookup, "SAFECITY_SCALER_MANAGEMENT_INTERVAL", "2s")?,
            stats_lag: duration(&lookup, "SAFECITY_SCALER_STATS_LAG", "6s")?,
            active_resend: duration(&lookup, "SAFECITY_SCALER_ACTIVE_RESEND", "3s")?,
            max_staleness: duration(&lookup, "SAFECITY_SCALER_MAX_STALENESS", "5s")?,
            first_sample_timeout: duration(&lookup, "SAFECITY_SCALER_FIRST_SAMPLE_TIMEOUT", "2s")?,
            reconnect_max_delay: duration(&lookup, "SAFECITY_SCALER_RECONNECT_MAX_DELAY", "5s")?,
            watch_idle_timeout: duration(&lookup, "SAFECITY_SCALER_WATCH_IDLE_TIMEOUT", "10m")?,
            tls,
        })
    }
}

/// Reads a secret from `variable`, or from the file named by `file_variable`.
fn secret(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    file_variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    if let Some(value) = lookup(variable) {
        return Ok(Some(value.trim().to_owned()));
    }
    match lookup(file_variable) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|source| ConfigError::File {
                variable: file_variable,
                path: path.into(),
                source,
            }),
        None => Ok(None),
    }
}

fn addr(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = lookup(variable).unwrap_or_else(|| default.to_owned());
    text.parse().map_err(|error| ConfigError::Invalid {
        variable,
        reason: format!("`{text}` is not a socket address like 0.0.0.0:6000: {error}"),
    })
}

fn duration(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = lookup(variable).unwrap_or_else(|| default.to_owned());
    let value = humantime::parse_duration(&text).map_err(|error| ConfigError::Invalid {
        variable,
        reason: format!("`{text}` is not a duration like 500ms or 5s: {error}"),
    })?;
    if value.is_zero() {
        return Err(ConfigError::Invalid {
            variable,
            reason: "must be greater than zero".into(),
        });
    }
    Ok(value)
}

pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<ScalerConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ScalerConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_derive_management_from_amqp() {
        let config = parse(&[("SAFECITY_AMQP_URL", "amqp://u:p%40ss@broker:5672/city")]).unwrap();
        assert_eq!(config.vhost, "city");
        assert_eq!(config.management_url, "http://u:p%40ss@broker:15672");
        assert_eq!(config.grpc_addr, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(config.depth_interval, Duration::from_millis(500));
        assert_eq!(config.watch_idle_timeout, Duration::from_secs(600));
        assert!(config.tls.is_none());
        let default_vhost = parse(&[("SAFECITY_AMQP_URL", "amqp://u:p@broker:5672/%2f")]).unwrap();
        assert_eq!(default_vhost.vhost, "/");
    }

    #[test]
    fn errors_name_the_variable_and_hide_secrets() {
        let error = parse(&[("SAFECITY_SCALER_DEPTH_INTERVAL", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("SAFECITY_SCALER_DEPTH_INTERVAL:"),
            "{error}"
        );
        let error = parse(&[("SAFECITY_AMQP_URL", "http://u:hunter2@x/")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("SAFECITY_AMQP_URL:") && !error.contains("hunter2"),
            "{error}"
        );
        let error = parse(&[("SAFECITY_SCALER_TLS_CERT_FILE", "/c.pem")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("SAFECITY_SCALER_TLS_KEY_FILE:"),
            "{error}"
        );
        let error = parse(&[("SAFECITY_AMQP_URL_FILE", "/nonexistent/secret")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("SAFECITY_AMQP_URL_FILE:"), "{error}");
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let config = parse(&[("SAFECITY_AMQP_URL", "amqp://u:hunter2@broker:5672/city")]).unwrap();
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("u:***@broker"), "{text}");
    }
}
