//! The outbound sync of one Attio record.
//!
//! Per mapped external system: the Attio side is the record as Attio holds it now (deliveries
//! carry ids, not values, so the job always re-reads and converges); the external side is the
//! linked external record, read with its per-field change times; the three-way merge decides.
//! Writes are upserts keyed by the Attio record id (a retried job is harmless). Values the merge
//! would write back into Attio are not written by this use case: their snapshot entries are kept
//! as they were, so the inbound sync still sees them as changes (nothing is marked synced that was
//! not written).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain::audit::AuditEntry;
use domain::cache::{CacheCategory, CacheKey, CacheTag};
use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::field::FieldValue;
use domain::ids::{
    AttributeSlug, ConflictId, ExternalId, ObjectRef, ObjectSlug, RecordId, SystemId, TenantId,
};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::{ExternalProperty, FieldKey, FieldMapping, ObjectMapping};
use domain::merge::{FieldWrite, SideState, SideValue, Snapshot, merge};
use domain::record::Record;
use domain::schema::Attribute;
use domain::value::AttributeType;
use domain::write::{LocationWrite, RecordTarget, RecordWrite, WriteValue};
use ports::attio::{AttributeTarget, UpdateMode};
use ports::cache::Cache;
use ports::clock::Clock;
use ports::crm::{ExternalRecord, ExternalUpsert, RecordOutcome};
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::PortError;
use ports::stores::{AuditLog, ConflictStore, LinkStore, WriteLedger};

/// The longest chain of CRM merges a read follows to the surviving record.
pub(crate) const MAX_MERGE_HOPS: usize = 8;

use crate::error::{ServiceError, ServiceResult};

/// One mapping the tenant syncs, and the external property that holds the Attio record id (the
/// upsert key: HubSpot's unique `idProperty`, Salesforce's external id field).
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub mapping: ObjectMapping,
    pub id_property: ExternalProperty,
    /// Written only when the sync creates the CRM's record or first links it (no linked record
    /// is found there), beside the mapped fields.
    pub create_with: BTreeMap<ExternalProperty, FieldValue>,
}

/// What happened in one external system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    /// Both sides already agree with the snapshot (or the record is empty): nothing written.
    Unchanged,
    /// The tenant has no connection to this system.
    NotConnected,
    /// The CRM's record was deleted and the delete waits for a person: nothing is written (the
    /// record is not re-created) until they decide.
    DeleteHeld,
    /// The CRM's record was found deleted when read (its own delete not told, or told before a
    /// merge made it the linked record), and the CRM-delete policy deleted the Attio record:
    /// nothing more is synced for it (Attio's `record.deleted` archives it elsewhere).
    DeletedInAttio,
}

/// The outcome for one external system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemReport {
    pub system: SystemId,
    pub action: Action,
    pub external_id: Option<ExternalId>,
    /// Fields written to the external CRM.
    pub written: Vec<FieldKey>,
    /// Fields written into Attio (changed on the external side).
    pub written_to_attio: Vec<FieldKey>,
    /// Fields the merge would write into Attio but whose attribute type is not written back
    /// (multiselects, references, ...): left, and not marked synced.
    pub deferred_inbound: Vec<FieldKey>,
    /// Fields recorded as conflicts.
    pub conflicts: Vec<FieldKey>,
    /// References left out because the record they name is not linked yet (on either side);
    /// [`OutboundSync::sync_record`] answers `NotReady` for them once the rest is synced.
    pub waiting: Vec<FieldKey>,
}

/// What a sync of one pair compares (see [`OutboundSync::prepare`]).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub link: Option<IdentityLink>,
    pub external: Option<ExternalRecord>,
    pub snapshot: Snapshot,
    pub attio: SideState,
    pub external_values: SideState,
    pub outcome: domain::merge::MergeOutcome,
    /// References left out of the merge: the record they name is not linked yet.
    pub waiting: Vec<FieldKey>,
    /// Who owns what on both sides, when the mapping has an owner.
    pub owners: Option<crate::owners::OwnerBook>,
    /// Owners left out: one side names someone the other does not have.
    pub unmatched: Vec<FieldKey>,
}

/// The outbound sync use case.
pub struct OutboundSync {
    pub(crate) directory: Arc<dyn ClientDirectory>,
    pub(crate) links: Arc<dyn LinkStore>,
    pub(crate) ledger: Arc<dyn WriteLedger>,
    pub(crate) conflicts: Arc<dyn ConflictStore>,
    clock: Arc<dyn Clock>,
    /// Each tenant's mappings.
    catalog: Arc<crate::mappings::MappingCatalog>,
    /// Where every value written is recorded; `None` keeps no trail.
    audit_log: Option<Arc<dyn AuditLog>>,
    /// Held deletes, so a pair whose CRM record was deleted is left alone while one waits.
    deletes: Option<Arc<crate::deletes::SafeDeletes>>,
    /// How long a written value is remembered for echo suppression.
    pub ledger_ttl: Duration,
    /// Attribute lists by object, flushed by `object-attribute.*` events; `None` reads Attio
    /// every time.
    schema_cache: Option<Arc<dyn Cache>>,
}

impl std::fmt::Debug for OutboundSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSync")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// The change time of an attribute on Attio's side: when its newest active value became active.
fn attio_changed_at(record: &Record, attribute: &str) -> Option<time::OffsetDateTime> {
    record
        .current(attribute)
        .filter_map(|v| v.active_from.as_ref().map(|t| t.as_datetime()))
        .max()
}

