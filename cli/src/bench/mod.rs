//! `safecity bench`: every benchmark of the project in one go on this
//! machine, one table.
//!
//! Each bench binary (see [`suite::BENCHES`]) is built with `cargo bench
//! --no-run -p PACKAGE --bench NAME`, then run with `cargo bench -p PACKAGE
//! --bench NAME` from the workspace root, one after the other (the bench
//! profile; no build competes with a measurement, and the build time is
//! reported apart). Its output goes to `target/bench-logs/<group>.log`, one
//! progress line per bench to stderr.
//! The benches report through `safecity-bench-rows`: with
//! `SAFECITY_BENCH_ROWS=<file>` set, each appends one JSON line per measure
//! (value, baseline measured in the same run, ratio, target), so nothing
//! here parses a human table. `--quick` sets `SAFECITY_BENCH_QUICK=1`
//! (smaller counts: about two minutes of measuring in all).
//!
//! A bench that fails gives a `failed: <reason>` line (its panic message or
//! cargo's error, from its log) and the command exits 1 after printing the
//! table; a bench whose source does not exist yet is listed as not
//! measured. `--write-docs` replaces the section of `docs/benchmarks.md`
//! between `<!-- safecity bench: begin -->` and `<!-- safecity bench: end -->`
//! with the table, the date, the CPU model and the core count.

pub mod docs;
pub mod preflight;
pub mod suite;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use suite::{BENCHES, SuiteError, SuiteOptions};
use table::Line;

/// Options of `safecity bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Smaller counts in every bench (SAFECITY_BENCH_QUICK=1): about two minutes of measuring.
    #[arg(long)]
    pub quick: bool,
    /// Run only these groups (repeat or separate with commas), e.g. `--only scaler,detector`.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Regenerate the table section of docs/benchmarks.md (the whole suite only).
    #[arg(long, conflicts_with = "only")]
    pub write_docs: bool,
    /// The workspace root (default: the nearest folder upwards whose Cargo.toml has [workspace]).
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// List the groups and their benches, and exit.
    #[arg(long)]
    pub list: bool,
}

/// Why `safecity bench` could not do its job (failed benches are not this:
/// they are lines of the table and exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--only` names no group.
    #[error("--only: no bench group named {}; the groups are: {}", .0.join(", "), groups())]
    UnknownGroups(Vec<String>),
    /// No workspace root found.
    #[error("no Cargo.toml with [workspace] in {} or above it: run from the safecity checkout or pass --workspace", .0.display())]
    NoWorkspace(PathBuf),
    /// Running the suite failed.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// The broker the benches need is not ready.
    #[error(transparent)]
    Broker(#[from] preflight::PreflightError),
    /// The document cannot be read or written.
    #[error("{}: {source}", path.display())]
    DocsIo {
        /// The document.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The document has no place for the table.
    #[error("{}: {source}", path.display())]
    Docs {
        /// The document.
        path: PathBuf,
        /// The cause.
        source: docs::DocsError,
    },
}

fn groups() -> String {
    BENCHES
        .iter()
        .map(|b| b.group)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nearest folder at or above `start` whose `Cargo.toml` declares a workspace.
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| dir.to_owned())
    })
}

/// Runs the suite and prints the table; the exit code (1 when a bench failed).
pub async fn run(args: BenchArgs) -> Result<i32, BenchError> {
    let selected = suite::select(BENCHES, &args.only).map_err(BenchError::UnknownGroups)?;
    if args.list {
        for spec in &selected {
            println!(
                "{:<16} cargo bench -p {} --bench {}    ({})",
                spec.group, spec.package, spec.bench, spec.source
            );
        }
        return Ok(0);
    }
    preflight::check_broker().await?;
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let root = match args.workspace {
        Some(root) => root,
        None => workspace_root(&here).ok_or(BenchError::NoWorkspace(here))?,
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let options = SuiteOptions {
        logs: target.join("bench-logs"),
        root: root.clone(),
        quick: args.quick,
        cargo: std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from),
    };
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let started = Instant::now();
    let mut measuring = 0.0;
    let mut lines: Vec<Line> = Vec::new();
    for (index, spec) in selected.iter().enumerate() {
        let counter = format!("[{}/{}] {}", index + 1, selected.len(), spec.group);
        eprintln!(
            "{counter}: cargo bench -p {} --bench {}{} ...",
            spec.package,
            spec.bench,
            if args.quick { " (quick)" } else { "" }
        );
        let outcome = suite::run_one(spec, &options).await?;
        let measured = outcome
            .lines
            .iter()
            .filter(|l| matches!(l, Line::Measured(_)))
            .count();
        let verdict = match outcome
            .lines
            .iter()
            .find(|l| !matches!(l, Line::Measured(_)))
        {
            Some(line) => line.cells()[1].clone(),
            None => "ok".to_owned(),
        };
        let log = outcome
            .log
            .as_ref()
            .map(|l| format!(", log {}", l.strip_prefix(&root).unwrap_or(l).display()))
            .unwrap_or_default();
        eprintln!(
            "{counter}: {verdict}; {measured} rows; built in {:.0} s, ran in {:.0} s{log}",
            outcome.built.as_secs_f64(),
            outcome.ran.as_secs_f64()
        );
        measuring += outcome.ran.as_secs_f64();
        lines.extend(outcome.lines);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!();
    print!("{}", table::render_text(&lines));
    let failed = lines.iter().filter(|l| l.failed()).count();
    println!();
    println!(
        "{} benches in {seconds:.0} s ({measuring:.0} s running them, the rest building){}; ratio = how many times better than the baseline (above 1: safecity wins); logs in {}",
        selected.len(),
        if failed > 0 {
            format!(", {failed} FAILED")
        } else {
            String::new()
        },
        options.logs.display()
    );
    if args.write_docs {
        let info = docs::RunInfo {
            date,
            command: format!("safecity bench{}", if args.quick { " --quick" } else { "" }),
            machine: docs::Machine::here(),
            seconds: measuring,
        };
        let path = root.join("docs/benchmarks.md");
        write_docs(&path, &info, &lines)?;
        println!("{} regenerated", path.display());
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn write_docs(path: &Path, info: &docs::RunInfo, lines: &[Line]) -> Result<(), BenchError> {
    let io = |source| BenchError::DocsIo {
        path: path.to_owned(),
        source,
    };
    let document = std::fs::read_to_string(path).map_err(io)?;
    let section = docs::section(info, &table::render_markdown(lines));
    let updated =
        docs::replace_section(&document, &section).map_err(|source| BenchError::Docs {
            path: path.to_owned(),
            source,
        })?;
    std::fs::write(path, updated).map_err(io)
}
