//! SQLite adapters for the embedded mode: the queue, dead letters, inbox and every store in one
//! file, in WAL mode. One process owns the file; its many tasks share a pool whose single writer
//! connection serialises the queue's multi-statement transactions (each begins `IMMEDIATE`).
//! Time is the process clock, stored as milliseconds. There is no row-level security: every query
//! filters by tenant, and the conformance suites check isolation.

mod queue;
mod stores;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ports::error::{PortError, PortResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub use sealing::MasterKey;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum SqliteSetupError {
    #[error("cannot open the SQLite database")]
    Open(#[source] sqlx::Error),
    #[error("cannot migrate the SQLite database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// The SQLite adapter. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    cipher: Arc<sealing::Cipher>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and runs the migrations.
    pub async fn open(path: &Path, master_key: &MasterKey) -> Result<Self, SqliteSetupError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(SqliteSetupError::Open)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(SqliteSetupError::Migrate)?;
        Ok(Self {
            pool,
            cipher: Arc::new(sealing::Cipher::new(master_key)),
            notify: Arc::new(Notify::new()),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> PortResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_ms(ms: i64) -> PortResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| corrupt("time", e))
}

pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Maps a driver error onto the port contract, keeping it as the source.
pub(crate) fn db(e: sqlx::Error) -> PortError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            PortError::Conflict(d.message().to_owned())
        }
        // SQLITE_BUSY / SQLITE_LOCKED
        sqlx::Error::Database(d)
            if matches!(d.code().as_deref(), Some("5" | "6" | "517" | "262")) =>
        {
            PortError::unavailable("SQLite (busy)", e)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => PortError::unavailable("SQLite", e),
        _ => PortError::backend("SQLite", e),
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::backend(format!("SQLite row ({what})"), e.to_string())
}
