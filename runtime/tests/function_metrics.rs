//! A function's own metrics on the runtime's `/metrics`, end to end: a real
//! RabbitMQ delivers the events, a real HTTP GET reads the counter.

mod support;

use std::time::Duration;

use safecity_runtime::prometheus_client::encoding::EncodeLabelSet;
use safecity_runtime::prometheus_client::metrics::counter::Counter;
use safecity_runtime::prometheus_client::metrics::family::Family;
use safecity_runtime::prometheus_client::registry::Registry;
use safecity_runtime::{CloudEvent, Context, EventType, Function, HandlerError, Subscription};
use serde_json::{Value, json};
use support::{TestVhost, eventually, http_get, metric};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CameraLabels {
    camera: String,
}

/// Counts the fire events it handles, overall and per camera.
#[derive(Default)]
struct Counting {
    fires: Counter,
    by_camera: Family<CameraLabels, Counter>,
}

impl Function for Counting {
    type Input = CloudEvent<Value>;

    fn name(&self) -> &str {
        "counting"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Fire.into()]
    }

    async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        self.fires.inc();
        let camera = event.data["camera"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        self.by_camera.get_or_create(&CameraLabels { camera }).inc();
        Ok(())
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "safecity_counting_fires",
            "Fire events the test function handled",
            self.fires.clone(),
        );
        registry.register(
            "safecity_counting_fires_by_camera",
            "Fire events the test function handled, by camera",
            self.by_camera.clone(),
        );
    }
}

/// GETs `/metrics` until `condition` holds on the body; panics after `WAIT`.
async fn scrape_until(
    addr: std::net::SocketAddr,
    what: &str,
    condition: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        if condition(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_function_counter_is_served_on_metrics() {
    let vhost = TestVhost::new("fnmetrics");
    let stop = CancellationToken::new();
    let running = safecity_runtime::start(Counting::default(), vhost.config(&[]), stop.clone())
        .await
        .expect("the function starts");
    eventually(WAIT, "consuming", || running.is_ready()).await;
    let addr = running.http_addr().expect("HTTP on 127.0.0.1:0");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    // Registered before any event: the counter is served at zero.
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&body, "safecity_counting_fires_total", ""),
        Some(0.0),
        "{body}"
    );
    assert!(
        body.contains("# HELP safecity_counting_fires Fire events the test function handled"),
        "{body}"
    );

    let client = vhost.client().await;
    for camera in ["cam-a", "cam-a", "cam-b"] {
        let event = CloudEvent::new("/cameras/test", EventType::Fire, json!({"camera": camera}));
        client.publish_event(&event).await;
    }
    let body = scrape_until(addr, "three fires counted", |body| {
        metric(body, "safecity_counting_fires_total", "") == Some(3.0)
    })
    .await;
    assert_eq!(
        metric(
            &body,
            "safecity_counting_fires_by_camera_total",
            "camera=\"cam-a\""
        ),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        metric(
            &body,
            "safecity_counting_fires_by_camera_total",
            "camera=\"cam-b\""
        ),
        Some(1.0),
        "{body}"
    );
    // The runtime's own series are still there, in the same scrape.
    let body = scrape_until(addr, "three successes counted", |body| {
        metric(
            body,
            "safecity_events_succeeded_total",
            "function=\"counting\",event_type=\"fire\"",
        ) == Some(3.0)
    })
    .await;
    assert_eq!(
        metric(&body, "safecity_counting_fires_total", ""),
        Some(3.0)
    );

    stop.cancel();
    tokio::time::timeout(WAIT, running.join())
        .await
        .expect("drains in time")
        .expect("stops cleanly");
}
