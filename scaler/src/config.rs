//! The scaler's configuration: read once from the environment (and files named
//! by `*_FILE` variables) into a typed struct that fails fast, naming the
//! variable at fault.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use safecity_shell::env::{Env, EnvError, UrlParts, percent_decode, process_env, redact_url};

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
    /// Log line format (`SAFECITY_LOG_FORMAT`, default `json`).
    pub log_format: safecity_shell::LogFormat,
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
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl ScalerConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env::new(&lookup);
        let amqp_url = env
            .secret("SAFECITY_AMQP_URL", "SAFECITY_AMQP_URL_FILE")?
            .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        let invalid_url = |reason: &str| EnvError::new("SAFECITY_AMQP_URL", reason);
        let parts = UrlParts::parse(&amqp_url).ok_or_else(|| {
            invalid_url("not a URL of the form amqp://user:password@host:port/vhost")
        })?;
        if parts.scheme != "amqp" && parts.scheme != "amqps" {
            return Err(invalid_url(&format!(
                "scheme `{}` is not amqp or amqps",
                parts.scheme
            )));
        }
        let (host_port, path) = parts.rest.split_once('/').unwrap_or((parts.rest, ""));
        let vhost = match path.split('?').next().unwrap_or("") {
            "" => "/".to_owned(),
            encoded => percent_decode(encoded)
                .ok_or_else(|| invalid_url("the vhost is not valid percent-encoding"))?,
        };
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        let management_url =
            match env.secret("SAFECITY_MANAGEMENT_URL", "SAFECITY_MANAGEMENT_URL_FILE")? {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => match parts.password {
                    Some(password) => format!("http://{}:{password}@{host}:15672", parts.user),
                    None => format!("http://guest:guest@{host}:15672"),
                },
            };
        if !management_url.starts_with("http://") {
            return Err(EnvError::new(
                "SAFECITY_MANAGEMENT_URL",
                "only http:// management URLs are supported (run the scaler next to the broker or behind a mesh)",
            ));
        }
        Ok(ScalerConfig {
            amqp_url,
            management_url,
            vhost,
            grpc_addr: env.socket_addr("SAFECITY_SCALER_GRPC_ADDR", "0.0.0.0:6000")?,
            metrics_addr: env.socket_addr("SAFECITY_SCALER_METRICS_ADDR", "0.0.0.0:9090")?,
            depth_interval: env.positive_duration("SAFECITY_SCALER_DEPTH_INTERVAL", "500ms")?,
            management_interval: env
                .positive_duration("SAFECITY_SCALER_MANAGEMENT_INTERVAL", "2s")?,
            stats_lag: env.positive_duration("SAFECITY_SCALER_STATS_LAG", "6s")?,
            active_resend: env.positive_duration("SAFECITY_SCALER_ACTIVE_RESEND", "3s")?,
            max_staleness: env.positive_duration("SAFECITY_SCALER_MAX_STALENESS", "5s")?,
            first_sample_timeout: env
                .positive_duration("SAFECITY_SCALER_FIRST_SAMPLE_TIMEOUT", "2s")?,
            reconnect_max_delay: env
                .positive_duration("SAFECITY_SCALER_RECONNECT_MAX_DELAY", "5s")?,
            watch_idle_timeout: env
                .positive_duration("SAFECITY_SCALER_WATCH_IDLE_TIMEOUT", "10m")?,
            tls: tls_files(&env)?,
            log_format: env.from_str("SAFECITY_LOG_FORMAT", "json")?,
        })
    }
}

fn tls_files(env: &Env<'_>) -> Result<Option<TlsFiles>, EnvError> {
    let client_ca = env.optional("SAFECITY_SCALER_TLS_CLIENT_CA_FILE");
    match (
        env.optional("SAFECITY_SCALER_TLS_CERT_FILE"),
        env.optional("SAFECITY_SCALER_TLS_KEY_FILE"),
    ) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(PathBuf::from),
        })),
        (None, None) if client_ca.is_some() => Err(EnvError::new(
            "SAFECITY_SCALER_TLS_CLIENT_CA_FILE",
            "client verification needs server TLS: set SAFECITY_SCALER_TLS_CERT_FILE and SAFECITY_SCALER_TLS_KEY_FILE",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(EnvError::new(
            "SAFECITY_SCALER_TLS_KEY_FILE",
            "required when SAFECITY_SCALER_TLS_CERT_FILE is set",
        )),
        (None, Some(_)) => Err(EnvError::new(
            "SAFECITY_SCALER_TLS_CERT_FILE",
            "required when SAFECITY_SCALER_TLS_KEY_FILE is set",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<ScalerConfig, EnvError> {
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
