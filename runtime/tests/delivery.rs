//! Delivery semantics against a real RabbitMQ: success, retries, dead-letters,
//! poison input, concurrency and emitting.

mod support;

use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use safecity_runtime::events::dead_letter::header;
use safecity_runtime::events::event::CLOUDEVENTS_JSON;
use safecity_runtime::events::headers::{get_i64, get_str};
use safecity_runtime::events::topology::{EVENTS_EXCHANGE, FunctionQueues};
use safecity_runtime::{CloudEvent, RunningFunction};
use serde_json::{Value, json};
use support::{Journal, Probe, TestVhost, eventually, http_get, metric};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

async fn start_probe(
    vhost: &TestVhost,
    name: &str,
    overrides: &[(&str, &str)],
) -> (RunningFunction, Journal, CancellationToken) {
    let journal = Journal::default();
    let stop = CancellationToken::new();
    let running = safecity_runtime::start(
        Probe {
            name: name.to_owned(),
            journal: journal.clone(),
        },
        vhost.config(overrides),
        stop.clone(),
    )
    .await
    .expect("the probe starts");
    eventually(WAIT, "the probe consumes", || running.is_ready()).await;
    (running, journal, stop)
}

async fn stop(running: RunningFunction, stop: CancellationToken) {
    stop.cancel();
    tokio::time::timeout(WAIT, running.join())
        .await
        .expect("drains in time")
        .expect("stops cleanly");
}

#[tokio::test]
async fn every_event_is_handled_once_and_acked() {
    let vhost = TestVhost::new("happy");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    for i in 0..25 {
        support::publish_probe(&client, &format!("e{i}"), json!({})).await;
    }
    eventually(WAIT, "25 completions", || journal.total_completed() == 25).await;
    for i in 0..25 {
        assert_eq!(journal.completed(&format!("e{i}")), 1, "e{i}");
    }
    let queue = FunctionQueues::new("probe").expect("name").work();
    eventually(WAIT, "metrics count 25 successes", || {
        metric(
            &running.metrics_text(),
            "safecity_events_succeeded_total",
            "event_type=\"fire\"",
        ) == Some(25.0)
    })
    .await;
    let addr = running.http_addr().expect("http enabled");
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            "safecity_events_received_total",
            "event_type=\"fire\""
        ),
        Some(25.0)
    );
    assert_eq!(
        metric(&text, "safecity_handle_duration_seconds_count", "fire"),
        Some(25.0)
    );
    assert_eq!(
        metric(&text, "safecity_event_age_seconds_count", "fire"),
        Some(25.0)
    );
    assert_eq!(
        metric(&text, "safecity_events_in_flight", "fire"),
        Some(0.0)
    );
    stop(running, token).await;
    assert_eq!(
        client
            .ready_count_within(&queue, 0, Duration::from_secs(10))
            .await,
        0,
        "everything was acked"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "HTTP port closed after stop"
    );
}

#[tokio::test]
async fn failures_are_retried_with_backoff_without_blocking_others() {
    let vhost = TestVhost::new("retry");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    support::publish_probe(&client, "flaky", json!({"fail_first": 2})).await;
    support::publish_probe(&client, "after", json!({})).await;
    eventually(WAIT, "flaky succeeds", || journal.completed("flaky") == 1).await;

    let calls = journal.calls("flaky");
    let attempts: Vec<u32> = calls.iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    // Configured delays are 200 ms then 400 ms.
    let first_gap = calls[1].at - calls[0].at;
    let second_gap = calls[2].at - calls[1].at;
    assert!(first_gap >= Duration::from_millis(200), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(400), "{second_gap:?}");
    assert!(
        second_gap > first_gap,
        "backoff grows: {first_gap:?} then {second_gap:?}"
    );
    // The event published after the failing one did not wait for its retries.
    let after = journal.calls("after");
    assert_eq!(after.len(), 1);
    assert!(
        after[0].at < calls[1].at,
        "a delayed retry held back the queue"
    );

    let text = running.metrics_text();
    assert_eq!(
        metric(&text, "safecity_events_retried_total", "fire"),
        Some(2.0)
    );
    stop(running, token).await;
}

#[tokio::test]
async fn a_handler_delay_request_is_honoured() {
    let vhost = TestVhost::new("retryafter");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    support::publish_probe(
        &client,
        "slow",
        json!({"fail_first": 1, "retry_after_ms": 1100}),
    )
    .await;
    eventually(WAIT, "slow succeeds", || journal.completed("slow") == 1).await;
    let calls = journal.calls("slow");
    let gap = calls[1].at - calls[0].at;
    // 1.1 s is longer than the 200 ms step, and rounds up to 2 s.
    assert!(gap >= Duration::from_secs(2), "{gap:?}");
    stop(running, token).await;
}

