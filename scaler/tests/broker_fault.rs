//! Broker outage: `rabbitmqctl stop_app` stops the SHARED local broker, so this
//! test only runs with `SAFECITY_BROKER_FAULT_TESTS=1`, in a serial step of its
//! own (see scaler/README.md). A drop guard always runs `start_app` again.

mod support;

use std::time::Duration;

use safecity_events::EventType;
use support::*;

/// Starts the broker application again however the test ends.
struct BrokerRestart;

impl Drop for BrokerRestart {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .output();
    }
}

#[tokio::test]
#[ignore = "stops the shared broker: SAFECITY_BROKER_FAULT_TESTS=1 cargo test -p safecity-scaler --test broker_fault -- --ignored"]
async fn broker_outage_answers_unavailable_and_recovers_without_restart() {
    assert_eq!(
        std::env::var("SAFECITY_BROKER_FAULT_TESTS").as_deref(),
        Ok("1"),
        "this test stops the shared broker for every test on the machine: \
         set SAFECITY_BROKER_FAULT_TESTS=1 and run it alone, in a serial step"
    );
    let vhost = TestVhost::new("fault");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    amqp.publish(EventType::Fire).await;
    amqp.publish(EventType::Fire).await;
    drop(amqp);
    let scaler = vhost.scaler(&[]).await;
    let mut client = grpc(&scaler).await;
    let object = scaled_object("fire-alert", &[("eventType", "fire")]);
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(10),
        "work seen",
        |v| matches!(v, Ok((p, true)) if *p == 2.0),
    )
    .await
    .expect("served");

    let restart = BrokerRestart;
    rabbitmqctl(&["stop_app"]);
    let never_idle = |view: &Result<(f64, bool), tonic::Status>| {
        assert!(
            !matches!(view, Ok((_, false))),
            "reported inactive because of a broker error: {view:?}"
        );
    };
    let down = poll_until(
        &mut client,
        &object,
        Duration::from_secs(15),
        "Unavailable while the broker is down",
        |v| {
            never_idle(v);
            v.is_err()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
    assert!(
        !down.message().contains("guest:guest"),
        "no credentials in errors: {down:?}"
    );

    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup", "--timeout", "60"]);
    drop(restart);
    poll_until(
        &mut client,
        &object,
        Duration::from_secs(60),
        "correct values after the broker returns",
        |v| {
            never_idle(v);
            matches!(v, Ok((p, true)) if *p == 2.0)
        },
    )
    .await
    .expect("served");
    let page = metrics_page(&scaler).await;
    assert!(
        page.contains("safecity_scaler_broker_connections_opened_total 2\n"),
        "reconnected once, on its own: {page}"
    );
    scaler.shutdown().await.expect("clean shutdown");
}
