//! The domain layer's one error type.

/// Why a value could not be built or a domain rule refused an input.
///
/// Every parsing constructor of the domain returns this; it never carries secret material
/// (secrets are parsed by [`crate::tenant::Secret`], whose errors name only the rule broken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// An identifier (UUID, slug, tenant id, ...) did not parse.
    #[error("invalid {kind} {input:?}: {reason}")]
    InvalidId {
        kind: &'static str,
        input: String,
        reason: &'static str,
    },
    /// A timestamp or date was not in the expected format.
    #[error("invalid timestamp {input:?}: {reason}")]
    InvalidTimestamp { input: String, reason: String },
    /// A value did not fit the attribute type or field it was given for.
    #[error("invalid value for {target}: {reason}")]
    InvalidValue { target: String, reason: String },
    /// The attribute type cannot be written through Attio's API (e.g. `interaction`).
    #[error("attribute type {attribute_type} is not writable")]
    NotWritable { attribute_type: String },
    /// An idempotency key header was present but unusable.
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(&'static str),
    /// A field mapping or mapping set is inconsistent.
    #[error("invalid field mapping: {0}")]
    InvalidMapping(String),
    /// A state transition that the state machine does not allow.
    #[error("invalid transition: {0}")]
    InvalidTransition(String),
    /// A secret was empty or otherwise unusable.
    #[error("invalid secret: {0}")]
    InvalidSecret(&'static str),
    /// Text that should have been JSON (a stored job payload) is not.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;
