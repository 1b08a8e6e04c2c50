//! The services layer's one error type.

use domain::DomainError;
use domain::ids::SystemId;
use ports::error::PortError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A port failed; `is_retryable` follows the port error.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A domain rule refused a value.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The external CRM refused the record itself (a per-record failure of a batch).
    #[error("{system} refused the record: {reason}")]
    RecordRejected {
        system: SystemId,
        reason: String,
        retryable: bool,
    },
    /// What the work depends on has not happened yet (e.g. the parent record is not synced);
    /// a later attempt may find it.
    #[error("not ready: {0}")]
    NotReady(String),
}

impl ServiceError {
    /// Whether running the same job later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ServiceError::Port(e) => e.is_retryable(),
            ServiceError::Domain(_) => false,
            ServiceError::RecordRejected { retryable, .. } => *retryable,
            ServiceError::NotReady(_) => true,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
