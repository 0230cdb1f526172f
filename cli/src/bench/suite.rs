//! The benches of the project and how one is run: built with `cargo bench
//! --no-run -p PACKAGE --bench NAME`, then run with `cargo bench -p PACKAGE
//! --bench NAME` from the workspace root (so its build is timed apart from
//! its measuring), one after the other, the output of both streamed to a
//! log file, its rows read back from the file it appended them to.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safecity_bench_rows::{QUICK_ENV, ROWS_ENV, parse_rows};

use super::table::Line;

/// One bench binary of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchSpec {
    /// The group its rows belong to (`--only` picks groups).
    pub group: &'static str,
    /// The cargo package.
    pub package: &'static str,
    /// The bench target (`[[bench]] name`).
    pub bench: &'static str,
    /// Its source, relative to the workspace root: when missing, the bench
    /// is reported as not measured (not written yet) instead of run.
    pub source: &'static str,
}

/// Every bench of the project, in the order they run.
pub const BENCHES: &[BenchSpec] = &[
    BenchSpec {
        group: "runtime",
        package: "safecity-runtime",
        bench: "throughput",
        source: "runtime/benches/throughput.rs",
    },
    BenchSpec {
        group: "scaler",
        package: "safecity-scaler",
        bench: "activation",
        source: "scaler/benches/activation.rs",
    },
    BenchSpec {
        group: "gate",
        package: "safecity-motion-gate",
        bench: "gate",
        source: "edge/motion-gate/benches/gate.rs",
    },
    BenchSpec {
        group: "gate-publish",
        package: "safecity-motion-gate",
        bench: "publish",
        source: "edge/motion-gate/benches/publish.rs",
    },
    BenchSpec {
        group: "detector",
        package: "safecity-yolo",
        bench: "detect",
        source: "lib/yolo/benches/detect.rs",
    },
    BenchSpec {
        group: "coldstart",
        package: "safecity-e2e",
        bench: "coldstart",
        source: "tests/e2e/benches/coldstart.rs",
    },
    BenchSpec {
        group: "frame-to-effect",
        package: "safecity-e2e",
        bench: "frame_to_effect",
        source: "tests/e2e/benches/frame_to_effect.rs",
    },
];

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The workspace root (cargo runs there).
    pub root: PathBuf,
    /// Where the logs and rows files go (`target/bench-logs`).
    pub logs: PathBuf,
    /// Quick mode for every bench.
    pub quick: bool,
    /// The cargo to run (`$CARGO`, else `cargo`).
    pub cargo: PathBuf,
}

/// Why the suite could not run at all (a bench that fails is a [`Line`], not this).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The logs folder or a log file cannot be made.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Cargo cannot be started.
    #[error("cannot start {}: {source}", cargo.display())]
    Cargo {
        /// The cargo binary.
        cargo: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What one bench gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its lines: its rows, and a failed line if it failed.
    pub lines: Vec<Line>,
    /// The time cargo took to build it (`cargo bench --no-run`).
    pub built: Duration,
    /// The time it ran (`cargo bench`, which then finds it built).
    pub ran: Duration,
    /// Its log file (`None` when it was not run).
    pub log: Option<PathBuf>,
}

/// Builds, then runs one bench: `cargo bench` with `SAFECITY_BENCH_ROWS`
/// (and `SAFECITY_BENCH_QUICK`) set, stdout and stderr of both steps to
/// `<logs>/<group>.log`.
pub async fn run_one(spec: &BenchSpec, options: &SuiteOptions) -> Result<Outcome, SuiteError> {
    if !options.root.join(spec.source).is_file() {
        return Ok(Outcome {
            lines: vec![Line::NotMeasured {
                group: spec.group.to_owned(),
                reason: format!("{} does not exist yet", spec.source),
            }],
            built: Duration::ZERO,
            ran: Duration::ZERO,
            log: None,
        });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SuiteError::Io { path, source }
    };
    std::fs::create_dir_all(&options.logs).map_err(io(&options.logs))?;
    let rows = options.logs.join(format!("{}.rows.jsonl", spec.group));
    match std::fs::remove_file(&rows) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(&rows)(error));
        }
        _ => {}
    }
    let log = options.logs.join(format!("{}.log", spec.group));
    let file = std::fs::File::create(&log).map_err(io(&log))?;
    let run = |step: &'static [&'static str]| Cargo {
        options,
        step,
        target: [spec.package, spec.bench],
        log: &log,
        log_file: &file,
        rows: &rows,
    };
    let started = Instant::now();
    let build = run(&["bench", "--no-run"]).status().await?;
    let built = started.elapsed();
    let started = Instant::now();
    let (status, ran) = if build.success() {
        let status = run(&["bench"]).status().await?;
        (status, started.elapsed())
    } else {
        (build, Duration::ZERO)
    };
    let rows_text = std::fs::read_to_string(&rows).unwrap_or_default();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let failure = if !build.success() {
        Some(format!("cargo could not build it ({build})"))
    } else if !status.success() {
        Some(status.to_string())
    } else {
        None
    };
    Ok(Outcome {
        lines: lines_of(spec.group, &rows_text, failure.as_deref(), &log_text),
        built,
        ran,
        log: Some(log),
    })
}

