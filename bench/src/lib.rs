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
        // SCAN, not KEYS: a run leaves some 400,000 keys, and KEYS over them outlasts the
        // client's response timeout.
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("{bench_*")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await
            else {
                break;
            };
            if !keys.is_empty() {
                let _: Result<i64, _> =
                    redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
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

    /// How many samples exceed `limit`.
    pub fn count_over(&self, limit: Duration) -> usize {
        self.0.iter().filter(|d| **d > limit).count()
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

/// The answer times of an ideal intake (ADR 0022), one that costs no CPU and group-commits:
/// `total` requests arrive `rate` a second from the start; whenever one has arrived and no sync
/// is running, one `sync` runs, and every request that had arrived when it began is answered when
/// it ends. `now` reads the time since the start and `wait` waits that long; the benchmark passes
/// the real clock, tests a simulated one. The first error of `sync` ends it.
pub fn ideal_intake<E>(
    rate: u64,
    total: u64,
    now: impl Fn() -> Duration,
    mut wait: impl FnMut(Duration),
    mut sync: impl FnMut() -> Result<(), E>,
) -> Result<Latencies, E> {
    let rate = rate.max(1);
    let arrival = |i: u64| Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate);
    let mut answers = Latencies::default();
    let mut next = 0u64;
    while next < total {
        if let Some(early) = arrival(next).checked_sub(now()) {
            wait(early);
        }
        let began = now();
        let arrived = began.as_nanos() * u128::from(rate) / 1_000_000_000 + 1;
        let arrived = u64::try_from(arrived)
            .unwrap_or(u64::MAX)
            .clamp(next + 1, total);
        sync()?;
        let ended = now();
        for i in next..arrived {
            answers.push(ended.saturating_sub(arrival(i)));
        }
        next = arrived;
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Runs [`ideal_intake`] on a simulated clock, each sync taking the next of `syncs` (then 0).
    fn simulate(rate: u64, total: u64, syncs: &[Duration]) -> Latencies {
        let clock = Cell::new(Duration::ZERO);
        let mut taken = syncs.iter();
        let result: Result<_, ()> = ideal_intake(
            rate,
            total,
            || clock.get(),
            |d| clock.set(clock.get() + d),
            || {
                clock.set(clock.get() + taken.next().copied().unwrap_or_default());
                Ok(())
            },
        );
        result.unwrap_or_default()
    }

    #[test]
    fn an_ideal_intake_on_instant_syncs_answers_at_once() {
        let answers = simulate(1_000, 100, &[]);
        assert_eq!(answers.len(), 100);
        assert_eq!(answers.percentile(100.0), Duration::ZERO);
    }

    #[test]
    fn requests_arriving_during_a_slow_sync_wait_for_it_and_share_the_next() {
        // Request 0 starts a 50 ms sync; requests 1..=50 arrive meanwhile (1 ms apart) and are
        // answered together by the next sync, each after what was left of the stall.
        let answers = simulate(1_000, 200, &[Duration::from_millis(50)]);
        assert_eq!(answers.len(), 200);
        assert_eq!(answers.percentile(100.0), Duration::from_millis(50));
        assert_eq!(answers.count_over(Duration::ZERO), 50);
        assert_eq!(answers.count_over(Duration::from_millis(25)), 25);
    }

    #[test]
    fn a_failing_sync_ends_the_probe_with_its_error() {
        let clock = Cell::new(Duration::ZERO);
        let result = ideal_intake(
            1_000,
            10,
            || clock.get(),
            |d| clock.set(clock.get() + d),
            || Err("disk gone"),
        );
        assert_eq!(result.err(), Some("disk gone"));
    }

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

/// A keep-alive HTTP/1.1 connection that writes prepared requests and reads only what it must of
/// the answer (status, `content-length`, body): a lean load generator, so that the cores this
/// machine has go to the server under test rather than to the client.
#[derive(Debug)]
pub struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and returns the answer's status code.
    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (head_end, status, length) = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head"))?;
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| bad("status line"))?;
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| bad("no content-length"))?;
                break (end + 4, status, length);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(bad("closed"));
            }
        };
        while self.buf.len() < head_end + length {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(bad("closed"));
            }
        }
        Ok(status)
    }
}

/// A `POST` with `headers` and `body`, as bytes for [`RawConn::send`].
pub fn raw_post(host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
