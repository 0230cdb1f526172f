//! `safecity publish` and `safecity publish-raw`.

use clap::Args;
use lapin::BasicProperties;
use safecity_events::topology::{EVENTS_EXCHANGE, declare_exchanges};
use safecity_events::{
    BoundingBox, Camera, Detection, EventType, FrameSize, PublishError, Publisher, SafetyEvent,
    TraceParent,
};

/// Options of `safecity publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Event type: accident, fire, gun or knife.
    #[arg(long = "type", default_value = "fire")]
    pub event_type: EventType,
    /// How many events.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Camera id.
    #[arg(long, default_value = "busan-haeundae-01")]
    pub camera: String,
    /// Camera region.
    #[arg(long, default_value = "busan")]
    pub region: String,
    /// Camera latitude.
    #[arg(long, default_value_t = 35.1587)]
    pub latitude: f64,
    /// Camera longitude.
    #[arg(long, default_value_t = 129.1604)]
    pub longitude: f64,
    /// Detected class name.
    #[arg(long, default_value = "fire")]
    pub class: String,
    /// Detection confidence.
    #[arg(long, default_value_t = 0.9)]
    pub confidence: f32,
    /// Incident id shared by every event (default: a new one per event).
    #[arg(long)]
    pub incident: Option<String>,
    /// Publish with no detections (a function may reject such events).
    #[arg(long)]
    pub no_detections: bool,
}

impl PublishArgs {
    /// The sample events this invocation publishes.
    pub fn events(&self) -> Vec<SafetyEvent> {
        (0..self.count)
            .map(|_| SafetyEvent {
                event_type: self.event_type,
                incident_id: self
                    .incident
                    .clone()
                    .unwrap_or_else(|| format!("inc-{}", uuid::Uuid::now_v7())),
                camera: Camera {
                    id: self.camera.clone(),
                    region: self.region.clone(),
                    latitude: self.latitude,
                    longitude: self.longitude,
                },
                detections: if self.no_detections {
                    Vec::new()
                } else {
                    vec![Detection {
                        class: self.class.clone(),
                        confidence: self.confidence,
                        bounding_box: BoundingBox {
                            x: 100.0,
                            y: 80.0,
                            width: 120.0,
                            height: 90.0,
                        },
                    }]
                },
                captured_at: chrono::Utc::now(),
                frame_size: FrameSize {
                    width: 640,
                    height: 360,
                },
                snapshot: None,
                frame_age: None,
            })
            .collect()
    }
}

/// Explains a publish that was not stored.
fn explain(error: PublishError) -> anyhow::Error {
    match error {
        PublishError::Unroutable {
            exchange,
            routing_key,
        } => anyhow::anyhow!(
            "no queue is bound to `{exchange}` with key `{routing_key}`: start a function that subscribes to it first"
        ),
        other => other.into(),
    }
}

/// Publishes the sample events of `args`, each confirmed by the broker.
pub async fn events(publisher: &Publisher, args: &PublishArgs) -> anyhow::Result<()> {
    declare_exchanges(publisher.channel()).await?;
    for event in args.events() {
        let cloud_event = event
            .into_cloud_event()
            .with_traceparent(TraceParent::new_root());
        publisher
            .publish_event(&cloud_event)
            .await
            .map_err(explain)?;
        println!(
            "published {} event {} (incident {})",
            cloud_event.attributes.event_type,
            cloud_event.attributes.id,
            cloud_event.data.incident_id
        );
    }
    Ok(())
}

/// Publishes `body` as is to the events exchange under `routing_key`.
pub async fn raw(
    publisher: &Publisher,
    routing_key: &str,
    body: &str,
    content_type: &str,
) -> anyhow::Result<()> {
    declare_exchanges(publisher.channel()).await?;
    let properties = BasicProperties::default()
        .with_content_type(content_type.into())
        .with_delivery_mode(2);
    publisher
        .publish(EVENTS_EXCHANGE, routing_key, body.as_bytes(), properties)
        .await
        .map_err(explain)?;
    println!("published {} bytes to `{routing_key}`", body.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn publish_builds_valid_events() {
        let cli = crate::Cli::parse_from([
            "safecity",
            "publish",
            "--type",
            "accident",
            "--count",
            "3",
            "--incident",
            "inc-7",
        ]);
        let crate::Command::Publish(args) = cli.command else {
            panic!("publish expected");
        };
        let events = args.events();
        assert_eq!(events.len(), 3);
        for event in events {
            assert_eq!(event.event_type, EventType::Accident);
            assert_eq!(event.incident_id, "inc-7");
            let cloud = event.into_cloud_event();
            let decoded = safecity_events::CloudEvent::<SafetyEvent>::from_json(&cloud.to_json())
                .expect("the runtime accepts what the CLI sends");
            assert_eq!(decoded, cloud);
        }
    }

    #[test]
    fn unknown_types_are_refused_by_the_parser() {
        let parsed = crate::Cli::try_parse_from(["safecity", "publish", "--type", "parade"]);
        assert!(parsed.is_err());
    }
}
