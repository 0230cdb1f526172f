//! A function for the cold-start benchmarks and the scale-to-zero tests: its
//! name and event type come from the environment (`PROBE_NAME`,
//! `PROBE_EVENT_TYPE`), so one binary plays any number of functions; each
//! event is handled after `PROBE_HANDLE_MS` (default 0), then acked. With
//! `PROBE_RECORD=<file>` each handled event's id is appended to the file
//! (before the ack: at least once) for the fault runs to reconcile.

use std::time::Duration;

use safecity_runtime::{CloudEvent, Context, EventType, Function, HandlerError, Subscription};

struct Probe {
    name: String,
    event_type: EventType,
    work: Duration,
    record: Option<std::sync::Mutex<std::fs::File>>,
}

impl Function for Probe {
    type Input = CloudEvent<serde_json::Value>;

    fn name(&self) -> &str {
        &self.name
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![self.event_type.into()]
    }

    async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        tokio::time::sleep(self.work).await;
        if let Some(record) = &self.record {
            use std::io::Write as _;
            // One write(2) per line: replicas append to the same file.
            let line = format!("{}\n", event.attributes.id);
            let mut file = record.lock().unwrap_or_else(|p| p.into_inner());
            file.write_all(line.as_bytes())?;
            file.sync_data()?;
        }
        tracing::info!(id = %event.attributes.id, "handled");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let probe = Probe {
        name: env("PROBE_NAME", "probe"),
        event_type: env("PROBE_EVENT_TYPE", "fire")
            .parse()
            .map_err(|e| anyhow::anyhow!("PROBE_EVENT_TYPE: {e}"))?,
        work: Duration::from_millis(env("PROBE_HANDLE_MS", "0").parse()?),
        record: match std::env::var("PROBE_RECORD") {
            Ok(path) => Some(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            Err(_) => None,
        },
    };
    safecity_runtime::run(probe).await?;
    Ok(())
}
