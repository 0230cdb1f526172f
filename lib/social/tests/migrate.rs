//! Concurrent migrations of one new database, as when several replicas start
//! at once: on a real PostgreSQL (a fresh, uniquely named database) and on a
//! SQLite file.

use std::sync::Arc;

use chrono::Utc;
use safecity_social::migrate::{Migration, connect, migrate};
use safecity_social::testkit::TestDatabase;
use tokio::sync::Barrier;

/// How many processes migrate at once.
const MIGRATORS: usize = 8;

/// Two versions; neither is idempotent (each fails if run twice), so a
/// version applied twice is an error, not a silent success. The first also
/// writes 100 000 rows, which widens the window in which a racing migrator
/// could read an empty version table.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "pins",
        sql: "CREATE TABLE pins (
                  incident_id TEXT PRIMARY KEY,
                  updated_at BIGINT NOT NULL
              );
              CREATE INDEX pins_by_update ON pins (updated_at);
              WITH RECURSIVE seed(i) AS (
                  SELECT 1 UNION ALL SELECT i + 1 FROM seed WHERE i < 100000
              )
              INSERT INTO pins (incident_id, updated_at) SELECT 'seed-' || i, i FROM seed;",
    },
    Migration {
        version: 2,
        description: "pin notes",
        sql: "ALTER TABLE pins ADD COLUMN note TEXT;",
    },
];

/// Runs [`MIGRATORS`] migrations of `url` at once, each on its own pool (its
/// own connections, as separate processes would), released together by a
/// barrier; returns each one's result.
async fn migrate_concurrently(url: &str) -> Vec<Result<(), String>> {
    let barrier = Arc::new(Barrier::new(MIGRATORS));
    let mut tasks = Vec::new();
    for _ in 0..MIGRATORS {
        let url = url.to_owned();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let pool = connect(&url).await.map_err(|e| e.to_string())?;
            barrier.wait().await;
            let result = migrate(&pool, "race", MIGRATIONS)
                .await
                .map_err(|e| e.to_string());
            pool.close().await;
            result
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the migrator task does not panic"));
    }
    results
}

/// `(version, times recorded)` of the `race` component, by version.
async fn recorded_versions(url: &str) -> Vec<(i64, i64)> {
    let pool = connect(url).await.expect("connect");
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT version, COUNT(*) FROM safecity_migrations
         WHERE component = $1 GROUP BY version ORDER BY version",
    )
    .bind("race")
    .fetch_all(&pool)
    .await
    .expect("read the version table");
    // The schema is the migrated one: the column of version 2 exists.
    sqlx::query("INSERT INTO pins (incident_id, updated_at, note) VALUES ($1, $2, $3)")
        .bind("inc-1")
        .bind(1_i64)
        .bind("migrated")
        .execute(&pool)
        .await
        .expect("the migrated schema takes a row");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_a_new_postgresql_database_all_succeed_once() {
    let database = TestDatabase::create("migrate_race").await;
    let results = migrate_concurrently(&database.url).await;
    let versions = recorded_versions(&database.url).await;
    database.drop_database().await;
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "failed migrations: {failures:?}");
    assert_eq!(results.len(), MIGRATORS);
    assert_eq!(versions, vec![(1, 1), (2, 1)], "each version recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_a_new_sqlite_file_all_succeed_once() {
    let dir = std::env::temp_dir().join(format!(
        "safecity-migrate-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("race.db").display());
    let results = migrate_concurrently(&url).await;
    let versions = recorded_versions(&url).await;
    std::fs::remove_dir_all(&dir).ok();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "failed migrations: {failures:?}");
    assert_eq!(results.len(), MIGRATORS);
    assert_eq!(versions, vec![(1, 1), (2, 1)], "each version recorded once");
}
