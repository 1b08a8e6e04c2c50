//! The ports of attio-sync: small async traits the core is written against, each method with its
//! error contract, and the conformance suites every adapter of a port runs against itself.
//!
//! No HTTP, SQL or Redis types appear here (the dependency check in `xtask` enforces it).

pub mod attio;
pub mod cache;
pub mod clock;
pub mod crm;
pub mod directory;
pub mod error;
pub mod limiter;
pub mod provider;
pub mod queue;
pub mod stores;
pub mod trace;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{BoxError, Chain, PortError, PortResult};
