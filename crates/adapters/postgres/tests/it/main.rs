//! The PostgreSQL adapter against a real server: every conformance suite, row-level security,
//! encryption at rest, and dropped connections. Each test works in a schema of its own.
//!
//! The server is `DATABASE_URL`, else the local one at `127.0.0.1:5432`, else a testcontainer.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod faults;
mod group_commit;
mod plans;
mod security;
mod server;

use std::sync::Arc;

use adapter_postgres::{MasterKey, PgConfig, PgStore};
use domain::tenant::Secret;
use sqlx::Connection;

/// `DATABASE_URL`, the local server, or a testcontainer (see `testkit`).
pub async fn database_url() -> String {
    testkit::postgres_url().await
}

pub fn master_key(c: char) -> MasterKey {
    MasterKey::from_hex(&c.to_string().repeat(64)).unwrap()
}

/// A schema name no other test uses; the creation time lets later runs drop leftovers.
pub fn fresh_schema() -> String {
    let secs = time::OffsetDateTime::now_utc().unix_timestamp();
    format!(
        "it_{secs}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Drops test schemas older than two hours (left by earlier runs), once per process.
async fn drop_old_schemas() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let Ok(mut conn) = sqlx::PgConnection::connect(&database_url().await).await else {
            return;
        };
        let cutoff = time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 3600;
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'it\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for s in schemas {
            let old = s
                .split('_')
                .nth(1)
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| t < cutoff);
            if old {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {s} CASCADE"
                )))
                .execute(&mut conn)
                .await;
            }
        }
    })
    .await;
}

pub async fn connect(schema: &str, key: MasterKey) -> PgStore {
    connect_with(schema, key, |_| {}).await
}

/// [`connect`] with the configuration adjusted by `adjust`.
pub async fn connect_with(
    schema: &str,
    key: MasterKey,
    adjust: impl FnOnce(&mut PgConfig),
) -> PgStore {
    drop_old_schemas().await;
    let url = database_url().await;
    let mut config = PgConfig::new(Secret::new(url.clone()).unwrap(), key);
    config.schema = Some(schema.to_owned());
    config.max_connections = 4;
    adjust(&mut config);
    match PgStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!(
            "these tests need PostgreSQL and could not use {url}: {e} ({:?}).\n\
             Set DATABASE_URL to a reachable server, or start the local one (see .ci/run).",
            std::error::Error::source(&e)
        ),
    }
}

pub async fn store() -> Arc<PgStore> {
    Arc::new(connect(&fresh_schema(), master_key('a')).await)
}
