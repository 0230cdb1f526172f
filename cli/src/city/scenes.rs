//! The events the bundled COCO model cannot produce, published by a clearly
//! labelled injector: COCO has no fire, gun or accident class, so a fire and
//! a gun event come "as a custom-trained model would emit them", and one
//! malformed accident event shows the dead-letter path.

use lapin::BasicProperties;
use safecity_events::event::CLOUDEVENTS_JSON;
use safecity_events::topology::EVENTS_EXCHANGE;
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, FrameSize, Publisher, SafetyEvent, TraceParent,
};

/// One injected event, as the view and the summary name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// What it stands for.
    pub label: String,
    /// The event type (routing key).
    pub event_type: EventType,
}

fn event(
    event_type: EventType,
    camera: (&str, &str, f64, f64),
    class: &str,
    confidence: f32,
) -> SafetyEvent {
    SafetyEvent {
        event_type,
        incident_id: format!("injected-{}", uuid::Uuid::now_v7()),
        camera: Camera {
            id: camera.0.to_owned(),
            region: camera.1.to_owned(),
            latitude: camera.2,
            longitude: camera.3,
        },
        detections: vec![Detection {
            class: class.to_owned(),
            confidence,
            bounding_box: BoundingBox {
                x: 260.0,
                y: 120.0,
                width: 90.0,
                height: 140.0,
            },
        }],
        captured_at: chrono::Utc::now(),
        frame_size: FrameSize {
            width: 640,
            height: 360,
        },
        snapshot: None,
        frame_age: None,
    }
}

/// Publishes the injected events, confirmed by the broker.
pub async fn inject(publisher: &Publisher) -> anyhow::Result<Vec<Injected>> {
    let fire = event(
        EventType::Fire,
        ("daejeon-yuseong-02", "daejeon", 36.3622, 127.3563),
        "fire",
        0.91,
    );
    let gun = event(
        EventType::Gun,
        ("seoul-gangnam-01", "seoul", 37.4979, 127.0276),
        "gun",
        0.83,
    );
    let mut injected = Vec::new();
    for (event, label) in [
        (
            fire,
            "fire at daejeon-yuseong-02 (injected: a custom-trained model's event)",
        ),
        (
            gun,
            "gun at seoul-gangnam-01 (injected: a custom-trained model's event)",
        ),
    ] {
        let event_type = event.event_type;
        let cloud = event
            .into_cloud_event()
            .with_traceparent(TraceParent::new_root());
        publisher.publish_event(&cloud).await?;
        injected.push(Injected {
            label: label.to_owned(),
            event_type,
        });
    }
    // No `id`: map-pin's runtime dead-letters it at once, saying why.
    let malformed = br#"{"specversion":"1.0","type":"accident","source":"/cameras/seoul-gangnam-01","data":{}}"#;
    publisher
        .publish(
            EVENTS_EXCHANGE,
            "accident",
            malformed,
            BasicProperties::default()
                .with_content_type(CLOUDEVENTS_JSON.into())
                .with_delivery_mode(2),
        )
        .await?;
    injected.push(Injected {
        label: "a malformed accident event (no id): for the dead-letter path".to_owned(),
        event_type: EventType::Accident,
    });
    Ok(injected)
}
