use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::audit::AuditEntry;
use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::deletes::{DeleteRecord, DeleteStatus};
use domain::field::ValueHash;
use domain::idempotency::IdempotencyKey;
use domain::ids::{ConflictId, DeleteId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping_doc::{MappingDocument, StoredMappings};
use domain::sync_state::SyncState;
use domain::tenant::Tenant;
use ports::clock::Clock;
use ports::error::{PortError, PortResult};
use ports::stores::{
    AuditLog, Claim, ConflictStore, DeleteStore, Erased, IdempotencyStore, LinkStore, MappingStore,
    SyncStateStore, TenantEraser, TenantStore, WriteLedger,
};
use time::OffsetDateTime;

use crate::{SystemClock, lock};

/// Idempotency keys with expiry.
#[derive(Clone)]
pub struct MemoryIdempotencyStore {
    seen: Arc<Mutex<HashMap<(TenantId, IdempotencyKey), OffsetDateTime>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryIdempotencyStore")
            .finish_non_exhaustive()
    }
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryIdempotencyStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            seen: Arc::default(),
            clock,
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        retention: Duration,
    ) -> PortResult<Claim> {
        let now = self.clock.now();
        let mut seen = lock(&self.seen);
        let k = (tenant.clone(), key.clone());
        match seen.get(&k) {
            Some(expires_at) if *expires_at > now => Ok(Claim::Duplicate),
            _ => {
                seen.insert(k, now + retention);
                Ok(Claim::New)
            }
        }
    }
}

type AttioKey = (TenantId, ObjectSlug, RecordId, SystemId);
type ExternalKey = (TenantId, SystemId, String, ExternalId);

#[derive(Debug, Default)]
struct Links {
    by_attio: HashMap<AttioKey, IdentityLink>,
    by_external: HashMap<ExternalKey, AttioKey>,
}

fn attio_key(l: &IdentityLink) -> AttioKey {
    (
        l.tenant.clone(),
        l.object.clone(),
        l.attio_record,
        l.system.clone(),
    )
}

fn external_key(l: &IdentityLink) -> ExternalKey {
    (
        l.tenant.clone(),
        l.system.clone(),
        l.external_object.clone(),
        l.external_id.clone(),
    )
}

impl Links {
    fn resolve(&self, tenant: &TenantId, lookup: &LinkLookup) -> Option<AttioKey> {
        match lookup {
            LinkLookup::Attio {
                object,
                record,
                system,
            } => {
                let k = (tenant.clone(), object.clone(), *record, system.clone());
                self.by_attio.contains_key(&k).then_some(k)
            }
            LinkLookup::External {
                system,
                external_object,
                external_id,
            } => self
                .by_external
                .get(&(
                    tenant.clone(),
                    system.clone(),
                    external_object.clone(),
                    external_id.clone(),
                ))
                .cloned(),
        }
    }

    fn remove(&mut self, k: &AttioKey) -> Option<IdentityLink> {
        let link = self.by_attio.remove(k)?;
        self.by_external.remove(&external_key(&link));
        Some(link)
    }
}

/// Identity links with their snapshots.
#[derive(Debug, Clone, Default)]
pub struct MemoryLinkStore {
    links: Arc<Mutex<Links>>,
}

#[async_trait]
impl LinkStore for MemoryLinkStore {
    async fn find(
        &self,
        tenant: &TenantId,
        lookup: &LinkLookup,
    ) -> PortResult<Option<IdentityLink>> {
        let links = lock(&self.links);
        Ok(links
            .resolve(tenant, lookup)
            .and_then(|k| links.by_attio.get(&k).cloned()))
    }

    async fn links_of(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
    ) -> PortResult<Vec<IdentityLink>> {
        let links = lock(&self.links);
        let mut found: Vec<IdentityLink> = links
            .by_attio
            .values()
            .filter(|l| &l.tenant == tenant && &l.object == object && l.attio_record == record)
            .cloned()
            .collect();
        found.sort_by(|a, b| a.system.cmp(&b.system));
        Ok(found)
    }

    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink> {
        let mut links = lock(&self.links);
        let ak = attio_key(link);
        let ek = external_key(link);
        let stored_version = links.by_attio.get(&ak).map(|l| l.version).unwrap_or(0);
        if stored_version != link.version {
            return Err(PortError::Stale(format!(
                "link of {} to {} is at version {stored_version}, not {}",
                link.attio_record, link.system, link.version
            )));
        }
        if links.by_external.get(&ek).is_some_and(|owner| owner != &ak) {
            return Err(PortError::Conflict(format!(
                "{} {} is already linked to another record",
                link.system, link.external_id
            )));
        }
        links.remove(&ak);
        let saved = IdentityLink {
            version: link.version + 1,
            ..link.clone()
        };
        links.by_external.insert(ek, ak.clone());
        links.by_attio.insert(ak, saved.clone());
        Ok(saved)
    }

