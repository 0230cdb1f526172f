//! Shared helpers of the runtime's black-box tests.
//!
//! Every test gets its own RabbitMQ virtual host on the real local broker, so
//! tests run in parallel without seeing each other's events, and a test can
//! close "its" connections with `rabbitmqctl close_all_connections -p VHOST`.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safecity_runtime::{CloudEvent, Context, EventType, Function, HandlerError, Subscription};
use serde_json::{Value, json};
use tokio::time::Instant;

#[allow(unused_imports)]
pub(crate) use safecity_runtime::testing::{
    TestClient, TestVhost, eventually, http_get, metric, rabbitmqctl,
};

/// Publishes a fire event whose data scripts the probe's behaviour.
pub(crate) async fn publish_probe(
    client: &TestClient,
    key: &str,
    script: Value,
) -> CloudEvent<Value> {
    let mut data = script;
    data["key"] = json!(key);
    let event = CloudEvent::new("/cameras/test", EventType::Fire, data);
    client.publish_event(&event).await;
    event
}

/// One handler invocation as the probe saw it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub attempt: u32,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct JournalState {
    pub calls: HashMap<String, Vec<Call>>,
    pub completed: HashMap<String, u32>,
    pub running: usize,
    pub max_running: usize,
    pub emit_errors: Vec<String>,
    pub trace_ids: HashMap<String, u128>,
}

/// What the probe function did, shared with the test.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal(pub Arc<Mutex<JournalState>>);

impl Journal {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut JournalState) -> R) -> R {
        f(&mut self.0.lock().expect("journal lock"))
    }

    pub(crate) fn completed(&self, key: &str) -> u32 {
        self.with(|j| j.completed.get(key).copied().unwrap_or(0))
    }

    pub(crate) fn total_completed(&self) -> u32 {
        self.with(|j| j.completed.values().sum())
    }

    pub(crate) fn calls(&self, key: &str) -> Vec<Call> {
        self.with(|j| j.calls.get(key).cloned().unwrap_or_default())
    }
}

/// A function whose behaviour each event scripts in its data:
/// `fail_first` (retry that many attempts), `panic_first`, `reject`,
/// `defer_times` (defer that many calls),
/// `sleep_ms`, `emit` (an event type to emit), `retry_after_ms`.
pub(crate) struct Probe {
    pub name: String,
    pub journal: Journal,
}

struct RunningGuard<'a>(&'a Journal);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.with(|j| j.running -= 1);
    }
}

impl Function for Probe {
    type Input = CloudEvent<Value>;

    fn name(&self) -> &str {
        &self.name
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Fire.into()]
    }

    async fn handle(&self, event: Self::Input, ctx: Context) -> Result<(), HandlerError> {
        let key = event.data["key"].as_str().unwrap_or("").to_owned();
        let attempt = ctx.attempt();
        self.journal.with(|j| {
            j.calls.entry(key.clone()).or_default().push(Call {
                attempt,
                at: Instant::now(),
            });
            j.running += 1;
            j.max_running = j.max_running.max(j.running);
            j.trace_ids.insert(key.clone(), ctx.traceparent().trace_id);
        });
        let _guard = RunningGuard(&self.journal);
        let number = |field: &str| event.data[field].as_u64().unwrap_or(0);
        if let Some(ms) = event.data["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if u64::from(attempt) <= number("panic_first") {
            panic!("scripted panic on attempt {attempt}");
        }
        let calls_so_far = self.journal.calls(&key).len() as u64;
        if calls_so_far <= number("defer_times") {
            return Err(HandlerError::defer(
                "scripted rate limit",
                Duration::from_millis(300),
            ));
        }
        if event.data["reject"].as_bool() == Some(true) {
            return Err(HandlerError::dead_letter(
                "scripted rejection: camera unknown",
            ));
        }
        if u64::from(attempt) <= number("fail_first") {
            return match event.data["retry_after_ms"].as_u64() {
                Some(ms) => Err(HandlerError::retry_after(
                    format!("scripted failure {attempt}"),
                    Duration::from_millis(ms),
                )),
                None => Err(HandlerError::retry(format!("scripted failure {attempt}"))),
            };
        }
        if let Some(kind) = event.data["emit"].as_str() {
            let event_type: EventType = kind.parse().expect("scripted type");
            let emitted = CloudEvent::new("/functions/probe", event_type, json!({"from": key}));
            if let Err(error) = ctx.emit(emitted).await {
                self.journal.with(|j| j.emit_errors.push(error.to_string()));
            }
        }
        self.journal
            .with(|j| *j.completed.entry(key.clone()).or_default() += 1);
        Ok(())
    }
}
