//! CloudEvents 1.0 in JSON structured mode, the envelope of every safecity event.
//!
//! An event travels as one AMQP message whose body is the whole CloudEvent
//! (`content-type: application/cloudevents+json`). The routing key on the events
//! exchange is the event type. Decoding validates the envelope and the payload and
//! names the offending field in its error, so a dead-lettered message always says
//! what was wrong with it.
//!
//! One file on purpose: the envelope, its encoding and its decoding errors
//! are the 430 lines above `mod tests`; the rest are the tests of each
//! rejected field, kept beside the checks they pin.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event_type::EventType;
use crate::incident::{
    Lifecycle, UpdateReason, ZoneMovement, check_zone_name, join_list, parse_list,
};
use crate::trace::TraceParent;

/// The CloudEvents spec version safecity speaks.
pub const SPEC_VERSION: &str = "1.0";

/// AMQP `content-type` of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// `datacontenttype` of every safecity payload.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// Why a message body is not a valid safecity event. Every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is empty.
    #[error("empty body: expected a CloudEvent in JSON structured mode")]
    EmptyBody,
    /// A camera frame's body is empty.
    #[error("empty frame body: expected a JPEG image")]
    EmptyFrame,
    /// The body is not a JSON object.
    #[error("body is not a JSON CloudEvent: {0}")]
    NotJson(String),
    /// The AMQP content type is set and is not a JSON CloudEvent.
    #[error("content-type `{0}` is not `application/cloudevents+json`")]
    ContentType(String),
    /// A required CloudEvents attribute is absent.
    #[error("missing required attribute `{0}`")]
    MissingAttribute(&'static str),
    /// An attribute is present but its value is not acceptable.
    #[error("attribute `{field}` is invalid: {reason}")]
    InvalidAttribute {
        /// The attribute's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `specversion` is not `1.0`.
    #[error("attribute `specversion` is `{0}`, expected `1.0`")]
    SpecVersion(String),
    /// `type` is not one of the city's event types.
    #[error(
        "attribute `type` is `{0}`, which is not a known event type (accident, fire, gun, knife)"
    )]
    UnknownType(String),
    /// The payload does not have the shape the function expects.
    #[error("field `{}` is invalid: {reason}", data_field(path))]
    InvalidData {
        /// Path of the offending field inside `data` (`.` for the whole payload).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A camera frame's body is not a usable image.
    #[error("frame body is invalid: {0}")]
    InvalidFrame(String),
    /// A required AMQP header of a binary message (a frame) is absent.
    #[error("missing required header `{0}`")]
    MissingHeader(&'static str),
    /// An AMQP header of a binary message is present but unusable.
    #[error("header `{field}` is invalid: {reason}")]
    InvalidHeader {
        /// The header's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `data.<path>`, or `data` for the whole payload (serde names it `.`).
fn data_field(path: &str) -> String {
    match path {
        "" | "." => "data".to_owned(),
        path => format!("data.{path}"),
    }
}

/// The context attributes of a CloudEvent, with safecity's extensions:
/// `traceparent`, `incidentid`, and the incident lifecycle (`incidentstate`,
/// `trackid`, `zones`, `movement`, `updatereason`; see [`crate::incident`]).
/// Every extension is optional, and consumers that do not know one ignore it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attributes {
    /// Unique id of this event; redeliveries of one event share it.
    pub id: String,
    /// Where the event happened, e.g. `/cameras/busan-haeundae-01`.
    pub source: String,
    /// The event type; also the routing key on the events exchange.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// W3C trace context of the producer (extension `traceparent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
    /// Incident this event belongs to (extension `incidentid`).
    #[serde(rename = "incidentid", skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Where the incident stands (extension `incidentstate`); absent means
    /// `opened` (see [`Attributes::lifecycle`]).
    #[serde(rename = "incidentstate", skip_serializing_if = "Option::is_none")]
    pub incident_state: Option<Lifecycle>,
    /// The detector's track of the object behind the event, per camera
    /// (extension `trackid`).
    #[serde(rename = "trackid", skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// The camera's zones the event's detections touched (extension `zones`,
    /// comma-separated); for `closed`, every zone the incident touched.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_list"
    )]
    pub zones: Vec<String>,
    /// The tracked object's movement relative to zones it is not in
    /// (extension `movement`, e.g. `school-gate:approaching`).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_list"
    )]
    pub movement: Vec<ZoneMovement>,
    /// Why an `updated` event was sent (extension `updatereason`).
    #[serde(
        rename = "updatereason",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_list"
    )]
    pub update_reasons: Vec<UpdateReason>,
}

