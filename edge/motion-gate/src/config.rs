//! The gate process's settings: flags with environment fallbacks, read once
//! and validated (clap names the flag or variable on error).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use safecity_shell::LogFormat;
use safecity_shell::env::parse_duration as duration;

use crate::camera::CameraSettings;
use crate::gate::OutputSettings;
use crate::publisher::PublisherSettings;

/// Invalid settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag (or its variable) has a bad value.
    #[error("{flag}: {reason}")]
    Invalid {
        /// The flag, e.g. `--jpeg-quality`.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// `motion-gate`: forwards camera frames with motion to the detector.
#[derive(Debug, Clone, Parser)]
#[command(name = "motion-gate", version, about)]
pub struct GateArgs {
    /// Camera registry (TOML).
    #[arg(long, env = "SAFECITY_GATE_REGISTRY")]
    pub registry: PathBuf,
    /// Region whose cameras this process gates (one process per region).
    #[arg(long, env = "SAFECITY_GATE_REGION")]
    pub region: String,
    /// Broker URL.
    #[arg(
        long,
        env = "SAFECITY_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SAFECITY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Forwarded frames held while the broker is away (oldest dropped beyond).
    #[arg(long, env = "SAFECITY_GATE_BUFFER_FRAMES", default_value_t = 256)]
    pub buffer_frames: usize,
    /// A camera silent for this long is reconnected.
    #[arg(long, env = "SAFECITY_GATE_STALL_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub stall_timeout: Duration,
    /// First reconnect delay (cameras and broker).
    #[arg(long, env = "SAFECITY_GATE_RECONNECT_MIN", default_value = "200ms", value_parser = duration)]
    pub reconnect_min: Duration,
    /// Longest reconnect delay (cameras and broker).
    #[arg(long, env = "SAFECITY_GATE_RECONNECT_MAX", default_value = "10s", value_parser = duration)]
    pub reconnect_max: Duration,
    /// A publish unconfirmed for this long counts as a lost connection.
    #[arg(long, env = "SAFECITY_GATE_PUBLISH_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub publish_timeout: Duration,
    /// Forwarded frames wider than this are scaled down and re-encoded (0 = never).
    #[arg(long, env = "SAFECITY_GATE_MAX_WIDTH", default_value_t = 0)]
    pub max_width: u32,
    /// Forwarded frames taller than this are scaled down and re-encoded (0 = never).
    #[arg(long, env = "SAFECITY_GATE_MAX_HEIGHT", default_value_t = 0)]
    pub max_height: u32,
    /// JPEG quality of re-encoded frames (1-100).
    #[arg(long, env = "SAFECITY_GATE_JPEG_QUALITY", default_value_t = 85)]
    pub jpeg_quality: u8,
    /// Log format: text or json.
    #[arg(long, env = "SAFECITY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Validated settings of one gate process.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The region gated.
    pub region: String,
    /// Address of the HTTP endpoints.
    pub http_addr: SocketAddr,
    /// Buffer capacity in frames.
    pub buffer_frames: usize,
    /// Camera resilience.
    pub camera: CameraSettings,
    /// Broker connection.
    pub publisher: PublisherSettings,
    /// Encoding of forwarded frames.
    pub output: OutputSettings,
    /// Log format.
    pub log_format: LogFormat,
}

impl GateArgs {
    /// Validates the flags.
    pub fn into_config(self) -> Result<GateConfig, ConfigError> {
        let invalid = |flag, reason: &str| ConfigError::Invalid {
            flag,
            reason: reason.to_owned(),
        };
        if self.region.trim().is_empty() {
            return Err(invalid("--region", "must not be empty"));
        }
        if self.buffer_frames == 0 {
            return Err(invalid("--buffer-frames", "must be at least 1"));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(invalid("--jpeg-quality", "must be within 1..=100"));
        }
        if self.stall_timeout.is_zero() {
            return Err(invalid("--stall-timeout", "must be positive"));
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return Err(invalid(
                "--reconnect-max",
                "need 0 < --reconnect-min <= --reconnect-max",
            ));
        }
        let nonzero = |v: u32| (v > 0).then_some(v);
        Ok(GateConfig {
            region: self.region,
            http_addr: self.http_addr,
            buffer_frames: self.buffer_frames,
            camera: CameraSettings {
                stall_timeout: self.stall_timeout,
                reconnect_min: self.reconnect_min,
                reconnect_max: self.reconnect_max,
            },
            publisher: PublisherSettings {
                amqp_url: self.amqp_url,
                reconnect_min: self.reconnect_min,
                reconnect_max: self.reconnect_max,
                publish_timeout: self.publish_timeout,
            },
            output: OutputSettings {
                max_width: nonzero(self.max_width),
                max_height: nonzero(self.max_height),
                quality: self.jpeg_quality,
            },
            log_format: if self.log_format == "json" {
                LogFormat::Json
            } else {
                LogFormat::Text
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<GateConfig, String> {
        let mut argv = vec!["motion-gate", "--registry", "c.toml", "--region", "seoul"];
        argv.extend_from_slice(extra);
        GateArgs::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_sane() {
        let config = args(&[]).expect("valid");
        assert_eq!(config.buffer_frames, 256);
        assert_eq!(config.camera.stall_timeout, Duration::from_secs(5));
        assert_eq!(config.output.max_width, None);
    }

    #[test]
    fn errors_name_the_flag() {
        let err = args(&["--stall-timeout", "soon"]).expect_err("bad");
        assert!(err.contains("--stall-timeout"), "{err}");
        let err = args(&["--jpeg-quality", "0"]).expect_err("bad");
        assert!(err.contains("--jpeg-quality"), "{err}");
    }
}
