//! Confirmed, mandatory publishing: a publish succeeds only once the broker has
//! routed and stored the message.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::event::{CloudEvent, EventData};
use crate::frame::Frame;
use crate::topology::{EVENTS_EXCHANGE, FRAMES_EXCHANGE};

/// Why a publish did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No queue is bound for the routing key: the broker returned the message.
    #[error(
        "unroutable: no queue is bound to exchange `{exchange}` with routing key `{routing_key}`"
    )]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The broker refused the message (e.g. a full queue with `reject-publish`).
    #[error("the broker refused the message for `{exchange}`/`{routing_key}`")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The channel or connection failed.
    #[error("broker error while publishing: {0}")]
    Broker(#[from] lapin::Error),
}

/// A publishing channel in confirm mode.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel.id())
            .finish()
    }
}

impl Publisher {
    /// Opens a channel on `connection` and switches it to confirm mode.
    pub async fn open(connection: &Connection) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    /// The underlying channel (for declarations).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes with `mandatory` set and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let confirm = self
            .channel
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
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            }),
            Confirmation::Nack(_) => Err(PublishError::Nacked {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            }),
        }
    }

    /// Publishes a CloudEvent to the events exchange under its type, with
    /// its [`CloudEvent::amqp_properties`].
    pub async fn publish_event<T: EventData>(
        &self,
        event: &CloudEvent<T>,
    ) -> Result<(), PublishError> {
        self.publish(
            EVENTS_EXCHANGE,
            event.attributes.event_type.as_str(),
            &event.to_json(),
            event.amqp_properties(),
        )
        .await
    }

    /// Publishes a camera frame to the frames exchange under its region.
    pub async fn publish_frame(&self, frame: &Frame) -> Result<(), PublishError> {
        self.publish(
            FRAMES_EXCHANGE,
            &frame.camera.region,
            &frame.jpeg,
            frame.properties(),
        )
        .await
    }
}