impl Attributes {
    /// The incident state the event reports: `incidentstate`, or `opened`
    /// when absent (events of producers that predate the lifecycle).
    pub fn lifecycle(&self) -> Lifecycle {
        self.incident_state.unwrap_or(Lifecycle::Opened)
    }
}

fn serialize_list<T: std::fmt::Display, S: serde::Serializer>(
    items: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&join_list(items))
}

/// A payload that can travel as the `data` of a safecity CloudEvent.
///
/// `check` lets a payload verify that it agrees with the envelope (for example a
/// safety event's type must equal the CloudEvent `type`). The default accepts all.
pub trait EventData: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Verifies the decoded payload against its envelope.
    fn check(&self, _attributes: &Attributes) -> Result<(), DecodeError> {
        Ok(())
    }
}

impl EventData for serde_json::Value {}

/// A CloudEvent with a typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent<T> {
    /// Context attributes.
    pub attributes: Attributes,
    /// The payload (`data`).
    pub data: T,
}

/// The wire form: every attribute optional so that decoding can name what is missing.
#[derive(Deserialize)]
struct WireEvent<'a> {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    time: Option<String>,
    datacontenttype: Option<String>,
    traceparent: Option<String>,
    incidentid: Option<String>,
    incidentstate: Option<String>,
    trackid: Option<String>,
    zones: Option<String>,
    movement: Option<String>,
    updatereason: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct WireEventOut<'a, T> {
    specversion: &'static str,
    #[serde(flatten)]
    attributes: &'a Attributes,
    datacontenttype: &'static str,
    data: &'a T,
}

impl<T: EventData> CloudEvent<T> {
    /// Builds a new event with a fresh time-ordered id, the current time and no extensions.
    pub fn new(source: impl Into<String>, event_type: EventType, data: T) -> Self {
        CloudEvent {
            attributes: Attributes {
                id: uuid::Uuid::now_v7().to_string(),
                source: source.into(),
                event_type,
                time: Utc::now(),
                traceparent: None,
                incident_id: None,
                incident_state: None,
                track_id: None,
                zones: Vec::new(),
                movement: Vec::new(),
                update_reasons: Vec::new(),
            },
            data,
        }
    }

    /// Sets the `incidentid` extension.
    pub fn with_incident_id(mut self, incident_id: impl Into<String>) -> Self {
        self.attributes.incident_id = Some(incident_id.into());
        self
    }

    /// Sets the `incidentstate` extension.
    pub fn with_lifecycle(mut self, state: Lifecycle) -> Self {
        self.attributes.incident_state = Some(state);
        self
    }

    /// Sets the `trackid` extension.
    pub fn with_track_id(mut self, track_id: impl Into<String>) -> Self {
        self.attributes.track_id = Some(track_id.into());
        self
    }

    /// Sets the `zones` extension (names as [`check_zone_name`] allows them).
    pub fn with_zones(mut self, zones: Vec<String>) -> Self {
        self.attributes.zones = zones;
        self
    }

    /// Sets the `movement` extension.
    pub fn with_movement(mut self, movement: Vec<ZoneMovement>) -> Self {
        self.attributes.movement = movement;
        self
    }

