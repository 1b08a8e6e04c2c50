use std::sync::Arc;

use adapter_memory::{
    MemoryAuditLog, MemoryCache, MemoryConflictStore, MemoryDeleteStore, MemoryIdempotencyStore,
    MemoryInbox, MemoryLinkStore, MemoryMappingStore, MemoryQueue, MemoryRateLimiter,
    MemorySyncStateStore, MemoryTenantStore, MemoryUsageLog, MemoryWriteLedger,
};

async fn queue() -> Arc<MemoryQueue> {
    Arc::new(MemoryQueue::default())
}
async fn cache() -> Arc<MemoryCache> {
    Arc::new(MemoryCache::default())
}
async fn idempotency() -> Arc<MemoryIdempotencyStore> {
    Arc::new(MemoryIdempotencyStore::default())
}
async fn links() -> Arc<MemoryLinkStore> {
    Arc::new(MemoryLinkStore::default())
}
async fn sync_state() -> Arc<MemorySyncStateStore> {
    Arc::new(MemorySyncStateStore::default())
}
async fn conflicts() -> Arc<MemoryConflictStore> {
    Arc::new(MemoryConflictStore::default())
}
async fn audit() -> Arc<MemoryAuditLog> {
    Arc::new(MemoryAuditLog::default())
}
async fn deletes() -> Arc<MemoryDeleteStore> {
    Arc::new(MemoryDeleteStore::default())
}
async fn mappings() -> Arc<MemoryMappingStore> {
    Arc::new(MemoryMappingStore::default())
}
async fn tenants() -> Arc<MemoryTenantStore> {
    Arc::new(MemoryTenantStore::default())
}
async fn ledger() -> Arc<MemoryWriteLedger> {
    Arc::new(MemoryWriteLedger::default())
}
async fn inbox() -> (Arc<MemoryInbox>, Arc<MemoryQueue>) {
    let queue = MemoryQueue::default();
    let inbox = MemoryInbox::new(queue.clone(), MemoryIdempotencyStore::default());
    (Arc::new(inbox), Arc::new(queue))
}
async fn limiter() -> Arc<MemoryRateLimiter> {
    Arc::new(MemoryRateLimiter::default())
}

mod queue {
    use super::queue;
    ports::queue_conformance!(queue);
}
mod audit {
    use super::audit;
    ports::audit_conformance!(audit);
}
async fn usage() -> Arc<MemoryUsageLog> {
    Arc::new(MemoryUsageLog::default())
}
mod usage {
    use super::usage;
    ports::usage_conformance!(usage);
}
mod deletes {
    use super::deletes;
    ports::delete_conformance!(deletes);
}
mod mappings {
    use super::mappings;
    ports::mapping_conformance!(mappings);
}
mod cache {
    use super::cache;
    ports::cache_conformance!(cache);
}
mod idempotency {
    use super::idempotency;
    ports::idempotency_conformance!(idempotency);
}
mod links {
    use super::links;
    ports::link_conformance!(links);
}
mod sync_state {
    use super::sync_state;
    ports::sync_state_conformance!(sync_state);
}
mod conflicts {
    use super::conflicts;
    ports::conflict_conformance!(conflicts);
}
mod tenants {
    use super::tenants;
    ports::tenant_conformance!(tenants);
}
mod ledger {
    use super::ledger;
    ports::ledger_conformance!(ledger);
}
mod limiter {
    use super::limiter;
    ports::limiter_conformance!(limiter);
}
mod inbox {
    use super::inbox;
    ports::inbox_conformance!(inbox);
}
