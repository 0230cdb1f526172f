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
    /// The scaler's gRPC address (with --kube: `kubectl -n safecity
    /// port-forward svc/safecity-scaler 6000`).
    #[arg(long, default_value = "127.0.0.1:6000")]
    pub scaler: String,
    /// The broker's management API, for the dead letters (with --kube:
    /// `kubectl -n messaging port-forward svc/rabbitmq 15672`).
    #[arg(long, default_value = "http://guest:guest@127.0.0.1:15672")]
    pub management: String,
    /// The broker's virtual host (with --kube).
    #[arg(long, default_value = "/")]
    pub vhost: String,
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
    /// Pending work as the scaler reports it (its metric); `None` when the
    /// scaler did not answer.
    pub pending: Option<f64>,
    /// Whether the scaler says it is active.
    pub active: Option<bool>,
    /// Messages in its dead-letter queue; `None` when the broker did not answer.
    pub dead_letters: Option<u64>,
    /// The last cold start, ms: activation to handled (local city), or the
    /// newest pod's creation to Ready (cluster).
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
            pending: Some(status.metric),
            active: Some(status.active),
            dead_letters: Some(report.dead_letters),
            last_cold_start_ms: status
                .cold_starts
                .last()
                .and_then(|c| c.handled.map(|h| h.saturating_sub(c.activated))),
        }
    }
}

/// Prints `rows` as a table or JSON.
pub fn print(rows: &[Row], output: Output) -> anyhow::Result<()> {
    print!("{}", render(rows, output)?);
    Ok(())
}

/// `rows` as a table or JSON, ready to print.
pub fn render(rows: &[Row], output: Output) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?,
        Output::Table => {
            writeln!(
                out,
                "{:<12} {:<14} {:>8} {:>6} {:>9} {:>7} {:>13} {:>16}",
                "FUNCTION",
                "SCALEDOBJECT",
                "DESIRED",
                "READY",
                "PENDING",
                "ACTIVE",
                "DEAD-LETTERS",
                "LAST-COLD-START"
            )?;
            let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
            for row in rows {
                writeln!(
                    out,
                    "{:<12} {:<14} {:>8} {:>6} {:>9} {:>7} {:>13} {:>16}",
                    row.function,
                    row.scaled_object,
                    row.desired,
                    row.ready,
                    or_dash(row.pending.map(|p| format!("{p:.1}"))),
                    or_dash(row.active.map(|a| if a { "yes" } else { "no" }.to_owned())),
                    or_dash(row.dead_letters.map(|d| d.to_string())),
                    or_dash(row.last_cold_start_ms.map(|ms| format!("{ms} ms")))
                )?;
            }
        }
    }
    Ok(out)
}

/// Runs the command.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let rows = if args.kube {
        let client = crate::kube::client().await?;
        crate::kube::status::rows(&client, &args).await?
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
