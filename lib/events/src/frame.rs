//! Camera frames on the broker: a binary JPEG body with camera metadata in headers.
//!
//! The motion gate publishes frames to the frames exchange with the camera's
//! region as routing key; the detector consumes them.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::FieldTable;

use crate::city::Camera;
use crate::event::DecodeError;
use crate::headers::{get_i64, get_str, set_i64, set_str};

/// AMQP content type of a frame body.
pub const JPEG_CONTENT_TYPE: &str = "image/jpeg";

/// Header names carried by every frame.
pub mod header {
    /// Camera id.
    pub const CAMERA_ID: &str = "camera-id";
    /// Camera region (also the routing key).
    pub const REGION: &str = "camera-region";
    /// Camera latitude in degrees, as decimal text.
    pub const LATITUDE: &str = "camera-latitude";
    /// Camera longitude in degrees, as decimal text.
    pub const LONGITUDE: &str = "camera-longitude";
    /// Capture time, RFC 3339.
    pub const CAPTURED_AT: &str = "captured-at";
    /// Per-camera frame sequence number.
    pub const SEQUENCE: &str = "frame-seq";
}

/// One camera frame worth a detector's time.
#[derive(Clone, PartialEq)]
pub struct Frame {
    /// The camera that captured it.
    pub camera: Camera,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
    /// Per-camera sequence number.
    pub sequence: u64,
    /// The JPEG bytes.
    pub jpeg: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("camera", &self.camera.id)
            .field("captured_at", &self.captured_at)
            .field("sequence", &self.sequence)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

impl Frame {
    /// AMQP properties (content type, timestamp, headers) that describe this frame.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        set_str(&mut headers, header::CAMERA_ID, self.camera.id.clone());
        set_str(&mut headers, header::REGION, self.camera.region.clone());
        set_str(
            &mut headers,
            header::LATITUDE,
            self.camera.latitude.to_string(),
        );
        set_str(
            &mut headers,
            header::LONGITUDE,
            self.camera.longitude.to_string(),
        );
        set_str(
            &mut headers,
            header::CAPTURED_AT,
            self.captured_at.to_rfc3339(),
        );
        set_i64(
            &mut headers,
            header::SEQUENCE,
            i64::try_from(self.sequence).unwrap_or(i64::MAX),
        );
        BasicProperties::default()
            .with_content_type(JPEG_CONTENT_TYPE.into())
            .with_timestamp(u64::try_from(self.captured_at.timestamp()).unwrap_or(0))
            .with_headers(headers)
    }

    /// Decodes a frame from a message body and its headers.
    pub fn decode(body: &[u8], headers: Option<&FieldTable>) -> Result<Self, DecodeError> {
        if body.is_empty() {
            return Err(DecodeError::EmptyFrame);
        }
        if !body.starts_with(&[0xFF, 0xD8]) {
            return Err(DecodeError::InvalidFrame(
                "not a JPEG (missing the FF D8 start-of-image marker)".to_owned(),
            ));
        }
        let text = |name: &'static str| {
            get_str(headers, name)
                .filter(|v| !v.is_empty())
                .ok_or(DecodeError::MissingHeader(name))
        };
        let degrees = |name: &'static str| -> Result<f64, DecodeError> {
            let raw = text(name)?;
            raw.parse::<f64>().map_err(|_| DecodeError::InvalidHeader {
                field: name,
                reason: format!("`{raw}` is not a number"),
            })
        };
        let camera = Camera {
            id: text(header::CAMERA_ID)?.to_owned(),
            region: text(header::REGION)?.to_owned(),
            latitude: degrees(header::LATITUDE)?,
            longitude: degrees(header::LONGITUDE)?,
        };
        camera
            .validate()
            .map_err(|(field, reason)| DecodeError::InvalidHeader {
                field: match field {
                    "camera.latitude" => header::LATITUDE,
                    "camera.longitude" => header::LONGITUDE,
                    "camera.region" => header::REGION,
                    _ => header::CAMERA_ID,
                },
                reason,
            })?;
        let captured_text = text(header::CAPTURED_AT)?;
        let captured_at = DateTime::parse_from_rfc3339(captured_text)
            .map_err(|e| DecodeError::InvalidHeader {
                field: header::CAPTURED_AT,
                reason: format!("`{captured_text}` is not an RFC 3339 timestamp ({e})"),
            })?
            .with_timezone(&Utc);
        let sequence = match get_i64(headers, header::SEQUENCE) {
            None => 0,
            Some(n) => u64::try_from(n).map_err(|_| DecodeError::InvalidHeader {
                field: header::SEQUENCE,
                reason: format!("{n} is negative"),
            })?,
        };
        Ok(Frame {
            camera,
            captured_at,
            sequence,
            jpeg: body.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            camera: Camera {
                id: "seoul-gangnam-03".into(),
                region: "seoul".into(),
                latitude: 37.4979,
                longitude: 127.0276,
            },
            captured_at: "2026-11-27T10:00:00.250Z".parse().expect("time"),
            sequence: 17,
            jpeg: vec![0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9],
        }
    }

    #[test]
    fn frame_round_trips_through_headers() {
        let original = frame();
        let properties = original.properties();
        assert_eq!(
            properties.content_type().as_ref().map(|c| c.as_str()),
            Some(JPEG_CONTENT_TYPE)
        );
        let decoded = Frame::decode(&original.jpeg, properties.headers().as_ref()).expect("decode");
        assert_eq!(decoded, original);
    }

    #[test]
    fn missing_and_bad_headers_are_named() {
        let original = frame();
        let headers = original.properties().headers().clone().expect("headers");
        let mut without_id = FieldTable::default();
        for (k, v) in &headers {
            if k.as_str() != header::CAMERA_ID {
                without_id.insert(k.clone(), v.clone());
            }
        }
        assert_eq!(
            Frame::decode(&original.jpeg, Some(&without_id)),
            Err(DecodeError::MissingHeader(header::CAMERA_ID))
        );
        let mut bad_latitude = headers.clone();
        set_str(&mut bad_latitude, header::LATITUDE, "north");
        assert!(matches!(
            Frame::decode(&original.jpeg, Some(&bad_latitude)),
            Err(DecodeError::InvalidHeader {
                field: header::LATITUDE,
                ..
            })
        ));
        assert_eq!(
            Frame::decode(&[], Some(&headers)),
            Err(DecodeError::EmptyFrame)
        );
        assert_eq!(
            DecodeError::EmptyFrame.to_string(),
            "empty frame body: expected a JPEG image"
        );
        let not_jpeg = Frame::decode(b"GIF89a", Some(&headers)).expect_err("a GIF");
        assert!(matches!(not_jpeg, DecodeError::InvalidFrame(_)));
        assert_eq!(
            not_jpeg.to_string(),
            "frame body is invalid: not a JPEG (missing the FF D8 start-of-image marker)"
        );
    }
}
