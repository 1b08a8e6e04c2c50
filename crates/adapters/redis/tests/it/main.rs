//! The Redis adapter against a real server: every conformance suite of its ports, a value of the
//! wrong type read as a miss, and a server restart. Each test works in a namespace of its own.
//!
//! The server is `REDIS_URL`, else the local one at `127.0.0.1:6379`, else a testcontainer.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod faults;

use std::sync::Arc;

use adapter_redis::{RedisConfig, RedisStore};
use domain::tenant::Secret;

/// `REDIS_URL`, the local server, or a testcontainer (see `testkit`).
pub async fn redis_url() -> String {
    testkit::redis_url().await
}

pub fn fresh_namespace() -> String {
    let secs = time::OffsetDateTime::now_utc().unix_timestamp();
    format!(
        "it_{secs}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Deletes the keys of test namespaces older than two hours, once per process.
async fn drop_old_namespaces() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let Ok(client) = redis::Client::open(redis_url().await) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let cutoff = time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 3600;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("{it_*")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let old: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                k.split('_')
                    .nth(1)
                    .and_then(|t| t.parse::<i64>().ok())
                    .is_some_and(|t| t < cutoff)
            })
            .collect();
        for chunk in old.chunks(500) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    })
    .await;
}

pub async fn connect(url: &str, namespace: &str) -> RedisStore {
    let config = RedisConfig {
        url: Secret::new(url).unwrap(),
        namespace: namespace.to_owned(),
    };
    match RedisStore::connect(&config).await {
        Ok(s) => s,
        Err(e) => panic!(
            "these tests need Redis and could not use {url}: {e} ({:?}).\n\
             Set REDIS_URL to a reachable server, or start the local one (see .ci/run).",
            std::error::Error::source(&e)
        ),
    }
}

pub async fn store() -> Arc<RedisStore> {
    drop_old_namespaces().await;
    Arc::new(connect(&redis_url().await, &fresh_namespace()).await)
}
