//! Backfill: a full sync of one Attio object to one external system, resumable.
//!
//! Pages through `records/query` (500 per page, in creation order), and for each record compares
//! Attio's values with the link's snapshot: only records with a changed (or never synced) field
//! are written, in batches of the CRM's maximum, by their stable key, with the written values
//! remembered in the write ledger and the links saved with their new snapshot. The offset is
//! checkpointed in `SyncState` after every page, so an interrupted backfill resumes at the page it
//! was on (records of that page are written again, harmlessly: upserts by key). The external side
//! is not read: a backfill trusts the snapshot, the event pipeline settles two-sided changes.
//! A backfill left `Running` by a process that died is resumed once it is `stale_after` old.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ids::{ObjectRef, ObjectSlug, SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::{IdentityLink, LinkLookup};
use domain::merge::{FieldSnapshot, Snapshot};
use domain::sync_state::{BackfillPhase, SyncState};
use ports::attio::Query;
use ports::clock::Clock;
use ports::crm::{ExternalUpsert, RecordOutcome};
use ports::directory::ClientDirectory;
use ports::error::PortError;
use ports::stores::{LinkStore, SyncStateStore, WriteLedger};
use serde_json::json;

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{SyncTarget, attio_side};

/// Attio's largest page.
pub const PAGE: u32 = 500;

/// The backfill use case.
pub struct Backfill {
    directory: Arc<dyn ClientDirectory>,
    links: Arc<dyn LinkStore>,
    ledger: Arc<dyn WriteLedger>,
    states: Arc<dyn SyncStateStore>,
    clock: Arc<dyn Clock>,
    /// Each tenant's mappings.
    catalog: Arc<crate::mappings::MappingCatalog>,
    pub page_size: u32,
    pub stale_after: Duration,
    pub ledger_ttl: Duration,
}

