//! The event pipeline: one handler per Attio event type, each convergent (it re-reads what it
//! needs), so a duplicated or reordered delivery changes nothing.
//!
//! Handled: `record.created` / `record.updated` (the outbound sync), `record.deleted` (archive
//! the linked external records, or keep them, per configuration, and drop the links) and
//! `record.merged` (merge or archive the duplicate's external records, repoint its links, sync
//! the survivor) and `object-attribute.created` / `.updated` (flush the object's cached schema in
//! every process sharing the cache, and check its mappings against the new schema). `note.*`,
//! `note-content.updated` and `task.*` sync the note or task to the CRMs where its records are
//! linked (`activity.rs`). Every other event type is acknowledged as [`Handled::Ignored`] with
//! the reason.
//!
//! `list-entry.created` / `.updated` drive pipeline automation: for a list with a
//! [`StageTarget`], the entry's status is set on the linked CRM record of its parent (a deal's
//! stage). A removed entry changes nothing in the CRM.

pub(crate) mod activity;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain::field::FieldValue;
use domain::ids::{
    AttributeSlug, EntryId, ExternalId, ListId, ObjectId, ObjectRef, ObjectSlug, RecordId,
    SystemId, TenantId,
};
use domain::link::LinkLookup;
use domain::mapping::{ExternalProperty, Transform};
use domain::webhook::{EventSubject, EventType, WebhookEvent};
use ports::attio::ListRef;
use ports::crm::{ActivityKind, ExternalUpsert, RecordOutcome};
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::PortError;
use ports::stores::LinkStore;

use crate::deletes::{Admission, SafeDeletes};
use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{OutboundSync, SystemReport};

pub use domain::deletes::DeletePolicy;

/// A list whose status attribute drives a property of its entries' parent records in a CRM
/// (deal stage sync): when an entry is added or its status changes, the linked external record
/// of the entry's parent gets the (translated) status.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTarget {
    /// The list's `api_slug`.
    pub list: String,
    /// The entry's status (or select) attribute, e.g. `stage`.
    pub attribute: AttributeSlug,
    pub system: SystemId,
    /// The CRM property set from it, e.g. HubSpot's `dealstage`.
    pub property: ExternalProperty,
    /// Attio status title → CRM value; `Identity` passes titles through.
    pub transform: Transform,
}

/// What the pipeline did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Synced(Vec<SystemReport>),
    /// Records removed on the other side (or already gone) after a delete, links dropped, and
    /// deletes held for a person (their links stay).
    Deleted {
        archived: Vec<(SystemId, ExternalId)>,
        unlinked: usize,
        held: Vec<domain::ids::DeleteId>,
    },
    /// A merge: duplicates merged or archived in the CRMs, links repointed, survivor synced.
    Merged {
        merged: Vec<(SystemId, ExternalId)>,
        repointed: u64,
        synced: Vec<SystemReport>,
    },
    /// An attribute of `object` changed: its cached schema was flushed and its mappings checked
    /// against the attributes as they are now (`problems` is empty when they all still fit).
    SchemaChecked {
        object: ObjectSlug,
        problems: Vec<String>,
    },
    /// A list entry's status set on the linked external records of its parent:
    /// (system, external id, value written).
    Staged(Vec<(SystemId, ExternalId, FieldValue)>),
    /// A note or task written to the CRMs: (system, the CRM's id of its copy).
    Activity {
        kind: ActivityKind,
        written: Vec<(SystemId, ExternalId)>,
    },
    /// Acknowledged without effect.
    Ignored {
        reason: String,
    },
}

/// The event pipeline.
pub struct EventPipeline {
    directory: Arc<dyn ClientDirectory>,
    links: Arc<dyn LinkStore>,
    outbound: Arc<OutboundSync>,
    delete_policy: DeletePolicy,
    /// The delete gate (policies per mapping, the breaker, held deletes); without it an Attio
    /// delete follows `delete_policy` and a CRM delete is ignored.
    safe_deletes: Option<Arc<SafeDeletes>>,
    stages: Vec<StageTarget>,
    /// Object ids never change their object; slugs are looked up once per tenant.
    slugs: Mutex<HashMap<(TenantId, ObjectId), ObjectSlug>>,
}

impl std::fmt::Debug for EventPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPipeline")
            .field("delete_policy", &self.delete_policy)
            .finish_non_exhaustive()
    }
}

