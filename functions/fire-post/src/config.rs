//! fire-post settings, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://fire-post.db?mode=rwc` | post ledger (SQLite file, or `postgres://…` shared by replicas) |
//! | `SAFECITY_STORM_MAX_POSTS` | `3` | posts per region per window |
//! | `SAFECITY_STORM_WINDOW` | `60s` | the window |
//! | `SAFECITY_HIDE_PEOPLE` | `true` | pixelate people in snapshots (again: the detector already did, at the source) |
//! | `SAFECITY_FIRE_POST_ON_CLOSE` | `false` | also post once when an incident is closed ("no longer detected") |
//!
//! The notifier is configured by `safecity_social::NotifierConfig`.

use safecity_shell::env::{Env, EnvError, process_env};

pub use safecity_social::StormLimit;

/// fire-post's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePostConfig {
    /// Ledger database URL.
    pub database_url: String,
    /// Storm control.
    pub storm: StormLimit,
    /// Whether people in snapshots are pixelated.
    pub hide_people: bool,
    /// Whether a closed incident gets its "no longer detected" post.
    pub close_posts: bool,
}

impl FirePostConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        FirePostConfig::from_lookup(process_env)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env::new(&lookup);
        let database_url =
            safecity_social::config::database_url(&env, "sqlite://fire-post.db?mode=rwc")?;
        let max_posts = env.integer("SAFECITY_STORM_MAX_POSTS", "3", 1..=u32::MAX)?;
        let window = env.positive_duration("SAFECITY_STORM_WINDOW", "60s")?;
        let hide_people = safecity_social::config::hide_people(&env)?;
        let close_posts = env.flag("SAFECITY_FIRE_POST_ON_CLOSE", false)?;
        Ok(FirePostConfig {
            database_url,
            storm: StormLimit { max_posts, window },
            hide_people,
            close_posts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_and_errors() {
        let config = FirePostConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(config.storm.max_posts, 3);
        assert_eq!(config.storm.window, Duration::from_secs(60));
        assert!(config.hide_people);
        assert!(!config.close_posts);
        let on = FirePostConfig::from_lookup(|n| {
            (n == "SAFECITY_FIRE_POST_ON_CLOSE").then(|| "true".to_owned())
        })
        .expect("on");
        assert!(on.close_posts);
        for (variable, value) in [
            ("SAFECITY_FIRE_POST_ON_CLOSE", "sometimes"),
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
