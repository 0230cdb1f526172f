//! What a function posted, per incident: the record that makes a post happen
//! at most once however often an incident is delivered or detected.
//!
//! States of an incident: `posted` (its own post went out), `held` (the
//! region's rate limit was reached; it waits to be merged into a follow-up),
//! `pending` (claimed by a post whose outcome is not known yet: being sent,
//! or sent with the answer lost), `merged` (covered by a follow-up post).
//! Every post is also logged per region for the rate limit: a post reserves
//! its slot before it is sent, so concurrent handlers and replicas never
//! exceed the limit together; a slot whose post may be out is never given
//! back.

use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Row as _};

use crate::migrate::{Migration, connect, migrate};
use crate::post::Published;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "incidents and posts",
        sql: "CREATE TABLE social_incidents (
              function TEXT NOT NULL,
              incident_id TEXT NOT NULL,
              region TEXT NOT NULL,
              state TEXT NOT NULL,
              summary TEXT NOT NULL,
              received_at BIGINT NOT NULL,
              post_id TEXT,
              PRIMARY KEY (function, incident_id)
          );
          CREATE TABLE social_posts (
              function TEXT NOT NULL,
              slot TEXT NOT NULL,
              region TEXT NOT NULL,
              post_id TEXT,
              kind TEXT NOT NULL,
              posted_at BIGINT NOT NULL,
              PRIMARY KEY (function, slot)
          );
          CREATE INDEX social_posts_by_region ON social_posts (function, region, posted_at);",
    },
    Migration {
        version: 2,
        description: "the slot of the post that covers (or will cover) an incident",
        sql: "ALTER TABLE social_incidents ADD COLUMN slot TEXT;",
    },
];

/// A ledger failure (the database is unreachable or refused a statement).
#[derive(Debug, thiserror::Error)]
#[error("post ledger: {0}")]
pub struct LedgerError(#[from] sqlx::Error);

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    /// Its own post went out.
    Posted,
    /// Waiting for a follow-up post.
    Held,
    /// Covered by a follow-up post.
    Merged,
    /// Claimed by a post whose outcome is not known yet (see [`Ledger::claim`]).
    Pending,
}

/// An incident waiting for a follow-up post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldIncident {
    /// Incident id.
    pub incident_id: String,
    /// One line describing it.
    pub summary: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// Kind of a post in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// One incident's alert.
    Alert,
    /// A post covering several held incidents.
    FollowUp,
}

/// The post ledger of one function.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    function: String,
    postgres: bool,
}

