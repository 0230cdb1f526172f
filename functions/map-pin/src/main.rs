//! The map-pin process: `map-pin` (the function) or `map-pin serve` (the map).

use std::time::Duration;

use anyhow::{Context as _, bail};
use safecity_map_pin::web::{WebConfig, serve};
use safecity_map_pin::{MapPin, PinStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://map-pin.db?mode=rwc".to_owned());
    let store = PinStore::open(&database_url)
        .await
        .context("opening the pin store (DATABASE_URL)")?;
    match std::env::args().nth(1).as_deref() {
        None => safecity_runtime::run(MapPin::new(store)).await?,
        Some("serve") => {
            safecity_shell::telemetry::init(safecity_shell::LogFormat::Text);
            let addr =
                std::env::var("SAFECITY_MAP_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("SAFECITY_MAP_ADDR={addr}: cannot listen"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving the map");
            let config = WebConfig {
                tile_url: std::env::var("SAFECITY_MAP_TILE_URL")
                    .ok()
                    .filter(|u| !u.is_empty()),
                poll_interval: Duration::from_millis(500),
            };
            serve(
                listener,
                store,
                config,
                safecity_shell::signals::on_signals(),
            )
            .await?;
        }
        Some(other) => bail!(
            "unknown mode `{other}`: run `map-pin` (the function) or `map-pin serve` (the map)"
        ),
    }
    Ok(())
}
