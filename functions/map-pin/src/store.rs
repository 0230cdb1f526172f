//! The pin store: one row per accident incident, in SQLite or PostgreSQL.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use safecity_events::{CloudEvent, Lifecycle, SafetyEvent};
use safecity_social::migrate::{Migration, connect, migrate};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "pins",
        sql: "CREATE TABLE pins (
              incident_id TEXT PRIMARY KEY,
              event_type TEXT NOT NULL,
              camera_id TEXT NOT NULL,
              region TEXT NOT NULL,
              latitude DOUBLE PRECISION NOT NULL,
              longitude DOUBLE PRECISION NOT NULL,
              first_seen BIGINT NOT NULL,
              last_seen BIGINT NOT NULL,
              confidence DOUBLE PRECISION NOT NULL,
              snapshot TEXT,
              updated_at BIGINT NOT NULL
          );
          CREATE INDEX pins_by_update ON pins (updated_at);
          CREATE INDEX pins_by_last_seen ON pins (last_seen);",
    },
    Migration {
        version: 2,
        description: "incident lifecycle: state, when it was cleared, zones, the best snapshot's score",
        sql: "ALTER TABLE pins ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
              ALTER TABLE pins ADD COLUMN closed_at BIGINT;
              ALTER TABLE pins ADD COLUMN zones TEXT NOT NULL DEFAULT '';
              ALTER TABLE pins ADD COLUMN snapshot_score DOUBLE PRECISION NOT NULL DEFAULT 0;
              CREATE INDEX pins_by_state ON pins (state);",
    },
];

/// Whether an incident is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// Opened or updated, not closed.
    Open,
    /// The detector closed it (no sighting for its window): cleared.
    Closed,
}

impl PinState {
    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinState::Open => "open",
            PinState::Closed => "closed",
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("pin store: {0}")]
pub struct StoreError(#[from] sqlx::Error);

/// One incident on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    /// Incident id (the pin's identity).
    pub incident_id: String,
    /// `accident` (or another event type a deployment pins).
    pub event_type: String,
    /// Camera that saw it.
    pub camera_id: String,
    /// Camera region.
    pub region: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// First sighting.
    pub first_seen: DateTime<Utc>,
    /// Latest sighting.
    pub last_seen: DateTime<Utc>,
    /// Highest confidence seen.
    pub confidence: f64,
    /// Whether a snapshot is stored.
    pub has_snapshot: bool,
    /// Open, or closed (cleared).
    pub state: PinState,
    /// When the incident was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Zones of the camera the incident touched.
    pub zones: Vec<String>,
    /// Last change, in milliseconds since the epoch (the change-feed cursor).
    pub updated_at: i64,
}

/// Which pins a query wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PinFilter {
    /// `[min_lon, min_lat, max_lon, max_lat]`.
    pub bbox: Option<[f64; 4]>,
    /// Only pins seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this region.
    pub region: Option<String>,
    /// Only open (or only closed) incidents.
    pub state: Option<PinState>,
}