    async fn repoint(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        from: RecordId,
        to: RecordId,
    ) -> PortResult<u64> {
        let mut links = lock(&self.links);
        let keys: Vec<AttioKey> = links
            .by_attio
            .keys()
            .filter(|(t, o, r, _)| t == tenant && o == object && *r == from)
            .cloned()
            .collect();
        let mut moved = 0;
        for k in keys {
            let Some(link) = links.remove(&k) else {
                continue;
            };
            let target = (k.0.clone(), k.1.clone(), to, k.3.clone());
            if links.by_attio.contains_key(&target) {
                continue; // the survivor already has a link to this system: drop the duplicate's
            }
            let moved_link = IdentityLink {
                attio_record: to,
                version: link.version + 1,
                ..link
            };
            links
                .by_external
                .insert(external_key(&moved_link), target.clone());
            links.by_attio.insert(target, moved_link);
            moved += 1;
        }
        Ok(moved)
    }

    async fn count(&self, tenant: &TenantId) -> PortResult<u64> {
        let n = lock(&self.links)
            .by_attio
            .keys()
            .filter(|k| &k.0 == tenant)
            .count();
        Ok(n as u64)
    }

    async fn delete(&self, tenant: &TenantId, lookup: &LinkLookup) -> PortResult<()> {
        let mut links = lock(&self.links);
        let k = links
            .resolve(tenant, lookup)
            .ok_or_else(|| PortError::NotFound(format!("link {lookup:?}")))?;
        links.remove(&k);
        Ok(())
    }
}

type StateKey = (TenantId, ObjectSlug, SystemId);

/// Backfill checkpoints.
#[derive(Debug, Clone, Default)]
pub struct MemorySyncStateStore {
    states: Arc<Mutex<HashMap<StateKey, SyncState>>>,
}

#[async_trait]
impl SyncStateStore for MemorySyncStateStore {
    async fn get(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
    ) -> PortResult<Option<SyncState>> {
        Ok(lock(&self.states)
            .get(&(tenant.clone(), object.clone(), system.clone()))
            .cloned())
    }

    async fn save(&self, state: &SyncState) -> PortResult<SyncState> {
        let mut states = lock(&self.states);
        let k = (
            state.tenant.clone(),
            state.object.clone(),
            state.system.clone(),
        );
        let stored = states.get(&k).map(|s| s.version).unwrap_or(0);
        if stored != state.version {
            return Err(PortError::Stale(format!(
                "sync state of {}/{} is at version {stored}, not {}",
                state.object, state.system, state.version
            )));
        }
        let saved = SyncState {
            version: state.version + 1,
            ..state.clone()
        };
        states.insert(k, saved.clone());
        Ok(saved)
    }

    async fn list(&self, tenant: &TenantId) -> PortResult<Vec<SyncState>> {
        let mut v: Vec<SyncState> = lock(&self.states)
            .values()
            .filter(|s| &s.tenant == tenant)
            .cloned()
            .collect();
        v.sort_by(|a, b| (&a.object, &a.system).cmp(&(&b.object, &b.system)));
        Ok(v)
    }
}

/// Conflicts waiting for a person.
#[derive(Debug, Clone, Default)]
pub struct MemoryConflictStore {
    conflicts: Arc<Mutex<BTreeMap<(TenantId, ConflictId), ConflictRecord>>>,
}

#[async_trait]
impl ConflictStore for MemoryConflictStore {
    async fn record(&self, conflict: &ConflictRecord) -> PortResult<ConflictId> {
        let mut all = lock(&self.conflicts);
        let same_field = all.values_mut().find(|c| {
            c.tenant == conflict.tenant
                && c.resolution.is_none()
                && c.object == conflict.object
                && c.attio_record == conflict.attio_record
                && c.system == conflict.system
                && c.field() == conflict.field()
        });
        if let Some(open) = same_field {
            open.conflict = conflict.conflict.clone();
            open.external_id = conflict.external_id.clone();
            open.last_seen = conflict.last_seen;
            return Ok(open.id);
        }
        let k = (conflict.tenant.clone(), conflict.id);
        if all.contains_key(&k) {
            return Err(PortError::Conflict(format!(
                "conflict {} exists",
                conflict.id
            )));
        }
        all.insert(k, conflict.clone());
        Ok(conflict.id)
    }

