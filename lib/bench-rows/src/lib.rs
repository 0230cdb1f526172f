//! # safecity-bench-rows
//!
//! The one format in which every safecity bench reports its results to
//! `safecity bench`: a JSON line per measure, appended to the file named by
//! `SAFECITY_BENCH_ROWS` (nothing is written when it is unset, so a bench
//! run by hand only prints its own tables), and the shared quick mode
//! (`SAFECITY_BENCH_QUICK=1`: smaller counts, the whole suite in about two
//! minutes).
//!
//! ```json
//! {"group":"detector","measure":"yolov4-tiny@416, batch 1","value":15.2,"unit":"img/s",
//!  "baseline_name":"OpenCV DNN 4.14","baseline_value":10.8,"ratio":1.41,"better":"higher",
//!  "target":">= 1.0x"}
//! ```
//!
//! `ratio` always reads "how many times better than the baseline": value /
//! baseline when higher is better, baseline / value when lower is better, so
//! above 1 safecity wins whatever the unit. It is `null` when the baseline
//! could not be measured (`baseline_value` is then `null` and
//! `baseline_name` says why).
//!
//! Why a crate of its own: the benches live in six crates (the runtime, the
//! scaler, the motion gate, safecity-yolo, the detector, the end-to-end
//! tests) and the reader is the CLI. The rows had to be one type shared by
//! writers and reader, and the natural homes are wrong: `safecity-yolo`
//! depends on no safecity crate, `safecity-events` would drag lapin into a
//! bench of convolutions, and the CLI would drag kube and tonic into every
//! bench. This crate depends on serde, serde_json and thiserror only (all
//! already in every build), so the benches take it as a dev-dependency at
//! no cost and the CLI as a plain dependency.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The environment variable naming the file the rows are appended to.
pub const ROWS_ENV: &str = "SAFECITY_BENCH_ROWS";

/// The environment variable that turns quick mode on (`1` or `true`).
pub const QUICK_ENV: &str = "SAFECITY_BENCH_QUICK";

/// Which way a measure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughputs: more is better.
    Higher,
    /// Latencies, sizes: less is better.
    Lower,
}

/// One measure of a bench, with its baseline from the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The part of the city measured (`runtime`, `scaler`, `gate`, ...).
    pub group: String,
    /// What was measured, in words (one table row).
    pub measure: String,
    /// safecity's value.
    pub value: f64,
    /// The unit of `value` and `baseline_value` (`events/s`, `ms`, ...).
    pub unit: String,
    /// What safecity is compared with; when `baseline_value` is `None`, why
    /// it was not measured.
    #[serde(default)]
    pub baseline_name: Option<String>,
    /// The baseline's value, in `unit`.
    #[serde(default)]
    pub baseline_value: Option<f64>,
    /// How many times better than the baseline (above 1: safecity wins).
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Which way the measure improves.
    pub better: Better,
    /// The project's target for this measure, in words (`p99 <= 5 ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Why a row could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The rows file could not be opened or written.
    #[error("cannot append to the bench rows file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a row.
    #[error("not a bench row: {0}")]
    Json(#[from] serde_json::Error),
    /// A number is NaN or infinite (JSON cannot carry it).
    #[error("row `{measure}`: {field} is not a finite number")]
    NotFinite {
        /// The row's measure.
        measure: String,
        /// `value`, `baseline_value` or `ratio`.
        field: &'static str,
    },
}

impl Row {
    /// A row without a baseline (add one with [`Row::baseline`]).
    pub fn new(
        group: impl Into<String>,
        measure: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
        better: Better,
    ) -> Self {
        Row {
            group: group.into(),
            measure: measure.into(),
            value,
            unit: unit.into(),
            baseline_name: None,
            baseline_value: None,
            ratio: None,
            better,
            target: None,
        }
    }

    /// The baseline `name` measured at `value` (in this row's unit); sets the ratio.
    pub fn baseline(mut self, name: impl Into<String>, value: f64) -> Self {
        self.ratio = ratio(self.better, self.value, value);
        self.baseline_name = Some(name.into());
        self.baseline_value = Some(value);
        self
    }

    /// The baseline `name` could not be measured in this run, for `reason`.
    pub fn baseline_missing(mut self, name: &str, reason: &str) -> Self {
        self.baseline_name = Some(format!("{name} (not measured: {reason})"));
        self.baseline_value = None;
        self.ratio = None;
        self
    }

    /// The project's target for this measure.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Appends the row to the file named by `SAFECITY_BENCH_ROWS`, if set.
    pub fn emit(&self) -> Result<(), RowsError> {
        match std::env::var_os(ROWS_ENV) {
            Some(path) if !path.is_empty() => self.append_to(Path::new(&path)),
            _ => Ok(()),
        }
    }

    /// Appends the row as one JSON line to `path` (created if missing).
    pub fn append_to(&self, path: &Path) -> Result<(), RowsError> {
        let line = self.to_line()?;
        let io = |source| RowsError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // One write per line: a row is never torn by a bench that dies after it.
        file.write_all(line.as_bytes()).map_err(io)
    }

