//! Broker plumbing shared by the detector's integration tests.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use safecity_events::EventType;
use safecity_events::topology::EVENTS_EXCHANGE;
use safecity_runtime::testing::TestClient;

/// The test queue that collects one event type.
pub(crate) fn queue_name(event: EventType) -> String {
    format!("test.events.{event}")
}

/// A queue per event type, bound by routing key: proves the routing.
pub(crate) async fn bind_event_queue(client: &TestClient, event: EventType) {
    let queue = queue_name(event);
    client
        .channel
        .queue_declare(
            ShortString::from(queue.as_str()),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    client
        .channel
        .queue_bind(
            ShortString::from(queue.as_str()),
            EVENTS_EXCHANGE.into(),
            event.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
}