    async fn open(
        &self,
        tenant: &TenantId,
        filter: &ConflictFilter,
        limit: usize,
    ) -> PortResult<Vec<ConflictRecord>> {
        let mut open: Vec<ConflictRecord> = lock(&self.conflicts)
            .values()
            .filter(|c| &c.tenant == tenant && c.resolution.is_none() && filter.matches(c))
            .cloned()
            .collect();
        open.sort_by_key(|c| (c.detected_at, c.id));
        open.truncate(limit);
        Ok(open)
    }

    async fn count_open(&self, tenant: &TenantId) -> PortResult<u64> {
        let n = lock(&self.conflicts)
            .values()
            .filter(|c| &c.tenant == tenant && c.resolution.is_none())
            .count();
        Ok(n as u64)
    }

    async fn get(&self, tenant: &TenantId, id: ConflictId) -> PortResult<ConflictRecord> {
        lock(&self.conflicts)
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("conflict {id}")))
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        id: ConflictId,
        resolution: Resolution,
        at: OffsetDateTime,
    ) -> PortResult<ConflictRecord> {
        let mut all = lock(&self.conflicts);
        let c = all
            .get_mut(&(tenant.clone(), id))
            .ok_or_else(|| PortError::NotFound(format!("conflict {id}")))?;
        if c.resolution.is_some() {
            return Err(PortError::Conflict(format!(
                "conflict {id} is already resolved"
            )));
        }
        c.resolution = Some((resolution, at));
        Ok(c.clone())
    }
}

/// Deletes, by tenant and id.
#[derive(Debug, Clone, Default)]
pub struct MemoryDeleteStore {
    deletes: Arc<Mutex<BTreeMap<(TenantId, DeleteId), DeleteRecord>>>,
}

#[async_trait]
impl DeleteStore for MemoryDeleteStore {
    async fn record(&self, d: &DeleteRecord) -> PortResult<DeleteRecord> {
        self.record_gated(d, u64::MAX, OffsetDateTime::UNIX_EPOCH, "")
            .await
    }

    async fn record_gated(
        &self,
        d: &DeleteRecord,
        max: u64,
        since: OffsetDateTime,
        held_reason: &str,
    ) -> PortResult<DeleteRecord> {
        let mut all = lock(&self.deletes);
        let same = all.values().find(|x| {
            x.tenant == d.tenant
                && x.object == d.object
                && x.attio_record == d.attio_record
                && x.system == d.system
                && x.origin == d.origin
        });
        if let Some(found) = same {
            return Ok(found.clone());
        }
        let mut d = d.clone();
        let done = all
            .values()
            .filter(|x| x.tenant == d.tenant && x.status == DeleteStatus::Done && x.at >= since)
            .count() as u64;
        if d.status == DeleteStatus::Done && done >= max {
            d.status = DeleteStatus::Held;
            d.reason = held_reason.to_owned();
        }
        all.insert((d.tenant.clone(), d.id), d.clone());
        Ok(d)
    }

    async fn count_done_since(&self, tenant: &TenantId, since: OffsetDateTime) -> PortResult<u64> {
        let n = lock(&self.deletes)
            .values()
            .filter(|d| &d.tenant == tenant && d.status == DeleteStatus::Done && d.at >= since)
            .count();
        Ok(n as u64)
    }

    async fn held(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeleteRecord>> {
        let mut held: Vec<DeleteRecord> = lock(&self.deletes)
            .values()
            .filter(|d| &d.tenant == tenant && d.status == DeleteStatus::Held)
            .cloned()
            .collect();
        held.sort_by_key(|d| (d.at, d.id));
        held.truncate(limit);
        Ok(held)
    }

    async fn get(&self, tenant: &TenantId, id: DeleteId) -> PortResult<DeleteRecord> {
        lock(&self.deletes)
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("delete {id}")))
    }

    async fn held_for(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        system: &SystemId,
    ) -> PortResult<Option<DeleteRecord>> {
        Ok(lock(&self.deletes)
            .values()
            .find(|d| {
                &d.tenant == tenant
                    && &d.object == object
                    && d.attio_record == record
                    && &d.system == system
                    && d.status == DeleteStatus::Held
            })
            .cloned())
    }

    async fn decide(
        &self,
        tenant: &TenantId,
        id: DeleteId,
        status: DeleteStatus,
        at: OffsetDateTime,
    ) -> PortResult<DeleteRecord> {
        let mut all = lock(&self.deletes);
        let d = all
            .get_mut(&(tenant.clone(), id))
            .ok_or_else(|| PortError::NotFound(format!("delete {id}")))?;
        if d.status != DeleteStatus::Held {
            return Err(PortError::Conflict(format!(
                "delete {id} is {}, not held",
                d.status.as_str()
            )));
        }
        d.status = status;
        d.decided_at = Some(at);
        Ok(d.clone())
    }
}

