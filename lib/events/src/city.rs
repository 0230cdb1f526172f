//! The typed payloads that flow through the city: cameras, detections and safety events.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Attributes, DecodeError, EventData};
pub use crate::event_type::{EventType, UnknownEventType};

/// A CCTV camera as the registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Stable camera id, e.g. `busan-haeundae-01`.
    pub id: String,
    /// Edge region the camera belongs to, e.g. `seoul`.
    pub region: String,
    /// WGS 84 latitude in degrees.
    pub latitude: f64,
    /// WGS 84 longitude in degrees.
    pub longitude: f64,
}

impl Camera {
    /// The CloudEvent `source` of events seen by this camera.
    pub fn source(&self) -> String {
        format!("/cameras/{}", self.id)
    }

    /// Checks ranges that serde cannot: coordinates on the globe, non-empty ids.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.id.is_empty() {
            return Err(("camera.id", "must not be empty".to_owned()));
        }
        if self.region.is_empty() {
            return Err(("camera.region", "must not be empty".to_owned()));
        }
        if !(-90.0..=90.0).contains(&self.latitude) {
            return Err((
                "camera.latitude",
                format!("{} is outside -90..=90", self.latitude),
            ));
        }
        if !(-180.0..=180.0).contains(&self.longitude) {
            return Err((
                "camera.longitude",
                format!("{} is outside -180..=180", self.longitude),
            ));
        }
        Ok(())
    }
}

/// An axis-aligned box in pixels of the analysed frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// Width and height in pixels of the frame the detector analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One object the detector found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Class name from the model's names file, e.g. `knife` or `person`.
    pub class: String,
    /// Confidence in 0..=1.
    pub confidence: f32,
    /// Where in the frame.
    #[serde(rename = "box")]
    pub bounding_box: BoundingBox,
}

/// A JPEG image carried inside a JSON payload as base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Jpeg(pub Vec<u8>);

impl fmt::Debug for Jpeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jpeg({} bytes)", self.0.len())
    }
}

impl Serialize for Jpeg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Jpeg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))?;
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return Err(serde::de::Error::custom(
                "not a JPEG (missing the FF D8 start-of-image marker)",
            ));
        }
        Ok(Jpeg(bytes))
    }
}

/// Something dangerous a camera saw: the payload of accident, fire, gun and knife events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyEvent {
    /// What happened; equals the CloudEvent `type`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Incident this sighting belongs to; equals the `incidentid` extension.
    pub incident_id: String,
    /// The camera that saw it.
    pub camera: Camera,
    /// The detections that triggered the event, highest confidence first.
    pub detections: Vec<Detection>,
    /// When the frame was captured.
    pub captured_at: DateTime<Utc>,
    /// Size of the analysed frame: detection boxes are in its pixels.
    pub frame_size: FrameSize,
    /// A downscaled snapshot of the scene (same aspect ratio as the frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Jpeg>,
    /// How old the frame was when the detector analysed it, and whether that
    /// was past the frame budget (absent where the producer did not measure it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_age: Option<FrameAge>,
}

/// The age of an event's frame when it was analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameAge {
    /// From capture to analysis, milliseconds (0 when the camera's clock is ahead).
    pub milliseconds: u64,
    /// The frame was older than the frame budget: the alert is late, and
    /// consumers should say so rather than present it as live.
    pub late: bool,
}

impl FrameAge {
    /// The age of a frame captured at `captured_at`, analysed at `now`,
    /// against `budget`.
    pub fn of(captured_at: DateTime<Utc>, now: DateTime<Utc>, budget: std::time::Duration) -> Self {
        let age = (now - captured_at).to_std().unwrap_or_default();
        FrameAge {
            milliseconds: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            late: age > budget,
        }
    }
}

impl SafetyEvent {
    /// Wraps the payload in a CloudEvent whose type, source and incident id agree with it.
    pub fn into_cloud_event(self) -> crate::event::CloudEvent<SafetyEvent> {
        let incident = self.incident_id.clone();
        crate::event::CloudEvent::new(self.camera.source(), self.event_type, self)
            .with_incident_id(incident)
    }
}

