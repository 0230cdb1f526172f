//! Logging set-up for the gate binaries.
//!
//! Like `safecity_runtime::telemetry::init`, plus one fixed directive: lapin
//! logs every message the broker returns (unroutable frames) at `warn` with
//! the whole body, i.e. a JPEG dump per dropped frame. The gate counts those
//! drops in a metric and warns once per connection itself, so lapin's
//! `returned_messages` target is limited to errors.

use safecity_runtime::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The directive that silences lapin's per-message return warnings.
pub const QUIET_RETURNS: &str = "lapin::returned_messages=error";

/// Installs a stderr subscriber filtered by `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(QUIET_RETURNS.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