#[async_trait]
impl TenantEraser for MemoryDeleteStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let n = lock(&self.deletes).retain_count(|k| &k.0 != tenant);
        Ok(Erased::from([("deletes", n)]))
    }
}

/// Mapping versions, by tenant, oldest first.
#[derive(Debug, Clone, Default)]
pub struct MemoryMappingStore {
    versions: Arc<Mutex<BTreeMap<TenantId, Vec<StoredMappings>>>>,
}

#[async_trait]
impl MappingStore for MemoryMappingStore {
    async fn current(&self, tenant: &TenantId) -> PortResult<Option<StoredMappings>> {
        Ok(lock(&self.versions)
            .get(tenant)
            .and_then(|v| v.last())
            .cloned())
    }

    async fn put(
        &self,
        tenant: &TenantId,
        document: &MappingDocument,
        expected: Option<u64>,
        changed_by: &str,
        at: OffsetDateTime,
    ) -> PortResult<StoredMappings> {
        let mut all = lock(&self.versions);
        let versions = all.entry(tenant.clone()).or_default();
        let newest = versions.last().map(|v| v.version);
        if newest != expected {
            return Err(PortError::Stale(format!(
                "the mappings of {tenant} are at version {}, not {}",
                newest.unwrap_or(0),
                expected.unwrap_or(0)
            )));
        }
        let stored = StoredMappings {
            tenant: tenant.clone(),
            version: newest.unwrap_or(0) + 1,
            document: document.clone(),
            changed_by: changed_by.to_owned(),
            changed_at: at,
        };
        versions.push(stored.clone());
        Ok(stored)
    }

    async fn versions(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<StoredMappings>> {
        Ok(lock(&self.versions)
            .get(tenant)
            .map(|v| v.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl TenantEraser for MemoryMappingStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let n = lock(&self.versions)
            .remove(tenant)
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        Ok(Erased::from([("mapping_versions", n)]))
    }
}

/// The audit trail, in insertion order.
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditLog {
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()> {
        lock(&self.entries).extend_from_slice(entries);
        Ok(())
    }

    async fn history(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let mut found: Vec<AuditEntry> = lock(&self.entries)
            .iter()
            .filter(|e| &e.tenant == tenant && &e.object == object && e.record == record)
            .cloned()
            .collect();
        // Newest first; entries of one instant keep their order of writing, newest first.
        found.reverse();
        found.sort_by_key(|e| std::cmp::Reverse(e.at));
        found.truncate(limit);
        Ok(found)
    }

    async fn recent(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<AuditEntry>> {
        let mut found: Vec<AuditEntry> = lock(&self.entries)
            .iter()
            .filter(|e| &e.tenant == tenant)
            .cloned()
            .collect();
        found.reverse();
        found.sort_by_key(|e| std::cmp::Reverse(e.at));
        found.truncate(limit);
        Ok(found)
    }

    async fn purge(&self, before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        let mut all = lock(&self.entries);
        let mut left = limit;
        all.retain(|e| {
            if left > 0 && e.at < before {
                left -= 1;
                false
            } else {
                true
            }
        });
        Ok((limit - left) as u64)
    }
}

#[async_trait]
impl TenantEraser for MemoryAuditLog {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let mut all = lock(&self.entries);
        let before = all.len();
        all.retain(|e| &e.tenant != tenant);
        Ok(Erased::from([("audit", (before - all.len()) as u64)]))
    }
}

/// Provider requests per tenant, provider and day.
#[derive(Debug, Clone, Default)]
pub struct MemoryUsageLog {
    counts: Arc<Mutex<BTreeMap<UsageKey, u64>>>,
}

/// Tenant, day and provider.
type UsageKey = (TenantId, time::Date, String);

#[async_trait]
impl ports::stores::UsageLog for MemoryUsageLog {
    async fn add(
        &self,
        tenant: &TenantId,
        day: time::Date,
        counts: &[(String, u64)],
    ) -> PortResult<()> {
        let mut all = lock(&self.counts);
        for (provider, n) in counts {
            *all.entry((tenant.clone(), day, provider.clone()))
                .or_default() += n;
        }
        Ok(())
    }

    async fn on_day(&self, tenant: &TenantId, day: time::Date) -> PortResult<Vec<(String, u64)>> {
        Ok(lock(&self.counts)
            .iter()
            .filter(|((t, d, _), _)| t == tenant && *d == day)
            .map(|((_, _, p), n)| (p.clone(), *n))
            .collect())
    }
}

#[async_trait]
impl TenantEraser for MemoryUsageLog {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let mut all = lock(&self.counts);
        let before = all.len();
        all.retain(|(t, _, _), _| t != tenant);
        Ok(Erased::from([("usage_days", (before - all.len()) as u64)]))
    }
}

/// Tenants and their credentials (in memory only: nothing to encrypt at rest).
#[derive(Debug, Clone, Default)]
pub struct MemoryTenantStore {
    tenants: Arc<Mutex<BTreeMap<TenantId, Tenant>>>,
}

#[async_trait]
impl TenantStore for MemoryTenantStore {
    async fn create(&self, tenant: &Tenant) -> PortResult<()> {
        tenant.validate()?;
        let mut all = lock(&self.tenants);
        if all.contains_key(&tenant.id) {
            return Err(PortError::Conflict(format!("tenant {} exists", tenant.id)));
        }
        all.insert(tenant.id.clone(), tenant.clone());
        Ok(())
    }

    async fn get(&self, id: &TenantId) -> PortResult<Tenant> {
        lock(&self.tenants)
            .get(id)
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("tenant {id}")))
    }