/// Attio's side of a mapping: each mapped field's value and change time.
pub(crate) fn attio_side(mapping: &ObjectMapping, record: &Record) -> SideState {
    mapping
        .fields()
        .iter()
        .map(|m| {
            let values = record
                .values
                .iter()
                .find(|(slug, _)| **slug == m.attio.attribute)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            // A reference is every record it names (a deal's people), never only the newest.
            let all = m.attio.all_values || m.attio.references.is_some();
            let value = FieldValue::from_attio(values, m.attio.part.as_deref(), all);
            let changed = attio_changed_at(record, m.attio.attribute.as_str());
            (m.key(), SideValue::new(value, changed))
        })
        .collect()
}

pub(crate) fn external_side(mapping: &ObjectMapping, record: Option<&ExternalRecord>) -> SideState {
    let Some(r) = record else {
        return SideState::new();
    };
    mapping
        .fields()
        .iter()
        .map(|m| {
            let raw = r.properties.get(&m.external).cloned().unwrap_or_default();
            // A multiselect comes from a CRM as `;`-separated text.
            let value = match (&raw, m.attio.all_values) {
                (FieldValue::Text(t), true) => FieldValue::from_multiselect_text(t),
                _ => raw,
            };
            let changed = r.changed_at.get(&m.external).copied().or(r.updated_at);
            (m.key(), SideValue::new(value, changed))
        })
        .collect()
}

impl OutboundSync {
    pub fn new(
        directory: Arc<dyn ClientDirectory>,
        links: Arc<dyn LinkStore>,
        ledger: Arc<dyn WriteLedger>,
        conflicts: Arc<dyn ConflictStore>,
        clock: Arc<dyn Clock>,
        targets: Vec<SyncTarget>,
    ) -> Self {
        Self {
            directory,
            links,
            ledger,
            conflicts,
            clock,
            catalog: Arc::new(crate::mappings::MappingCatalog::fixed(targets)),
            ledger_ttl: Duration::from_secs(24 * 3600),
            schema_cache: None,
            audit_log: None,
            deletes: None,
        }
    }

    /// Reads each tenant's mappings from `catalog` (instead of the same ones for every tenant).
    pub fn with_catalog(mut self, catalog: Arc<crate::mappings::MappingCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Where the tenants' mappings come from.
    pub fn catalog(&self) -> &Arc<crate::mappings::MappingCatalog> {
        &self.catalog
    }

    /// Leaves pairs with a held delete alone (see [`Action::DeleteHeld`]).
    pub fn with_safe_deletes(mut self, gate: Arc<crate::deletes::SafeDeletes>) -> Self {
        self.deletes = Some(gate);
        self
    }

    /// Records every value written in `log` (the per-field audit trail).
    pub fn with_audit(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// Appends audit entries. The writes they describe are made, so a trail that cannot be
    /// written is logged as an error rather than failing (and repeating) the job.
    pub(crate) async fn append_audit(&self, entries: Vec<AuditEntry>) {
        let Some(log) = &self.audit_log else { return };
        if entries.is_empty() {
            return;
        }
        if let Err(e) = log.append(&entries).await {
            tracing::error!(error = %ports::Chain(&e), entries = entries.len(), "the audit trail could not be written");
        }
    }

    /// The audit entries of one merge's writes: each value sent to the CRM (from Attio) and
    /// each written into Attio (from the CRM), with the value it replaced and the rule.
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record_id: RecordId,
        external_id: &ExternalId,
        mapping: &ObjectMapping,
        (attio, external): (&SideState, &SideState),
        (to_external, to_attio, written_to_attio): (&[FieldWrite], &[FieldWrite], &[FieldKey]),
        at: time::OffsetDateTime,
    ) {
        if self.audit_log.is_none() {
            return;
        }
        let cause = ports::trace::origin();
        let rule_of = |key: &FieldKey| {
            mapping
                .fields()
                .iter()
                .find(|m| &m.key() == key)
                .map(|m| m.rule.as_str())
                .unwrap_or("unmapped")
        };
        let old = |side: &SideState, key: &FieldKey| {
            side.get(key).map(|v| v.value.clone()).unwrap_or_default()
        };
        let entry = |w: &FieldWrite, into_attio: bool| AuditEntry {
            tenant: tenant.clone(),
            object: object.clone(),
            record: record_id,
            field: w.key.clone(),
            written_to: if into_attio {
                SystemId::attio()
            } else {
                mapping.system.clone()
            },
            written_record: if into_attio {
                record_id.to_string()
            } else {
                external_id.to_string()
            },
            source: if into_attio {
                mapping.system.to_string()
            } else {
                "attio".to_owned()
            },
            old: old(if into_attio { attio } else { external }, &w.key),
            new: w.value.clone(),
            rule: rule_of(&w.key).to_owned(),
            cause: cause.clone(),
            at,
        };
        let entries = to_external
            .iter()
            .map(|w| entry(w, false))
            .chain(
                to_attio
                    .iter()
                    .filter(|w| written_to_attio.contains(&w.key))
                    .map(|w| entry(w, true)),
            )
            .collect();
        self.append_audit(entries).await;
    }

    /// Caches each object's attributes (for [`CacheCategory::Schema`]'s TTL, tagged
    /// `schema-{object}` so [`OutboundSync::schema_changed`] flushes them in every process
    /// sharing the cache).
    pub fn with_schema_cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.schema_cache = Some(cache);
        self
    }

    /// The time now, from the injected clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// The tenant's sync targets (mappings) of one Attio object. `Unavailable` when the
    /// tenant's stored mappings cannot be read.
    pub async fn targets_of(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
    ) -> ServiceResult<Vec<SyncTarget>> {
        Ok(self
            .catalog
            .of(tenant)
            .await?
            .targets
            .iter()
            .filter(|t| &t.mapping.attio_object == object)
            .cloned()
            .collect())
    }