    /// Sets the `updatereason` extension.
    pub fn with_update_reasons(mut self, reasons: Vec<UpdateReason>) -> Self {
        self.attributes.update_reasons = reasons;
        self
    }

    /// Sets the `traceparent` extension.
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Self {
        self.attributes.traceparent = Some(traceparent);
        self
    }

    /// Serialises the event in JSON structured mode.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEventOut {
            specversion: SPEC_VERSION,
            attributes: &self.attributes,
            datacontenttype: DATA_CONTENT_TYPE,
            data: &self.data,
        };
        // Serialising plain structs of strings, numbers and timestamps cannot fail.
        serde_json::to_vec(&wire).expect("a CloudEvent always serialises to JSON")
    }

    /// The AMQP properties the event travels with: the structured-mode
    /// content type, the event id as `message-id`, and persistent delivery.
    pub fn amqp_properties(&self) -> BasicProperties {
        BasicProperties::default()
            .with_content_type(CLOUDEVENTS_JSON.into())
            .with_message_id(self.attributes.id.as_str().into())
            .with_delivery_mode(2)
    }

    /// Decodes a received AMQP message: a content type, when set, must be
    /// [`CLOUDEVENTS_JSON`]; then the body as [`CloudEvent::from_json`].
    pub fn from_message(content_type: Option<&str>, body: &[u8]) -> Result<Self, DecodeError> {
        if let Some(content_type) = content_type
            && !content_type.starts_with(CLOUDEVENTS_JSON)
        {
            return Err(DecodeError::ContentType(content_type.to_owned()));
        }
        CloudEvent::from_json(body)
    }

    /// Decodes and validates a JSON structured-mode CloudEvent.
    pub fn from_json(body: &[u8]) -> Result<Self, DecodeError> {
        if body.is_empty() {
            return Err(DecodeError::EmptyBody);
        }
        let wire: WireEvent<'_> =
            serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        let attributes = decode_attributes(&wire)?;
        let raw = wire.data.ok_or(DecodeError::MissingAttribute("data"))?;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let data: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            DecodeError::InvalidData {
                path,
                reason: strip_position(&e.into_inner().to_string()),
            }
        })?;
        data.check(&attributes)?;
        Ok(CloudEvent { attributes, data })
    }
}

fn decode_attributes(wire: &WireEvent<'_>) -> Result<Attributes, DecodeError> {
    let spec = wire
        .specversion
        .as_deref()
        .ok_or(DecodeError::MissingAttribute("specversion"))?;
    if spec != SPEC_VERSION {
        return Err(DecodeError::SpecVersion(spec.to_owned()));
    }
    let id = required_non_empty(&wire.id, "id")?;
    let source = required_non_empty(&wire.source, "source")?;
    let type_name = required_non_empty(&wire.event_type, "type")?;
    let event_type = type_name
        .parse::<EventType>()
        .map_err(|_| DecodeError::UnknownType(type_name.clone()))?;
    let time_text = wire
        .time
        .as_deref()
        .ok_or(DecodeError::MissingAttribute("time"))?;
    let time = DateTime::parse_from_rfc3339(time_text)
        .map_err(|e| DecodeError::InvalidAttribute {
            field: "time",
            reason: format!("`{time_text}` is not an RFC 3339 timestamp ({e})"),
        })?
        .with_timezone(&Utc);
    if let Some(content_type) = wire.datacontenttype.as_deref()
        && !content_type.starts_with(DATA_CONTENT_TYPE)
    {
        return Err(DecodeError::InvalidAttribute {
            field: "datacontenttype",
            reason: format!("`{content_type}` is not `{DATA_CONTENT_TYPE}`"),
        });
    }
    let traceparent = wire
        .traceparent
        .as_deref()
        .map(|text| {
            text.parse::<TraceParent>()
                .map_err(|reason| DecodeError::InvalidAttribute {
                    field: "traceparent",
                    reason,
                })
        })
        .transpose()?;
    let invalid =
        |field: &'static str| move |reason: String| DecodeError::InvalidAttribute { field, reason };
    let incident_state = wire
        .incidentstate
        .as_deref()
        .map(|text| text.parse::<Lifecycle>().map_err(invalid("incidentstate")))
        .transpose()?;
    if let Some(track) = &wire.trackid
        && track.is_empty()
    {
        return Err(invalid("trackid")("must not be empty".to_owned()));
    }
    let zones = parse_list(wire.zones.as_deref().unwrap_or(""), |zone| {
        check_zone_name(zone).map(|()| zone.to_owned())
    })
    .map_err(invalid("zones"))?;
    let movement = parse_list(wire.movement.as_deref().unwrap_or(""), str::parse)
        .map_err(invalid("movement"))?;
    let update_reasons = parse_list(wire.updatereason.as_deref().unwrap_or(""), str::parse)
        .map_err(invalid("updatereason"))?;
    Ok(Attributes {
        id,
        source,
        event_type,
        time,
        traceparent,
        incident_id: wire.incidentid.clone(),
        incident_state,
        track_id: wire.trackid.clone(),
        zones,
        movement,
        update_reasons,
    })
}

