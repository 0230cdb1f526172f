//! `safecity`: command-line tools for function authors and operators.
//!
//! - `safecity publish`: send sample safety events to the local broker.
//! - `safecity publish-raw`: send an arbitrary body (to see poison handling).
//! - `safecity dead-letters FUNCTION`: show what a function gave up on, and why.
//! - `safecity replay FUNCTION`: move dead letters back to the function's queue.
//! - `safecity webhook-sink`: a local receiver for the signed-webhook notifier
//!   that verifies signatures and prints each post ([`webhook_sink`]).

pub mod webhook_sink;

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use safecity_runtime::event::CLOUDEVENTS_JSON;
use safecity_runtime::failure::header;
use safecity_runtime::headers::{get_i64, get_str};
use safecity_runtime::topology::{EVENTS_EXCHANGE, FunctionQueues, declare_exchanges};
use safecity_runtime::{BoundingBox, Camera, Detection, EventType, SafetyEvent};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "safecity", version, about = "safecity's local tools")]
pub struct Cli {
    /// Broker URL.
    #[arg(
        long,
        env = "SAFECITY_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        global = true,
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish sample safety events (one incident per event unless --incident is given).
    Publish(PublishArgs),
    /// Publish an arbitrary body to the events exchange.
    PublishRaw {
        /// Routing key (the event type).
        #[arg(long)]
        routing_key: String,
        /// The body, as text.
        #[arg(long)]
        body: String,
        /// AMQP content type.
        #[arg(long, default_value = CLOUDEVENTS_JSON)]
        content_type: String,
    },
    /// Show a function's dead letters with their reasons (they stay queued).
    DeadLetters {
        /// The function's name.
        function: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Remove the shown dead letters instead of leaving them queued.
        #[arg(long)]
        remove: bool,
    },
    /// Move a function's dead letters back to its work queue, attempts reset.
    Replay {
        /// The function's name.
        function: String,
    },
    /// Receive signed-webhook posts on loopback and print them (no broker needed).
    WebhookSink(webhook_sink::WebhookSinkArgs),
}

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
                frame_size: safecity_runtime::FrameSize {
                    width: 640,
                    height: 360,
                },
                snapshot: None,
            })
            .collect()
    }
}

async fn confirmed_channel(url: &str) -> anyhow::Result<(Connection, Channel)> {
    let connection = Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("safecity-cli".into()),
    )
    .await
    .with_context(|| {
        format!(
            "cannot connect to {}",
            safecity_runtime::config::redact_url(url)
        )
    })?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirmation = channel
        .basic_publish(
            ShortString::from(exchange),
            ShortString::from(routing_key),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => bail!(
            "no queue is bound to `{exchange}` with key `{routing_key}`: start a function that subscribes to it first"
        ),
        Confirmation::Nack(_) => bail!("the broker refused the message"),
    }
}

