//! The smallest real bench, and the example of how a bench reports to
//! `safecity bench`: writing rows as JSON lines with [`Row::to_line`]
//! against the baseline `serde_json::to_string` of the same fields as an
//! untyped `serde_json::Value`, in one run. `safecity bench`'s end-to-end
//! test (`cli/tests/bench_suite.rs`) runs it in quick mode.
//!
//! ```text
//! cargo bench -p safecity-bench-rows --bench emit
//! ```

use std::hint::black_box;
use std::time::Instant;

use safecity_bench_rows::{Better, Row};

fn main() {
    // `cargo bench` passes --bench; a test run of the bench target does nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = safecity_bench_rows::setting("BENCH_ROWS_LINES", 200_000, 20_000);
    let row = Row::new("bench-rows", "a row", 3.602, "ms", Better::Lower)
        .baseline("KEDA", 30_000.0)
        .target("p99 <= 5 ms");
    let value = serde_json::to_value(&row).expect("a value");

    // Interleaved halves, so drift hits both alike.
    let (mut typed, mut untyped) = (0.0, 0.0);
    for _ in 0..2 {
        let started = Instant::now();
        for _ in 0..n / 2 {
            black_box(black_box(&row).to_line().expect("finite"));
        }
        typed += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..n / 2 {
            black_box(serde_json::to_string(black_box(&value)).expect("json"));
        }
        untyped += started.elapsed().as_secs_f64();
    }
    let (typed, untyped) = (n as f64 / typed, n as f64 / untyped);
    println!("| rows as JSON lines ({n}) | Row::to_line | serde_json::Value |");
    println!("|---|---|---|");
    println!("| lines/s | {typed:.0} | {untyped:.0} |");
    Row::new(
        "bench-rows",
        format!("rows written as JSON lines ({n})"),
        typed,
        "lines/s",
        Better::Higher,
    )
    .baseline(
        "serde_json::to_string of the same fields as a Value",
        untyped,
    )
    .emit()
    .expect("bench rows");
}