/// One cargo step of a bench, run in the workspace root, its output
/// appended to the bench's log.
struct Cargo<'a> {
    options: &'a SuiteOptions,
    /// `bench --no-run` or `bench`.
    step: &'static [&'static str],
    /// Package and bench target.
    target: [&'a str; 2],
    log: &'a Path,
    log_file: &'a std::fs::File,
    rows: &'a Path,
}

impl Cargo<'_> {
    async fn status(&self) -> Result<std::process::ExitStatus, SuiteError> {
        let io = |source| SuiteError::Io {
            path: self.log.to_owned(),
            source,
        };
        let [package, bench] = self.target;
        let mut command = tokio::process::Command::new(&self.options.cargo);
        command
            .current_dir(&self.options.root)
            .args(self.step)
            .args(["-p", package, "--bench", bench])
            .env(ROWS_ENV, self.rows)
            .stdin(std::process::Stdio::null())
            .stdout(self.log_file.try_clone().map_err(io)?)
            .stderr(self.log_file.try_clone().map_err(io)?)
            .kill_on_drop(true);
        if self.options.quick {
            command.env(QUICK_ENV, "1");
        } else {
            command.env_remove(QUICK_ENV);
        }
        command.status().await.map_err(|source| SuiteError::Cargo {
            cargo: self.options.cargo.clone(),
            source,
        })
    }
}

/// The lines a bench gave: every row it wrote, a failed line for each line
/// of the rows file that is not a row, and a failed line when it exited
/// with `failure` (then the reason is read from its log) or wrote no row.
pub fn lines_of(group: &str, rows: &str, failure: Option<&str>, log: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = parse_rows(rows)
        .into_iter()
        .map(|row| match row {
            Ok(row) => Line::Measured(row),
            Err((number, error)) => Line::Failed {
                group: group.to_owned(),
                reason: format!("rows file line {number}: {error}"),
            },
        })
        .collect();
    if let Some(status) = failure {
        lines.push(Line::Failed {
            group: group.to_owned(),
            reason: failure_reason(log).unwrap_or_else(|| status.to_owned()),
        });
    } else if lines.is_empty() {
        lines.push(Line::Failed {
            group: group.to_owned(),
            reason: format!(
                "the bench wrote no row (it must append rows with safecity_bench_rows::Row::emit to ${ROWS_ENV})"
            ),
        });
    }
    lines
}

/// The longest reason kept, in characters.
const REASON_CHARS: usize = 200;

/// Why a bench failed, from its log: the message of its last panic (with
/// where it happened), else cargo's first error (a compile error, an
/// unknown bench), else nothing.
pub fn failure_reason(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let panic = lines.iter().rposition(|line| line.contains("panicked at"));
    let reason = if let Some(index) = panic {
        // `thread 'main' panicked at src/x.rs:1:2:` then the message on the
        // next line(s); older toolchains put `'message', src/x.rs:1:2` inline.
        let line = lines[index];
        let place = line
            .split("panicked at ")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(':');
        let message = lines
            .get(index + 1)
            .map(|m| m.trim())
            .filter(|m| !m.is_empty() && !m.starts_with("note:"))
            .unwrap_or_default();
        if message.is_empty() {
            format!("panicked at {place}")
        } else {
            format!("{message} (at {place})")
        }
    } else {
        lines
            .iter()
            .find(|line| line.starts_with("error:") || line.starts_with("error["))
            .map(|line| line.trim().to_owned())?
    };
    Some(shorten(&reason))
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= REASON_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(REASON_CHARS - 1).collect();
    short.push('…');
    short
}