    /// An object's attributes, through the schema cache when there is one. A cache that cannot
    /// be reached or holds something unreadable is read through.
    pub async fn attributes(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        clients: &TenantClients,
    ) -> ServiceResult<Vec<Attribute>> {
        let key = CacheKey::new(
            tenant.clone(),
            CacheCategory::Schema,
            &format!("attributes-{object}"),
        )?;
        if let Some(cache) = &self.schema_cache
            && let Ok(Some(bytes)) = cache.get(&key).await
            && let Ok(found) = serde_json::from_slice::<Vec<Attribute>>(&bytes)
        {
            return Ok(found);
        }
        let found = clients
            .schema
            .list_attributes(&AttributeTarget::Object(ObjectRef::from(object.clone())))
            .await?;
        if let Some(cache) = &self.schema_cache
            && let Ok(bytes) = serde_json::to_vec(&found)
        {
            let tag = CacheTag::new(tenant.clone(), &format!("schema-{object}"))?;
            if let Err(e) = cache
                .put(&key, bytes, CacheCategory::Schema.ttl(), &[tag])
                .await
            {
                tracing::debug!(error = %ports::Chain(&e), "the schema cache is unavailable");
            }
        }
        Ok(found)
    }

    /// After an attribute of `object` changed: flushes its cached schema and checks the
    /// tenant's mappings of the object against the live schemas of Attio and its CRMs
    /// ([`crate::mappings::check_live`]). Returns the problems found, each logged.
    pub async fn schema_changed(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        clients: &TenantClients,
    ) -> ServiceResult<Vec<String>> {
        if let Some(cache) = &self.schema_cache {
            let tag = CacheTag::new(tenant.clone(), &format!("schema-{object}"))?;
            cache.invalidate_tag(&tag).await?;
        }
        let targets = self.targets_of(tenant, object).await?;
        Ok(crate::mappings::recheck(clients, tenant, &targets)
            .await?
            .into_iter()
            .map(|(system, p)| {
                let field = p.field.as_deref().unwrap_or("-");
                format!("{object} → {system} {field}: {}", p.message)
            })
            .collect())
    }

    /// Syncs one Attio record to every external system its object is mapped to. `Port(NotFound)`
    /// when the record no longer exists in Attio (the delete path handles that);
    /// `RecordRejected` when a CRM refuses the record, retryable or not as the CRM says.
    pub async fn sync_record(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record_id: RecordId,
    ) -> ServiceResult<Vec<SystemReport>> {
        let owned = self.targets_of(tenant, object).await?;
        let targets: Vec<&SyncTarget> = owned.iter().collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let clients = self.directory.clients(tenant).await?;
        let mut reports = self
            .sync_targets(tenant, object, record_id, &targets, &clients)
            .await?;
        // A value one CRM brought into Attio goes on to the others in the same job, rather than
        // waiting for that CRM's next change (one more round, over the targets that wrote
        // nothing into Attio).
        let wrote_in: Vec<&SystemId> = reports
            .iter()
            .filter(|r| !r.written_to_attio.is_empty())
            .map(|r| &r.system)
            .collect();
        // Deleted in Attio on the way (a CRM record found deleted): nothing more to sync.
        let gone = reports.iter().any(|r| r.action == Action::DeletedInAttio);
        if !gone && !wrote_in.is_empty() && targets.len() > 1 {
            let others: Vec<&SyncTarget> = targets
                .iter()
                .filter(|t| !wrote_in.contains(&&t.mapping.system))
                .copied()
                .collect();
            let again = self
                .sync_targets(tenant, object, record_id, &others, &clients)
                .await?;
            for r in again {
                match reports.iter_mut().find(|old| old.system == r.system) {
                    Some(old) if r.action != Action::Unchanged => *old = r,
                    Some(_) => {}
                    None => reports.push(r),
                }
            }
        }
        waits_for_references(&reports)?;
        Ok(reports)
    }

    /// One round: the Attio record read once, then each target in order.
    pub(crate) async fn sync_targets(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record_id: RecordId,
        targets: &[&SyncTarget],
        clients: &TenantClients,
    ) -> ServiceResult<Vec<SystemReport>> {
        let record = clients
            .attio
            .get_record(&ObjectRef::from(object.clone()), record_id)
            .await?;
        let mut reports = Vec::new();
        for target in targets.iter().copied() {
            let system = target.mapping.system.clone();
            if !clients.crms.contains_key(&system) {
                reports.push(SystemReport {
                    system,
                    action: Action::NotConnected,
                    external_id: None,
                    written: Vec::new(),
                    written_to_attio: Vec::new(),
                    deferred_inbound: Vec::new(),
                    conflicts: Vec::new(),
                    waiting: Vec::new(),
                });
                continue;
            }
            let report = self
                .sync_to(tenant, object, &record, record_id, target, clients)
                .await?;
            tracing::debug!(tenant = %tenant, object = %object, record = %record_id, system = %report.system, action = ?report.action, written = report.written.len(), "synced a record");
            let gone = report.action == Action::DeletedInAttio;
            reports.push(report);
            if gone {
                break;
            }
        }
        Ok(reports)
    }

    /// Syncs one Attio record with one mapping (a reconciliation's step).
    pub async fn sync_one(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        target: &SyncTarget,
        clients: &TenantClients,
    ) -> ServiceResult<SystemReport> {
        self.sync_to(tenant, object, record, record.id.record_id, target, clients)
            .await
    }

