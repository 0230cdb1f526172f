//! `safecity bench`'s runner against real `cargo bench` runs: the smallest
//! real bench of the workspace (`safecity-bench-rows`'s `emit`, quick mode)
//! gives its row through `SAFECITY_BENCH_ROWS`; a bench target that does
//! not exist gives a failed line with cargo's reason; a bench not written
//! yet is listed as not measured, without running cargo.

use std::path::{Path, PathBuf};

use safecity_cli::bench::suite::{BenchSpec, SuiteOptions, run_one};
use safecity_cli::bench::table::{Line, render_text};

fn options() -> SuiteOptions {
    let logs = std::env::temp_dir().join(format!("safecity-bench-suite-{}", std::process::id()));
    SuiteOptions {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        logs,
        quick: true,
        cargo: std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from),
    }
}

const EMIT: BenchSpec = BenchSpec {
    group: "bench-rows",
    package: "safecity-bench-rows",
    bench: "emit",
    source: "lib/bench-rows/benches/emit.rs",
};

#[tokio::test]
async fn a_real_bench_reports_its_row_and_failures_are_lines_with_a_reason() {
    let options = options();

    let outcome = run_one(&EMIT, &options).await.expect("cargo runs");
    let log = outcome.log.clone().expect("a log");
    let log_text = std::fs::read_to_string(&log).expect("the log");
    let [Line::Measured(row)] = &outcome.lines[..] else {
        panic!("one measured row, got {:?}\n{log_text}", outcome.lines);
    };
    assert_eq!(row.group, "bench-rows");
    assert_eq!(
        row.measure, "rows written as JSON lines (20000)",
        "quick mode"
    );
    assert!(row.value > 0.0 && row.baseline_value.is_some_and(|b| b > 0.0));
    assert!(row.ratio.is_some());
    assert!(
        log_text.contains("| lines/s |"),
        "the bench's own output is in its log"
    );

    let unknown = BenchSpec {
        bench: "no-such-bench",
        ..EMIT
    };
    let outcome = run_one(&unknown, &options).await.expect("cargo runs");
    let [Line::Failed { group, reason }] = &outcome.lines[..] else {
        panic!("one failed line, got {:?}", outcome.lines);
    };
    assert_eq!(group, "bench-rows");
    assert!(reason.contains("no-such-bench"), "{reason}");

    let absent = BenchSpec {
        group: "later",
        source: "lib/bench-rows/benches/not-written-yet.rs",
        ..EMIT
    };
    let outcome = run_one(&absent, &options).await.expect("nothing to run");
    assert_eq!(outcome.log, None);
    assert!(!outcome.lines[0].failed());
    let text = render_text(&outcome.lines);
    assert!(
        text.contains("not measured: lib/bench-rows/benches/not-written-yet.rs does not exist yet"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&options.logs);
}
