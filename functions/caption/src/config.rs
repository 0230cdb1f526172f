//! caption settings, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://caption.db?mode=rwc` | post ledger |
//! | `SAFECITY_CAMERA_REGISTRY` | none | camera registry TOML with place names |
//! | `SAFECITY_HIDE_PEOPLE` | `true` | pixelate people in snapshots |
//!
//! The notifier is configured by `safecity_social::NotifierConfig`.

use safecity_shell::env::{Env, EnvError, process_env};

/// caption's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionConfig {
    /// Ledger database URL.
    pub database_url: String,
    /// Camera registry path.
    pub registry: Option<String>,
    /// Whether people in snapshots are pixelated.
    pub hide_people: bool,
}

impl CaptionConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        CaptionConfig::from_lookup(process_env)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env::new(&lookup);
        let database_url =
            safecity_social::config::database_url(&env, "sqlite://caption.db?mode=rwc")?;
        let hide_people = safecity_social::config::hide_people(&env)?;
        Ok(CaptionConfig {
            database_url,
            registry: env.optional("SAFECITY_CAMERA_REGISTRY"),
            hide_people,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let config = CaptionConfig::from_lookup(|_| None).expect("defaults");
        assert!(config.hide_people && config.registry.is_none());
        let err = CaptionConfig::from_lookup(|n| (n == "SAFECITY_HIDE_PEOPLE").then(|| "x".into()))
            .expect_err("bad bool");
        assert_eq!(err.variable, "SAFECITY_HIDE_PEOPLE");
    }
}