impl EventPipeline {
    pub fn new(
        directory: Arc<dyn ClientDirectory>,
        links: Arc<dyn LinkStore>,
        outbound: Arc<OutboundSync>,
        delete_policy: DeletePolicy,
    ) -> Self {
        Self {
            directory,
            links,
            outbound,
            delete_policy,
            safe_deletes: None,
            stages: Vec::new(),
            slugs: Mutex::default(),
        }
    }

    /// Sends every delete through `gate` (policies per mapping, the breaker, approvals).
    pub fn with_safe_deletes(mut self, gate: Arc<SafeDeletes>) -> Self {
        self.safe_deletes = Some(gate);
        self
    }

    /// Carries out a person's decision on a held delete (see [`SafeDeletes::carry_out`]).
    /// `Port(Invalid)` when this pipeline has no delete gate.
    pub async fn carry_out_delete(
        &self,
        tenant: &TenantId,
        id: domain::ids::DeleteId,
    ) -> ServiceResult<domain::deletes::DeleteStatus> {
        let gate = self.safe_deletes.as_ref().ok_or_else(|| {
            PortError::Invalid("held deletes are not configured on this worker".into())
        })?;
        gate.carry_out(tenant, id, self.directory.as_ref(), self.links.as_ref())
            .await
    }

    /// Lists whose entries' status is synced to the CRMs (see [`StageTarget`]).
    pub fn with_stage_targets(mut self, stages: Vec<StageTarget>) -> Self {
        self.stages = stages;
        self
    }

