//! The end of `safecity up --once`: what happened, in tables, and the checks
//! the local city promises; a failed check makes the run exit non-zero.

use std::fmt::Write as _;

use super::observe::Snapshot;
use super::plan::{BUS_CAMERAS, PEOPLE_CAMERA, REGIONS, STILL_CAMERA};
use super::view::cold_start_line;

/// The functions every run must see go 0 -> 1 -> 0.
pub const SCALED: [&str; 4] = ["detector", "map-pin", "fire-post", "caption"];

/// One check: what it says and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// The claim.
    pub claim: String,
    /// Whether it held.
    pub ok: bool,
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::from("    ");
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// What `safecity up --once --report FILE` writes: the checks and the raw
/// facts they were drawn from, for scripts and the end-to-end tests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
    /// Per camera: frames read and forwarded by its gate.
    pub cameras: std::collections::BTreeMap<String, CameraCounts>,
    /// Frames the detector analysed, by camera (from the frames' ages it
    /// observed: the `frames` event type).
    pub detector_frames: f64,
    /// Events the detector emitted, by event type.
    pub detector_events: std::collections::BTreeMap<String, f64>,
    /// The map's incidents.
    pub incidents: Vec<serde_json::Value>,
    /// The outbox's posts.
    pub posts: Vec<serde_json::Value>,
    /// Per function: activations from zero, replicas at the end.
    pub functions: std::collections::BTreeMap<String, (u64, u32)>,
    /// Dead letters per function.
    pub dead_letters: std::collections::BTreeMap<String, u64>,
}

/// One camera's frames at its gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CameraCounts {
    /// Read from the camera.
    pub read: f64,
    /// Forwarded (motion).
    pub forwarded: f64,
}

/// The facts of `snapshot` with `checks`.
pub fn report(snapshot: &Snapshot, checks: Vec<Check>) -> Report {
    let mut cameras = std::collections::BTreeMap::new();
    for page in snapshot.gates.values() {
        for (camera, read) in page.by_label("safecity_gate_frames_read_total", "camera") {
            let forwarded = page.sum(
                "safecity_gate_frames_forwarded_total",
                &[("camera", camera.as_str())],
            );
            cameras.insert(camera, CameraCounts { read, forwarded });
        }
    }
    let detector = snapshot
        .functions
        .get("detector")
        .cloned()
        .unwrap_or_default();
    Report {
        checks,
        cameras,
        detector_frames: detector.sum(
            "safecity_events_succeeded_total",
            &[("event_type", "frames")],
        ),
        detector_events: detector.by_label("safecity_detector_alerts_total", "event_type"),
        incidents: snapshot.incidents.clone(),
        posts: snapshot.posts.clone(),
        functions: snapshot
            .status
            .values()
            .map(|s| (s.deployment.clone(), (s.activations, s.replicas)))
            .collect(),
        dead_letters: snapshot.dead_letters(),
    }
}

