//! The live terminal view of the local city, redrawn in place: the pipeline
//! stage by stage, the functions with their replicas and cold starts, and
//! the dead letters. Logs go to files; this is the only thing on screen.

use std::fmt::Write as _;

use super::autoscaler::ColdStart;
use super::observe::Snapshot;

/// Milliseconds, or `-`.
fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s * 1000.0))
}

/// A cold start as `activation -> ready -> handled` in milliseconds.
pub fn cold_start_line(cold: &ColdStart) -> String {
    let since = |at: Option<u64>| {
        at.map_or_else(
            || "…".to_owned(),
            |t| format!("{}", t.saturating_sub(cold.activated)),
        )
    };
    format!(
        "{} ms spawn, {} ms ready, {} ms handled{}",
        cold.spawned.saturating_sub(cold.activated),
        since(cold.ready),
        since(cold.handled),
        if cold.pushed {
            " (pushed)"
        } else {
            " (polled)"
        }
    )
}

/// The whole screen for `snapshot`.
pub fn render(snapshot: &Snapshot, header: &str, footer: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "  pipeline        count   p50        p99        latency is"
    );
    for stage in snapshot.stages() {
        let _ = writeln!(
            out,
            "  {:<12} {:>8}   {:<10} {:<10} {}",
            stage.name,
            stage.count as u64,
            ms(stage.p50),
            ms(stage.p99),
            stage.latency
        );
    }
    let _ = writeln!(
        out,
        "\n  function     replicas  pending  active  activations  cold starts  last cold start"
    );
    let dead = snapshot.dead_letters();
    for status in snapshot.status.values() {
        let last = status
            .cold_starts
            .last()
            .map(cold_start_line)
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "  {:<12} {:>3} ({} ready) {:>6}  {:<6}  {:>11}  {:>11}  {}",
            status.deployment,
            status.replicas,
            status.ready,
            snapshot.pending(&status.deployment),
            if status.active { "yes" } else { "no" },
            status.activations,
            status.cold_starts.len(),
            last
        );
    }
    let dead_total: u64 = dead.values().sum();
    let _ = writeln!(
        out,
        "\n  dead letters: {}",
        if dead_total == 0 {
            "none".to_owned()
        } else {
            dead.iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{f} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  on the map: {} incident(s); posts in the outbox: {}",
        snapshot.incidents.len(),
        snapshot.posts.len()
    );
    let _ = writeln!(out, "\n{footer}");
    out
}

/// Clears the terminal and draws `screen` from the top.
pub fn redraw(screen: &str) {
    print!("\x1b[H\x1b[2J{screen}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}
