//! Structured logging set-up, the same for every process.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not `text` or `json`")),
        }
    }
}

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// Always added unless `RUST_LOG` names lapin itself. lapin logs every
/// connection failure on its own at `error` (three lines per failed
/// reconnect, and one for a benign race on a clean close), and every message
/// the broker returns (an unroutable JPEG frame, say) with its whole body.
/// Each of those failures also reaches the component as an error, which logs
/// it once with its context (and counts drops in metrics); lapin's own lines
/// come back with `RUST_LOG=info,lapin=debug`.
pub const QUIET_LAPIN: &str = "lapin=off";

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG`
/// (default [`DEFAULT_FILTER`], plus [`QUIET_LAPIN`]). Does nothing if a
/// subscriber is already installed (tests start several components).
pub fn init(format: LogFormat) {
    let from_env = std::env::var("RUST_LOG").ok();
    let mut filter = from_env
        .as_deref()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    if !from_env.is_some_and(|d| d.contains("lapin")) {
        filter = filter.add_directive(QUIET_LAPIN.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
