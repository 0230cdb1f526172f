//! `safecity` command-line tool; see the library docs for the commands.

use clap::Parser as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    safecity_cli::execute(safecity_cli::Cli::parse()).await
}