    async fn slug(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        object: ObjectId,
    ) -> ServiceResult<ObjectSlug> {
        let key = (tenant.clone(), object);
        if let Some(s) = self
            .slugs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(s.clone());
        }
        let found = clients.schema.get_object(&ObjectRef::Id(object)).await?;
        let slug = found.api_slug.as_deref().ok_or_else(|| {
            PortError::Invalid(format!("object {object} has no api_slug to map by"))
        })?;
        let slug = ObjectSlug::parse(slug)?;
        self.slugs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, slug.clone());
        Ok(slug)
    }

    /// Handles one event of a tenant. Errors are the job's: `is_retryable` says whether to retry.
    pub async fn handle(&self, tenant: &TenantId, event: &WebhookEvent) -> ServiceResult<Handled> {
        let ignored = |reason: String| Ok(Handled::Ignored { reason });
        match (&event.event_type, &event.subject) {
            (EventType::RecordCreated | EventType::RecordUpdated, EventSubject::Record(s)) => {
                let clients = self.directory.clients(tenant).await?;
                let object = self.slug(tenant, &clients, s.object_id).await?;
                match self
                    .outbound
                    .sync_record(tenant, &object, s.record_id)
                    .await
                {
                    Ok(reports) => Ok(Handled::Synced(reports)),
                    // Deleted since the event: the delete event does the rest.
                    Err(ServiceError::Port(PortError::NotFound(_))) => {
                        ignored(format!("record {} no longer exists in Attio", s.record_id))
                    }
                    Err(e) => Err(e),
                }
            }
            (EventType::RecordDeleted, EventSubject::Record(s)) => {
                let clients = self.directory.clients(tenant).await?;
                let object = self.slug(tenant, &clients, s.object_id).await?;
                self.deleted(tenant, &clients, &object, s.record_id).await
            }
            (EventType::RecordMerged, EventSubject::RecordMerged(s)) => {
                let clients = self.directory.clients(tenant).await?;
                let object = self.slug(tenant, &clients, s.object_id).await?;
                self.merged(
                    tenant,
                    &clients,
                    &object,
                    s.duplicate_record_id,
                    s.record_id,
                )
                .await
            }
            (
                EventType::ObjectAttributeCreated | EventType::ObjectAttributeUpdated,
                EventSubject::ObjectAttribute(s),
            ) => {
                let clients = self.directory.clients(tenant).await?;
                let object = self.slug(tenant, &clients, s.object_id).await?;
                let problems = self
                    .outbound
                    .schema_changed(tenant, &object, &clients)
                    .await?;
                Ok(Handled::SchemaChecked { object, problems })
            }
            (
                EventType::ListEntryCreated | EventType::ListEntryUpdated,
                EventSubject::ListEntry(s),
            ) => self.entry_changed(tenant, s.list_id, s.entry_id).await,
            (
                EventType::NoteCreated | EventType::NoteUpdated | EventType::NoteContentUpdated,
                EventSubject::Note(s),
            ) => self.note_changed(tenant, s.note_id).await,
            (EventType::NoteDeleted, EventSubject::Note(s)) => {
                self.activity_deleted(tenant, ActivityKind::Note, *s.note_id.as_uuid())
                    .await
            }
            (EventType::TaskCreated | EventType::TaskUpdated, EventSubject::Task(s)) => {
                self.task_changed(tenant, s.task_id).await
            }
            (EventType::TaskDeleted, EventSubject::Task(s)) => {
                self.activity_deleted(tenant, ActivityKind::Task, *s.task_id.as_uuid())
                    .await
            }
            (t, EventSubject::Unknown(_)) => {
                ignored(format!("{} with an unreadable subject", t.as_str()))
            }
            (t, _) => ignored(format!("{} is not handled yet", t.as_str())),
        }
    }

    /// A list entry was added or changed: its status goes to the linked external record of its
    /// parent, for every stage target of the list. `NotReady` (retried) while the parent is not
    /// linked yet, as when the entry's event overtakes the parent record's.
    async fn entry_changed(
        &self,
        tenant: &TenantId,
        list: ListId,
        entry: EntryId,
    ) -> ServiceResult<Handled> {
        if self.stages.is_empty() {
            return Ok(Handled::Ignored {
                reason: "no list is mapped to a CRM stage".into(),
            });
        }
        let clients = self.directory.clients(tenant).await?;
        let found = clients.lists.get_list(&ListRef::Id(list)).await?;
        let targets: Vec<&StageTarget> = self
            .stages
            .iter()
            .filter(|t| t.list == found.api_slug)
            .collect();
        if targets.is_empty() {
            return Ok(Handled::Ignored {
                reason: format!("list {} is not mapped to a CRM stage", found.api_slug),
            });
        }
        let entry = match clients.lists.get_entry(&ListRef::Id(list), entry).await {
            Ok(e) => e,
            Err(PortError::NotFound(_)) => {
                return Ok(Handled::Ignored {
                    reason: format!("entry {entry} no longer exists"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let parent = ObjectSlug::parse(&entry.parent_object)?;
        let mut staged = Vec::new();
        for t in targets {
            let values = entry
                .entry_values
                .get(&t.attribute)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let value = t
                .transform
                .to_external(&FieldValue::from_attio(values, None, false));
            let Some(crm) = clients.crms.get(&t.system) else {
                continue;
            };
            let Some(record_target) = self
                .outbound
                .targets_of(tenant, &parent)
                .await?
                .into_iter()
                .find(|r| r.mapping.system == t.system)
            else {
                return Err(ServiceError::Domain(domain::DomainError::InvalidMapping(
                    format!(
                        "list {} drives {} {}, but {parent} records are not mapped to {}",
                        t.list,
                        t.system,
                        t.property.as_str(),
                        t.system
                    ),
                )));
            };
            let lookup = LinkLookup::Attio {
                object: parent.clone(),
                record: entry.parent_record_id,
                system: t.system.clone(),
            };
            let Some(link) = self.links.find(tenant, &lookup).await? else {
                return Err(ServiceError::NotReady(format!(
                    "{parent} record {} is not in {} yet",
                    entry.parent_record_id, t.system
                )));
            };
            // The echo of an entry a CRM's stage moved: nothing goes back.
            let attio_status = FieldValue::from_attio(values, None, false);
            if self
                .outbound
                .ledger
                .is_echo(
                    &Self::entry_key(tenant, t, entry.id.entry_id)?,
                    &attio_status.value_hash(),
                    self.outbound.now(),
                )
                .await?
            {
                continue;
            }
            // Already there (a repeat): no write.
            let now = crm
                .get(
                    &record_target.mapping.external_object,
                    &link.external_id,
                    std::slice::from_ref(&t.property),
                )
                .await?;
            if now
                .properties
                .get(&t.property)
                .is_some_and(|v| v.same_as(&value))
            {
                self.remember_crm_stage(tenant, t, &link, &value).await?;
                staged.push((t.system.clone(), link.external_id.clone(), value));
                continue;
            }
            self.remember_crm_stage(tenant, t, &link, &value).await?;
            let upsert = ExternalUpsert {
                key: entry.parent_record_id.to_string(),
                properties: [(t.property.clone(), value.clone())].into(),
            };
            let outcome = crm
                .upsert_batch(
                    &record_target.mapping.external_object,
                    &record_target.id_property,
                    &[upsert],
                )
                .await?;
            match outcome.into_iter().next() {
                Some(RecordOutcome::Created(_) | RecordOutcome::Updated(_)) => {
                    staged.push((t.system.clone(), link.external_id.clone(), value));
                }
                Some(RecordOutcome::Failed { reason, retryable }) => {
                    return Err(ServiceError::RecordRejected {
                        system: t.system.clone(),
                        reason,
                        retryable,
                    });
                }
                None => {
                    return Err(ServiceError::Port(PortError::Invalid(format!(
                        "{} answered no outcome for one record",
                        t.system
                    ))));
                }
            }
        }
        Ok(Handled::Staged(staged))
    }

    /// A change in an external CRM (a HubSpot webhook event): the linked Attio record is synced
    /// both ways (the merge decides what goes where). Records that were never linked, and
    /// deletions, are acknowledged without effect: the CRM does not create or delete Attio records.
    /// The outbound sync this pipeline writes through.
    pub fn outbound(&self) -> &OutboundSync {
        &self.outbound
    }

    pub async fn handle_external(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        external_object: &str,
        external_id: &ExternalId,
        deleted: bool,
    ) -> ServiceResult<Handled> {
        let lookup = LinkLookup::External {
            system: system.clone(),
            external_object: external_object.to_owned(),
            external_id: external_id.clone(),
        };
        let Some(link) = self.links.find(tenant, &lookup).await? else {
            if deleted {
                return Ok(Handled::Ignored {
                    reason: format!(
                        "{system} {external_object} {} is not linked to an Attio record",
                        external_id.as_str()
                    ),
                });
            }
            // Born in the CRM: adopted into Attio where its mapping says so.
            return Ok(
                match self
                    .outbound
                    .adopt(tenant, system, external_object, external_id)
                    .await?
                {
                    crate::adopt::Adopted::Linked { reports, .. } => Handled::Synced(reports),
                    crate::adopt::Adopted::Ambiguous(id) => Handled::Ignored {
                        reason: format!(
                            "{system} {external_object} {} matches an Attio record linked elsewhere: identity conflict {id} queued",
                            external_id.as_str()
                        ),
                    },
                    crate::adopt::Adopted::Skipped(why) => Handled::Ignored {
                        reason: format!(
                            "{system} {external_object} {} is not linked to an Attio record: {why}",
                            external_id.as_str()
                        ),
                    },
                },
            );
        };
        if deleted {
            return self.external_deleted(tenant, system, &link).await;
        }
        match self
            .outbound
            .sync_record(tenant, &link.object, link.attio_record)
            .await
        {
            Ok(reports) => {
                let moved = self.stages_from_crm(tenant, system, &link).await?;
                if moved == 0
                    && reports.iter().all(|r| {
                        matches!(r.action, crate::outbound::Action::Unchanged)
                            && r.written_to_attio.is_empty()
                    })
                {
                    // The change carried nothing the last sync did not see: the echo of our
                    // own write (or a change to unmapped properties).
                    metrics::counter!("echoes_suppressed_total", "system" => system.to_string())
                        .increment(1);
                }
                Ok(Handled::Synced(reports))
            }
            Err(ServiceError::Port(PortError::NotFound(_))) => Ok(Handled::Ignored {
                reason: format!(
                    "the linked Attio record {} no longer exists",
                    link.attio_record
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Archives one external record; an id the CRM no longer knows counts as archived, and one
    /// it merged into another (before the merge's event reached us) archives the survivor, which
    /// is the same record now.
    async fn archive(
        clients: &TenantClients,
        system: &SystemId,
        object: &str,
        id: &ExternalId,
    ) -> ServiceResult<bool> {
        let Some(crm) = clients.crms.get(system) else {
            return Ok(false);
        };
        // Merged away (perhaps into a record merged away in turn): the survivor is archived.
        let mut id = id.clone();
        for _ in 0..crate::outbound::MAX_MERGE_HOPS {
            let gone = match crm.get(object, &id, &[]).await {
                Ok(r) => r.archived,
                Err(PortError::NotFound(_)) => true,
                Err(e) => return Err(e.into()),
            };
            match crm.successor(object, &id).await? {
                Some(survivor) if gone && survivor != id => {
                    tracing::info!(system = %system, merged = %id.as_str(), survivor = %survivor.as_str(), "the linked record was merged away: its survivor is archived");
                    id = survivor;
                }
                _ => break,
            }
        }
        let id = &id;
        match crm
            .archive_batch(object, std::slice::from_ref(id))
            .await?
            .pop()
        {
            Some(RecordOutcome::Failed {
                reason,
                retryable: true,
            }) => Err(ServiceError::RecordRejected {
                system: system.clone(),
                reason,
                retryable: true,
            }),
            Some(RecordOutcome::Failed { reason, .. }) => {
                tracing::debug!(system = %system, id = %id.as_str(), reason = %reason, "the external record was already gone");
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// The ledger key of a CRM record's stage property: what we wrote there, or last took
    /// from there into Attio, so that only a change made in the CRM moves the Attio entry.
    fn crm_stage_key(
        tenant: &TenantId,
        t: &StageTarget,
        link: &domain::link::IdentityLink,
    ) -> ServiceResult<domain::ledger::LedgerKey> {
        Ok(crate::outbound::crm_value_key(
            tenant,
            &t.system,
            &link.external_object,
            &link.external_id,
            &t.property,
        )?)
    }

    /// Remembers a CRM stage as ours (written, or taken into Attio).
    async fn remember_crm_stage(
        &self,
        tenant: &TenantId,
        t: &StageTarget,
        link: &domain::link::IdentityLink,
        stage: &FieldValue,
    ) -> ServiceResult<()> {
        self.outbound
            .ledger
            .record(&[domain::ledger::LedgerEntry {
                key: Self::crm_stage_key(tenant, t, link)?,
                value_hash: stage.value_hash(),
                expires_at: self.outbound.now() + self.outbound.ledger_ttl,
            }])
            .await?;
        Ok(())
    }

    /// The ledger key of a list entry's stage attribute (for echoes of entries we moved).
    fn entry_key(
        tenant: &TenantId,
        t: &StageTarget,
        entry: domain::ids::EntryId,
    ) -> ServiceResult<domain::ledger::LedgerKey> {
        // Per CRM: an entry one CRM's stage moved is that CRM's echo only; it still goes to the
        // others.
        Ok(domain::ledger::LedgerKey {
            tenant: tenant.clone(),
            system: SystemId::attio(),
            object: format!("list-{}-{}", t.list, t.system),
            record: entry.to_string(),
            field: domain::mapping::FieldKey::parse(t.attribute.as_str())?,
        })
    }

    /// Deal stages both ways: for each stage target of `system`, the CRM record's stage property
    /// moves the Attio list entry of its record to the status the inverse of the stage map
    /// gives. Only an entry whose status differs is written; a CRM stage the map does not name
    /// is left (logged), and a record with no entry in the list gets none. Returns how many
    /// entries moved.
    async fn stages_from_crm(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        link: &domain::link::IdentityLink,
    ) -> ServiceResult<usize> {
        let targets: Vec<&StageTarget> =
            self.stages.iter().filter(|t| &t.system == system).collect();
        if targets.is_empty() {
            return Ok(0);
        }
        let clients = self.directory.clients(tenant).await?;
        let Some(crm) = clients.crms.get(system) else {
            return Ok(0);
        };
        let entries = match clients
            .lists
            .entries_of(&ObjectRef::from(link.object.clone()), link.attio_record)
            .await
        {
            Ok(e) => e,
            Err(PortError::NotFound(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut moved = 0;
        for t in targets {
            let Some(e) = entries.iter().find(|e| e.list_api_slug == t.list) else {
                continue;
            };
            let r = crm
                .get(
                    &link.external_object,
                    &link.external_id,
                    std::slice::from_ref(&t.property),
                )
                .await?;
            let FieldValue::Text(stage) = r
                .properties
                .get(&t.property)
                .cloned()
                .unwrap_or_default()
                .normalized()
            else {
                continue;
            };
            // What we wrote there, or took from there already: not a change made in the CRM.
            if self
                .outbound
                .ledger
                .is_echo(
                    &Self::crm_stage_key(tenant, t, link)?,
                    &FieldValue::text(stage.clone()).value_hash(),
                    self.outbound.now(),
                )
                .await?
            {
                continue;
            }
            // Read again: a stage we wrote since the first read (its ledger entry replacing
            // the one that made the first read an echo) leaves this read stale, and its own
            // change follows.
            let again = crm
                .get(
                    &link.external_object,
                    &link.external_id,
                    std::slice::from_ref(&t.property),
                )
                .await?;
            if !again
                .properties
                .get(&t.property)
                .is_some_and(|v| v.same_as(&FieldValue::text(stage.clone())))
            {
                tracing::debug!(tenant = %tenant, system = %system, stage = %stage, "the CRM stage changed while it was read: left for the newer change");
                continue;
            }
            self.remember_crm_stage(tenant, t, link, &FieldValue::text(stage.clone()))
                .await?;
            let FieldValue::Text(title) = t
                .transform
                .to_attio(&FieldValue::text(stage.clone()))
                .normalized()
            else {
                continue;
            };
            if title == stage && matches!(t.transform, Transform::MapValues { .. }) {
                tracing::info!(tenant = %tenant, system = %system, stage = %stage, list = %t.list, "a CRM stage the stage map does not name: the Attio entry is left");
                continue;
            }
            let list = ListRef::Id(e.list_id);
            let entry = clients.lists.get_entry(&list, e.entry_id).await?;
            let current = FieldValue::from_attio(
                entry
                    .entry_values
                    .get(&t.attribute)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                None,
                false,
            );
            if current.same_as(&FieldValue::text(title.clone())) {
                continue;
            }
            // Remembered, so the entry's own event is known as our echo and not written back.
            self.outbound
                .ledger
                .record(&[domain::ledger::LedgerEntry {
                    key: Self::entry_key(tenant, t, e.entry_id)?,
                    value_hash: FieldValue::text(title.clone()).value_hash(),
                    expires_at: self.outbound.now() + self.outbound.ledger_ttl,
                }])
                .await?;
            let values = [(
                t.attribute.clone(),
                vec![domain::write::WriteValue::Status(title.clone())],
            )]
            .into();
            clients
                .lists
                .update_entry(
                    &list,
                    e.entry_id,
                    &values,
                    ports::attio::UpdateMode::Overwrite,
                )
                .await?;
            tracing::info!(tenant = %tenant, system = %system, list = %t.list, status = %title, "a CRM stage moved the Attio entry");
            moved += 1;
        }
        Ok(moved)
    }

    /// A linked CRM record was deleted: the Attio record is deleted, kept or held, per the
    /// mapping's CRM-delete policy (keep unless configured).
    async fn external_deleted(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        link: &domain::link::IdentityLink,
    ) -> ServiceResult<Handled> {
        let kept = || {
            Ok(Handled::Ignored {
                reason: format!(
                    "{system} {} {} was deleted; Attio keeps its record",
                    link.external_object,
                    link.external_id.as_str()
                ),
            })
        };
        let Some(gate) = &self.safe_deletes else {
            return kept();
        };
        match gate.admit(tenant, link, system).await? {
            Admission::Keep => kept(),
            Admission::Held(d) => Ok(Handled::Deleted {
                archived: Vec::new(),
                unlinked: 0,
                held: vec![d.id],
            }),
            Admission::Propagate(_) => {
                let lookup = LinkLookup::Attio {
                    object: link.object.clone(),
                    record: link.attio_record,
                    system: system.clone(),
                };
                match self.links.delete(tenant, &lookup).await {
                    Ok(()) | Err(PortError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                let clients = self.directory.clients(tenant).await?;
                match clients
                    .attio
                    .delete_record(&ObjectRef::from(link.object.clone()), link.attio_record)
                    .await
                {
                    Ok(()) | Err(PortError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Handled::Deleted {
                    archived: vec![(
                        SystemId::attio(),
                        ExternalId::parse(&link.attio_record.to_string())?,
                    )],
                    unlinked: 1,
                    held: Vec::new(),
                })
            }
        }
    }

    async fn deleted(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        object: &ObjectSlug,
        record: RecordId,
    ) -> ServiceResult<Handled> {
        let links = self.links.links_of(tenant, object, record).await?;
        let (mut archived, mut held) = (Vec::new(), Vec::new());
        for l in &links {
            let propagate = match &self.safe_deletes {
                Some(gate) => match gate.admit(tenant, l, &SystemId::attio()).await? {
                    Admission::Propagate(_) => true,
                    Admission::Keep => false,
                    Admission::Held(d) => {
                        // The link stays until a person decides.
                        held.push(d.id);
                        continue;
                    }
                },
                None => self.delete_policy == DeletePolicy::Archive,
            };
            if propagate
                && Self::archive(clients, &l.system, &l.external_object, &l.external_id).await?
            {
                archived.push((l.system.clone(), l.external_id.clone()));
            }
            let lookup = LinkLookup::Attio {
                object: object.clone(),
                record,
                system: l.system.clone(),
            };
            match self.links.delete(tenant, &lookup).await {
                Ok(()) | Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Handled::Deleted {
            archived,
            unlinked: links.len() - held.len(),
            held,
        })
    }

    async fn merged(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        object: &ObjectSlug,
        duplicate: RecordId,
        survivor: RecordId,
    ) -> ServiceResult<Handled> {
        if duplicate == survivor {
            return Ok(Handled::Ignored {
                reason: "a record merged into itself".into(),
            });
        }
        // Told after the survivor was deleted: the duplicate's records go as the survivor's
        // went (its links moved onto a deleted record would leave them orphaned).
        if let Err(PortError::NotFound(_)) = clients
            .attio
            .get_record(&ObjectRef::from(object.clone()), survivor)
            .await
        {
            tracing::info!(tenant = %tenant, object = %object, duplicate = %duplicate, survivor = %survivor, "a merge told after its survivor was deleted: the duplicate's records are deleted as its were");
            return self.deleted(tenant, clients, object, duplicate).await;
        }
        let dup_links = self.links.links_of(tenant, object, duplicate).await?;
        let kept = self.links.links_of(tenant, object, survivor).await?;
        let mut merged = Vec::new();
        for d in &dup_links {
            let Some(k) = kept.iter().find(|k| k.system == d.system) else {
                continue;
            };
            if k.external_id == d.external_id {
                continue;
            }
            // Both records exist on the other side: fold the duplicate into the survivor's, or
            // archive it where the CRM cannot merge.
            let Some(crm) = clients.crms.get(&d.system) else {
                continue;
            };
            match crm
                .merge(&d.external_object, &k.external_id, &d.external_id)
                .await
            {
                Ok(_) => merged.push((d.system.clone(), d.external_id.clone())),
                Err(PortError::Unsupported { .. }) => {
                    if Self::archive(clients, &d.system, &d.external_object, &d.external_id).await?
                    {
                        merged.push((d.system.clone(), d.external_id.clone()));
                    }
                }
                Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let repointed = self
            .links
            .repoint(tenant, object, duplicate, survivor)
            .await?;
        // The CRM records that came over name the survivor in their id property now, so that
        // upserts keyed by it find them.
        let now_linked = self.links.links_of(tenant, object, survivor).await?;
        if now_linked.is_empty() {
            // Neither record was linked anywhere: nothing of the merge to carry to the CRMs
            // (the survivor's own sync writes its records).
            return Ok(Handled::Merged {
                merged,
                repointed,
                synced: Vec::new(),
            });
        }
        for l in now_linked {
            if !kept.iter().any(|k| k.system == l.system) {
                self.outbound
                    .mark_with_attio_id(tenant, &l, &l.external_object, &l.external_id)
                    .await?;
            }
        }
        // A survivor with no links of its own is, most often, the new record of Attio's merge
        // (2026), which tells `record.merged` once per original: its links are not all here
        // yet, and a sync now would write CRM records the other original's links hold. It is
        // synced when the other original's event comes (or on its next change).
        if kept.is_empty() && !dup_links.is_empty() {
            tracing::info!(tenant = %tenant, object = %object, duplicate = %duplicate, survivor = %survivor, "a merge's links moved; the survivor is synced once its other original's are");
            return Ok(Handled::Merged {
                merged,
                repointed,
                synced: Vec::new(),
            });
        }
        let synced = match self.outbound.sync_record(tenant, object, survivor).await {
            Ok(r) => r,
            Err(ServiceError::Port(PortError::NotFound(_))) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Handled::Merged {
            merged,
            repointed,
            synced,
        })
    }
}
