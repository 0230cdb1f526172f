//! The lines of the one table: measured rows (as the benches wrote them),
//! failed benches and benches not measured, rendered aligned for the
//! terminal or as Markdown for `docs/benchmarks.md`.

use safecity_bench_rows::Row;

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A measure with its baseline, as a bench wrote it.
    Measured(Row),
    /// A bench that failed (or wrote a row that is not one): the suite exits non-zero.
    Failed {
        /// The bench's group.
        group: String,
        /// Why, in one line.
        reason: String,
    },
    /// A bench that was not run, on purpose (e.g. not written yet).
    NotMeasured {
        /// The bench's group.
        group: String,
        /// Why, in one line.
        reason: String,
    },
}

impl Line {
    /// Whether this line makes the suite fail.
    pub fn failed(&self) -> bool {
        matches!(self, Line::Failed { .. })
    }

    /// The six cells: group, measure, safecity, baseline, ratio, target.
    pub fn cells(&self) -> [String; 6] {
        match self {
            Line::Measured(row) => [
                row.group.clone(),
                row.measure.clone(),
                with_unit(row.value, &row.unit),
                baseline(row),
                row.ratio.map_or_else(|| "n/a".to_owned(), ratio),
                row.target.clone().unwrap_or_default(),
            ],
            Line::Failed { group, reason } => [
                group.clone(),
                format!("failed: {reason}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
            Line::NotMeasured { group, reason } => [
                group.clone(),
                format!("not measured: {reason}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        }
    }
}

/// The column titles.
pub const HEADER: [&str; 6] = [
    "group",
    "measure",
    "safecity",
    "baseline (same run)",
    "ratio",
    "target",
];

fn baseline(row: &Row) -> String {
    match (&row.baseline_name, row.baseline_value) {
        (Some(name), Some(value)) => format!("{} ({name})", with_unit(value, &row.unit)),
        (Some(name), None) => name.clone(),
        (None, Some(value)) => with_unit(value, &row.unit),
        (None, None) => "none".to_owned(),
    }
}

fn with_unit(value: f64, unit: &str) -> String {
    if unit.is_empty() {
        number(value)
    } else {
        format!("{} {unit}", number(value))
    }
}

/// A measured number with the precision it deserves: thousands grouped from
/// 100 up (no decimals), then 1, 2 or 3 decimals as it gets smaller.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        grouped(value.round())
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// A ratio: `1.41x`, `12.3x`, `8,329x`.
pub fn ratio(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{}x", grouped(value.round()))
    } else if value.abs() >= 10.0 {
        format!("{value:.1}x")
    } else {
        format!("{value:.2}x")
    }
}

fn grouped(whole: f64) -> String {
    let digits = format!("{:.0}", whole.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if whole < 0.0 { format!("-{out}") } else { out }
}

/// The table aligned in columns for a terminal (one line per row, title
/// and rule first), every line ending in a newline.
pub fn render_text(lines: &[Line]) -> String {
    let rows: Vec<[String; 6]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(lines.iter().map(Line::cells))
        .collect();
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let mut text = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column > 0 {
                text.push_str("  ");
            }
            // Numbers read best right-aligned; words left-aligned.
            let pad = width - cell.chars().count();
            if (column == 2 || column == 4) && index > 0 {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
        if index == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// The table in Markdown (`|` in cells escaped), every line ending in a newline.
pub fn render_markdown(lines: &[Line]) -> String {
    let escape = |cell: &str| cell.replace('|', "\\|");
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str("|---|---|---:|---|---:|---|\n");
    for line in lines {
        let cells = line.cells().map(|c| escape(&c));
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_bench_rows::Better;

    fn lines() -> Vec<Line> {
        vec![
            Line::Measured(
                Row::new(
                    "detector",
                    "yolov4-tiny@416, batch 1",
                    15.123,
                    "img/s",
                    Better::Higher,
                )
                .baseline("OpenCV DNN", 10.8)
                .target(">= 1.5x"),
            ),
            Line::Measured(
                Row::new("scaler", "activation p99", 3.602, "ms", Better::Lower)
                    .baseline("KEDA pollingInterval 30 s", 30_000.0),
            ),
            Line::Measured(
                Row::new(
                    "runtime",
                    "quorum | no-op",
                    33_735.2,
                    "events/s",
                    Better::Higher,
                )
                .baseline_missing("Python pika", ".venv missing"),
            ),
            Line::Failed {
                group: "gate".to_owned(),
                reason: "no .venv".to_owned(),
            },
            Line::NotMeasured {
                group: "gate-publish".to_owned(),
                reason: "not written yet".to_owned(),
            },
        ]
    }

    #[test]
    fn numbers_keep_the_precision_they_deserve() {
        assert_eq!(number(33_735.2), "33,735");
        assert_eq!(number(1_234_567.0), "1,234,567");
        assert_eq!(number(100.4), "100");
        assert_eq!(number(66.15), "66.2");
        assert_eq!(number(3.6021), "3.60");
        assert_eq!(number(0.28949), "0.289");
        assert_eq!(ratio(8_328.9), "8,329x");
        assert_eq!(ratio(1.4149), "1.41x");
        assert_eq!(ratio(12.34), "12.3x");
    }

    #[test]
    fn cells_show_the_baseline_with_its_name_and_the_ratio() {
        let cells = lines()[0].cells();
        assert_eq!(
            cells,
            [
                "detector",
                "yolov4-tiny@416, batch 1",
                "15.1 img/s",
                "10.8 img/s (OpenCV DNN)",
                "1.40x",
                ">= 1.5x"
            ]
            .map(str::to_owned)
        );
        assert_eq!(lines()[1].cells()[4], "8,329x");
        let missing = lines()[2].cells();
        assert_eq!(missing[3], "Python pika (not measured: .venv missing)");
        assert_eq!(missing[4], "n/a");
        assert_eq!(lines()[3].cells()[1], "failed: no .venv");
        assert!(lines()[3].failed() && !lines()[4].failed() && !lines()[0].failed());
        assert_eq!(lines()[4].cells()[1], "not measured: not written yet");
    }

    #[test]
    fn the_text_table_is_aligned() {
        let text = render_text(&lines());
        let rendered: Vec<&str> = text.lines().collect();
        assert_eq!(rendered.len(), 2 + lines().len());
        assert!(rendered[0].starts_with("group         measure"), "{text}");
        assert!(rendered[1].chars().all(|c| c == '-'));
        // The safecity column is right-aligned: its values end at one column.
        let end = |line: &str, value: &str| line.find(value).expect(value) + value.len();
        assert_eq!(
            end(rendered[2], "15.1 img/s"),
            end(rendered[4], "33,735 events/s")
        );
        assert!(rendered[5].starts_with("gate          failed: no .venv"));
        assert!(text.ends_with('\n') && !text.contains(" \n"));
    }

    #[test]
    fn the_markdown_table_escapes_pipes() {
        let markdown = render_markdown(&lines());
        let rendered: Vec<&str> = markdown.lines().collect();
        assert_eq!(
            rendered[0],
            "| group | measure | safecity | baseline (same run) | ratio | target |"
        );
        assert_eq!(rendered[1], "|---|---|---:|---|---:|---|");
        assert!(rendered[4].starts_with("| runtime | quorum \\| no-op | 33,735 events/s |"));
        assert_eq!(rendered[5], "| gate | failed: no .venv |  |  |  |  |");
        assert_eq!(rendered.len(), 2 + lines().len());
    }
}
