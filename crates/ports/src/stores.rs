//! Storage ports. Every method is scoped to a tenant: a tenant can never read or change another
//! tenant's rows through them (the conformance suites check it).

use std::time::Duration;

use async_trait::async_trait;
use domain::audit::AuditEntry;
use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::deletes::{DeleteRecord, DeleteStatus};
use domain::field::ValueHash;
use domain::idempotency::IdempotencyKey;
use domain::ids::{ConflictId, DeleteId, InboxId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::job::NewJob;
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping_doc::{MappingDocument, StoredMappings};
use domain::sync_state::SyncState;
use domain::tenant::Tenant;
use time::OffsetDateTime;

use crate::error::PortResult;
use crate::queue::EnqueueOutcome;

/// Whether a delivery was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time: process it.
    New,
    /// Seen within the retention window: drop it.
    Duplicate,
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims a key for `retention` (longer than the provider's retry horizon). Exactly one of
    /// any number of concurrent claims of a key gets `New`. `Unavailable` when the backend cannot
    /// be reached; then nothing was claimed.
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        retention: Duration,
    ) -> PortResult<Claim>;
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// The link found from either side, or `None`.
    async fn find(
        &self,
        tenant: &TenantId,
        lookup: &LinkLookup,
    ) -> PortResult<Option<IdentityLink>>;
    /// All links of one Attio record (one per system).
    async fn links_of(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
    ) -> PortResult<Vec<IdentityLink>>;
    /// Inserts (`version` 0) or updates (`version` = the stored one) a link and returns it with
    /// its new version. `Stale` when the stored version differs (another writer saved or created
    /// the link since it was read); `Conflict` when the external record is already linked to
    /// another Attio record.
    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink>;
    /// Points every link of `from` at `to` (after an Attio merge) and returns how many moved.
    /// A link of `from` to a system `to` already has is removed rather than duplicated.
    async fn repoint(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        from: RecordId,
        to: RecordId,
    ) -> PortResult<u64>;
    /// Removes a link. `NotFound` when there is none.
    async fn delete(&self, tenant: &TenantId, lookup: &LinkLookup) -> PortResult<()>;
    /// How many linked pairs the tenant has (for the delete breaker's share).
    async fn count(&self, tenant: &TenantId) -> PortResult<u64>;
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SyncStateStore: Send + Sync {
    /// The state of one backfill, or `None` if it never ran.
    async fn get(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
    ) -> PortResult<Option<SyncState>>;
    /// Saves with optimistic concurrency (as `LinkStore::save`); returns the new version.
    /// `Stale` when the stored version differs.
    async fn save(&self, state: &SyncState) -> PortResult<SyncState>;
    /// Every backfill of a tenant.
    async fn list(&self, tenant: &TenantId) -> PortResult<Vec<SyncState>>;
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConflictStore: Send + Sync {
    /// Stores a conflict and returns the id it is kept under: when the record already has an
    /// open conflict on the same system and field, that one is updated (its values and
    /// `last_seen`; its id and `detected_at` stay), so a field that changes again is never
    /// queued twice. `Conflict` when the id exists already as another conflict.
    async fn record(&self, conflict: &ConflictRecord) -> PortResult<ConflictId>;
    /// Unresolved conflicts of a tenant that pass `filter`, oldest first, at most `limit`.
    async fn open(
        &self,
        tenant: &TenantId,
        filter: &ConflictFilter,
        limit: usize,
    ) -> PortResult<Vec<ConflictRecord>>;
    /// How many conflicts of the tenant are open.
    async fn count_open(&self, tenant: &TenantId) -> PortResult<u64>;
    /// One conflict. `NotFound` when the tenant has no such conflict.
    async fn get(&self, tenant: &TenantId, id: ConflictId) -> PortResult<ConflictRecord>;
    /// Records a decision. `NotFound` as for `get`; `Conflict` when already resolved.
    async fn resolve(
        &self,
        tenant: &TenantId,
        id: ConflictId,
        resolution: Resolution,
        at: OffsetDateTime,
    ) -> PortResult<ConflictRecord>;
}

/// Deletes seen on one side: propagated (counted by the breaker) or held for approval.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DeleteStore: Send + Sync {
    /// Stores a delete and returns it, or returns the one already stored for the same record,
    /// system and origin (a replayed delete keeps its first decision).
    async fn record(&self, delete: &DeleteRecord) -> PortResult<DeleteRecord>;
    /// [`DeleteStore::record`] through the breaker, as one step however many workers ask at
    /// once: a `Done` delete is stored `Held` with `held_reason` instead when `max` of the
    /// tenant's deletes were already `Done` at or after `since`.
    async fn record_gated(
        &self,
        delete: &DeleteRecord,
        max: u64,
        since: OffsetDateTime,
        held_reason: &str,
    ) -> PortResult<DeleteRecord>;
    /// How many of the tenant's deletes were propagated without a person (`Done`) at or after
    /// `since`.
    async fn count_done_since(&self, tenant: &TenantId, since: OffsetDateTime) -> PortResult<u64>;
    /// The tenant's held deletes, oldest first, at most `limit`.
    async fn held(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeleteRecord>>;
    /// One delete. `NotFound` when the tenant has none with this id.
    async fn get(&self, tenant: &TenantId, id: DeleteId) -> PortResult<DeleteRecord>;
    /// The held delete of one linked pair (either origin), if any.
    async fn held_for(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        system: &SystemId,
    ) -> PortResult<Option<DeleteRecord>>;
    /// A person's decision on a held delete: `Approved` or `Rejected`. `NotFound` as for `get`;
    /// `Conflict` when it is not held (already decided, or never held).
    async fn decide(
        &self,
        tenant: &TenantId,
        id: DeleteId,
        status: DeleteStatus,
        at: OffsetDateTime,
    ) -> PortResult<DeleteRecord>;
}

/// Each tenant's mappings, versioned: a change stores a new version, and every version is kept
/// with who made it and when.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MappingStore: Send + Sync {
    /// The newest version, or `None` when the tenant has none (it uses the worker's file).
    async fn current(&self, tenant: &TenantId) -> PortResult<Option<StoredMappings>>;
    /// Stores `document` as the version after `expected` (`None`: the first). `Stale` when the
    /// newest stored version is not `expected` (someone changed them since they were read).
    async fn put(
        &self,
        tenant: &TenantId,
        document: &MappingDocument,
        expected: Option<u64>,
        changed_by: &str,
        at: OffsetDateTime,
    ) -> PortResult<StoredMappings>;
    /// The versions, newest first, at most `limit`.
    async fn versions(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<StoredMappings>>;
}

/// The per-field audit trail.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends entries (each names its tenant). `Unavailable` when the backend cannot be
    /// reached; then none was kept.
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()>;
    /// The writes of one Attio record, newest first, at most `limit`.
    async fn history(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>>;
    /// The tenant's newest writes across its records, newest first, at most `limit`.
    async fn recent(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<AuditEntry>>;
    /// Forgets up to `limit` entries of any tenant written before `before`, oldest first;
    /// returns how many went (fewer than `limit` when no older one is left).
    async fn purge(&self, before: OffsetDateTime, limit: usize) -> PortResult<u64>;
}

/// The provider requests made for each tenant, per provider and UTC day: the API budget a
/// tenant used. One row per tenant, provider and day.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UsageLog: Send + Sync {
    /// Adds each provider's count to the tenant's total for `day`. `Unavailable` when the
    /// backend cannot be reached; then nothing was added.
    async fn add(
        &self,
        tenant: &TenantId,
        day: time::Date,
        counts: &[(String, u64)],
    ) -> PortResult<()>;
    /// The tenant's totals for `day`, by provider name in order; empty when it made none.
    async fn on_day(&self, tenant: &TenantId, day: time::Date) -> PortResult<Vec<(String, u64)>>;
}

/// Days since 1970-01-01: how the stores key [`UsageLog`] rows.
pub fn day_number(day: time::Date) -> i64 {
    (day - time::Date::from_julian_day(2_440_588).unwrap_or(time::Date::MIN)).whole_days()
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// `Conflict` when the id is taken; `Domain` when the tenant does not validate.
    async fn create(&self, tenant: &Tenant) -> PortResult<()>;
    /// `NotFound` for an unknown id.
    async fn get(&self, id: &TenantId) -> PortResult<Tenant>;
    async fn list(&self) -> PortResult<Vec<Tenant>>;
    /// Replaces a tenant's name and credentials. `NotFound` for an unknown id.
    async fn update(&self, tenant: &Tenant) -> PortResult<()>;
    /// `NotFound` for an unknown id.
    async fn delete(&self, id: &TenantId) -> PortResult<()>;
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WriteLedger: Send + Sync {
    /// Remembers values we wrote (replacing an earlier entry for the same key).
    async fn record(&self, entries: &[LedgerEntry]) -> PortResult<()>;
    /// Whether `hash` is what we wrote to `key` and the entry has not expired at `now`.
    async fn is_echo(
        &self,
        key: &LedgerKey,
        hash: &ValueHash,
        now: OffsetDateTime,
    ) -> PortResult<bool>;
    /// Drops entries expired at `now`; returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> PortResult<u64>;
}

/// A webhook delivery as received, before anything is derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundDelivery {
    pub tenant: TenantId,
    /// Who sent it (`attio`, `hubspot`, ...).
    pub source: SystemId,
    pub key: IdempotencyKey,
    /// The raw body, exactly as signed.
    pub body: Vec<u8>,
    pub received_at: OffsetDateTime,
    /// Why a signed delivery could not be processed (kept, acknowledged, not enqueued).
    pub quarantine: Option<String>,
}

/// A delivery kept in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub id: InboxId,
    pub delivery: InboundDelivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored (and its job enqueued, when one was given).
    Stored {
        id: InboxId,
        job: Option<EnqueueOutcome>,
    },
    /// The key was seen within the retention window: nothing was stored or enqueued.
    Duplicate,
}

/// Received deliveries: deduplicated, stored and turned into a job in one atomic step, so a
/// delivery is acknowledged only once it is durable.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Claims the delivery's key for `retention`, stores the delivery and enqueues `job`, all or
    /// nothing. `Unavailable` when the backend cannot be reached; then nothing was stored, claimed
    /// or enqueued, and the sender's retry will be accepted.
    async fn accept(
        &self,
        delivery: &InboundDelivery,
        job: Option<NewJob>,
        retention: Duration,
    ) -> PortResult<Accepted>;
    /// One stored delivery. `NotFound` when the tenant has no such delivery.
    async fn get(&self, tenant: &TenantId, id: InboxId) -> PortResult<StoredDelivery>;
    /// The tenant's quarantined deliveries, oldest first, at most `limit`.
    async fn quarantined(&self, tenant: &TenantId, limit: usize)
    -> PortResult<Vec<StoredDelivery>>;
    /// Forgets up to `limit` deliveries of any tenant received before `received_before`, oldest
    /// first, with the claims of their keys that have expired (a claim still running is kept, so
    /// no duplicate gets through early). Returns how many deliveries went: fewer than `limit` when
    /// no older one is left. A backend whose deliveries expire on their own with their claims
    /// (Redis) has nothing to do and returns 0. `Unavailable` when the backend cannot be reached;
    /// then nothing was forgotten.
    async fn purge(&self, received_before: OffsetDateTime, limit: usize) -> PortResult<u64>;
}

/// What erasing a tenant removed from one store, by kind (`deliveries`, `jobs`, `links`, ...).
pub type Erased = std::collections::BTreeMap<&'static str, u64>;

/// Forgets a deleted tenant's data, so nothing of it is processed afterwards and a tenant
/// re-created with the same id starts empty.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TenantEraser: Send + Sync {
    /// Removes everything this store keeps of `tenant` besides the tenant record itself
    /// (deliveries and their key claims, jobs, dead letters, links, sync states, conflicts,
    /// ledger entries, the audit trail: whichever it holds) and says how many of each went. Nothing of another
    /// tenant is touched. `Unavailable` when the backend cannot be reached; a transactional
    /// store then removed nothing, and erasing again finishes the job.
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased>;
}
