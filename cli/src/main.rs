//! `safecity` command-line tool; see the library docs for the commands.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = safecity_cli::Cli::parse();
    // `safecity up` runs the city: give it both cores' worth of threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(safecity_cli::execute(cli))?;
    std::process::exit(code)
}