impl std::fmt::Debug for Backfill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfill")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl Backfill {
    pub fn new(
        directory: Arc<dyn ClientDirectory>,
        links: Arc<dyn LinkStore>,
        ledger: Arc<dyn WriteLedger>,
        states: Arc<dyn SyncStateStore>,
        clock: Arc<dyn Clock>,
        targets: Vec<SyncTarget>,
    ) -> Self {
        Self {
            directory,
            links,
            ledger,
            states,
            clock,
            catalog: Arc::new(crate::mappings::MappingCatalog::fixed(targets)),
            page_size: PAGE,
            stale_after: Duration::from_secs(600),
            ledger_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Reads each tenant's mappings from `catalog`.
    pub fn with_catalog(mut self, catalog: Arc<crate::mappings::MappingCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Runs (or resumes) the backfill of `object` to `system`, at most `max_pages` pages when
    /// given (then it stays resumable). `Invalid` when no mapping covers the pair; `Domain` when a
    /// backfill of the pair is already running. A failing page is recorded in the state (its
    /// checkpoint kept) and returned as the error.
    pub async fn run(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
        max_pages: Option<u64>,
    ) -> ServiceResult<SyncState> {
        let mappings = self.catalog.of(tenant).await?;
        let target = mappings
            .targets
            .iter()
            .find(|t| &t.mapping.attio_object == object && &t.mapping.system == system)
            .ok_or_else(|| PortError::Invalid(format!("no mapping of {object} to {system}")))?;
        let now = self.clock.now();
        let mut state = match self.states.get(tenant, object, system).await? {
            Some(s) => s,
            None => SyncState::new(tenant.clone(), object.clone(), system.clone(), now),
        };
        if state.phase == BackfillPhase::Running
            && now - state.updated_at
                > time::Duration::try_from(self.stale_after).unwrap_or(time::Duration::MAX)
        {
            tracing::warn!(tenant = %tenant, object = %object, system = %system, "resuming a backfill its process abandoned");
            state.fail("abandoned by its process", now);
        }
        state.start(now)?;
        state = self.states.save(&state).await?;
        let mut pages = 0u64;
        loop {
            if max_pages.is_some_and(|m| pages >= m) {
                return Ok(state);
            }
            match self.page(tenant, object, target, &state).await {
                Ok((seen, written)) => {
                    let now = self.clock.now();
                    state.page_done(seen, written, now)?;
                    if seen < u64::from(self.page_size) {
                        state.complete(now)?;
                        return Ok(self.states.save(&state).await?);
                    }
                    state = self.states.save(&state).await?;
                    pages += 1;
                }
                Err(e) => {
                    state.fail(&e.to_string(), self.clock.now());
                    self.states.save(&state).await?;
                    return Err(e);
                }
            }
        }
    }

    /// One page: returns (records seen, records written).
    async fn page(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        target: &SyncTarget,
        state: &SyncState,
    ) -> ServiceResult<(u64, u64)> {
        let mapping = &target.mapping;
        let system = &mapping.system;
        let clients = self.directory.clients(tenant).await?;
        let crm = clients
            .crms
            .get(system)
            .ok_or_else(|| PortError::Invalid(format!("the tenant has no {system} connection")))?
            .clone();
        let query = Query {
            sorts: vec![json!({"attribute": "created_at", "direction": "asc"})],
            limit: Some(self.page_size),
            offset: state.next_offset,
            ..Query::default()
        };
        let records = clients
            .attio
            .query_records(&ObjectRef::from(object.clone()), &query)
            .await?;
        let by_key: BTreeMap<_, _> = mapping.fields().iter().map(|m| (m.key(), m)).collect();
        // What differs from each record's snapshot.
        let mut pending = Vec::new();
        for r in &records {
            let lookup = LinkLookup::Attio {
                object: object.clone(),
                record: r.id.record_id,
                system: system.clone(),
            };
            let link = self.links.find(tenant, &lookup).await?;
            let snapshot = link
                .as_ref()
                .map(|l| l.snapshot.clone())
                .unwrap_or_default();
            let side = attio_side(mapping, r);
            let mut properties = BTreeMap::new();
            let mut next = snapshot.clone();
            for (key, v) in &side {
                let Some(m) = by_key.get(key) else { continue };
                if !m.rule.flows_to_external() || v.value.same_as(&snapshot.get(key).attio) {
                    continue;
                }
                if link.is_none() && v.value.is_empty() {
                    continue;
                }
                let ext = m.transform.to_external(&v.value);
                properties.insert(m.external.clone(), ext.clone());
                next.0.insert(
                    key.clone(),
                    FieldSnapshot {
                        attio: v.value.clone(),
                        external: ext,
                        property: Some(m.external.clone()),
                    },
                );
            }
            if !properties.is_empty() && link.is_none() {
                for (p, v) in &target.create_with {
                    properties.entry(p.clone()).or_insert_with(|| v.clone());
                }
            }
            if !properties.is_empty() {
                pending.push((
                    r.id.record_id,
                    link,
                    next,
                    ExternalUpsert {
                        key: r.id.record_id.to_string(),
                        properties,
                    },
                ));
            }
        }
        let mut written = 0u64;
        for chunk in pending.chunks(crm.max_batch().max(1)) {
            let upserts: Vec<ExternalUpsert> = chunk.iter().map(|(_, _, _, u)| u.clone()).collect();
            let outcomes = crm
                .upsert_batch(&mapping.external_object, &target.id_property, &upserts)
                .await?;
            let now = self.clock.now();
            for ((record, link, next, upsert), outcome) in chunk.iter().zip(outcomes) {
                let id = match outcome {
                    RecordOutcome::Created(id) | RecordOutcome::Updated(id) => id,
                    RecordOutcome::Failed { reason, retryable } => {
                        return Err(ServiceError::RecordRejected {
                            system: system.clone(),
                            reason: format!("record {record}: {reason}"),
                            retryable,
                        });
                    }
                };
                let entries: Vec<LedgerEntry> = upsert
                    .properties
                    .iter()
                    .filter_map(|(prop, value)| {
                        let key = mapping.fields().iter().find(|m| &m.external == prop)?.key();
                        Some(LedgerEntry {
                            key: LedgerKey {
                                tenant: tenant.clone(),
                                system: system.clone(),
                                object: mapping.external_object.clone(),
                                record: id.as_str().to_owned(),
                                field: key,
                            },
                            value_hash: value.value_hash(),
                            expires_at: now + self.ledger_ttl,
                        })
                    })
                    .collect();
                self.ledger.record(&entries).await?;
                self.links
                    .save(&IdentityLink {
                        tenant: tenant.clone(),
                        object: object.clone(),
                        attio_record: *record,
                        system: system.clone(),
                        external_object: mapping.external_object.clone(),
                        external_id: id,
                        snapshot: Snapshot(next.0.clone()),
                        updated_at: now,
                        version: link.as_ref().map(|l| l.version).unwrap_or(0),
                    })
                    .await?;
                written += 1;
            }
        }
        Ok((records.len() as u64, written))
    }
}
