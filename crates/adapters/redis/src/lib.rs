//! Redis adapters: a cache with tenant-scoped keys and tag invalidation, idempotency keys
//! (`SET NX PX`), a GCRA rate limiter shared by every replica (one Lua script), and the job queue
//! on Redis Streams.
//!
//! Every key starts with the namespace as a hash tag (`{ns}:…`), so a deployment's keys share one
//! cluster slot and the queue's multi-key scripts stay atomic. The queue (see `queue.lua`) keeps
//! each job in a hash, each key's jobs in a list whose head alone is deliverable, deliverable heads
//! in a stream per (tenant, partition) read by the consumer group `w`, delayed heads in a sorted
//! set, leases in a sorted set (an expired one is taken over with `XCLAIM`), and dead letters in a
//! stream per tenant.

mod cache;
mod inbox;
mod limiter;
mod queue;
mod scripts;

use domain::tenant::Secret;
use ports::error::PortError;
use redis::aio::ConnectionManager;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`; may hold a password, hence a secret.
    pub url: Secret,
    /// Prefix of every key: lower-case letters, digits, `-` and `_`.
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
}

/// The Redis adapter. Cheap to clone; reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    ns: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub async fn connect(config: &RedisConfig) -> Result<Self, RedisSetupError> {
        let ns = &config.namespace;
        if ns.is_empty()
            || ns.len() > 64
            || !ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(RedisSetupError::Config(format!(
                "namespace {ns:?} must be 1-64 lower-case letters, digits, '-' or '_'"
            )));
        }
        let client = redis::Client::open(config.url.expose())
            .map_err(|_| RedisSetupError::Config("the Redis URL does not parse".into()))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(RedisSetupError::Connect)?;
        Ok(Self {
            conn,
            ns: format!("{{{ns}}}"),
        })
    }

    /// Whether the server persists its data (AOF on, or RDB snapshots scheduled). An error when
    /// `CONFIG GET` is refused, as managed services often do.
    pub async fn persists(&self) -> Result<bool, PortError> {
        let aof: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let save: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        Ok(aof.get(1).is_some_and(|v| v == "yes") || save.get(1).is_some_and(|v| !v.is_empty()))
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.ns)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Maps a client error onto the port contract, keeping it as the source.
pub(crate) fn rerr(e: redis::RedisError) -> PortError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        PortError::unavailable("Redis", e)
    } else {
        PortError::backend("Redis", e)
    }
}
