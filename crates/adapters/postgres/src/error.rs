use ports::error::PortError;

/// Errors of setting the adapter up; operations return [`PortError`].
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid PostgreSQL configuration: {0}")]
    Config(String),
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the PostgreSQL schema")]
    Migrate(#[source] sqlx::Error),
}

/// Maps a driver error onto the port contract, keeping it as the source.
pub(crate) fn db(e: sqlx::Error) -> PortError {
    match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // unique_violation
            Some("23505") => PortError::Conflict(d.message().to_owned()),
            // serialization_failure, deadlock_detected, admin shutdown, cannot connect now
            Some("40001" | "40P01" | "57P01" | "57P03") => PortError::unavailable("PostgreSQL", e),
            _ => PortError::backend("PostgreSQL", e),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => PortError::unavailable("PostgreSQL", e),
        _ => PortError::backend("PostgreSQL", e),
    }
}

/// A row that does not decode into the domain (corrupt or foreign data).
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::backend(format!("PostgreSQL row ({what})"), e.to_string())
}
