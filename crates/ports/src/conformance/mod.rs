//! Conformance suites: generic checks that every adapter of a port runs against itself, so that
//! memory, SQLite, PostgreSQL and Redis adapters keep one contract.
//!
//! Each suite is a module of `pub async fn` checks that panic with a message naming the broken
//! rule, plus a macro that turns them into one `#[tokio::test]` per check for an adapter factory:
//!
//! ```text
//! async fn make() -> std::sync::Arc<MyQueue> { ... }
//! ports::queue_conformance!(make);
//! ```
//!
//! Checks use fresh tenant ids, so adapters that share a backend between tests stay isolated.
//! Time-based checks wait with generous margins in the direction that cannot flake: a lease that
//! must *not* have expired is 30 s long; one that must have expired is 100 ms long and is checked
//! after 400 ms.

pub mod audit;
pub mod cache;
pub mod conflicts;
pub mod deletes;
pub mod idempotency;
pub mod inbox;
pub mod ledger;
pub mod limiter;
pub mod links;
pub mod mappings;
pub mod queue;
pub mod sync_state;
pub mod tenants;
pub mod usage;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::ids::TenantId;

/// A tenant id no other check (in any process) uses.
pub fn fresh_tenant(prefix: &str) -> TenantId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let id = format!("{prefix}-{}-{nanos:x}-{n}", std::process::id());
    match TenantId::parse(&id) {
        Ok(t) => t,
        Err(e) => panic!("conformance: bad tenant prefix {prefix:?}: {e}"),
    }
}

/// Unwraps a result, panicking with the check's context.
#[track_caller]
pub fn ok<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e:?}"),
    }
}

/// Generates one test per check of a suite.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:ident, $factory:path, [$($check:ident),+ $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::conformance::$suite::$check($factory().await).await;
            }
        )+
    };
}
