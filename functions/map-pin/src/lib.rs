//! # map-pin
//!
//! Accident events become map pins: one row per incident (first and last
//! seen, highest confidence, the best snapshot, zones, and its state: open,
//! or closed — "cleared" — once the detector sends `closed`), in SQLite by
//! default or PostgreSQL when `DATABASE_URL` is a `postgres://` URL. Two modes:
//!
//! - `map-pin` (scales to zero): the function that upserts pins.
//! - `map-pin serve` (always on): the live map page and the GeoJSON/SSE API
//!   ([`web`]).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://map-pin.db?mode=rwc` | pin store |
//! | `SAFECITY_MAP_ADDR` | `0.0.0.0:8080` | `serve`: listen address |
//! | `SAFECITY_MAP_TILE_URL` | none | `serve`: OpenStreetMap-style tiles, e.g. `https://tile.example/{z}/{x}/{y}.png` |
//! | `SAFECITY_MAP_DATA` | `target/map-data` | `serve`: the offline geography made by `scripts/fetch-map-data.sh` (served at `/geo/*.json`) |

pub mod query;
pub mod store;
pub mod web;

use chrono::Utc;
use safecity_events::EventType;
use safecity_runtime::{CloudEvent, Context, Function, HandlerError, SafetyEvent, Subscription};
use tracing::info;

pub use store::{Pin, PinFilter, PinState, PinStore};

/// The map-pin function.
#[derive(Debug)]
pub struct MapPin {
    store: PinStore,
}

impl MapPin {
    /// A map-pin writing to `store`.
    pub fn new(store: PinStore) -> Self {
        MapPin { store }
    }
}

impl Function for MapPin {
    type Input = CloudEvent<SafetyEvent>;

    fn name(&self) -> &str {
        "map-pin"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Accident.into()]
    }

    async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        self.store.record(&event, Utc::now()).await?;
        info!(incident = %event.data.incident_id, camera = %event.data.camera.id, state = %event.attributes.lifecycle(), "pinned");
        Ok(())
    }
}
