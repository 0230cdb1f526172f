//! The API's query parameters and GeoJSON output: pure functions.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::store::{Pin, PinFilter, PinState};

/// A query parameter the API cannot use; answered with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter `{parameter}`: {reason}")]
pub struct QueryError {
    /// The parameter.
    pub parameter: String,
    /// What is wrong.
    pub reason: String,
}

fn error(parameter: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        parameter: parameter.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `bbox=minLon,minLat,maxLon,maxLat`, `since=<RFC 3339>`,
/// `region=<name>` and `state=open|closed`.
pub fn parse_filter(params: &HashMap<String, String>) -> Result<PinFilter, QueryError> {
    let mut filter = PinFilter::default();
    for (key, value) in params {
        match key.as_str() {
            "bbox" => {
                let numbers: Vec<f64> = value
                    .split(',')
                    .map(|part| part.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        error("bbox", "expected four numbers: minLon,minLat,maxLon,maxLat")
                    })?;
                let [min_lon, min_lat, max_lon, max_lat] = numbers[..] else {
                    return Err(error(
                        "bbox",
                        "expected four numbers: minLon,minLat,maxLon,maxLat",
                    ));
                };
                if !(-180.0..=180.0).contains(&min_lon) || !(-180.0..=180.0).contains(&max_lon) {
                    return Err(error("bbox", "longitudes must be within -180..180"));
                }
                if !(-90.0..=90.0).contains(&min_lat) || !(-90.0..=90.0).contains(&max_lat) {
                    return Err(error("bbox", "latitudes must be within -90..90"));
                }
                if min_lon > max_lon || min_lat > max_lat {
                    return Err(error("bbox", "minimums must not exceed maximums"));
                }
                filter.bbox = Some([min_lon, min_lat, max_lon, max_lat]);
            }
            "since" => {
                let at = DateTime::parse_from_rfc3339(value).map_err(|_| {
                    error(
                        "since",
                        format!("`{value}` is not an RFC 3339 time like 2026-11-27T10:00:00Z"),
                    )
                })?;
                filter.since = Some(at.with_timezone(&Utc));
            }
            "region" => {
                if value.is_empty() {
                    return Err(error("region", "must not be empty"));
                }
                filter.region = Some(value.clone());
            }
            "state" => {
                filter.state = Some(match value.as_str() {
                    "open" => PinState::Open,
                    "closed" => PinState::Closed,
                    other => {
                        return Err(error(
                            "state",
                            format!("`{other}` is not a state (open, closed)"),
                        ));
                    }
                });
            }
            other => {
                return Err(error(
                    other,
                    "unknown parameter (use bbox, since, region, state)",
                ));
            }
        }
    }
    Ok(filter)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One pin as a GeoJSON Feature (coordinates are `[longitude, latitude]`).
pub fn feature(pin: &Pin) -> Value {
    json!({
        "type": "Feature",
        "id": pin.incident_id,
        "geometry": {"type": "Point", "coordinates": [pin.longitude, pin.latitude]},
        "properties": {
            "incident_id": pin.incident_id,
            "event_type": pin.event_type,
            "camera_id": pin.camera_id,
            "region": pin.region,
            "first_seen": rfc3339(pin.first_seen),
            "last_seen": rfc3339(pin.last_seen),
            "confidence": (pin.confidence * 1000.0).round() / 1000.0,
            "snapshot_url": pin.has_snapshot.then(|| format!("/api/incidents/{}/snapshot.jpg", pin.incident_id)),
            "state": pin.state.as_str(),
            "closed_at": pin.closed_at.map(rfc3339),
            "zones": pin.zones,
        }
    })
}

/// Pins as a GeoJSON FeatureCollection.
pub fn feature_collection(pins: &[Pin]) -> Value {
    json!({"type": "FeatureCollection", "features": pins.iter().map(feature).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn valid_filters_parse() {
        let filter = parse_filter(&params(&[
            ("bbox", "128.9,35.0,129.3,35.3"),
            ("since", "2026-11-27T10:00:00+09:00"),
            ("region", "busan"),
            ("state", "open"),
        ]))
        .expect("valid");
        assert_eq!(filter.state, Some(PinState::Open));
        assert_eq!(filter.bbox, Some([128.9, 35.0, 129.3, 35.3]));
        assert_eq!(
            filter.since,
            Some("2026-11-27T01:00:00Z".parse().expect("time"))
        );
        assert_eq!(filter.region.as_deref(), Some("busan"));
        assert_eq!(parse_filter(&params(&[])), Ok(PinFilter::default()));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (key, value) in [
            ("bbox", "1,2,3"),
            ("bbox", "a,b,c,d"),
            ("bbox", "129,35,128,36"),
            ("bbox", "0,-91,1,1"),
            ("since", "yesterday"),
            ("region", ""),
            ("state", "cleared"),
            ("zoom", "3"),
        ] {
            let err = parse_filter(&params(&[(key, value)])).expect_err(key);
            assert_eq!(err.parameter, key);
            assert!(
                err.to_string()
                    .starts_with(&format!("query parameter `{key}`"))
            );
        }
    }

    #[test]
    fn features_are_geojson_points_lon_lat() {
        let pin = Pin {
            incident_id: "inc-1".into(),
            event_type: "accident".into(),
            camera_id: "cam".into(),
            region: "busan".into(),
            latitude: 35.1,
            longitude: 129.2,
            first_seen: "2026-11-27T10:00:00Z".parse().expect("time"),
            last_seen: "2026-11-27T10:05:00Z".parse().expect("time"),
            confidence: 0.87654,
            has_snapshot: true,
            state: PinState::Closed,
            closed_at: Some("2026-11-27T10:06:00Z".parse().expect("time")),
            zones: vec!["crossing".into()],
            updated_at: 0,
        };
        let value = feature_collection(&[pin]);
        assert_eq!(value["type"], "FeatureCollection");
        let feature = &value["features"][0];
        assert_eq!(feature["geometry"]["coordinates"], json!([129.2, 35.1]));
        assert_eq!(
            feature["properties"]["last_seen"],
            "2026-11-27T10:05:00.000Z"
        );
        assert_eq!(feature["properties"]["confidence"], json!(0.877));
        assert_eq!(
            feature["properties"]["snapshot_url"],
            "/api/incidents/inc-1/snapshot.jpg"
        );
        assert_eq!(feature["properties"]["state"], "closed");
        assert_eq!(
            feature["properties"]["closed_at"],
            "2026-11-27T10:06:00.000Z"
        );
        assert_eq!(feature["properties"]["zones"], json!(["crossing"]));
    }
}
