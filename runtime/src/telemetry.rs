//! Structured logging set-up for function processes.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Default filter: `info`, but lapin's report of returned (unroutable)
/// messages, which logs whole bodies (JPEG frames), only at `error`.
pub const DEFAULT_FILTER: &str = "info,lapin::returned_messages=error";

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG`
/// (default [`DEFAULT_FILTER`]). Does nothing if a subscriber is already installed.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