#[tokio::test]
async fn deferred_inputs_come_back_later_without_spending_attempts() {
    // Retries are exhausted after 3 attempts; deferring 4 times must not dead-letter.
    let vhost = TestVhost::new("defer");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    support::publish_probe(&client, "patient", json!({"defer_times": 4})).await;
    eventually(WAIT, "patient done", || journal.completed("patient") == 1).await;
    let calls = journal.calls("patient");
    assert_eq!(calls.len(), 5);
    assert!(calls.iter().all(|c| c.attempt == 1), "{calls:?}");
    for pair in calls.windows(2) {
        // 300 ms rounds up to the 1 s minimum of a deferral.
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1));
    }
    let text = running.metrics_text();
    assert_eq!(
        metric(&text, "safecity_events_deferred_total", "fire"),
        Some(4.0)
    );
    assert_eq!(
        metric(
            &text,
            "safecity_events_dead_lettered_total",
            "event_type=\"fire\",reason=\"exhausted\""
        ),
        Some(0.0)
    );
    stop(running, token).await;
}

#[tokio::test]
async fn rejected_and_exhausted_inputs_go_to_the_dead_letter_queue_with_reasons() {
    let vhost = TestVhost::new("deadletter");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    let dead = FunctionQueues::new("probe").expect("name").dead_letter();

    let rejected = support::publish_probe(&client, "rejected", json!({"reject": true})).await;
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("rejected input is dead-lettered");
    let headers = message.delivery.properties.headers().as_ref();
    assert_eq!(
        get_str(headers, header::DEAD_LETTER_REASON),
        Some("scripted rejection: camera unknown")
    );
    assert_eq!(
        get_str(headers, header::DEAD_LETTER_CAUSE),
        Some("rejected")
    );
    assert_eq!(get_str(headers, header::FUNCTION), Some("probe"));
    assert_eq!(get_i64(headers, header::FAILED_ATTEMPTS), Some(1));
    assert_eq!(get_str(headers, header::ORIGINAL_ROUTING_KEY), Some("fire"));
    assert_eq!(
        CloudEvent::<Value>::from_json(&message.delivery.data).expect("body kept intact"),
        rejected
    );
    assert_eq!(
        journal.calls("rejected").len(),
        1,
        "a rejection is not retried"
    );

    support::publish_probe(&client, "hopeless", json!({"fail_first": 99})).await;
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("exhausted input is dead-lettered");
    let headers = message.delivery.properties.headers().as_ref();
    assert_eq!(
        get_str(headers, header::DEAD_LETTER_CAUSE),
        Some("exhausted")
    );
    assert_eq!(get_i64(headers, header::FAILED_ATTEMPTS), Some(3));
    let reason = get_str(headers, header::DEAD_LETTER_REASON).expect("reason");
    assert!(
        reason.contains("gave up after 3 attempts") && reason.contains("scripted failure 3"),
        "{reason}"
    );
    let first = get_str(headers, header::FIRST_FAILURE_AT).expect("first failure time");
    let last = get_str(headers, header::LAST_FAILURE_AT).expect("last failure time");
    assert!(first < last, "{first} < {last}");
    assert_eq!(journal.calls("hopeless").len(), 3);

    // The counter moves once the input is acked, just after the dead letter is
    // confirmed (when the test can already read it): poll for the exact counts.
    let dead_lettered = |reason: &str| {
        metric(
            &running.metrics_text(),
            "safecity_events_dead_lettered_total",
            &format!("event_type=\"fire\",reason=\"{reason}\""),
        )
    };
    eventually(
        WAIT,
        "one rejected and one exhausted dead letter counted",
        || dead_lettered("rejected") == Some(1.0) && dead_lettered("exhausted") == Some(1.0),
    )
    .await;
    stop(running, token).await;
}