fn held_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<HeldIncident>, LedgerError> {
    rows.into_iter()
        .map(|row| {
            Ok(HeldIncident {
                incident_id: row.try_get("incident_id")?,
                summary: row.try_get("summary")?,
                received_at: DateTime::from_timestamp_millis(row.try_get("received_at")?)
                    .unwrap_or_default(),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(LedgerError)
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl Ledger {
    /// Opens (and migrates) the ledger at `url` for `function`.
    pub async fn open(url: &str, function: &str) -> Result<Self, LedgerError> {
        let pool = connect(url).await?;
        migrate(&pool, "social", MIGRATIONS).await?;
        Ok(Ledger {
            pool,
            function: function.to_owned(),
            postgres: url.starts_with("postgres"),
        })
    }

    /// The state of an incident, if the ledger has seen it.
    pub async fn state(&self, incident_id: &str) -> Result<Option<IncidentState>, LedgerError> {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM social_incidents WHERE function = $1 AND incident_id = $2",
        )
        .bind(&self.function)
        .bind(incident_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(state.map(|s| match s.as_str() {
            "posted" => IncidentState::Posted,
            "held" => IncidentState::Held,
            "pending" => IncidentState::Pending,
            _ => IncidentState::Merged,
        }))
    }

    /// Posts made for `region` since `since`.
    pub async fn posts_since(
        &self,
        region: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM social_posts WHERE function = $1 AND region = $2 AND posted_at >= $3",
        )
        .bind(&self.function)
        .bind(region)
        .bind(millis(since))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Time of the oldest post for `region` since `since`, if any.
    pub async fn oldest_post_since(
        &self,
        region: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(posted_at) FROM social_posts WHERE function = $1 AND region = $2 AND posted_at >= $3",
        )
        .bind(&self.function)
        .bind(region)
        .bind(millis(since))
        .fetch_one(&self.pool)
        .await?;
        Ok(oldest.and_then(DateTime::from_timestamp_millis))
    }

    /// Holds an incident for a follow-up post (no effect if already known).
    pub async fn hold(
        &self,
        incident_id: &str,
        region: &str,
        summary: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO social_incidents (function, incident_id, region, state, summary, received_at)
             VALUES ($1, $2, $3, 'held', $4, $5)
             ON CONFLICT (function, incident_id) DO NOTHING",
        )
        .bind(&self.function)
        .bind(incident_id)
        .bind(region)
        .bind(summary)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The incidents of `region` waiting for a follow-up, oldest first.
    pub async fn held(&self, region: &str) -> Result<Vec<HeldIncident>, LedgerError> {
        let rows = sqlx::query(
            "SELECT incident_id, summary, received_at FROM social_incidents
             WHERE function = $1 AND region = $2 AND state = 'held'
             ORDER BY received_at, incident_id",
        )
        .bind(&self.function)
        .bind(region)
        .fetch_all(&self.pool)
        .await?;
        held_rows(rows)
    }

    /// Reserves one post for `region` under the rate limit: `slot` (the
    /// post's idempotency key) counts from now on. True if reserved now or
    /// earlier (a retry of the same post); false if the region had `max_posts`
    /// posts since `window_start`. Atomic across replicas: SQLite runs the
    /// conditional insert as one statement on its single connection;
    /// PostgreSQL takes a transaction-scoped advisory lock per region.
    pub async fn reserve(
        &self,
        slot: &str,
        region: &str,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        max_posts: u32,
    ) -> Result<bool, LedgerError> {
        self.claim(slot, region, &[], now, window_start, max_posts)
            .await
    }

    /// Gives a reserved slot back (the post did not go out).
    pub async fn release(&self, slot: &str) -> Result<(), LedgerError> {
        sqlx::query(
            "DELETE FROM social_posts WHERE function = $1 AND slot = $2 AND post_id IS NULL",
        )
        .bind(&self.function)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reserves `slot` under the rate limit (as [`Ledger::reserve`]) and, in
    /// the same transaction, marks `incidents` as `pending` under it: from now
    /// on they belong to this post and to no other, whatever happens to the
    /// request. True if claimed now or earlier (a retry of the same post).
    pub async fn claim(
        &self,
        slot: &str,
        region: &str,
        incidents: &[(&str, &str)],
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        max_posts: u32,
    ) -> Result<bool, LedgerError> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))::text")
                .bind(&self.function)
                .bind(region)
                .execute(&mut *tx)
                .await?;
        }
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM social_posts WHERE function = $1 AND slot = $2")
                .bind(&self.function)
                .bind(slot)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            let inserted = sqlx::query(
                "INSERT INTO social_posts (function, slot, region, kind, posted_at)
                 SELECT $1, $2, $3, 'pending', $4
                 WHERE (SELECT COUNT(*) FROM social_posts
                        WHERE function = $1 AND region = $3 AND posted_at >= $5) < $6",
            )
            .bind(&self.function)
            .bind(slot)
            .bind(region)
            .bind(millis(now))
            .bind(millis(window_start))
            .bind(i64::from(max_posts))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.commit().await?;
                return Ok(false);
            }
        }
        for (incident_id, summary) in incidents {
            sqlx::query(
                "INSERT INTO social_incidents (function, incident_id, region, state, summary, received_at, slot)
                 VALUES ($1, $2, $3, 'pending', $4, $5, $6)
                 ON CONFLICT (function, incident_id) DO UPDATE SET state = 'pending', slot = excluded.slot",
            )
            .bind(&self.function)
            .bind(*incident_id)
            .bind(region)
            .bind(*summary)
            .bind(millis(now))
            .bind(slot)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Undoes a [`Ledger::claim`] whose post definitely did not go out: the
    /// slot is given back, and the incidents return to `held` (a follow-up)
    /// or are forgotten (an alert: the next delivery starts over).
    pub async fn unclaim(&self, slot: &str, kind: PostKind) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM social_posts WHERE function = $1 AND slot = $2 AND post_id IS NULL",
        )
        .bind(&self.function)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        let statement = match kind {
            PostKind::Alert => {
                "DELETE FROM social_incidents WHERE function = $1 AND slot = $2 AND state = 'pending'"
            }
            PostKind::FollowUp => {
                "UPDATE social_incidents SET state = 'held', slot = NULL
                 WHERE function = $1 AND slot = $2 AND state = 'pending'"
            }
        };
        sqlx::query(statement)
            .bind(&self.function)
            .bind(slot)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The slot an incident is `pending` under, if it is.
    pub async fn pending_slot(&self, incident_id: &str) -> Result<Option<String>, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT slot FROM social_incidents
             WHERE function = $1 AND incident_id = $2 AND state = 'pending'",
        )
        .bind(&self.function)
        .bind(incident_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// The incidents `pending` under `slot`, oldest first.
    pub async fn claimed(&self, slot: &str) -> Result<Vec<HeldIncident>, LedgerError> {
        let rows = sqlx::query(
            "SELECT incident_id, summary, received_at FROM social_incidents
             WHERE function = $1 AND slot = $2 AND state = 'pending'
             ORDER BY received_at, incident_id",
        )
        .bind(&self.function)
        .bind(slot)
        .fetch_all(&self.pool)
        .await?;
        held_rows(rows)
    }

    /// Records that the post of `slot` went out, covering `incidents` (one for
    /// an alert, the held ones for a follow-up), in one transaction.
    pub async fn record(
        &self,
        kind: PostKind,
        slot: &str,
        incidents: &[(&str, &str)],
        region: &str,
        published: &Published,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let (kind_text, state) = match kind {
            PostKind::Alert => ("alert", "posted"),
            PostKind::FollowUp => ("follow-up", "merged"),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO social_posts (function, slot, region, post_id, kind, posted_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (function, slot) DO UPDATE SET post_id = excluded.post_id, kind = excluded.kind",
        )
        .bind(&self.function)
        .bind(slot)
        .bind(region)
        .bind(&published.id)
        .bind(kind_text)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        for (incident_id, summary) in incidents {
            sqlx::query(
                "INSERT INTO social_incidents (function, incident_id, region, state, summary, received_at, post_id, slot)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (function, incident_id) DO UPDATE SET state = excluded.state, post_id = excluded.post_id, slot = excluded.slot",
            )
            .bind(&self.function)
            .bind(*incident_id)
            .bind(region)
            .bind(state)
            .bind(*summary)
            .bind(millis(now))
            .bind(&published.id)
            .bind(slot)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Posts logged for `region` (for tests and operators).
    pub async fn post_count(&self, region: &str) -> Result<i64, LedgerError> {
        self.posts_since(region, DateTime::<Utc>::MIN_UTC).await
    }
}