impl EventData for SafetyEvent {
    fn check(&self, attributes: &Attributes) -> Result<(), DecodeError> {
        if self.event_type != attributes.event_type {
            return Err(DecodeError::InvalidData {
                path: "type".to_owned(),
                reason: format!(
                    "`{}` disagrees with the CloudEvent type `{}`",
                    self.event_type, attributes.event_type
                ),
            });
        }
        if self.incident_id.is_empty() {
            return Err(DecodeError::InvalidData {
                path: "incident_id".to_owned(),
                reason: "must not be empty".to_owned(),
            });
        }
        if let Some(extension) = &attributes.incident_id
            && *extension != self.incident_id
        {
            return Err(DecodeError::InvalidData {
                path: "incident_id".to_owned(),
                reason: format!(
                    "`{}` disagrees with the incidentid extension `{extension}`",
                    self.incident_id
                ),
            });
        }
        if self.frame_size.width == 0 || self.frame_size.height == 0 {
            return Err(DecodeError::InvalidData {
                path: "frame_size".to_owned(),
                reason: "width and height must be above zero".to_owned(),
            });
        }
        self.camera
            .validate()
            .map_err(|(path, reason)| DecodeError::InvalidData {
                path: path.to_owned(),
                reason,
            })?;
        for (index, detection) in self.detections.iter().enumerate() {
            if !(0.0..=1.0).contains(&detection.confidence) {
                return Err(DecodeError::InvalidData {
                    path: format!("detections[{index}].confidence"),
                    reason: format!("{} is outside 0..=1", detection.confidence),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CloudEvent;

    pub(crate) fn sample(event_type: EventType) -> SafetyEvent {
        SafetyEvent {
            event_type,
            incident_id: "inc-42".into(),
            camera: Camera {
                id: "busan-haeundae-01".into(),
                region: "busan".into(),
                latitude: 35.1587,
                longitude: 129.1604,
            },
            detections: vec![Detection {
                class: "fire".into(),
                confidence: 0.91,
                bounding_box: BoundingBox {
                    x: 10.0,
                    y: 20.0,
                    width: 30.0,
                    height: 40.0,
                },
            }],
            captured_at: "2026-11-27T10:00:00Z".parse().expect("time"),
            frame_size: FrameSize {
                width: 640,
                height: 360,
            },
            snapshot: Some(Jpeg(vec![0xFF, 0xD8, 0xFF, 0xD9])),
            frame_age: None,
        }
    }

    #[test]
    fn safety_event_round_trips_through_a_cloud_event() {
        let event = sample(EventType::Fire).into_cloud_event();
        assert_eq!(event.attributes.source, "/cameras/busan-haeundae-01");
        assert_eq!(event.attributes.incident_id.as_deref(), Some("inc-42"));
        let decoded = CloudEvent::<SafetyEvent>::from_json(&event.to_json()).expect("decode");
        assert_eq!(decoded, event);
    }

    #[test]
    fn disagreeing_type_is_a_data_error() {
        let mut event = sample(EventType::Fire).into_cloud_event();
        event.data.event_type = EventType::Gun;
        let err = CloudEvent::<SafetyEvent>::from_json(&event.to_json()).expect_err("mismatch");
        assert!(matches!(err, DecodeError::InvalidData { ref path, .. } if path == "type"));
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let mut event = sample(EventType::Fire).into_cloud_event();
        event.data.camera.latitude = 123.0;
        let err = CloudEvent::<SafetyEvent>::from_json(&event.to_json()).expect_err("latitude");
        assert!(err.to_string().contains("data.camera.latitude"), "{err}");

        let mut event = sample(EventType::Fire).into_cloud_event();
        event.data.detections[0].confidence = 1.5;
        let err = CloudEvent::<SafetyEvent>::from_json(&event.to_json()).expect_err("confidence");
        assert!(
            err.to_string().contains("data.detections[0].confidence"),
            "{err}"
        );
    }

    #[test]
    fn missing_payload_field_and_bad_snapshot_are_named() {
        let event = sample(EventType::Knife).into_cloud_event();
        let mut wire: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        wire["data"].as_object_mut().expect("data").remove("camera");
        let body = serde_json::to_vec(&wire).expect("json");
        let err = CloudEvent::<SafetyEvent>::from_json(&body).expect_err("missing camera");
        assert!(err.to_string().contains("camera"), "{err}");

        let mut wire: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        wire["data"]["snapshot"] = serde_json::json!("aGVsbG8=");
        let body = serde_json::to_vec(&wire).expect("json");
        let err = CloudEvent::<SafetyEvent>::from_json(&body).expect_err("not a jpeg");
        assert!(err.to_string().contains("data.snapshot"), "{err}");
        assert!(err.to_string().contains("JPEG"), "{err}");
    }
}
