//! attio-sync's domain: the language every other crate speaks.
//!
//! Attio's record, value and webhook-event model ([`value`], [`record`], [`schema`], [`webhook`],
//! [`write`]) is defined here with its serde forms; so are tenants, jobs, mappings, the merge
//! rules and the sync state. Nothing here does I/O or depends on an async runtime, an HTTP
//! framework, a database or Redis: the dependency check in `xtask` fails if that changes.

mod macros;

pub mod actor;
pub mod audit;
pub mod cache;
pub mod conflict;
pub mod deletes;
pub mod error;
pub mod field;
pub mod idempotency;
pub mod ids;
pub mod job;
pub mod ledger;
pub mod limits;
pub mod link;
pub mod mapping;
pub mod mapping_doc;
pub mod merge;
pub mod record;
pub mod schema;
pub mod sync_state;
pub mod tenant;
pub mod timestamp;
pub mod trace;
pub mod value;
pub mod webhook;
pub mod write;

pub use error::DomainError;