    /// What [`OutboundSync::sync_one`] would do, without writing anything (a dry run's step).
    pub async fn plan_one(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        target: &SyncTarget,
        clients: &TenantClients,
    ) -> ServiceResult<SystemReport> {
        let p = match self
            .prepare(tenant, object, record, target, clients, false)
            .await?
        {
            Ok(p) => p,
            Err(held) => return Ok(held),
        };
        let written: Vec<FieldKey> = p
            .outcome
            .to_external
            .iter()
            .map(|w| w.key.clone())
            .collect();
        let action = match (&p.external, written.is_empty()) {
            (_, true) => Action::Unchanged,
            (Some(_), false) => Action::Updated,
            (None, false) => Action::Created,
        };
        let (to_attio, unlinked) = self
            .references_into_attio(tenant, &target.mapping, &p.outcome.to_attio)
            .await?;
        let (written_to_attio, mut deferred_inbound) = if to_attio.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.writable_into_attio(tenant, object, &target.mapping, &to_attio, clients)
                .await?
        };
        deferred_inbound.extend(unlinked.iter().cloned());
        deferred_inbound.extend(p.unmatched);
        let mut waiting = p.waiting;
        waiting.extend(unlinked);
        Ok(SystemReport {
            system: target.mapping.system.clone(),
            action,
            external_id: p.external.map(|r| r.id),
            written,
            written_to_attio,
            deferred_inbound,
            conflicts: p.outcome.conflicts.iter().map(|c| c.key.clone()).collect(),
            waiting,
        })
    }

    /// Reads what a sync of one pair compares: the link, the linked CRM record (gone on the
    /// other side means "never synced": the upsert by key recreates it and the snapshot starts
    /// afresh), both sides' values, and the merge. `Err(report)` when a held delete leaves the
    /// pair alone. The sync and the dry run share it; only when `writes` (the sync) does a
    /// linked CRM record found deleted go through the delete gate, which may delete the Attio
    /// record (`Err` with [`Action::DeletedInAttio`]); otherwise it writes nothing.
    pub(crate) async fn prepare(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        target: &SyncTarget,
        clients: &TenantClients,
        writes: bool,
    ) -> ServiceResult<Result<Prepared, SystemReport>> {
        let record_id = record.id.record_id;
        let mapping = &target.mapping;
        let system = mapping.system.clone();
        let crm = clients
            .crms
            .get(&system)
            .ok_or_else(|| PortError::Invalid(format!("the tenant has no {system} connection")))?
            .as_ref();
        let lookup = LinkLookup::Attio {
            object: object.clone(),
            record: record_id,
            system: system.clone(),
        };
        let props: Vec<ExternalProperty> = mapping
            .fields()
            .iter()
            .map(|m| m.external.clone())
            .collect();
        let (link, external) = match self
            .read_linked(tenant, &lookup, mapping, crm, &props, writes)
            .await?
        {
            Ok(found) => found,
            Err(held) => return Ok(Err(held)),
        };
        let snapshot = match (&link, &external) {
            (Some(l), Some(_)) => l.snapshot.clone(),
            _ => Snapshot::default(),
        };
        let mut attio = attio_side(mapping, record);
        let waiting = self.references_to_crm(tenant, mapping, &mut attio).await?;
        let mut external_values = external_side(mapping, external.as_ref());
        let (owners, unmatched) = self
            .owners_as_emails(
                tenant,
                object,
                mapping,
                clients,
                (&mut attio, &mut external_values),
            )
            .await?;
        let ready: Vec<FieldMapping> = mapping
            .fields()
            .iter()
            .filter(|f| !waiting.contains(&f.key()) && !unmatched.contains(&f.key()))
            .cloned()
            .collect();
        let outcome = merge(&ready, &snapshot, &attio, &external_values);
        Ok(Ok(Prepared {
            link,
            external,
            snapshot,
            attio,
            external_values,
            outcome,
            waiting,
            owners,
            unmatched,
        }))
    }

    /// The pair's link and its CRM record, read live. A linked record the CRM no longer holds
    /// was merged into another (the merge is followed here, before the merge's own event
    /// arrives, so the survivor is updated rather than the record created again), or deleted:
    /// then `Err(report)` while its delete waits for a person, else no record (the upsert by
    /// key writes it afresh). `NotReady` when the survivor is linked to another Attio record
    /// (an identity conflict is queued for a person).
    async fn read_linked(
        &self,
        tenant: &TenantId,
        lookup: &LinkLookup,
        mapping: &ObjectMapping,
        crm: &dyn ports::crm::ExternalCrm,
        props: &[ExternalProperty],
        writes: bool,
    ) -> ServiceResult<Result<(Option<IdentityLink>, Option<ExternalRecord>), SystemReport>> {
        let object = &mapping.external_object;
        let mut link = self.links.find(tenant, lookup).await?;
        // A chain of merges (merged into a record merged away in turn) is followed hop by hop;
        // a cycle, or a chain longer than any a person makes, is not.
        let mut followed: Vec<ExternalId> = Vec::new();
        while let Some(l) = &link {
            match crm.get(object, &l.external_id, props).await {
                Ok(r) if !r.archived => return Ok(Ok((link, Some(r)))),
                Ok(_) | Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let successor = crm.successor(object, &l.external_id).await?;
            match successor {
                Some(s)
                    if followed.len() < MAX_MERGE_HOPS
                        && !followed.contains(&s)
                        && s != l.external_id =>
                {
                    let gone = l.external_id.clone();
                    self.follow_merge(
                        tenant,
                        &mapping.system,
                        object,
                        &s,
                        std::slice::from_ref(&gone),
                    )
                    .await?;
                    followed.push(gone.clone());
                    link = self.links.find(tenant, lookup).await?;
                    // Merged in Attio too (the CRM merged it with a record linked to another
                    // Attio record): the new Attio record is synced when Attio tells the merge.
                    if link.is_none() {
                        return Err(ServiceError::NotReady(format!(
                            "{} {object} {} was merged into {}, and so its Attio record into another: synced once Attio tells the merge",
                            mapping.system,
                            gone.as_str(),
                            s.as_str()
                        )));
                    }
                    if link.as_ref().is_some_and(|l| l.external_id == gone) {
                        return Err(ServiceError::NotReady(format!(
                            "{} {object} {} was merged into {}, which is linked to another Attio record: an identity conflict waits for a person",
                            mapping.system,
                            gone.as_str(),
                            s.as_str()
                        )));
                    }
                }
                _ => break,
            }
        }
        let (Some(l), Some(gate)) = (&link, &self.deletes) else {
            return Ok(Ok((link, None)));
        };
        // Linked, and gone from the CRM without a survivor: a delete, found by reading. A sync
        // that writes takes it through the gate as if it had been told (the policy keeps the
        // Attio record, and the upsert writes the CRM's afresh; or holds it; or deletes it); a
        // dry run only reports a delete already held.
        let stop = |action| SystemReport {
            system: mapping.system.clone(),
            action,
            external_id: Some(l.external_id.clone()),
            written: Vec::new(),
            written_to_attio: Vec::new(),
            deferred_inbound: Vec::new(),
            conflicts: Vec::new(),
            waiting: Vec::new(),
        };
        if !writes {
            return Ok(match gate.held_for(tenant, l).await? {
                Some(_) => Err(stop(Action::DeleteHeld)),
                None => Ok((link, None)),
            });
        }
        match gate.admit(tenant, l, &mapping.system).await? {
            crate::deletes::Admission::Keep => Ok(Ok((link, None))),
            crate::deletes::Admission::Held(_) => Ok(Err(stop(Action::DeleteHeld))),
            crate::deletes::Admission::Propagate(_) => {
                match self.links.delete(tenant, lookup).await {
                    Ok(()) | Err(PortError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                let clients = self.directory.clients(tenant).await?;
                match clients
                    .attio
                    .delete_record(&ObjectRef::from(l.object.clone()), l.attio_record)
                    .await
                {
                    Ok(()) | Err(PortError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(tenant = %tenant, system = %mapping.system, external = %l.external_id.as_str(), record = %l.attio_record, "a linked CRM record was found deleted: the Attio record was deleted, per the mapping's CRM-delete policy");
                Ok(Err(stop(Action::DeletedInAttio)))
            }
        }
    }

    /// Which of `writes` (into Attio) the attribute types let the sync write; the others are
    /// deferred (left, and not marked synced).
    pub(crate) async fn writable_into_attio(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        mapping: &ObjectMapping,
        writes: &[FieldWrite],
        clients: &TenantClients,
    ) -> ServiceResult<(Vec<FieldKey>, Vec<FieldKey>)> {
        let attributes = self.attributes(tenant, object, clients).await?;
        let (mut ok, mut deferred) = (Vec::new(), Vec::new());
        for w in writes {
            let converts = mapping
                .fields()
                .iter()
                .find(|m| m.key() == w.key)
                .and_then(|m| {
                    let a = attributes
                        .iter()
                        .find(|a| a.api_slug == m.attio.attribute.as_str())?;
                    convert_into(a, m, &w.value, None)
                })
                .is_some();
            if converts {
                ok.push(w.key.clone());
            } else {
                deferred.push(w.key.clone());
            }
        }
        Ok((ok, deferred))
    }

    async fn sync_to(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        record_id: RecordId,
        target: &SyncTarget,
        clients: &TenantClients,
    ) -> ServiceResult<SystemReport> {
        let mapping = &target.mapping;
        let system = mapping.system.clone();
        let crm = clients
            .crms
            .get(&system)
            .ok_or_else(|| PortError::Invalid(format!("the tenant has no {system} connection")))?
            .as_ref();
        let Prepared {
            link,
            external,
            snapshot,
            attio,
            external_values,
            outcome,
            mut waiting,
            owners,
            unmatched,
        } = match self
            .prepare(tenant, object, record, target, clients, true)
            .await?
        {
            Ok(p) => p,
            Err(held) => return Ok(held),
        };
        let by_key: BTreeMap<FieldKey, &ExternalProperty> = mapping
            .fields()
            .iter()
            .map(|m| (m.key(), &m.external))
            .collect();
        let mut external_id = external.as_ref().map(|r| r.id.clone());
        let mut action = Action::Unchanged;
        let written: Vec<FieldKey> = outcome.to_external.iter().map(|w| w.key.clone()).collect();
        if !outcome.to_external.is_empty() {
            let to_crm = match &owners {
                Some(book) => book.to_crm_ids(&outcome.to_external),
                None => outcome.to_external.clone(),
            };
            let mut properties: BTreeMap<ExternalProperty, FieldValue> = to_crm
                .iter()
                .filter_map(|w| Some(((*by_key.get(&w.key)?).clone(), w.value.clone())))
                .collect();
            if external.is_none() {
                for (p, v) in &target.create_with {
                    properties.entry(p.clone()).or_insert_with(|| v.clone());
                }
            }
            let upsert = ExternalUpsert {
                key: record_id.to_string(),
                properties,
            };
            let results = crm
                .upsert_batch(&mapping.external_object, &target.id_property, &[upsert])
                .await?;
            match results.into_iter().next() {
                Some(RecordOutcome::Created(id)) => {
                    action = Action::Created;
                    external_id = Some(id);
                }
                Some(RecordOutcome::Updated(id)) => {
                    action = if external.is_some() {
                        Action::Updated
                    } else {
                        Action::Created
                    };
                    external_id = Some(id);
                }
                Some(RecordOutcome::Failed { reason, retryable }) => {
                    return Err(ServiceError::RecordRejected {
                        system,
                        reason,
                        retryable,
                    });
                }
                None => {
                    return Err(PortError::backend(
                        system.to_string(),
                        "an upsert of one record answered no outcome",
                    )
                    .into());
                }
            }
        }
        let now = self.clock.now();
        let Some(external_id) = external_id else {
            // Nothing on the other side and nothing to write (an empty record): no link yet.
            return Ok(SystemReport {
                system,
                action,
                external_id: None,
                written,
                written_to_attio: Vec::new(),
                deferred_inbound: Vec::new(),
                conflicts: Vec::new(),
                waiting,
            });
        };
        // Echo suppression: remember every value we wrote (and what `create_with` set).
        let mut entries: Vec<LedgerEntry> = outcome
            .to_external
            .iter()
            .map(|w| LedgerEntry {
                key: LedgerKey {
                    tenant: tenant.clone(),
                    system: system.clone(),
                    object: mapping.external_object.clone(),
                    record: external_id.as_str().to_owned(),
                    field: w.key.clone(),
                },
                value_hash: w.value.value_hash(),
                expires_at: now + self.ledger_ttl,
            })
            .collect();
        if external.is_none() && !outcome.to_external.is_empty() {
            for (p, v) in &target.create_with {
                entries.push(LedgerEntry {
                    key: crm_value_key(tenant, &system, &mapping.external_object, &external_id, p)?,
                    value_hash: v.value_hash(),
                    expires_at: now + self.ledger_ttl,
                });
            }
        }
        if !entries.is_empty() {
            self.ledger.record(&entries).await?;
        }
        // Values the merge wants in Attio: written back where the attribute's type allows;
        // the others keep their old snapshot entries, so they are never marked synced unwritten.
        let (to_attio, unlinked) = self
            .references_into_attio(tenant, mapping, &outcome.to_attio)
            .await?;
        let (written_to_attio, mut deferred) = if to_attio.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.write_back(
                tenant, object, record, record_id, mapping, &to_attio, clients,
            )
            .await?
        };
        deferred.extend(unlinked.iter().cloned());
        deferred.extend(unmatched);
        waiting.extend(unlinked);
        let mut new_snapshot = outcome.snapshot.clone();
        for key in &deferred {
            match snapshot.0.get(key) {
                Some(old) => new_snapshot.0.insert(key.clone(), old.clone()),
                None => new_snapshot.0.remove(key),
            };
        }
        self.audit(
            tenant,
            object,
            record_id,
            &external_id,
            mapping,
            (&attio, &external_values),
            (&outcome.to_external, &to_attio, &written_to_attio),
            now,
        )
        .await;
        let mut conflicts = Vec::new();
        for c in &outcome.conflicts {
            conflicts.push(c.key.clone());
            let id = ConflictId::from_uuid(uuid::Uuid::new_v4());
            let kept = self
                .conflicts
                .record(&ConflictRecord {
                    id,
                    tenant: tenant.clone(),
                    object: object.clone(),
                    attio_record: record_id,
                    system: system.clone(),
                    external_id: external_id.clone(),
                    conflict: c.clone(),
                    detected_at: now,
                    last_seen: now,
                    resolution: None,
                })
                .await?;
            if kept == id {
                metrics::counter!("conflicts_recorded_total", "system" => system.to_string())
                    .increment(1);
                self.gauge_open_conflicts(tenant).await;
            }
        }
        self.close_superseded(tenant, object, record_id, &system, &conflicts, now)
            .await?;
        let changed_link = link
            .as_ref()
            .is_none_or(|l| l.snapshot != new_snapshot || l.external_id != external_id);
        if changed_link {
            self.links
                .save(&IdentityLink {
                    tenant: tenant.clone(),
                    object: object.clone(),
                    attio_record: record_id,
                    system: system.clone(),
                    external_object: mapping.external_object.clone(),
                    external_id: external_id.clone(),
                    snapshot: new_snapshot,
                    updated_at: now,
                    version: link.as_ref().map(|l| l.version).unwrap_or(0),
                })
                .await?;
        }
        Ok(SystemReport {
            system,
            action,
            external_id: Some(external_id),
            written,
            written_to_attio,
            deferred_inbound: deferred,
            conflicts,
            waiting,
        })
    }

    /// Sets `conflicts_open{tenant}` to the tenant's count (after a conflict was queued or
    /// closed); a store that cannot count leaves the gauge as it was.
    pub(crate) async fn gauge_open_conflicts(&self, tenant: &TenantId) {
        match self.conflicts.count_open(tenant).await {
            Ok(n) => {
                metrics::gauge!("conflicts_open", "tenant" => tenant.to_string()).set(n as f64)
            }
            Err(e) => {
                tracing::debug!(tenant = %tenant, error = %ports::Chain(&e), "open conflicts not counted")
            }
        }
    }

    /// Closes the open conflicts of this record and system whose field the merge found in step
    /// (`in_conflict` lists the fields still in conflict): the sides agree again, or a
    /// resolution settled them, so nobody needs to decide them any more.
    async fn close_superseded(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record_id: RecordId,
        system: &SystemId,
        in_conflict: &[FieldKey],
        now: time::OffsetDateTime,
    ) -> ServiceResult<()> {
        let this_pair = ConflictFilter {
            object: Some(object.clone()),
            system: Some(system.clone()),
            record: Some(record_id),
            ..ConflictFilter::default()
        };
        for c in self.conflicts.open(tenant, &this_pair, 100).await? {
            if in_conflict.contains(c.field()) {
                continue;
            }
            match self
                .conflicts
                .resolve(tenant, c.id, Resolution::Superseded, now)
                .await
            {
                Ok(_) => {
                    tracing::info!(tenant = %tenant, conflict = %c.id, field = %c.field(), "a conflict closed itself: the field is in step again");
                    self.gauge_open_conflicts(tenant).await;
                }
                Err(PortError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes merge results into Attio; returns (written, deferred) field keys.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_back(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        record_id: RecordId,
        mapping: &ObjectMapping,
        writes: &[FieldWrite],
        clients: &TenantClients,
    ) -> ServiceResult<(Vec<FieldKey>, Vec<FieldKey>)> {
        let attributes = self.attributes(tenant, object, clients).await?;
        let mut write = RecordWrite::new();
        let (mut done, mut deferred) = (Vec::new(), Vec::new());
        let mut names: BTreeMap<AttributeSlug, (String, String)> = BTreeMap::new();
        let mut locations: BTreeMap<AttributeSlug, LocationWrite> = BTreeMap::new();
        for w in writes {
            let Some(m) = mapping.fields().iter().find(|m| m.key() == w.key) else {
                deferred.push(w.key.clone());
                continue;
            };
            let attr = attributes
                .iter()
                .find(|a| a.api_slug == m.attio.attribute.as_str());
            let converted = attr.and_then(|a| convert_into(a, m, &w.value, Some(record)));
            match converted {
                Some(Converted::Whole(values)) => {
                    write = write.set(m.attio.attribute.clone(), values);
                    done.push(w.key.clone());
                }
                Some(Converted::NamePart(first, text)) => {
                    let entry = names
                        .entry(m.attio.attribute.clone())
                        .or_insert_with(|| current_name(record, m.attio.attribute.as_str()));
                    if first {
                        entry.0 = text
                    } else {
                        entry.1 = text
                    }
                    done.push(w.key.clone());
                }
                Some(Converted::LocationPart(part, text)) => {
                    let entry = locations
                        .entry(m.attio.attribute.clone())
                        .or_insert_with(|| current_location(record, m.attio.attribute.as_str()));
                    set_location_part(entry, &part, text);
                    done.push(w.key.clone());
                }
                None => deferred.push(w.key.clone()),
            }
        }
        for (slug, (first, last)) in names {
            write = write.set(slug, vec![WriteValue::personal_name(&first, &last)]);
        }
        for (slug, location) in locations {
            write = write.set(slug, vec![WriteValue::Location(location)]);
        }
        if !done.is_empty() {
            clients
                .attio
                .update_record(
                    &ObjectRef::from(object.clone()),
                    record_id,
                    &write,
                    UpdateMode::Overwrite,
                )
                .await?;
        }
        Ok((done, deferred))
    }
}

/// The write ledger's key for a CRM property written outside the mapped fields (a value
/// `create_with` sets, a list entry's stage): what we wrote to it, so that finding the same
/// value there later is known as our own.
pub fn crm_value_key(
    tenant: &TenantId,
    system: &SystemId,
    object: &str,
    record: &ExternalId,
    property: &ExternalProperty,
) -> Result<LedgerKey, domain::DomainError> {
    Ok(LedgerKey {
        tenant: tenant.clone(),
        system: system.clone(),
        object: object.to_owned(),
        record: record.as_str().to_owned(),
        field: FieldKey::parse(&format!("property.{}", property.as_str()))?,
    })
}

/// `NotReady` when a reference of the record waited (its target is not linked yet), so that the
/// job runs again once it is; everything else was synced.
fn waits_for_references(reports: &[SystemReport]) -> ServiceResult<()> {
    let waiting: Vec<String> = reports
        .iter()
        .flat_map(|r| r.waiting.iter().map(move |k| format!("{k} ({})", r.system)))
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    Err(ServiceError::NotReady(format!(
        "the records referenced by {} are not linked yet",
        waiting.join(", ")
    )))
}

/// A value converted for Attio: a whole attribute, or one part of a personal name or of a
/// location.
pub(crate) enum Converted {
    Whole(Vec<WriteValue>),
    /// (is the first name, text)
    NamePart(bool, String),
    /// (the location's key, as `locality`; text, empty to clear it)
    LocationPart(String, String),
}

/// The parts of a location a CRM property can hold (latitude and longitude are Attio's own).
const LOCATION_PARTS: [&str; 8] = [
    "line_1",
    "line_2",
    "line_3",
    "line_4",
    "locality",
    "region",
    "postcode",
    "country_code",
];

fn plain(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::Empty => Some(String::new()),
        FieldValue::Text(s) => Some(s.clone()),
        FieldValue::Number(n) => Some(n.to_string()),
        FieldValue::Bool(b) => Some(b.to_string()),
        FieldValue::List(_) => None,
    }
}

/// The Attio form of a value written into attribute `attr` by mapping `m`; `None` when it does
/// not convert (the field is then deferred: reported, and not marked synced). A multi-valued
/// attribute takes a list whole; given one value (a CRM's one e-mail for Attio's several) it makes
/// it the first, the primary, and keeps the others of `record`.
pub(crate) fn convert_into(
    attr: &Attribute,
    m: &domain::mapping::FieldMapping,
    v: &FieldValue,
    record: Option<&Record>,
) -> Option<Converted> {
    let (kind, part) = (&attr.attribute_type, m.attio.part.as_deref());
    if *kind == AttributeType::RecordReference {
        return reference_into(attr, m, v);
    }
    if !attr.is_multiselect {
        return attio_value(kind, part, v);
    }
    if part.is_some() {
        return None;
    }
    let items: Vec<String> = match v {
        FieldValue::List(items) => items.clone(),
        FieldValue::Text(t) if m.attio.all_values => t
            .split(';')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        FieldValue::Empty if m.attio.all_values => Vec::new(),
        single => {
            let new = plain(single)?;
            let current = record
                .map(|r| {
                    let values: Vec<_> = r.current(m.attio.attribute.as_str()).cloned().collect();
                    FieldValue::ordered_texts(&values, None)
                })
                .unwrap_or_default();
            let mut items: Vec<String> = Vec::new();
            if !new.is_empty() {
                items.push(new);
            }
            for c in current.into_iter().skip(1) {
                if !items.contains(&c) {
                    items.push(c);
                }
            }
            // Attio lists values newest first and keeps a value it already has as it was, so the
            // new address leads; one already among the others stays where it is.
            items
        }
    };
    let values = items
        .iter()
        .map(|t| one_value(kind, t))
        .collect::<Option<Vec<_>>>()?;
    Some(Converted::Whole(values))
}

/// A reference's Attio form: the records of the referenced object named by their ids (already
/// translated from the CRM's, see `references.rs`); `None` without a referenced object, or for
/// several records in a single-valued attribute.
fn reference_into(
    attr: &Attribute,
    m: &domain::mapping::FieldMapping,
    v: &FieldValue,
) -> Option<Converted> {
    let target = m.attio.references.as_ref()?;
    let ids = match v.clone().normalized() {
        FieldValue::Empty => Vec::new(),
        FieldValue::Text(t) => vec![t],
        FieldValue::List(items) if attr.is_multiselect => items,
        _ => return None,
    };
    let values = ids
        .iter()
        .map(|id| {
            Some(WriteValue::RecordReference {
                target_object: target.clone(),
                target: RecordTarget::Id(RecordId::parse(id).ok()?),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Converted::Whole(values))
}

/// One Attio value of `kind` from its text, as Attio's own write forms take it (an e-mail
/// address, a domain, a phone number in E.164, an amount, an ISO date or timestamp, a rating, a
/// location's text, an option's title); `None` when the text is not one.
fn one_value(kind: &AttributeType, text: &str) -> Option<WriteValue> {
    let json = match kind {
        AttributeType::Number | AttributeType::Currency | AttributeType::Rating => {
            serde_json::Value::Number(text.trim().parse().ok()?)
        }
        AttributeType::Checkbox => {
            serde_json::Value::Bool(text.trim().eq_ignore_ascii_case("true"))
        }
        // References are translated first (`references.rs`), and go through `reference_into`.
        AttributeType::RecordReference => return None,
        // An owner comes as the member's e-mail address (`owners.rs`).
        AttributeType::ActorReference => serde_json::Value::String(text.trim().to_owned()),
        _ => serde_json::Value::String(text.to_owned()),
    };
    WriteValue::from_json(kind, &json).ok()
}

/// The Attio form of a value for a single-valued attribute; `None` when it does not convert.
fn attio_value(kind: &AttributeType, part: Option<&str>, v: &FieldValue) -> Option<Converted> {
    let text = plain(v)?;
    match (kind, part) {
        (AttributeType::PersonalName, Some("first_name")) => Some(Converted::NamePart(true, text)),
        (AttributeType::PersonalName, Some("last_name")) => Some(Converted::NamePart(false, text)),
        (AttributeType::Location, Some(p)) if LOCATION_PARTS.contains(&p) => {
            // Attio takes a country as its ISO 3166-1 alpha-2 code.
            let text = text.trim().to_owned();
            if p == "country_code"
                && !(text.is_empty()
                    || (text.len() == 2 && text.chars().all(|c| c.is_ascii_alphabetic())))
            {
                return None;
            }
            let text = if p == "country_code" {
                text.to_ascii_uppercase()
            } else {
                text
            };
            Some(Converted::LocationPart(p.to_owned(), text))
        }
        (_, Some(_)) => None,
        (_, None) if text.is_empty() => Some(Converted::Whole(Vec::new())),
        (kind, None) => Some(Converted::Whole(vec![one_value(kind, &text)?])),
    }
}

/// The record's current location (every part; empty when it has none).
fn current_location(record: &Record, attribute: &str) -> LocationWrite {
    record
        .current(attribute)
        .find_map(|v| match &v.data {
            domain::value::ValueData::Location(l) => Some(LocationWrite {
                line_1: l.line_1.clone(),
                line_2: l.line_2.clone(),
                line_3: l.line_3.clone(),
                line_4: l.line_4.clone(),
                locality: l.locality.clone(),
                region: l.region.clone(),
                postcode: l.postcode.clone(),
                country_code: l.country_code.clone(),
                latitude: l.latitude.clone(),
                longitude: l.longitude.clone(),
            }),
            _ => None,
        })
        .unwrap_or_default()
}

/// Sets one part of a location (one of [`LOCATION_PARTS`]); empty text clears it.
fn set_location_part(location: &mut LocationWrite, part: &str, text: String) {
    let slot = match part {
        "line_1" => &mut location.line_1,
        "line_2" => &mut location.line_2,
        "line_3" => &mut location.line_3,
        "line_4" => &mut location.line_4,
        "locality" => &mut location.locality,
        "region" => &mut location.region,
        "postcode" => &mut location.postcode,
        _ => &mut location.country_code,
    };
    *slot = (!text.is_empty()).then_some(text);
}

/// The record's current first and last name.
fn current_name(record: &Record, attribute: &str) -> (String, String) {
    record
        .current(attribute)
        .find_map(|v| match &v.data {
            domain::value::ValueData::PersonalName(n) => Some((
                n.first_name.clone().unwrap_or_default(),
                n.last_name.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .unwrap_or_default()
}
