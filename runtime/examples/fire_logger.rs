//! The smallest useful safecity function: log every fire and accident, and
//! dead-letter events without a detection (they cannot be acted on).
//!
//! Run it against a local broker: `cargo run -p safecity-runtime --example fire_logger`

use safecity_runtime::{
    CloudEvent, Context, EventType, Function, HandlerError, SafetyEvent, Subscription,
};

struct FireLogger;

impl Function for FireLogger {
    type Input = CloudEvent<SafetyEvent>;

    fn name(&self) -> &str {
        "fire-logger"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Fire.into(), EventType::Accident.into()]
    }

    async fn handle(&self, event: Self::Input, ctx: Context) -> Result<(), HandlerError> {
        let Some(top) = event.data.detections.first() else {
            return Err(HandlerError::dead_letter("event has no detections"));
        };
        tracing::info!(
            camera = %event.data.camera.id,
            incident = %event.data.incident_id,
            class = %top.class,
            confidence = %top.confidence,
            attempt = ctx.attempt(),
            "{} seen", event.data.event_type
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), safecity_runtime::RunError> {
    safecity_runtime::run(FireLogger).await
}