#[tokio::test]
async fn poison_input_is_dead_lettered_at_once_and_the_process_lives_on() {
    let vhost = TestVhost::new("poison");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    let dead = FunctionQueues::new("probe").expect("name").dead_letter();

    client
        .publish_raw("fire", b"\xff\xd8 not json", Some(CLOUDEVENTS_JSON))
        .await;
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("malformed body dead-lettered");
    let headers = message.delivery.properties.headers().as_ref();
    assert_eq!(get_str(headers, header::DEAD_LETTER_CAUSE), Some("decode"));
    let reason = get_str(headers, header::DEAD_LETTER_REASON).expect("reason");
    assert!(
        reason.starts_with("body is not a JSON CloudEvent"),
        "{reason}"
    );
    assert_eq!(message.delivery.data, b"\xff\xd8 not json");

    // Routed as `fire` but typed as something the city does not know.
    let mut unknown: Value = serde_json::from_slice(
        &CloudEvent::new("/cameras/x", safecity_runtime::EventType::Fire, json!({})).to_json(),
    )
    .expect("json");
    unknown["type"] = json!("parade");
    client
        .publish_raw(
            "fire",
            &serde_json::to_vec(&unknown).expect("json"),
            Some(CLOUDEVENTS_JSON),
        )
        .await;
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("unknown type dead-lettered");
    let reason = get_str(
        message.delivery.properties.headers().as_ref(),
        header::DEAD_LETTER_REASON,
    )
    .expect("reason")
    .to_owned();
    assert!(reason.contains("`type` is `parade`"), "{reason}");

    let mut missing = unknown.clone();
    missing["type"] = json!("fire");
    missing.as_object_mut().expect("object").remove("source");
    client
        .publish_raw(
            "fire",
            &serde_json::to_vec(&missing).expect("json"),
            Some(CLOUDEVENTS_JSON),
        )
        .await;
    let message = client
        .wait_get(&dead, WAIT)
        .await
        .expect("missing source dead-lettered");
    let reason = get_str(
        message.delivery.properties.headers().as_ref(),
        header::DEAD_LETTER_REASON,
    )
    .expect("reason")
    .to_owned();
    assert_eq!(reason, "missing required attribute `source`");

    // The handler never saw the poison, and the next good event is handled.
    support::publish_probe(&client, "good", json!({})).await;
    eventually(WAIT, "good event handled", || {
        journal.completed("good") == 1
    })
    .await;
    assert_eq!(journal.with(|j| j.calls.len()), 1);
    let text = running.metrics_text();
    assert_eq!(
        metric(
            &text,
            "safecity_events_dead_lettered_total",
            "event_type=\"invalid\",reason=\"decode\""
        ),
        Some(3.0)
    );
    stop(running, token).await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt() {
    let vhost = TestVhost::new("panic");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;
    support::publish_probe(&client, "crashy", json!({"panic_first": 1})).await;
    eventually(WAIT, "crashy succeeds on attempt 2", || {
        journal.completed("crashy") == 1
    })
    .await;
    let attempts: Vec<u32> = journal.calls("crashy").iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, vec![1, 2]);
    assert!(running.is_ready(), "still consuming after the panic");
    stop(running, token).await;
}

#[tokio::test]
async fn concurrency_never_exceeds_the_limit() {
    let vhost = TestVhost::new("concurrency");
    let (running, journal, token) =
        start_probe(&vhost, "probe", &[("SAFECITY_CONCURRENCY", "3")]).await;
    let client = vhost.client().await;
    for i in 0..30 {
        support::publish_probe(&client, &format!("c{i}"), json!({"sleep_ms": 40})).await;
    }
    eventually(WAIT, "30 completions", || journal.total_completed() == 30).await;
    let max = journal.with(|j| j.max_running);
    assert_eq!(max, 3, "the limit is reached and never exceeded");
    stop(running, token).await;
}

#[tokio::test]
async fn emit_publishes_confirmed_and_unroutable_is_an_error() {
    let vhost = TestVhost::new("emit");
    let (running, journal, token) = start_probe(&vhost, "probe", &[]).await;
    let client = vhost.client().await;

    // Someone listens to `gun`; nobody listens to `knife`.
    let listener = "listener.gun";
    client
        .channel
        .queue_declare(
            listener.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare listener");
    client
        .channel
        .queue_bind(
            listener.into(),
            EVENTS_EXCHANGE.into(),
            "gun".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind listener");
    let mut emitted = client.collect(listener).await;

    let incoming = support::publish_probe(&client, "emitter", json!({"emit": "gun"})).await;
    let body = tokio::time::timeout(WAIT, emitted.recv())
        .await
        .expect("emitted in time")
        .expect("a body");
    let event = CloudEvent::<Value>::from_json(&body).expect("a valid CloudEvent");
    assert_eq!(event.data, json!({"from": "emitter"}));
    let trace = event
        .attributes
        .traceparent
        .expect("traceparent propagated");
    assert_eq!(
        Some(trace.trace_id),
        journal.with(|j| j.trace_ids.get("emitter").copied())
    );
    assert_ne!(
        incoming.attributes.traceparent,
        Some(trace),
        "a new span id"
    );

    support::publish_probe(&client, "lonely", json!({"emit": "knife"})).await;
    eventually(WAIT, "lonely handled", || journal.completed("lonely") == 1).await;
    let errors = journal.with(|j| j.emit_errors.clone());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("unroutable") && errors[0].contains("knife"),
        "{}",
        errors[0]
    );
    stop(running, token).await;
}