/// The benches of `only` (group names; all when empty), in suite order, or
/// the names that are no group.
pub fn select<'a>(
    benches: &'a [BenchSpec],
    only: &[String],
) -> Result<Vec<&'a BenchSpec>, Vec<String>> {
    let unknown: Vec<String> = only
        .iter()
        .filter(|name| !benches.iter().any(|b| b.group == name.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(benches
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|name| name == b.group))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"group":"scaler","measure":"activation p99","value":3.6,"unit":"ms","baseline_name":"KEDA","baseline_value":30000,"ratio":8333.3,"better":"lower"}"#;

    #[test]
    fn every_group_is_unique_and_every_source_is_named_after_its_bench() {
        for (i, spec) in BENCHES.iter().enumerate() {
            assert!(
                BENCHES[i + 1..].iter().all(|o| o.group != spec.group),
                "{}",
                spec.group
            );
            assert!(
                spec.source.ends_with(&format!("benches/{}.rs", spec.bench)),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn only_picks_groups_in_suite_order_and_names_unknown_ones() {
        let picked =
            select(BENCHES, &["detector".to_owned(), "runtime".to_owned()]).expect("known groups");
        assert_eq!(
            picked.iter().map(|b| b.group).collect::<Vec<_>>(),
            ["runtime", "detector"]
        );
        assert_eq!(select(BENCHES, &[]).expect("all").len(), BENCHES.len());
        assert_eq!(
            select(BENCHES, &["gpu".to_owned()]),
            Err(vec!["gpu".to_owned()])
        );
    }

    #[test]
    fn a_good_run_gives_its_rows() {
        let lines = lines_of("scaler", &format!("{ROW}\n{ROW}\n"), None, "");
        assert_eq!(lines.len(), 2);
        assert!(matches!(&lines[0], Line::Measured(row) if row.value == 3.6));
    }

    #[test]
    fn a_failed_run_keeps_its_rows_and_adds_the_panic() {
        let log = "   Compiling x\nthread 'main' panicked at scaler/benches/activation.rs:12:5:\nrabbitmqctl [\"add_vhost\"]\nnote: run with `RUST_BACKTRACE=1`\nerror: bench failed, to rerun pass `-p safecity-scaler --bench activation`\n";
        let lines = lines_of("scaler", ROW, Some("exit status: 101"), log);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            Line::Failed {
                group: "scaler".to_owned(),
                reason: "rabbitmqctl [\"add_vhost\"] (at scaler/benches/activation.rs:12:5)"
                    .to_owned()
            }
        );
    }

    #[test]
    fn failure_reasons_come_from_compile_errors_or_the_status() {
        let log = "   Compiling a\nerror[E0425]: cannot find value `x` in this scope\n --> a.rs:1:1\nerror: could not compile `a`\n";
        assert_eq!(
            failure_reason(log).as_deref(),
            Some("error[E0425]: cannot find value `x` in this scope")
        );
        let lines = lines_of("g", "", Some("exit status: 3"), "nothing useful\n");
        assert_eq!(
            lines,
            [Line::Failed {
                group: "g".to_owned(),
                reason: "exit status: 3".to_owned()
            }]
        );
        let long = format!("error: {}", "x".repeat(500));
        assert_eq!(
            failure_reason(&long).expect("reason").chars().count(),
            REASON_CHARS
        );
    }

    #[test]
    fn a_silent_bench_and_a_bad_row_fail() {
        let silent = lines_of("g", "", None, "");
        assert!(
            matches!(&silent[..], [Line::Failed { reason, .. }] if reason.contains("wrote no row"))
        );
        let bad = lines_of("g", &format!("{ROW}\n{{oops\n"), None, "");
        assert!(
            matches!(&bad[1], Line::Failed { reason, .. } if reason.starts_with("rows file line 2:"))
        );
    }
}