    async fn list(&self) -> PortResult<Vec<Tenant>> {
        Ok(lock(&self.tenants).values().cloned().collect())
    }

    async fn update(&self, tenant: &Tenant) -> PortResult<()> {
        tenant.validate()?;
        let mut all = lock(&self.tenants);
        let slot = all
            .get_mut(&tenant.id)
            .ok_or_else(|| PortError::NotFound(format!("tenant {}", tenant.id)))?;
        *slot = tenant.clone();
        Ok(())
    }

    async fn delete(&self, id: &TenantId) -> PortResult<()> {
        lock(&self.tenants)
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| PortError::NotFound(format!("tenant {id}")))
    }
}

/// What we wrote, for echo suppression.
#[derive(Debug, Clone, Default)]
pub struct MemoryWriteLedger {
    entries: Arc<Mutex<HashMap<LedgerKey, (ValueHash, OffsetDateTime)>>>,
}

#[async_trait]
impl WriteLedger for MemoryWriteLedger {
    async fn record(&self, entries: &[LedgerEntry]) -> PortResult<()> {
        let mut all = lock(&self.entries);
        for e in entries {
            all.insert(e.key.clone(), (e.value_hash.clone(), e.expires_at));
        }
        Ok(())
    }

    async fn is_echo(
        &self,
        key: &LedgerKey,
        hash: &ValueHash,
        now: OffsetDateTime,
    ) -> PortResult<bool> {
        Ok(lock(&self.entries)
            .get(key)
            .is_some_and(|(h, exp)| h == hash && *exp > now))
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> PortResult<u64> {
        let mut all = lock(&self.entries);
        let before = all.len();
        all.retain(|_, (_, exp)| *exp > now);
        Ok((before - all.len()) as u64)
    }
}

/// The inbox over a memory queue and idempotency store. One lock orders claim, store and enqueue,
/// so a duplicate racing the original cannot enqueue twice.
#[derive(Clone)]
pub struct MemoryInbox {
    queue: crate::MemoryQueue,
    keys: MemoryIdempotencyStore,
    deliveries:
        Arc<Mutex<BTreeMap<(TenantId, domain::ids::InboxId), ports::stores::StoredDelivery>>>,
    order: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryInbox").finish_non_exhaustive()
    }
}

impl MemoryInbox {
    pub fn new(queue: crate::MemoryQueue, keys: MemoryIdempotencyStore) -> Self {
        Self {
            queue,
            keys,
            deliveries: Arc::default(),
            order: Arc::default(),
        }
    }
}

