//! Shared pieces of the benchmarks: backends to measure and latency summaries.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::MemoryQueue;
use adapter_postgres::{MasterKey, PgConfig, PgStore};
use adapter_redis::{RedisConfig, RedisStore};
use adapter_sqlite::SqliteStore;
use domain::tenant::Secret;
use ports::queue::{DeadLetterQueue, JobQueue};

/// A queue backend under measurement.
pub trait Queue: JobQueue + DeadLetterQueue + 'static {}
impl<T: JobQueue + DeadLetterQueue + 'static> Queue for T {}

/// A fixed master key for benchmark stores.
pub fn key() -> Result<MasterKey, String> {
    MasterKey::from_hex(&"b".repeat(64)).map_err(|e| e.to_string())
}

/// A unique `bench_…` name (schemas, namespaces, files); leftovers are removed by later runs.
pub fn stamp() -> String {
    format!(
        "bench_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Removes what earlier benchmark runs left: `bench_*` schemas, `{bench_*` keys and database files.
pub async fn remove_leftovers(pg_url: &str, redis_url: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(pg_url).await {
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, 'bench_')",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for s in schemas
            .iter()
            .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
                .execute(&mut conn)
                .await;
        }
    }
    if let Ok(client) = redis::Client::open(redis_url)
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("{bench_*")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("bench_")
            && [".db", ".db-wal", ".db-shm"]
                .iter()
                .any(|ext| name.ends_with(ext))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Every backend, each fresh (own schema, namespace or file). The servers are `DATABASE_URL` and
/// `REDIS_URL`, defaulting to the local ones.
pub async fn backends() -> Result<Vec<(&'static str, Arc<dyn Queue>)>, String> {
    let pg_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    remove_leftovers(&pg_url, &redis_url).await;
    let mut pg = PgConfig::new(Secret::new(pg_url).map_err(|e| e.to_string())?, key()?);
    pg.schema = Some(stamp());
    let pg = PgStore::connect(&pg)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    let redis = RedisStore::connect(&RedisConfig {
        url: Secret::new(redis_url).map_err(|e| e.to_string())?,
        namespace: stamp(),
    })
    .await
    .map_err(|e| format!("Redis: {e}"))?;
    let path = std::env::temp_dir().join(format!("{}.db", stamp()));
    let sqlite = SqliteStore::open(&path, &key()?)
        .await
        .map_err(|e| format!("SQLite: {e}"))?;
    Ok(vec![
        ("memory", Arc::new(MemoryQueue::default())),
        ("sqlite", Arc::new(sqlite)),
        ("postgres", Arc::new(pg)),
        ("redis", Arc::new(redis)),
    ])
}

/// Per-operation latencies of one benchmark.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Adds another set's samples.
    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-th percentile (0–100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// Operations per second of one client issuing them back to back.
    pub fn per_second(&self) -> f64 {
        let total: Duration = self.0.iter().sum();
        if total.is_zero() {
            0.0
        } else {
            self.0.len() as f64 / total.as_secs_f64()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.percentile(50.0), Duration::from_millis(50));
        assert_eq!(l.percentile(99.0), Duration::from_millis(99));
        assert_eq!(l.percentile(100.0), Duration::from_millis(100));
        assert!((l.per_second() - 100.0 / 5.05).abs() < 1e-9);
        assert_eq!(Latencies::default().percentile(50.0), Duration::ZERO);
    }
}
