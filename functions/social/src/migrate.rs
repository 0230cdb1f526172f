//! Versioned schema migrations for the functions' own tables, portable between
//! SQLite and PostgreSQL.
//!
//! Each component (e.g. `social`, `map-pin`) owns an ordered list of
//! migrations; `safecity_migrations` records which versions ran. A migration
//! runs in one transaction with its record, so it applies once.

use chrono::Utc;
use sqlx::AnyPool;

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

/// Applies the migrations of `component` that have not run yet.
pub async fn migrate(
    pool: &AnyPool,
    component: &str,
    migrations: &[Migration],
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS safecity_migrations (
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL,
            PRIMARY KEY (component, version)
        )",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM safecity_migrations WHERE component = $1")
            .bind(component)
            .fetch_all(pool)
            .await?;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
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
        tx.commit().await?;
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
