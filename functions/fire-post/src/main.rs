//! The fire-post function process.

use anyhow::Context as _;
use safecity_fire_post::{FirePost, FirePostConfig};
use safecity_social::{Ledger, NotifierConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = FirePostConfig::from_env()?;
    let notifier = NotifierConfig::from_env()?.build();
    let ledger = Ledger::open(&config.database_url, "fire-post")
        .await
        .context("opening the post ledger (DATABASE_URL)")?;
    let function = FirePost::new(notifier, ledger, config.storm, config.hide_people)
        .with_close_posts(config.close_posts);
    safecity_runtime::run(function).await?;
    Ok(())
}
