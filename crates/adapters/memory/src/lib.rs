//! In-process adapters for every storage and infrastructure port: the embedded mode's backends and
//! the unit tests' fakes. Each passes the same conformance suites as the PostgreSQL, SQLite and
//! Redis adapters. State lives behind one `Mutex` per adapter and is lost when the process exits.

mod cache;
mod clock;
mod limiter;
mod queue;
mod stores;

pub use cache::MemoryCache;
pub use clock::{ManualClock, SystemClock};
pub use limiter::MemoryRateLimiter;
pub use queue::MemoryQueue;
pub use stores::{
    MemoryAuditLog, MemoryConflictStore, MemoryDeleteStore, MemoryIdempotencyStore, MemoryInbox,
    MemoryLinkStore, MemoryMappingStore, MemorySyncStateStore, MemoryTenantStore, MemoryUsageLog,
    MemoryWriteLedger,
};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks, recovering the data if another task panicked while holding the lock: every critical
/// section below leaves the state consistent before anything that can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