/// Runs one command, writing human-readable lines to stdout.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    if let Command::WebhookSink(args) = cli.command {
        return Ok(webhook_sink::run(args).await?);
    }
    let (connection, channel) = confirmed_channel(&cli.amqp_url).await?;
    match cli.command {
        Command::Publish(args) => {
            declare_exchanges(&channel).await?;
            for event in args.events() {
                let cloud_event = event
                    .into_cloud_event()
                    .with_traceparent(safecity_runtime::trace::TraceParent::new_root());
                let properties = BasicProperties::default()
                    .with_content_type(CLOUDEVENTS_JSON.into())
                    .with_message_id(cloud_event.attributes.id.as_str().into())
                    .with_delivery_mode(2);
                publish_confirmed(
                    &channel,
                    EVENTS_EXCHANGE,
                    cloud_event.attributes.event_type.as_str(),
                    &cloud_event.to_json(),
                    properties,
                )
                .await?;
                println!(
                    "published {} event {} (incident {})",
                    cloud_event.attributes.event_type,
                    cloud_event.attributes.id,
                    cloud_event.data.incident_id
                );
            }
        }
        Command::PublishRaw {
            routing_key,
            body,
            content_type,
        } => {
            declare_exchanges(&channel).await?;
            let properties = BasicProperties::default()
                .with_content_type(content_type.as_str().into())
                .with_delivery_mode(2);
            publish_confirmed(
                &channel,
                EVENTS_EXCHANGE,
                &routing_key,
                body.as_bytes(),
                properties,
            )
            .await?;
            println!("published {} bytes to `{routing_key}`", body.len());
        }
        Command::DeadLetters {
            function,
            limit,
            remove,
        } => {
            let queue = FunctionQueues::new(&function)?.dead_letter();
            let mut shown = 0;
            // Unacked gets are returned to the queue when the channel closes.
            while shown < limit {
                let Some(message) = channel
                    .basic_get(
                        ShortString::from(queue.as_str()),
                        BasicGetOptions::default(),
                    )
                    .await
                    .with_context(|| format!("reading `{queue}`"))?
                else {
                    break;
                };
                shown += 1;
                let headers = message.delivery.properties.headers().as_ref();
                println!(
                    "#{shown} cause={} attempts={} first_failure={} last_failure={}\n   reason: {}\n   routing key: {}\n   body: {}",
                    get_str(headers, header::DEAD_LETTER_CAUSE).unwrap_or("broker"),
                    get_i64(headers, header::FAILED_ATTEMPTS).unwrap_or(0),
                    get_str(headers, header::FIRST_FAILURE_AT).unwrap_or("-"),
                    get_str(headers, header::LAST_FAILURE_AT).unwrap_or("-"),
                    get_str(headers, header::DEAD_LETTER_REASON)
                        .unwrap_or("dead-lettered by the broker (delivery limit)"),
                    get_str(headers, header::ORIGINAL_ROUTING_KEY)
                        .unwrap_or(message.delivery.routing_key.as_str()),
                    preview(&message.delivery.data),
                );
                if remove {
                    message
                        .delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await?;
                }
            }
            if shown == 0 {
                println!("`{queue}` is empty");
            }
        }
        Command::Replay { function } => {
            let queues = FunctionQueues::new(&function)?;
            let mut moved = 0u64;
            while let Some(message) = channel
                .basic_get(
                    ShortString::from(queues.dead_letter()),
                    BasicGetOptions::default(),
                )
                .await?
            {
                let mut properties = message.delivery.properties.clone();
                if let Some(headers) = properties.headers().clone() {
                    let kept: std::collections::BTreeMap<_, _> = headers
                        .inner()
                        .iter()
                        .filter(|(k, _)| {
                            let name = k.as_str();
                            name == header::ORIGINAL_EXCHANGE
                                || name == header::ORIGINAL_ROUTING_KEY
                                || !name.starts_with("x-")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    properties = properties.with_headers(kept.into());
                }
                publish_confirmed(
                    &channel,
                    "",
                    &queues.work(),
                    &message.delivery.data,
                    properties,
                )
                .await?;
                message
                    .delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await?;
                moved += 1;
            }
            println!(
                "replayed {moved} dead letter(s) of `{function}` into `{}`",
                queues.work()
            );
        }
        Command::WebhookSink(_) => unreachable!("handled before connecting"),
    }
    channel.close(200, "done".into()).await.ok();
    tokio::time::timeout(Duration::from_secs(2), connection.close(200, "done".into()))
        .await
        .ok();
    Ok(())
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(160).collect();
    if text.chars().count() > 160 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_builds_valid_events() {
        let cli = Cli::parse_from([
            "safecity",
            "publish",
            "--type",
            "accident",
            "--count",
            "3",
            "--incident",
            "inc-7",
        ]);
        let Command::Publish(args) = cli.command else {
            panic!("publish expected");
        };
        let events = args.events();
        assert_eq!(events.len(), 3);
        for event in events {
            assert_eq!(event.event_type, EventType::Accident);
            assert_eq!(event.incident_id, "inc-7");
            let cloud = event.into_cloud_event();
            let decoded = safecity_runtime::CloudEvent::<SafetyEvent>::from_json(&cloud.to_json())
                .expect("the runtime accepts what the CLI sends");
            assert_eq!(decoded, cloud);
        }
    }

    #[test]
    fn unknown_types_are_refused_by_the_parser() {
        let parsed = Cli::try_parse_from(["safecity", "publish", "--type", "parade"]);
        assert!(parsed.is_err());
    }

    #[test]
    fn previews_are_short() {
        assert_eq!(preview(b"abc"), "abc");
        assert_eq!(preview(&[b'x'; 500]).chars().count(), 161);
    }
}
