//! The monitoring of `manifests/` proven on a real run (slow: behind
//! `SAFECITY_SLOW_TESTS=1`): a live `safecity up` (debug binaries, its own
//! virtual host and discovery file) runs the city while Debian's Prometheus
//! scrapes every component and replica through the city's HTTP service
//! discovery; `manifests/tests/check_queries.py` then checks that every
//! recording rule, alert and Grafana panel query parses and returns series
//! for metrics the code really exports. Then Ctrl-C (SIGINT) stops the city,
//! which must exit 0 and leave no process of its vhost behind.
//!
//! Needs `prometheus` (Debian) and `.venv` (scripts/check-monitoring.sh
//! installs both; scripts/test.sh runs it first).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safecity_e2e::{build_binaries, root};

fn processes_naming(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&environ),
                String::from_utf8_lossy(&cmdline)
            );
            text.contains(needle)
                .then(|| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

#[test]
fn every_dashboard_and_alert_query_returns_data_from_a_live_local_city() {
    if std::env::var("SAFECITY_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set SAFECITY_SLOW_TESTS=1 (a live city scraped by Prometheus for 80 s)"
        );
        return;
    }
    let python = root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "run scripts/check-monitoring.sh first (.venv)"
    );
    let bin = build_binaries();
    let work = std::env::temp_dir().join(format!("safecity-e2e-monitoring-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work folder");
    let city_file = work.join("city.json");
    let vhost = format!("safecity-e2e-monitoring-{}", std::process::id());
    let mut city = Command::new(bin.join("safecity"))
        .current_dir(root())
        .args(["up", "--bin-dir"])
        .arg(&bin)
        .args(["--vhost", &vhost])
        .env("SAFECITY_CITY_FILE", &city_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("safecity up starts");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !city_file.is_file() {
        assert!(Instant::now() < deadline, "the city did not start");
        assert!(
            city.try_wait().expect("wait").is_none(),
            "safecity up exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let checked = Command::new(&python)
        .current_dir(root())
        .arg("manifests/tests/check_queries.py")
        .arg("--city")
        .arg(&city_file)
        .args(["--wait", "80", "--vhost", &vhost])
        .output()
        .expect("check_queries.py runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(city.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let exit = city.wait().expect("safecity up exits");
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "queries without data or not parsing:\n{report}\n{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(report.contains("parse"), "the checker reported: {report}");
    assert!(exit.success(), "Ctrl-C stops the city cleanly ({exit})");
    let left = processes_naming(&vhost);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&work);
}