fn time(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

fn pin(row: &AnyRow) -> Result<Pin, sqlx::Error> {
    Ok(Pin {
        incident_id: row.try_get("incident_id")?,
        event_type: row.try_get("event_type")?,
        camera_id: row.try_get("camera_id")?,
        region: row.try_get("region")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        first_seen: time(row.try_get("first_seen")?),
        last_seen: time(row.try_get("last_seen")?),
        confidence: row.try_get("confidence")?,
        has_snapshot: row.try_get::<i64, _>("has_snapshot")? != 0,
        state: if row.try_get::<String, _>("state")? == "closed" {
            PinState::Closed
        } else {
            PinState::Open
        },
        closed_at: row.try_get::<Option<i64>, _>("closed_at")?.map(time),
        zones: row
            .try_get::<String, _>("zones")?
            .split(',')
            .filter(|z| !z.is_empty())
            .map(str::to_owned)
            .collect(),
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "incident_id, event_type, camera_id, region, latitude, longitude, \
     first_seen, last_seen, confidence, \
     CASE WHEN snapshot IS NULL THEN 0 ELSE 1 END AS has_snapshot, updated_at, \
     state, closed_at, zones";

/// How good a snapshot is as the incident's picture: the best detection's
/// confidence times the share of the frame its box covers (the detector's
/// "highest confidence, largest box").
pub fn snapshot_score(event: &SafetyEvent) -> f64 {
    let area = f64::from(event.frame_size.width.max(1)) * f64::from(event.frame_size.height.max(1));
    event
        .detections
        .iter()
        .map(|d| {
            let b = d.bounding_box;
            f64::from(d.confidence)
                * (f64::from(b.width) * f64::from(b.height) / area).clamp(0.0, 1.0)
        })
        .fold(0.0, f64::max)
}

/// The pins of one deployment.
#[derive(Debug, Clone)]
pub struct PinStore {
    pool: AnyPool,
}

impl PinStore {
    /// Opens (and migrates) the store at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = connect(url).await?;
        migrate(&pool, "map-pin", MIGRATIONS).await?;
        Ok(PinStore { pool })
    }

    /// Creates or updates the pin of an `opened` event (see [`PinStore::record`]).
    pub async fn upsert(&self, event: &SafetyEvent, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.apply(event, Lifecycle::Opened, &[], now, now).await
    }

    /// Applies a lifecycle event to its incident's pin: first/last seen
    /// widen, confidence keeps its maximum, the best snapshot (highest
    /// [`snapshot_score`]) wins, zones accumulate, and `closed` clears the
    /// pin for good (its time is the event's `time`; a late `opened` or
    /// `updated` never re-opens it). Applying the same event twice leaves
    /// the same row.
    pub async fn record(
        &self,
        event: &CloudEvent<SafetyEvent>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.apply(
            &event.data,
            event.attributes.lifecycle(),
            &event.attributes.zones,
            event.attributes.time,
            now,
        )
        .await
    }

    async fn apply(
        &self,
        event: &SafetyEvent,
        state: Lifecycle,
        zones: &[String],
        occurred: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let confidence = event
            .detections
            .iter()
            .map(|d| f64::from(d.confidence))
            .fold(0.0, f64::max);
        let seen = event.captured_at.timestamp_millis();
        let snapshot = event
            .snapshot
            .as_ref()
            .map(|s| base64::engine::general_purpose::STANDARD.encode(&s.0));
        let closed = state == Lifecycle::Closed;
        let mut transaction = self.pool.begin().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT zones FROM pins WHERE incident_id = $1")
                .bind(&event.incident_id)
                .fetch_optional(&mut *transaction)
                .await?;
        let mut all_zones: Vec<String> = known
            .unwrap_or_default()
            .split(',')
            .filter(|z| !z.is_empty())
            .map(str::to_owned)
            .chain(zones.iter().cloned())
            .collect();
        all_zones.sort();
        all_zones.dedup();
        sqlx::query(
            "INSERT INTO pins (incident_id, event_type, camera_id, region, latitude, longitude,
                               first_seen, last_seen, confidence, snapshot, updated_at,
                               state, closed_at, zones, snapshot_score)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (incident_id) DO UPDATE SET
               first_seen = CASE WHEN excluded.first_seen < pins.first_seen THEN excluded.first_seen ELSE pins.first_seen END,
               last_seen = CASE WHEN excluded.last_seen > pins.last_seen THEN excluded.last_seen ELSE pins.last_seen END,
               confidence = CASE WHEN excluded.confidence > pins.confidence THEN excluded.confidence ELSE pins.confidence END,
               snapshot = CASE WHEN excluded.snapshot IS NOT NULL
                                    AND (pins.snapshot IS NULL OR excluded.snapshot_score > pins.snapshot_score)
                               THEN excluded.snapshot ELSE pins.snapshot END,
               snapshot_score = CASE WHEN excluded.snapshot IS NOT NULL
                                          AND (pins.snapshot IS NULL OR excluded.snapshot_score > pins.snapshot_score)
                                     THEN excluded.snapshot_score ELSE pins.snapshot_score END,
               state = CASE WHEN pins.state = 'closed' OR excluded.state = 'closed' THEN 'closed' ELSE 'open' END,
               closed_at = CASE WHEN pins.closed_at IS NOT NULL THEN pins.closed_at ELSE excluded.closed_at END,
               zones = excluded.zones,
               updated_at = excluded.updated_at",
        )
        .bind(&event.incident_id)
        .bind(event.event_type.as_str())
        .bind(&event.camera.id)
        .bind(&event.camera.region)
        .bind(event.camera.latitude)
        .bind(event.camera.longitude)
        .bind(seen)
        .bind(confidence)
        .bind(snapshot)
        .bind(now.timestamp_millis())
        .bind(if closed { "closed" } else { "open" })
        .bind(closed.then(|| occurred.timestamp_millis()))
        .bind(all_zones.join(","))
        .bind(snapshot_score(event))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Pins matching `filter`, most recently seen first (at most 1,000).
    pub async fn pins(&self, filter: &PinFilter) -> Result<Vec<Pin>, StoreError> {
        let [min_lon, min_lat, max_lon, max_lat] =
            filter.bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM pins
             WHERE longitude >= $1 AND longitude <= $2 AND latitude >= $3 AND latitude <= $4
               AND last_seen >= $5 AND ($6 = '' OR region = $6) AND ($7 = '' OR state = $7)
             ORDER BY last_seen DESC LIMIT 1000"
        ))
        .bind(min_lon)
        .bind(max_lon)
        .bind(min_lat)
        .bind(max_lat)
        .bind(filter.since.map_or(i64::MIN, |s| s.timestamp_millis()))
        .bind(filter.region.clone().unwrap_or_default())
        .bind(filter.state.map_or("", PinState::as_str))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(pin).collect::<Result<_, _>>()?)
    }

    /// Pins changed at or after `cursor` (ms), oldest change first.
    pub async fn changed_since(&self, cursor: i64) -> Result<Vec<Pin>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM pins WHERE updated_at >= $1 ORDER BY updated_at LIMIT 1000"
        ))
        .bind(cursor)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(pin).collect::<Result<_, _>>()?)
    }

    /// The snapshot JPEG of an incident, if stored.
    pub async fn snapshot(&self, incident_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT snapshot FROM pins WHERE incident_id = $1")
                .bind(incident_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(text
            .flatten()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok()))
    }

    /// Number of pins (for tests and operators).
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM pins")
            .fetch_one(&self.pool)
            .await?)
    }
}
