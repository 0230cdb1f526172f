//! The caption function process.

use anyhow::Context as _;
use safecity_caption::{CameraRegistry, CaptionConfig, CaptionFunction, TemplateCaptioner};
use safecity_social::{Ledger, NotifierConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = CaptionConfig::from_env()?;
    let notifier = NotifierConfig::from_env()?.build();
    let registry = match &config.registry {
        Some(path) => CameraRegistry::load(path)?,
        None => CameraRegistry::default(),
    };
    let ledger = Ledger::open(&config.database_url, "caption")
        .await
        .context("opening the post ledger (DATABASE_URL)")?;
    let function = CaptionFunction::new(
        notifier,
        TemplateCaptioner,
        ledger,
        registry,
        config.hide_people,
    );
    safecity_runtime::run(function).await?;
    Ok(())
}