fn required_non_empty(value: &Option<String>, field: &'static str) -> Result<String, DecodeError> {
    match value.as_deref() {
        None => Err(DecodeError::MissingAttribute(field)),
        Some("") => Err(DecodeError::InvalidAttribute {
            field,
            reason: "must not be empty".to_owned(),
        }),
        Some(text) => Ok(text.to_owned()),
    }
}

/// serde_json appends " at line L column C" to its messages; inside `data` that
/// position is relative to the payload and only confuses the reader.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> serde_json::Value {
        json!({
            "specversion": "1.0",
            "id": "evt-1",
            "source": "/cameras/cam-1",
            "type": "fire",
            "time": "2026-11-27T10:00:00Z",
            "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "incidentid": "inc-1",
            "data": {"note": "smoke"}
        })
    }

    fn decode(value: serde_json::Value) -> Result<CloudEvent<serde_json::Value>, DecodeError> {
        CloudEvent::from_json(&serde_json::to_vec(&value).expect("json"))
    }

    #[test]
    fn decodes_a_valid_event_and_round_trips() {
        let event = decode(valid()).expect("valid event");
        assert_eq!(event.attributes.id, "evt-1");
        assert_eq!(event.attributes.event_type, EventType::Fire);
        assert_eq!(event.attributes.incident_id.as_deref(), Some("inc-1"));
        assert_eq!(event.data, json!({"note": "smoke"}));
        let again = CloudEvent::<serde_json::Value>::from_json(&event.to_json()).expect("again");
        assert_eq!(again, event);
        let wire: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        assert_eq!(wire["specversion"], "1.0");
        assert_eq!(wire["type"], "fire");
        assert_eq!(wire["datacontenttype"], "application/json");
    }

    #[test]
    fn wrong_specversion_is_named() {
        let mut event = valid();
        event["specversion"] = json!("0.3");
        assert_eq!(decode(event), Err(DecodeError::SpecVersion("0.3".into())));
    }

    #[test]
    fn each_missing_required_attribute_is_named() {
        for field in ["specversion", "id", "source", "type", "time", "data"] {
            let mut event = valid();
            event.as_object_mut().expect("object").remove(field);
            assert_eq!(
                decode(event),
                Err(DecodeError::MissingAttribute(field)),
                "{field}"
            );
        }
    }

    #[test]
    fn unknown_type_is_an_error() {
        let mut event = valid();
        event["type"] = json!("parade");
        let err = decode(event).expect_err("unknown type");
        assert_eq!(err, DecodeError::UnknownType("parade".into()));
        assert!(err.to_string().contains("parade"));
    }

    #[test]
    fn bad_time_and_traceparent_name_the_attribute() {
        let mut event = valid();
        event["time"] = json!("yesterday");
        assert!(matches!(
            decode(event),
            Err(DecodeError::InvalidAttribute { field: "time", .. })
        ));
        let mut event = valid();
        event["traceparent"] = json!("00-zz");
        assert!(matches!(
            decode(event),
            Err(DecodeError::InvalidAttribute {
                field: "traceparent",
                ..
            })
        ));
    }

    #[test]
    fn lifecycle_extensions_round_trip_and_default_to_opened() {
        let old = decode(valid()).expect("valid event");
        assert_eq!(
            old.attributes.lifecycle(),
            Lifecycle::Opened,
            "absent = opened"
        );
        assert!(old.attributes.zones.is_empty());
        let wire: serde_json::Value = serde_json::from_slice(&old.to_json()).expect("json");
        for absent in [
            "incidentstate",
            "trackid",
            "zones",
            "movement",
            "updatereason",
        ] {
            assert!(
                wire.get(absent).is_none(),
                "{absent} is left out when unset"
            );
        }
        let event = old
            .with_lifecycle(Lifecycle::Updated)
            .with_track_id("7")
            .with_zones(vec!["crossing".into(), "school-gate".into()])
            .with_movement(vec!["platform-edge:leaving".parse().expect("movement")])
            .with_update_reasons(vec![UpdateReason::NewZone, UpdateReason::BetterSnapshot]);
        let wire: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        assert_eq!(wire["incidentstate"], "updated");
        assert_eq!(wire["trackid"], "7");
        assert_eq!(wire["zones"], "crossing,school-gate");
        assert_eq!(wire["movement"], "platform-edge:leaving");
        assert_eq!(wire["updatereason"], "new-zone,better-snapshot");
        let again = CloudEvent::<serde_json::Value>::from_json(&event.to_json()).expect("again");
        assert_eq!(again, event);
        assert_eq!(again.attributes.lifecycle(), Lifecycle::Updated);
    }

    #[test]
    fn bad_lifecycle_extensions_name_the_attribute() {
        for (field, value) in [
            ("incidentstate", "reopened"),
            ("trackid", ""),
            ("zones", "crossing,School Gate"),
            ("movement", "crossing:running"),
            ("updatereason", "boredom"),
        ] {
            let mut event = valid();
            event[field] = json!(value);
            match decode(event) {
                Err(DecodeError::InvalidAttribute {
                    field: named,
                    reason,
                }) => {
                    assert_eq!(named, field, "{reason}");
                }
                other => panic!("{field} = {value}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wrong_shaped_payload_names_data_not_data_dot_dot() {
        let mut event = valid();
        event["data"] = json!("not an object");
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Reading {
            celsius: f64,
        }
        impl EventData for Reading {}
        let body = serde_json::to_vec(&event).expect("json");
        let err = CloudEvent::<Reading>::from_json(&body).expect_err("bad shape");
        let text = err.to_string();
        assert!(text.starts_with("field `data` is invalid: "), "{text}");
        assert!(!text.contains("data.."), "{text}");
    }

    #[test]
    fn not_json_and_empty_are_errors() {
        assert_eq!(
            CloudEvent::<serde_json::Value>::from_json(b""),
            Err(DecodeError::EmptyBody)
        );
        assert!(matches!(
            CloudEvent::<serde_json::Value>::from_json(b"\xff\xd8 jpeg"),
            Err(DecodeError::NotJson(_))
        ));
    }

    #[test]
    fn wrong_payload_shape_names_the_data_field() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Reading {
            celsius: f64,
            sensor: String,
        }
        impl EventData for Reading {}
        let mut event = valid();
        event["data"] = json!({"celsius": "hot", "sensor": "s1"});
        let body = serde_json::to_vec(&event).expect("json");
        let err = CloudEvent::<Reading>::from_json(&body).expect_err("bad shape");
        match &err {
            DecodeError::InvalidData { path, reason } => {
                assert_eq!(path, "celsius");
                assert!(reason.contains("expected f64"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("field `data.celsius` is invalid")
        );
    }
}
