//! The ports layer's one error type. Every port method documents which variant it returns when.

use std::time::Duration;

use domain::DomainError;
use domain::ids::{JobId, SystemId};

/// A boxed underlying error, kept as the `source()` of the variant that wraps it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The thing named does not exist (for this tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// A write would break a uniqueness rule (duplicate id, one external record linked to two
    /// Attio records); retrying the same write will not help.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An optimistic-concurrency write lost a race: what it was based on changed since it was
    /// read (stale version, or a row another writer created first). Re-read and try again.
    #[error("stale write: {0}")]
    Stale(String),
    /// The caller's lease on a job has expired or been taken over; the effect must not be acked.
    #[error("the lease on job {0} was lost")]
    LeaseLost(JobId),
    /// A provider or a budget refused for now; retry after the given time if known.
    #[error("rate limited{}", .retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// The input cannot be processed as given; retrying will not help.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A provider answered with a typed error (status, provider code and message).
    #[error("{system} rejected the request ({status} {code}): {message}")]
    Rejected {
        system: SystemId,
        status: u16,
        code: String,
        message: String,
    },
    /// Credentials are missing, wrong or lack a scope.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The adapter does not support this operation (it says so rather than pretending).
    #[error("{operation} is not supported by {adapter}")]
    Unsupported {
        adapter: &'static str,
        operation: &'static str,
    },
    /// A transient failure of a backend (connection refused, timeout, 5xx); retry later.
    #[error("{what} is unavailable")]
    Unavailable {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A backend failed in a way that is not known to be transient.
    #[error("{what} failed")]
    Backend {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A domain rule refused a value read from or written to a backend.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl PortError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            PortError::RateLimited { .. } | PortError::Unavailable { .. } | PortError::Stale(_) => {
                true
            }
            PortError::Rejected { status, .. } => {
                matches!(*status, 408 | 429) || (*status >= 500 && *status != 501)
            }
            _ => false,
        }
    }

    /// The wait a provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PortError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub fn unavailable(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PortError::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }

    pub fn backend(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PortError::Backend {
            what: what.into(),
            source: source.into(),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// An error with its whole `source()` chain, for logs: `PostgreSQL failed: error returned from
/// database: unsupported Unicode escape sequence`. Log lines use it so the cause is never lost;
/// answers to callers stay generic.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a, E: ?Sized>(pub &'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for Chain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn retryability_follows_the_status() {
        let rejected = |status| PortError::Rejected {
            system: SystemId::attio(),
            status,
            code: "x".into(),
            message: "m".into(),
        };
        for (status, retry) in [
            (400, false),
            (404, false),
            (408, true),
            (429, true),
            (500, true),
            (501, false),
            (503, true),
        ] {
            assert_eq!(rejected(status).is_retryable(), retry, "{status}");
        }
        assert!(PortError::RateLimited { retry_after: None }.is_retryable());
        assert!(!PortError::Invalid("x".into()).is_retryable());
        assert!(
            PortError::Stale("v1".into()).is_retryable(),
            "a lost race is worth a re-read"
        );
        assert!(!PortError::Conflict("dup".into()).is_retryable());
    }

    #[test]
    fn a_chain_shows_every_cause() {
        let io = std::io::Error::other("unsupported Unicode escape sequence");
        let e = PortError::backend("PostgreSQL", io);
        assert_eq!(
            Chain(&e).to_string(),
            "PostgreSQL failed: unsupported Unicode escape sequence"
        );
        assert_eq!(
            Chain(&PortError::NotFound("x".into())).to_string(),
            "x not found"
        );
    }

    #[test]
    fn sources_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = PortError::unavailable("redis", io);
        assert_eq!(e.to_string(), "redis is unavailable");
        assert_eq!(e.source().map(|s| s.to_string()), Some("refused".into()));
    }
}
