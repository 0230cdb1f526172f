//! Real-broker test helpers for function authors (feature `testkit`).
//!
//! [`TestVhost`] gives a test its own RabbitMQ virtual host on the local broker
//! (created with `rabbitmqctl`, deleted on drop), so integration tests run in
//! parallel without seeing each other's events, and can close their own
//! connections to simulate a broker fault.

use std::collections::HashMap;
use std::process::Command;

use crate::config::RuntimeConfig;

/// Runs `rabbitmqctl` and panics with its output if it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is installed (scripts/ensure-rabbitmq.sh installs RabbitMQ)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throw-away virtual host on the local broker, deleted on drop.
#[derive(Debug)]
pub struct TestVhost {
    /// The vhost's name.
    pub name: String,
    /// An AMQP URL (guest/guest) for it.
    pub url: String,
}

impl TestVhost {
    /// Creates `safecity-test-<test>-<random>` and grants `guest` on it.
    /// `SAFECITY_TEST_AMQP_HOST` overrides the broker (`127.0.0.1:5672`).
    pub fn new(test: &str) -> Self {
        let name = format!(
            "safecity-test-{test}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let host =
            std::env::var("SAFECITY_TEST_AMQP_HOST").unwrap_or_else(|_| "127.0.0.1:5672".into());
        let url = format!("amqp://guest:guest@{host}/{name}");
        TestVhost { name, url }
    }

    /// Closes every client connection of this vhost, as an administrator would.
    pub fn close_connections(&self) {
        rabbitmqctl(&[
            "close_all_connections",
            "-p",
            &self.name,
            "closed by the test",
        ]);
    }

    /// A runtime configuration for this vhost: fast retries (200 ms, 400 ms),
    /// a 5 s shutdown grace, HTTP on an ephemeral loopback port; `overrides`
    /// are environment-style pairs applied on top.
    pub fn config(&self, overrides: &[(&str, &str)]) -> RuntimeConfig {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("SAFECITY_AMQP_URL", self.url.clone()),
            ("SAFECITY_HTTP_ADDR", "127.0.0.1:0".to_owned()),
            ("SAFECITY_RETRY_DELAYS", "200ms,400ms".to_owned()),
            ("SAFECITY_SHUTDOWN_GRACE", "5s".to_owned()),
            ("SAFECITY_RECONNECT_MAX_DELAY", "500ms".to_owned()),
        ]);
        for (k, v) in overrides {
            vars.insert(k, (*v).to_owned());
        }
        RuntimeConfig::from_lookup(|name| vars.get(name).cloned()).expect("valid test config")
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}
