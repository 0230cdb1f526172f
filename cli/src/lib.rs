//! `safecity`: command-line tools for function authors and operators.
//!
//! - `safecity publish`: send sample safety events to the local broker.
//! - `safecity publish-raw`: send an arbitrary body (to see poison handling).
//! - `safecity dead-letters FUNCTION`: show what a function gave up on, and why.
//! - `safecity replay FUNCTION`: move dead letters back to the function's queue.
//! - `safecity webhook-sink`: the local city's outbox, a receiver for the
//!   signed-webhook notifier that verifies signatures and prints each post.
//! - `safecity up`: the whole city on this machine, functions scaled from
//!   zero by a local autoscaler through the KEDA scaler ([`city`]).
//! - `safecity status`, `safecity coldstart FUNCTION`: what the running city
//!   (or, with `--kube`, the cluster) scales, and cold starts measured.
//! - `safecity bench`: every benchmark of the project in one go, one table
//!   with each baseline measured in the same run ([`bench`]).
//!
//! Every message goes out through the contract crate's confirmed publisher
//! (`safecity_events::Publisher`), the one the runtime uses.

pub mod bench;
pub mod city;
pub mod coldstart;
pub mod dead_letters;
pub mod kube;
pub mod publish;
pub mod status;
pub mod webhook_sink;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lapin::{Connection, ConnectionProperties};
use safecity_events::Publisher;
use safecity_events::event::CLOUDEVENTS_JSON;
use safecity_shell::env::redact_url;

pub use publish::PublishArgs;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "safecity", version, about = "safecity's local tools")]
pub struct Cli {
    /// Broker URL.
    #[arg(
        long,
        env = "SAFECITY_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        global = true,
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish sample safety events (one incident per event unless --incident is given).
    Publish(PublishArgs),
    /// Publish an arbitrary body to the events exchange.
    PublishRaw {
        /// Routing key (the event type).
        #[arg(long)]
        routing_key: String,
        /// The body, as text.
        #[arg(long)]
        body: String,
        /// AMQP content type.
        #[arg(long, default_value = CLOUDEVENTS_JSON)]
        content_type: String,
    },
    /// Show a function's dead letters with their reasons (they stay queued).
    DeadLetters {
        /// The function's name.
        function: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Remove the shown dead letters instead of leaving them queued.
        #[arg(long)]
        remove: bool,
    },
    /// Move a function's dead letters back to its work queue, attempts reset.
    Replay {
        /// The function's name.
        function: String,
    },
    /// Receive signed-webhook posts on loopback and print them (no broker needed).
    WebhookSink(webhook_sink::WebhookSinkArgs),
    /// Run the whole city on this machine, functions scaled from zero.
    Up(city::UpArgs),
    /// Per function: replicas, pending work, dead letters, last cold start.
    Status(status::StatusArgs),
    /// Measure cold starts of a function at zero replicas.
    Coldstart(coldstart::ColdstartArgs),
    /// Run every benchmark of the project and print one table (--quick: about two minutes).
    Bench(bench::BenchArgs),
}

/// A broker connection with a confirm-mode publisher.
async fn connect(url: &str) -> anyhow::Result<(Connection, Publisher)> {
    let connection = Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("safecity-cli".into()),
    )
    .await
    .with_context(|| format!("cannot connect to {}", redact_url(url)))?;
    let publisher = Publisher::open(&connection).await?;
    Ok((connection, publisher))
}

/// Runs one command, writing human-readable lines to stdout; the process's
/// exit code on success (`safecity up --once` exits 1 when a check failed).
pub async fn execute(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::WebhookSink(args) => return webhook_sink::run(args).await.map(|()| 0),
        Command::Up(args) => return city::up(args).await,
        Command::Status(args) => return status::run(args).await.map(|()| 0),
        Command::Coldstart(args) => return coldstart::run(args, &cli.amqp_url).await.map(|()| 0),
        Command::Bench(args) => return Ok(bench::run(args).await?),
        _ => {}
    }
    let (connection, publisher) = connect(&cli.amqp_url).await?;
    match cli.command {
        Command::Publish(args) => publish::events(&publisher, &args).await?,
        Command::PublishRaw {
            routing_key,
            body,
            content_type,
        } => publish::raw(&publisher, &routing_key, &body, &content_type).await?,
        Command::DeadLetters {
            function,
            limit,
            remove,
        } => dead_letters::show(&publisher, &function, limit, remove).await?,
        Command::Replay { function } => dead_letters::replay(&publisher, &function).await?,
        Command::WebhookSink(_)
        | Command::Up(_)
        | Command::Status(_)
        | Command::Coldstart(_)
        | Command::Bench(_) => {
            unreachable!("handled before connecting")
        }
    }
    publisher.channel().close(200, "done".into()).await.ok();
    tokio::time::timeout(Duration::from_secs(2), connection.close(200, "done".into()))
        .await
        .ok();
    Ok(0)
}
