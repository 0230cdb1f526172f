//! fire-post settings, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://fire-post.db?mode=rwc` | post ledger (SQLite file, or `postgres://…` shared by replicas) |
//! | `SAFECITY_STORM_MAX_POSTS` | `3` | posts per region per window |
//! | `SAFECITY_STORM_WINDOW` | `60s` | the window |
//! | `SAFECITY_HIDE_PEOPLE` | `true` | pixelate people in snapshots |
//!
//! The notifier is configured by `safecity_social::NotifierConfig`.

use std::time::Duration;

pub use safecity_social::ConfigError;

/// How many posts a region may get per window; the rest merge into a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormLimit {
    /// Posts per window per region (at least 1).
    pub max_posts: u32,
    /// The sliding window.
    pub window: Duration,
}

/// fire-post's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePostConfig {
    /// Ledger database URL.
    pub database_url: String,
    /// Storm control.
    pub storm: StormLimit,
    /// Whether people in snapshots are pixelated.
    pub hide_people: bool,
}

impl FirePostConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        FirePostConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url =
            safecity_social::config::database_url(&lookup, "sqlite://fire-post.db?mode=rwc")?;
        let max_text = lookup("SAFECITY_STORM_MAX_POSTS").unwrap_or_else(|| "3".to_owned());
        let max_posts = max_text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError {
                variable: "SAFECITY_STORM_MAX_POSTS",
                reason: format!("`{max_text}` is not a positive integer"),
            })?;
        let window_text = lookup("SAFECITY_STORM_WINDOW").unwrap_or_else(|| "60s".to_owned());
        let window = humantime::parse_duration(window_text.trim())
            .ok()
            .filter(|w| !w.is_zero())
            .ok_or_else(|| ConfigError {
                variable: "SAFECITY_STORM_WINDOW",
                reason: format!("`{window_text}` is not a positive duration like `60s`"),
            })?;
        let hide_people = safecity_social::config::hide_people(&lookup)?;
        Ok(FirePostConfig {
            database_url,
            storm: StormLimit { max_posts, window },
            hide_people,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let config = FirePostConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(config.storm.max_posts, 3);
        assert_eq!(config.storm.window, Duration::from_secs(60));
        assert!(config.hide_people);
        for (variable, value) in [
            ("SAFECITY_STORM_MAX_POSTS", "0"),
            ("SAFECITY_STORM_WINDOW", "soon"),
            ("SAFECITY_HIDE_PEOPLE", "maybe"),
            ("DATABASE_URL", "mysql://x"),
        ] {
            let err =
                FirePostConfig::from_lookup(|name| (name == variable).then(|| value.to_owned()))
                    .expect_err(variable);
            assert_eq!(err.variable, variable);
        }
    }
}
