//! What an operator reads: the scaler binary's log says each thing once,
//! with no error lines for events that are not errors of the scaler.
//! Real process, real broker, real gRPC client.

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use support::*;

/// A free loopback port (bound, then released for the child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs the scaler binary with `vars`, lets `during` act on its gRPC port,
/// stops it with SIGTERM and returns (exit success, stderr).
async fn run_scaler<F: Future<Output = ()>>(
    vars: &[(&str, String)],
    during: impl FnOnce(u16) -> F,
) -> (bool, String) {
    let grpc_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_safecity-scaler"))
        .env(
            "SAFECITY_SCALER_GRPC_ADDR",
            format!("127.0.0.1:{grpc_port}"),
        )
        .env("SAFECITY_SCALER_METRICS_ADDR", "127.0.0.1:0")
        .env("SAFECITY_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the scaler starts");
    tokio::time::sleep(Duration::from_millis(700)).await;
    during(grpc_port).await;
    let pid = child.id().expect("running").to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    // Read stderr while waiting: the child must never block on a full pipe.
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().expect("stderr");
    let (read, status) = tokio::join!(pipe.read_to_string(&mut stderr), async {
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await
    });
    read.expect("read stderr");
    let status = status
        .unwrap_or_else(|_| panic!("the scaler did not stop within 10 s of SIGTERM:\n{stderr}"))
        .expect("exits");
    (status.success(), stderr)
}

fn lines_with<'a>(log: &'a str, word: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(word)).collect()
}

#[tokio::test]
async fn a_missing_vhost_is_one_warning_per_attempt_and_a_clean_exit() {
    let vhost = TestVhost::new("logs-vhost");
    let url = vhost.url.replace(&vhost.name, "no-such-vhost");
    let (ok, log) = run_scaler(&[("SAFECITY_AMQP_URL", url)], |_| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    assert!(ok, "exit 0 on SIGTERM:\n{log}");
    assert!(
        lines_with(&log, "ERROR").is_empty(),
        "no ERROR lines:\n{log}"
    );
    assert!(
        lines_with(&log, "lapin").is_empty(),
        "lapin's own lines stay quiet:\n{log}"
    );
    let warnings = lines_with(&log, "WARN");
    assert!(!warnings.is_empty(), "{log}");
    assert!(
        warnings.iter().all(|l| l.contains("broker unreachable")),
        "one warning per attempt, each saying why:\n{log}"
    );
}

#[tokio::test]
async fn rejected_metadata_is_warned_once_and_a_clean_shutdown_logs_no_error() {
    let vhost = TestVhost::new("logs-meta");
    let (ok, log) = run_scaler(
        &[("SAFECITY_AMQP_URL", vhost.url.clone())],
        |port| async move {
            let mut client =
                safecity_scaler::pb::external_scaler_client::ExternalScalerClient::connect(
                    format!("http://127.0.0.1:{port}"),
                )
                .await
                .expect("gRPC connects");
            let bad = scaled_object("fire-alert", &[("eventType", "flood")]);
            for _ in 0..5 {
                let status = client.is_active(bad.clone()).await.unwrap_err();
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
            }
            // Another ScaledObject with bad metadata is warned about once too.
            let other = scaled_object("gun-alert", &[("eventType", "parade")]);
            for _ in 0..3 {
                client.is_active(other.clone()).await.unwrap_err();
            }
        },
    )
    .await;
    assert!(ok, "exit 0 on SIGTERM:\n{log}");
    assert_eq!(
        lines_with(&log, "invalid trigger metadata").len(),
        2,
        "one warning per ScaledObject and metadata, not per poll:\n{log}"
    );
    assert!(
        lines_with(&log, "ERROR").is_empty(),
        "no ERROR lines:\n{log}"
    );
}
