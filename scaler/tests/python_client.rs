//! The independent peer: a Python `grpcio` client, whose stubs are generated
//! from `proto/externalscaler.proto` during the run, plays KEDA's sequence —
//! in plain text and over TLS (ALPN `h2`, client certificate).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use safecity_events::EventType;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, timeout};

struct KedaPeer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl KedaPeer {
    fn spawn(addr: &str, name: &str, metadata: &str, tls: Option<[&Path; 3]>) -> Self {
        let mut command = Command::new(python());
        command
            .arg(keda_client_script())
            .args(["--addr", addr, "--name", name, "--metadata", metadata])
            .args(["--stream-timeout", "15"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some([ca, cert, key]) = tls {
            command
                .arg("--ca")
                .arg(ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        let mut child = command.spawn().expect("python runs");
        let stdout = child.stdout.take().expect("piped stdout");
        KedaPeer {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next observation, which must be `step`.
    async fn expect(&mut self, step: &str) -> Value {
        let line = timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no `{step}` from the Python client within 60 s"))
            .expect("readable stdout")
            .unwrap_or_else(|| panic!("the Python client exited before `{step}`"));
        let record: Value = serde_json::from_str(&line).expect("one JSON record per line");
        assert_eq!(record["step"], step, "{record}");
        record
    }

    async fn finish(mut self) {
        let status = timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the Python client exits")
            .expect("waited");
        assert!(status.success(), "python client failed: {status}");
    }
}

#[tokio::test]
async fn python_grpcio_client_plays_keda_and_is_pushed_active() {
    let vhost = TestVhost::new("python");
    let amqp = vhost.amqp().await;
    amqp.declare_function("gun-alert", EventType::Gun).await;
    let scaler = vhost.scaler(&[]).await;
    let addr = scaler.grpc_addr.to_string();

    let mut peer = KedaPeer::spawn(
        &addr,
        "gun-alert",
        r#"{"eventType":"gun","targetPendingPerReplica":"4"}"#,
        None,
    );
    let spec = peer.expect("GetMetricSpec").await;
    assert_eq!(spec["code"], "OK", "{spec}");
    assert_eq!(spec["specs"][0]["target"], 4.0);
    assert_eq!(spec["specs"][0]["target_int"], 4);
    let metrics = peer.expect("GetMetrics").await;
    assert_eq!(metrics["code"], "OK", "{metrics}");
    assert_eq!(metrics["values"][0]["value"], 0.0);
    assert_eq!(metrics["values"][0]["name"], spec["specs"][0]["name"]);
    let active = peer.expect("IsActive").await;
    assert_eq!(active["result"], false, "{active}");
    peer.expect("StreamOpen").await;
    vhost.wait_for_tap("gun").await;
    let published = Instant::now();
    amqp.publish(EventType::Gun).await;
    let pushed = peer.expect("StreamIsActive").await;
    let latency = published.elapsed();
    assert_eq!(pushed["result"], true, "{pushed}");
    assert!(
        latency < Duration::from_secs(1),
        "push reached Python after {latency:?}"
    );
    peer.finish().await;

    // Invalid metadata: InvalidArgument naming the key, to an independent client too.
    let mut peer = KedaPeer::spawn(
        &addr,
        "gun-alert",
        r#"{"eventType":"gun","activationPending":"many"}"#,
        None,
    );
    let refused = peer.expect("GetMetricSpec").await;
    assert_eq!(refused["code"], "INVALID_ARGUMENT", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("activationPending"),
        "{refused}"
    );
    peer.finish().await;
    scaler.shutdown().await.expect("clean shutdown");
}

struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    /// A CA, a server certificate for localhost/127.0.0.1 and a client certificate.
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("safecity-scaler-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "safecity test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let write =
            |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write pem");
        write("ca.pem", ca.pem());
        for (name, sans) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
            ("client", vec!["keda-operator".to_owned()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(sans).expect("params");
            params
                .distinguished_name
                .push(DnType::CommonName, format!("safecity test {name}"));
            let cert = params.signed_by(&key, &ca).expect("signed");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn python_client_over_tls_with_alpn_h2_and_client_certificate() {
    let pki = Pki::new();
    let vhost = TestVhost::new("tls");
    let amqp = vhost.amqp().await;
    amqp.declare_function("fire-alert", EventType::Fire).await;
    amqp.publish(EventType::Fire).await;
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let scaler = vhost
        .scaler(&[
            ("SAFECITY_SCALER_TLS_CERT_FILE", cert.to_str().unwrap()),
            ("SAFECITY_SCALER_TLS_KEY_FILE", key.to_str().unwrap()),
            ("SAFECITY_SCALER_TLS_CLIENT_CA_FILE", ca.to_str().unwrap()),
        ])
        .await;
    let addr = format!("localhost:{}", scaler.grpc_addr.port());
    let metadata = r#"{"eventType":"fire","enableTLS":"true"}"#;

    // grpc-core refuses a TLS peer that does not select ALPN h2: success proves it.
    let client_cert = pki.path("client.pem");
    let client_key = pki.path("client.key");
    let mut peer = KedaPeer::spawn(
        &addr,
        "fire-alert",
        metadata,
        Some([&ca, &client_cert, &client_key]),
    );
    let spec = peer.expect("GetMetricSpec").await;
    assert_eq!(spec["code"], "OK", "{spec}");
    let metrics = peer.expect("GetMetrics").await;
    assert_eq!(metrics["values"][0]["value"], 1.0, "{metrics}");
    let active = peer.expect("IsActive").await;
    assert_eq!(active["result"], true, "{active}");
    peer.expect("StreamOpen").await;
    let pushed = peer.expect("StreamIsActive").await;
    assert_eq!(
        pushed["result"], true,
        "pending work is pushed at stream open: {pushed}"
    );
    peer.finish().await;

    // Without a client certificate the handshake is refused.
    let mut command = Command::new(python());
    let output = command
        .arg(keda_client_script())
        .args([
            "--addr",
            &addr,
            "--name",
            "fire-alert",
            "--metadata",
            metadata,
        ])
        .arg("--ca")
        .arg(&ca)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first: Value =
        serde_json::from_str(stdout.lines().next().expect("one record")).expect("json");
    assert_eq!(first["step"], "GetMetricSpec");
    assert_eq!(
        first["code"], "UNAVAILABLE",
        "no client certificate, no service: {first}"
    );
    scaler.shutdown().await.expect("clean shutdown");
}
