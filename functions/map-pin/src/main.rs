//! The map-pin process: `map-pin` (the function) or `map-pin serve` (the map).

use std::time::Duration;

use anyhow::{Context as _, bail};
use safecity_map_pin::web::{WebConfig, serve};
use safecity_map_pin::{MapPin, PinStore};
use safecity_shell::env::{Env, process_env};

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
            let env = Env::new(&process_env);
            safecity_shell::telemetry::init(env.from_str("SAFECITY_LOG_FORMAT", "text")?);
            let addr = env.socket_addr("SAFECITY_MAP_ADDR", "0.0.0.0:8080")?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("SAFECITY_MAP_ADDR={addr}: cannot listen"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving the map");
            let config = WebConfig {
                tile_url: std::env::var("SAFECITY_MAP_TILE_URL")
                    .ok()
                    .filter(|u| !u.is_empty()),
                poll_interval: Duration::from_millis(500),
                geo_dir: Some(
                    std::env::var_os("SAFECITY_MAP_DATA")
                        .map_or_else(|| "target/map-data".into(), std::path::PathBuf::from),
                ),
            };
            let geo = config.geo_dir.as_ref().expect("set above");
            if !geo.join(safecity_map_pin::web::GEO_FILES[0]).is_file() {
                tracing::warn!(
                    folder = %geo.display(),
                    "no offline map data: the map draws a bare grid; run scripts/fetch-map-data.sh \
                     (or set SAFECITY_MAP_DATA, or SAFECITY_MAP_TILE_URL for tiles)"
                );
            }
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
