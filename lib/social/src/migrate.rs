//! Versioned schema migrations for the functions' own tables, portable between
//! SQLite and PostgreSQL.
//!
//! Each component (e.g. `social`, `map-pin`) owns an ordered list of
//! migrations; `safecity_migrations` records which versions ran.
//!
//! Several processes may start on the same new database at once (replicas of
//! a function, or two functions sharing it). A run therefore reads what was
//! applied and applies the rest in **one transaction that first takes the
//! database's migration lock**: on PostgreSQL a transaction-scoped advisory
//! lock (`pg_advisory_xact_lock`), on SQLite the write lock of a
//! `BEGIN IMMEDIATE` transaction. A concurrent run waits for the lock, then
//! finds every version recorded and applies nothing; each migration applies
//! once, together with its record, or not at all.

use chrono::Utc;
use sqlx::{AnyPool, Executor as _};

/// Key of the PostgreSQL advisory lock every migrator of a database takes
/// (`"safecity"` in ASCII). It is released when the transaction ends.
pub const POSTGRES_LOCK_KEY: i64 = 0x7361_6665_6369_7479;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// SQL valid in both SQLite and PostgreSQL; several statements allowed.
    pub sql: &'static str,
}

/// Applies the migrations of `component` that have not run yet, safely when
/// other processes migrate the same database at the same time (see the module
/// docs). On error nothing of this run is applied.
pub async fn migrate(
    pool: &AnyPool,
    component: &str,
    migrations: &[Migration],
) -> Result<(), sqlx::Error> {
    let postgres = pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres");
    let mut tx = if postgres {
        // READ COMMITTED whatever the server's default: every statement after
        // the lock then sees what the previous lock holder committed.
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        // Waits while another process migrates; released at commit or rollback.
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS migration_lock",
        )
        .bind(POSTGRES_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
        tx
    } else {
        // Takes the database's write lock now (a plain BEGIN would read the
        // versions first and fail to upgrade its lock later); a concurrent
        // migrator waits up to the connection's busy timeout.
        pool.begin_with("BEGIN IMMEDIATE").await?
    };
    // `Executor::execute` rather than `RawSql::execute`: its boxed future is
    // `Send`, so `migrate` can run in a spawned task.
    (&mut *tx)
        .execute(sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS safecity_migrations (
                component TEXT NOT NULL,
                version BIGINT NOT NULL,
                description TEXT NOT NULL,
                applied_at BIGINT NOT NULL,
                PRIMARY KEY (component, version)
            )",
        ))
        .await?;
    let recorded: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM safecity_migrations WHERE component = $1")
            .bind(component)
            .fetch_all(&mut *tx)
            .await?;
    let mut applied = Vec::new();
    for migration in migrations {
        if recorded.contains(&migration.version) {
            continue;
        }
        (&mut *tx).execute(sqlx::raw_sql(migration.sql)).await?;
        sqlx::query(
            "INSERT INTO safecity_migrations (component, version, description, applied_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(component)
        .bind(migration.version)
        .bind(migration.description)
        .bind(Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await?;
        applied.push(migration);
    }
    tx.commit().await?;
    for migration in applied {
        tracing::info!(
            component,
            version = migration.version,
            description = migration.description,
            "schema migrated"
        );
    }
    Ok(())
}

/// Opens a pool for `url` (`sqlite://file.db?mode=rwc` or `postgres://…`).
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let options = sqlx::any::AnyPoolOptions::new().max_connections(if url.starts_with("sqlite") {
        1
    } else {
        8
    });
    options.connect(url).await
}