    /// The row as one JSON line, newline included.
    pub fn to_line(&self) -> Result<String, RowsError> {
        self.check()?;
        let mut line = serde_json::to_string(self)?;
        line.push('\n');
        Ok(line)
    }

    /// Reads one JSON line.
    pub fn parse(line: &str) -> Result<Self, RowsError> {
        let row: Row = serde_json::from_str(line)?;
        row.check()?;
        Ok(row)
    }

    fn check(&self) -> Result<(), RowsError> {
        let not_finite = |field| RowsError::NotFinite {
            measure: self.measure.clone(),
            field,
        };
        if !self.value.is_finite() {
            return Err(not_finite("value"));
        }
        if self.baseline_value.is_some_and(|v| !v.is_finite()) {
            return Err(not_finite("baseline_value"));
        }
        if self.ratio.is_some_and(|v| !v.is_finite()) {
            return Err(not_finite("ratio"));
        }
        Ok(())
    }
}

/// How many times `value` is better than `baseline`; `None` when either is
/// not a positive finite number.
pub fn ratio(better: Better, value: f64, baseline: f64) -> Option<f64> {
    let usable = |v: f64| v.is_finite() && v > 0.0;
    if !usable(value) || !usable(baseline) {
        return None;
    }
    Some(match better {
        Better::Higher => value / baseline,
        Better::Lower => baseline / value,
    })
}

/// Every row of a rows file's text, in order; each line that is not a row
/// gives its 1-based line number and the error. Blank lines are skipped.
pub fn parse_rows(text: &str) -> Vec<Result<Row, (usize, RowsError)>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| Row::parse(line).map_err(|e| (index + 1, e)))
        .collect()
}

/// Whether quick mode is on (`SAFECITY_BENCH_QUICK` is `1` or `true`).
pub fn quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|v| is_on(&v))
}

fn is_on(value: &str) -> bool {
    matches!(value.trim(), "1" | "true" | "yes")
}

/// A bench size: the environment variable `name` when it is set and parses,
/// else `quick` in quick mode, else `full`.
pub fn setting<T: FromStr>(name: &str, full: T, quick: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if self::quick() { quick } else { full })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_reads_better_than_the_baseline_both_ways() {
        assert_eq!(ratio(Better::Higher, 30.0, 10.0), Some(3.0));
        assert_eq!(ratio(Better::Lower, 10.0, 30.0), Some(3.0));
        assert_eq!(ratio(Better::Lower, 0.0, 30.0), None);
        assert_eq!(ratio(Better::Higher, 1.0, f64::NAN), None);
    }

    #[test]
    fn a_row_round_trips_through_its_json_line() {
        let row = Row::new("detector", "tiny, batch 1", 15.0, "img/s", Better::Higher)
            .baseline("OpenCV DNN", 10.0)
            .target(">= 1.0x");
        let line = row.to_line().expect("finite");
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert!(line.contains("\"better\":\"higher\""), "{line}");
        assert_eq!(Row::parse(&line).expect("a row"), row);
        assert_eq!(row.ratio, Some(1.5));
    }

    #[test]
    fn a_missing_baseline_says_why_and_has_no_ratio() {
        let row = Row::new("runtime", "quorum", 3.0, "events/s", Better::Higher)
            .baseline_missing("Python pika", ".venv is missing");
        let back = Row::parse(&row.to_line().expect("finite")).expect("a row");
        assert_eq!(back.ratio, None);
        assert_eq!(back.baseline_value, None);
        assert_eq!(
            back.baseline_name.as_deref(),
            Some("Python pika (not measured: .venv is missing)")
        );
        assert!(!row.to_line().expect("finite").contains("target"));
    }

    #[test]
    fn the_optional_fields_may_be_absent_and_numbers_must_be_finite() {
        let row =
            Row::parse(r#"{"group":"g","measure":"m","value":1,"unit":"ms","better":"lower"}"#)
                .expect("minimal row");
        assert_eq!(row.baseline_name, None);
        assert!(
            Row::new("g", "m", f64::NAN, "ms", Better::Lower)
                .to_line()
                .is_err()
        );
        assert!(Row::parse(r#"{"group":"g","measure":"m","value":1,"unit":"ms"}"#).is_err());
    }

    #[test]
    fn rows_are_appended_one_line_each_and_bad_lines_are_numbered() {
        let path = std::env::temp_dir().join(format!("bench-rows-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        for value in [1.0, 2.0] {
            Row::new("g", "m", value, "ms", Better::Lower)
                .append_to(&path)
                .expect("append");
        }
        let mut text = std::fs::read_to_string(&path).expect("file");
        std::fs::remove_file(&path).expect("clean up");
        text.push_str("\nnot json\n");
        let rows = parse_rows(&text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].as_ref().expect("row").value, 2.0);
        assert!(matches!(rows[2], Err((4, RowsError::Json(_)))));
    }

    #[test]
    fn quick_mode_words() {
        assert!(is_on("1") && is_on("true") && !is_on("0") && !is_on(""));
    }
}