#[async_trait]
impl ports::stores::Inbox for MemoryInbox {
    async fn accept(
        &self,
        delivery: &ports::stores::InboundDelivery,
        job: Option<domain::job::NewJob>,
        retention: Duration,
    ) -> PortResult<ports::stores::Accepted> {
        use ports::queue::JobQueue;
        let _ordered = self.order.lock().await;
        if self
            .keys
            .claim(&delivery.tenant, &delivery.key, retention)
            .await?
            == Claim::Duplicate
        {
            return Ok(ports::stores::Accepted::Duplicate);
        }
        let id = domain::ids::InboxId::from_uuid(uuid::Uuid::new_v4());
        let job = match job {
            Some(j) => Some(self.queue.enqueue(j).await?),
            None => None,
        };
        lock(&self.deliveries).insert(
            (delivery.tenant.clone(), id),
            ports::stores::StoredDelivery {
                id,
                delivery: delivery.clone(),
            },
        );
        Ok(ports::stores::Accepted::Stored { id, job })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        id: domain::ids::InboxId,
    ) -> PortResult<ports::stores::StoredDelivery> {
        lock(&self.deliveries)
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| PortError::NotFound(format!("delivery {id}")))
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> PortResult<Vec<ports::stores::StoredDelivery>> {
        let mut found: Vec<_> = lock(&self.deliveries)
            .iter()
            .filter(|((t, _), d)| t == tenant && d.delivery.quarantine.is_some())
            .map(|(_, d)| d.clone())
            .collect();
        found.sort_by_key(|d| d.delivery.received_at);
        found.truncate(limit);
        Ok(found)
    }

    async fn purge(&self, received_before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        let _ordered = self.order.lock().await;
        let mut deliveries = lock(&self.deliveries);
        let mut old: Vec<_> = deliveries
            .iter()
            .filter(|(_, d)| d.delivery.received_at < received_before)
            .map(|(k, d)| (d.delivery.received_at, k.clone(), d.delivery.key.clone()))
            .collect();
        old.sort_by_key(|(at, ..)| *at);
        old.truncate(limit);
        let now = self.keys.clock.now();
        let mut claims = lock(&self.keys.seen);
        for (_, k, key) in &old {
            deliveries.remove(k);
            let claim = (k.0.clone(), key.clone());
            if claims
                .get(&claim)
                .is_some_and(|expires_at| *expires_at <= now)
            {
                claims.remove(&claim);
            }
        }
        Ok(old.len() as u64)
    }
}

/// `retain` that counts what it drops, over the maps these stores use.
trait ErasableMap<K, V> {
    fn retain_count(&mut self, keep: impl Fn(&K) -> bool) -> u64;
}

impl<K: std::hash::Hash + Eq, V> ErasableMap<K, V> for HashMap<K, V> {
    fn retain_count(&mut self, keep: impl Fn(&K) -> bool) -> u64 {
        let before = self.len();
        self.retain(|k, _| keep(k));
        (before - self.len()) as u64
    }
}

impl<K: Ord, V> ErasableMap<K, V> for BTreeMap<K, V> {
    fn retain_count(&mut self, keep: impl Fn(&K) -> bool) -> u64 {
        let before = self.len();
        self.retain(|k, _| keep(k));
        (before - self.len()) as u64
    }
}

#[async_trait]
impl TenantEraser for MemoryInbox {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let deliveries = lock(&self.deliveries).retain_count(|(t, _)| t != tenant);
        let claims = lock(&self.keys.seen).retain_count(|(t, _)| t != tenant);
        Ok(Erased::from([
            ("deliveries", deliveries),
            ("delivery_keys", claims),
        ]))
    }
}

#[async_trait]
impl TenantEraser for MemoryLinkStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let mut links = lock(&self.links);
        let n = links.by_attio.retain_count(|k| &k.0 != tenant);
        links.by_external.retain_count(|k| &k.0 != tenant);
        Ok(Erased::from([("links", n)]))
    }
}

#[async_trait]
impl TenantEraser for MemorySyncStateStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let n = lock(&self.states).retain_count(|k| &k.0 != tenant);
        Ok(Erased::from([("sync_states", n)]))
    }
}

#[async_trait]
impl TenantEraser for MemoryConflictStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let n = lock(&self.conflicts).retain_count(|k| &k.0 != tenant);
        Ok(Erased::from([("conflicts", n)]))
    }
}

#[async_trait]
impl TenantEraser for MemoryWriteLedger {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<Erased> {
        let n = lock(&self.entries).retain_count(|k| &k.tenant != tenant);
        Ok(Erased::from([("ledger_entries", n)]))
    }
}