/// The summary text and the checks of `snapshot`.
pub fn summarize(snapshot: &Snapshot, injected: &[String]) -> (String, Vec<Check>) {
    let mut out = String::new();
    let mut checks = Vec::new();
    let mut check = |ok: bool, claim: String| checks.push(Check { claim, ok });

    let _ = writeln!(
        out,
        "== cameras: frames read vs forwarded by the motion gates"
    );
    let mut rows = Vec::new();
    let mut forwarded_by_camera = std::collections::BTreeMap::new();
    for region in REGIONS {
        let Some(page) = snapshot.gates.get(region) else {
            continue;
        };
        let read = page.by_label("safecity_gate_frames_read_total", "camera");
        for (camera, read) in read {
            let wanted = [("camera", camera.as_str())];
            let forwarded = page.sum("safecity_gate_frames_forwarded_total", &wanted);
            forwarded_by_camera.insert(camera.clone(), forwarded);
            rows.push(vec![
                camera.clone(),
                region.to_owned(),
                format!("{read}"),
                format!("{forwarded}"),
                format!(
                    "{}",
                    page.sum("safecity_gate_frames_published_total", &wanted)
                ),
                format!(
                    "{}",
                    page.sum("safecity_gate_frames_dropped_total", &wanted)
                ),
                format!("{:.1} %", 100.0 * forwarded / read.max(1.0)),
            ]);
        }
    }
    table(
        &mut out,
        &[
            "camera",
            "region",
            "read",
            "forwarded",
            "published",
            "dropped",
            "forwarded/read",
        ],
        &rows,
    );

    let detector = snapshot
        .functions
        .get("detector")
        .cloned()
        .unwrap_or_default();
    let alerts = detector.by_label("safecity_detector_alerts_total", "event_type");
    let _ = writeln!(
        out,
        "\n== detector: {} frames analysed, {} dead-lettered; events emitted (one per incident): {}",
        detector.sum(
            "safecity_events_succeeded_total",
            &[("event_type", "frames")]
        ),
        detector.sum("safecity_events_dead_lettered_total", &[]),
        if alerts.is_empty() {
            "none".to_owned()
        } else {
            alerts
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(out, "   injected (COCO cannot see these):");
    for label in injected {
        let _ = writeln!(out, "     - {label}");
    }

    let _ = writeln!(
        out,
        "\n== functions: events by type, activations and cold starts"
    );
    let mut rows = Vec::new();
    for (deployment, page) in &snapshot.functions {
        for (event_type, received) in page.by_label("safecity_events_received_total", "event_type")
        {
            let wanted = [("event_type", event_type.as_str())];
            rows.push(vec![
                deployment.clone(),
                event_type.clone(),
                format!("{received}"),
                format!("{}", page.sum("safecity_events_succeeded_total", &wanted)),
                format!("{}", page.sum("safecity_events_retried_total", &wanted)),
                format!(
                    "{}",
                    page.sum("safecity_events_dead_lettered_total", &wanted)
                ),
            ]);
        }
    }
    table(
        &mut out,
        &[
            "function",
            "event type",
            "received",
            "succeeded",
            "retried",
            "dead-lettered",
        ],
        &rows,
    );
    for status in snapshot.status.values() {
        let _ = writeln!(
            out,
            "    {}: {} activation(s) from zero, {} replica(s) now; cold starts: {}",
            status.deployment,
            status.activations,
            status.replicas,
            if status.cold_starts.is_empty() {
                "none".to_owned()
            } else {
                status
                    .cold_starts
                    .iter()
                    .map(cold_start_line)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        );
    }

    let _ = writeln!(out, "\n== incidents on the map (GET /api/incidents)");
    let rows: Vec<Vec<String>> = snapshot
        .incidents
        .iter()
        .map(|p| {
            vec![
                p["incident_id"].as_str().unwrap_or_default().to_owned(),
                p["event_type"].as_str().unwrap_or_default().to_owned(),
                p["camera_id"].as_str().unwrap_or_default().to_owned(),
                format!("{:.2}", p["confidence"].as_f64().unwrap_or_default()),
            ]
        })
        .collect();
    table(
        &mut out,
        &["incident", "type", "camera", "confidence"],
        &rows,
    );

    let _ = writeln!(out, "\n== posts in the outbox (signatures verified)");
    let rows: Vec<Vec<String>> = snapshot
        .posts
        .iter()
        .map(|p| {
            vec![
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["idempotency_key"].as_str().unwrap_or_default().to_owned(),
                p["text"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(40)
                    .collect(),
            ]
        })
        .collect();
    table(&mut out, &["post", "idempotency key", "first line"], &rows);

    // The checks.
    let forwarded = |camera: &str| forwarded_by_camera.get(camera).copied().unwrap_or(-1.0);
    check(
        forwarded(STILL_CAMERA) == 0.0,
        format!(
            "still camera {STILL_CAMERA} forwarded nothing ({} frames)",
            forwarded(STILL_CAMERA)
        ),
    );
    let pins: Vec<&serde_json::Value> = snapshot
        .incidents
        .iter()
        .filter(|p| p["event_type"] == "accident")
        .collect();
    for camera in BUS_CAMERAS {
        check(
            forwarded(camera) > 0.0,
            format!("{camera}: the passing bus was forwarded"),
        );
        let count = pins.iter().filter(|p| p["camera_id"] == camera).count();
        check(
            count == 1,
            format!("{camera}: exactly one accident incident on the map (found {count})"),
        );
    }
    let accident_alerts = alerts.get("accident").copied().unwrap_or(0.0);
    check(
        pins.len() as f64 == accident_alerts,
        format!(
            "one pin per accident incident the detector emitted ({} pins, {accident_alerts} incidents)",
            pins.len()
        ),
    );
    let people_incidents = snapshot
        .incidents
        .iter()
        .filter(|p| p["camera_id"] == PEOPLE_CAMERA)
        .count();
    check(
        forwarded(PEOPLE_CAMERA) > 0.0 && people_incidents == 0,
        format!(
            "{PEOPLE_CAMERA}: the people were forwarded, and no incident (`person` is no city event)"
        ),
    );
    let keys: Vec<&str> = snapshot
        .posts
        .iter()
        .filter_map(|p| p["idempotency_key"].as_str())
        .collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    check(
        unique.len() == keys.len(),
        "no incident was posted twice".to_owned(),
    );
    let fire_posts = keys.iter().filter(|k| k.starts_with("fire-post-")).count();
    check(
        fire_posts == 1,
        format!("fire-post posted the injected fire once ({fire_posts} posts)"),
    );
    let expected_captions = 1
        + (alerts.get("knife").copied().unwrap_or(0.0) + alerts.get("gun").copied().unwrap_or(0.0))
            as usize;
    let caption_posts = keys.iter().filter(|k| k.starts_with("caption-")).count();
    check(
        caption_posts == expected_captions,
        format!(
            "caption posted each gun/knife incident once ({caption_posts} posts, {expected_captions} incidents)"
        ),
    );
    let dead = snapshot.dead_letters();
    check(
        dead.get("map-pin").copied().unwrap_or(0) >= 1,
        "the malformed accident event is in map-pin's dead-letter queue, with its reason"
            .to_owned(),
    );
    for name in SCALED {
        let status = snapshot.status.values().find(|s| s.deployment == name);
        let (activations, replicas) = status.map_or((0, u32::MAX), |s| (s.activations, s.replicas));
        check(
            activations >= 1 && replicas == 0,
            format!(
                "{name} went 0 -> 1 -> 0 ({activations} activation(s), {replicas} replica(s) at the end)"
            ),
        );
    }
    let _ = writeln!(out, "\n== checks");
    for c in &checks {
        let _ = writeln!(
            out,
            "    [{}] {}",
            if c.ok { "ok" } else { "FAILED" },
            c.claim
        );
    }
    (out, checks)
}
