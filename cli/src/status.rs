//! `safecity status`: per function, its ScaledObject, replicas desired and
//! ready, the pending work and activity as the scaler sees them, its dead
//! letters and its last cold start — from the running local city, or from
//! the cluster with `--kube`. `-o json` for scripts.

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::city::control::{FunctionReport, discover};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table.
    Table,
    /// One JSON array.
    Json,
}

/// Options of `safecity status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Read the cluster of the current kubeconfig instead of the local city.
    #[arg(long)]
    pub kube: bool,
    /// The namespace (with --kube).
    #[arg(long, default_value = "safecity")]
    pub namespace: String,
    /// The scaler's gRPC address (with --kube; default: port-forward it).
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub scaler: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// One row, the same columns for the local city and the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The function (Deployment).
    pub function: String,
    /// Its ScaledObject.
    pub scaled_object: String,
    /// Replicas wanted.
    pub desired: u32,
    /// Replicas ready.
    pub ready: u32,
    /// Pending work as the scaler reports it (its metric).
    pub pending: f64,
    /// Whether the scaler says it is active.
    pub active: bool,
    /// Messages in its dead-letter queue.
    pub dead_letters: u64,
    /// The last cold start: activation to handled (local) or to ready (cluster), ms.
    pub last_cold_start_ms: Option<u64>,
}

impl From<&FunctionReport> for Row {
    fn from(report: &FunctionReport) -> Self {
        let status = &report.status;
        Row {
            function: status.deployment.clone(),
            scaled_object: status.scaled_object.clone(),
            desired: status.desired,
            ready: status.ready,
            pending: status.metric,
            active: status.active,
            dead_letters: report.dead_letters,
            last_cold_start_ms: status
                .cold_starts
                .last()
                .and_then(|c| c.handled.map(|h| h.saturating_sub(c.activated))),
        }
    }
}

/// Prints `rows` as a table or JSON.
pub fn print(rows: &[Row], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Output::Table => {
            println!(
                "{:<12} {:<14} {:>8} {:>6} {:>9} {:>7} {:>13} {:>16}",
                "FUNCTION",
                "SCALEDOBJECT",
                "DESIRED",
                "READY",
                "PENDING",
                "ACTIVE",
                "DEAD-LETTERS",
                "LAST-COLD-START"
            );
            for row in rows {
                println!(
                    "{:<12} {:<14} {:>8} {:>6} {:>9.1} {:>7} {:>13} {:>16}",
                    row.function,
                    row.scaled_object,
                    row.desired,
                    row.ready,
                    row.pending,
                    if row.active { "yes" } else { "no" },
                    row.dead_letters,
                    row.last_cold_start_ms
                        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
                );
            }
        }
    }
    Ok(())
}

/// Runs the command.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let rows = if args.kube {
        crate::kube::status(&args).await?
    } else {
        let city = discover()?;
        let reports: Vec<FunctionReport> = reqwest::get(format!("{}/api/status", city.control))
            .await?
            .json()
            .await?;
        reports.iter().map(Row::from).collect()
    };
    print(&rows, args.output)
}
