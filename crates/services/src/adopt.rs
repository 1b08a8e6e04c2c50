//! Records born in a CRM: a CRM record with no link, of a mapping that adopts them (`match_on`),
//! is linked to the Attio record it names (its upsert key holds an Attio record id: a record we
//! wrote whose link was not saved yet) or matches (the mapped key, e-mail or domain, through
//! Attio's assert, so a retry never creates twice), and then synced like any linked pair: the
//! first sync fills Attio from the CRM and the record goes on to the other CRMs. When the key
//! matches an Attio record already linked to another record of that CRM, nothing is guessed: an
//! identity conflict is queued for a person.

use domain::conflict::ConflictRecord;
use domain::field::FieldValue;
use domain::ids::{ConflictId, ExternalId, ObjectRef, ObjectSlug, RecordId, SystemId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::FieldKey;
use domain::merge::{ConflictReason, FieldConflict, SideValue, Snapshot};
use domain::write::{RecordWrite, WriteValue};
use ports::error::PortError;

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{OutboundSync, SyncTarget, SystemReport};

/// What became of a CRM record with no link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// Linked to this Attio record (found, or created by Attio's assert) and synced.
    Linked {
        record: RecordId,
        reports: Vec<SystemReport>,
    },
    /// Its key matches an Attio record linked to another record of the CRM: queued.
    Ambiguous(ConflictId),
    /// Left out of Attio, with the reason.
    Skipped(String),
}

impl OutboundSync {
    /// Adopts the CRM record `external_id` of `external_object` (see the module docs).
    /// `Port(Rejected)` when Attio refuses the assert (the key is not a unique attribute).
    pub async fn adopt(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        external_object: &str,
        external_id: &ExternalId,
    ) -> ServiceResult<Adopted> {
        let mappings = self.catalog().of(tenant).await?;
        let Some(target) = mappings.targets.iter().find(|t| {
            &t.mapping.system == system
                && t.mapping.external_object == external_object
                && t.mapping.adopt_by().is_some()
        }) else {
            return Ok(Adopted::Skipped(format!(
                "{system} {external_object} records are not adopted into Attio (no match_on)"
            )));
        };
        let clients = self.directory.clients(tenant).await?;
        let crm = clients
            .crms
            .get(system)
            .ok_or_else(|| PortError::Invalid(format!("the tenant has no {system} connection")))?;
        let mut props: Vec<_> = target
            .mapping
            .fields()
            .iter()
            .map(|f| f.external.clone())
            .collect();
        props.push(target.id_property.clone());
        // A change can arrive after its record was merged away or deleted: nothing to adopt.
        let r = match crm.get(external_object, external_id, &props).await {
            Ok(r) if !r.archived => r,
            Ok(_) => return Ok(Adopted::Skipped("the record is archived".into())),
            Err(PortError::NotFound(_)) => {
                return Ok(Adopted::Skipped(
                    "the record no longer exists there (merged or deleted)".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let object = &target.mapping.attio_object;
        // A record we wrote names its Attio record in its upsert key.
        let named = r.properties.get(&target.id_property).and_then(|v| match v {
            FieldValue::Text(s) => RecordId::parse(s).ok(),
            _ => None,
        });
        let record = match named {
            Some(id) => id,
            None => match self
                .matched(tenant, target, &r.properties, &clients)
                .await?
            {
                Some(id) => id,
                None => {
                    return Ok(Adopted::Skipped(format!(
                        "the record has no {} to match by",
                        target
                            .mapping
                            .adopt_by()
                            .map(|f| f.external.as_str())
                            .unwrap_or("key")
                    )));
                }
            },
        };
        let lookup = LinkLookup::Attio {
            object: object.clone(),
            record,
            system: system.clone(),
        };
        if let Some(other) = self.links.find(tenant, &lookup).await? {
            if &other.external_id != external_id {
                let mapping = &target.mapping;
                let id = self
                    .identity_conflict(
                        tenant,
                        (&mapping.attio_object, &mapping.system),
                        record,
                        external_id,
                        &other.external_id,
                    )
                    .await?;
                tracing::warn!(tenant = %tenant, system = %system, external = %external_id.as_str(), record = %record, "a record born in the CRM matches an Attio record linked elsewhere: queued for a person");
                return Ok(Adopted::Ambiguous(id));
            }
        } else {
            let link = IdentityLink {
                tenant: tenant.clone(),
                object: object.clone(),
                attio_record: record,
                system: system.clone(),
                external_object: external_object.to_owned(),
                external_id: external_id.clone(),
                snapshot: Snapshot::default(),
                updated_at: self.now(),
                version: 0,
            };
            match self.links.save(&link).await {
                // Saved by a racing job meanwhile: the same pair.
                Ok(_) | Err(PortError::Stale(_)) => {}
                Err(PortError::Conflict(m)) => return Err(PortError::Stale(m).into()),
                Err(e) => return Err(e.into()),
            }
            self.mark_with_attio_id(tenant, &link, external_object, external_id)
                .await?;
            tracing::info!(tenant = %tenant, system = %system, external = %external_id.as_str(), record = %record, "a record born in the CRM was linked to Attio");
        }
        // The CRM it was born in first (its values fill the Attio record), then every mapping of
        // the object from the filled record (on to the other CRMs).
        self.sync_targets(tenant, object, record, &[target], &clients)
            .await?;
        let reports = self.sync_record(tenant, object, record).await?;
        Ok(Adopted::Linked { record, reports })
    }

    /// The Attio record the CRM record's key matches, asserted (found or created) by that key;
    /// `None` when the CRM record has no value for it.
    async fn matched(
        &self,
        tenant: &TenantId,
        target: &SyncTarget,
        properties: &std::collections::BTreeMap<domain::mapping::ExternalProperty, FieldValue>,
        clients: &ports::directory::TenantClients,
    ) -> ServiceResult<Option<RecordId>> {
        let Some(by) = target.mapping.adopt_by() else {
            return Ok(None);
        };
        let value = by
            .transform
            .to_attio(&properties.get(&by.external).cloned().unwrap_or_default());
        let FieldValue::Text(text) = value.normalized() else {
            return Ok(None);
        };
        let attribute = by.attio.attribute.clone();
        let object = ObjectRef::from(target.mapping.attio_object.clone());
        // Found by its key: that record, untouched (the sync that follows merges the sides).
        let found = clients
            .attio
            .query_records(
                &object,
                &ports::attio::Query {
                    filter: Some(serde_json::json!({ attribute.as_str(): text })),
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await?;
        if let Some(r) = found.first() {
            return Ok(Some(r.id.record_id));
        }
        // Not there: asserted by the key (so a retry, or a racing job, finds the same record),
        // with the CRM's values for the attributes a new record requires (a deal's name and
        // stage).
        let write = WriteValue::from_json(
            &self
                .attribute_type(tenant, &target.mapping.attio_object, &attribute, clients)
                .await?,
            &serde_json::json!(text),
        )?;
        let mut values = RecordWrite::new().set(attribute.clone(), vec![write]);
        let attributes = self
            .attributes(tenant, &target.mapping.attio_object, clients)
            .await?;
        for m in target.mapping.fields() {
            let Some(a) = attributes
                .iter()
                .find(|a| a.api_slug == m.attio.attribute.as_str() && a.is_required)
            else {
                continue;
            };
            if m.attio.attribute == attribute {
                continue;
            }
            let value = m
                .transform
                .to_attio(&properties.get(&m.external).cloned().unwrap_or_default());
            if let Some(crate::outbound::Converted::Whole(v)) =
                crate::outbound::convert_into(a, m, &value, None)
                && !v.is_empty()
            {
                values = values.set(m.attio.attribute.clone(), v);
            }
        }
        let record = clients
            .attio
            .assert_record(&object, &attribute, &values)
            .await?;
        Ok(Some(record.id.record_id))
    }

    /// The type of an Attio attribute (for its write form).
    async fn attribute_type(
        &self,
        tenant: &TenantId,
        object: &domain::ids::ObjectSlug,
        attribute: &domain::ids::AttributeSlug,
        clients: &ports::directory::TenantClients,
    ) -> ServiceResult<domain::value::AttributeType> {
        self.attributes(tenant, object, clients)
            .await?
            .into_iter()
            .find(|a| a.api_slug == attribute.as_str())
            .map(|a| a.attribute_type)
            .ok_or_else(|| {
                ServiceError::Port(PortError::Invalid(format!(
                    "Attio's {object} have no attribute {attribute} to match by"
                )))
            })
    }

    /// Queues an identity conflict: the CRM's `external_id` belongs with Attio's `record`,
    /// which is linked to another record of that CRM, `linked` (one per pair: a repeat updates
    /// it). Returns the conflict's id.
    pub(crate) async fn identity_conflict(
        &self,
        tenant: &TenantId,
        (object, system): (&ObjectSlug, &SystemId),
        record: RecordId,
        external_id: &ExternalId,
        linked: &ExternalId,
    ) -> ServiceResult<ConflictId> {
        let now = self.now();
        let id = ConflictId::from_uuid(uuid::Uuid::new_v4());
        let kept = self
            .conflicts
            .record(&ConflictRecord {
                id,
                tenant: tenant.clone(),
                object: object.clone(),
                attio_record: record,
                system: system.clone(),
                external_id: external_id.clone(),
                conflict: FieldConflict {
                    key: FieldKey::parse("identity")?,
                    snapshot: Default::default(),
                    attio: SideValue::new(
                        FieldValue::text(format!(
                            "{record}, linked to {system} {}",
                            linked.as_str()
                        )),
                        None,
                    ),
                    external: SideValue::new(FieldValue::text(external_id.as_str()), None),
                    reason: ConflictReason::AmbiguousIdentity,
                },
                detected_at: now,
                last_seen: now,
                resolution: None,
            })
            .await?;
        if kept == id {
            self.gauge_open_conflicts(tenant).await;
        }
        Ok(kept)
    }

    /// Merges Attio's `old.attio_record` into `kept` (Attio's merge makes a new record of the
    /// two and tells `record.merged` for each, whose handling moves their links onto it and
    /// merges their records in the other CRMs) and drops `old`'s link, whose CRM record is gone.
    /// `false` when Attio refuses or cannot merge (the caller asks a person instead).
    async fn merged_in_attio(
        &self,
        tenant: &TenantId,
        old: &IdentityLink,
        kept: RecordId,
    ) -> ServiceResult<bool> {
        let clients = self.directory.clients(tenant).await?;
        let object = ObjectRef::from(old.object.clone());
        match clients
            .attio
            .merge_records(&object, kept, old.attio_record)
            .await
        {
            Ok(made) => {
                tracing::info!(tenant = %tenant, system = %old.system, records = %format!("{kept} and {}", old.attio_record), new = %made, "a CRM merged records linked to two Attio records: merged in Attio too");
            }
            // Merged by an earlier attempt whose answer was lost (Attio's merge is not
            // idempotent), or one of them deleted since: only the link is left to drop.
            Err(PortError::NotFound(m)) => {
                tracing::info!(tenant = %tenant, system = %old.system, records = %format!("{kept} and {}", old.attio_record), reason = %m, "the Attio records were merged or deleted already");
            }
            Err(e @ (PortError::Rejected { .. } | PortError::Unsupported { .. })) => {
                tracing::warn!(tenant = %tenant, system = %old.system, records = %format!("{kept} and {}", old.attio_record), error = %e, "Attio did not merge the records: a person decides");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        let lookup = LinkLookup::Attio {
            object: old.object.clone(),
            record: old.attio_record,
            system: old.system.clone(),
        };
        match self.links.delete(tenant, &lookup).await {
            Ok(()) | Err(PortError::NotFound(_)) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// The record that holds `id` now: `id` while it lives, else the end of its chain of merges
    /// (at most [`crate::outbound::MAX_MERGE_HOPS`] hops); `id` itself when it was deleted
    /// without a merge (its delete is told on its own).
    async fn surviving(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        external_object: &str,
        id: &ExternalId,
    ) -> ServiceResult<ExternalId> {
        let clients = self.directory.clients(tenant).await?;
        let Some(crm) = clients.crms.get(system) else {
            return Ok(id.clone());
        };
        let mut at = id.clone();
        for _ in 0..crate::outbound::MAX_MERGE_HOPS {
            match crm.get(external_object, &at, &[]).await {
                Ok(r) if !r.archived => return Ok(at),
                Ok(_) | Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match crm.successor(external_object, &at).await? {
                Some(next) if next != at => at = next,
                _ => return Ok(id.clone()),
            }
        }
        Ok(id.clone())
    }

    /// Writes `old`'s Attio record id into the id property of CRM record `survivor` (a merge's
    /// survivor keeps its own unique values, and a record born in the CRM has none), so that
    /// upserts keyed by it find that record rather than create another.
    pub(crate) async fn mark_with_attio_id(
        &self,
        tenant: &TenantId,
        old: &IdentityLink,
        external_object: &str,
        survivor: &ExternalId,
    ) -> ServiceResult<()> {
        let Some(target) = self
            .targets_of(tenant, &old.object)
            .await?
            .into_iter()
            .find(|t| {
                t.mapping.system == old.system && t.mapping.external_object == external_object
            })
        else {
            return Ok(());
        };
        let clients = self.directory.clients(tenant).await?;
        let Some(crm) = clients.crms.get(&old.system) else {
            return Ok(());
        };
        let id = std::collections::BTreeMap::from([(
            target.id_property.clone(),
            FieldValue::text(old.attio_record.to_string()),
        )]);
        match crm.update(external_object, survivor, &id).await {
            // Deleted since: its own delete is told.
            Ok(()) | Err(PortError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A CRM merged the records `merged` into `survivor`: an Attio record linked to a merged-away
    /// record is linked to the survivor instead, so a later sync updates the survivor rather than
    /// creating the record again. When the survivor is linked to another Attio record, the two
    /// Attio records are one in the CRM: they are merged in Attio too (see
    /// `merged_in_attio`), or, where Attio refuses, both stay as they are and an identity
    /// conflict waits for a person. Returns what it did, one line per merged record linked here.
    pub async fn follow_merge(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        external_object: &str,
        survivor: &ExternalId,
        merged: &[ExternalId],
    ) -> ServiceResult<Vec<String>> {
        let external = |id: &ExternalId| LinkLookup::External {
            system: system.clone(),
            external_object: external_object.to_owned(),
            external_id: id.clone(),
        };
        // Told late, the survivor may have been merged away in turn: its own survivor.
        let survivor = &self
            .surviving(tenant, system, external_object, survivor)
            .await?;
        let mut kept = self.links.find(tenant, &external(survivor)).await?;
        let mut done = Vec::new();
        for m in merged.iter().filter(|m| *m != survivor) {
            let Some(old) = self.links.find(tenant, &external(m)).await? else {
                continue;
            };
            match &kept {
                None => {
                    self.mark_with_attio_id(tenant, &old, external_object, survivor)
                        .await?;
                    // The snapshot described the merged-away record; the survivor is compared
                    // afresh, as on a first link, so a value the survivor lacks is filled from
                    // Attio rather than cleared there.
                    let moved = IdentityLink {
                        external_id: survivor.clone(),
                        snapshot: domain::merge::Snapshot::default(),
                        ..old.clone()
                    };
                    kept = Some(self.links.save(&moved).await?);
                    tracing::info!(tenant = %tenant, system = %system, record = %old.attio_record, from = %m.as_str(), to = %survivor.as_str(), "a CRM merge: the link follows the surviving record");
                    done.push(format!(
                        "{} now linked to {}",
                        old.attio_record,
                        survivor.as_str()
                    ));
                }
                Some(k) if k.attio_record == old.attio_record => {}
                // Two records linked to two Attio records are one in the CRM now: merged in
                // Attio too (the union of their values), where Attio can merge.
                Some(k) if self.merged_in_attio(tenant, &old, k.attio_record).await? => {
                    done.push(format!(
                        "{} and {} merged in Attio, as in {system}",
                        k.attio_record, old.attio_record
                    ));
                }
                Some(k) => {
                    let id = self
                        .identity_conflict(
                            tenant,
                            (&old.object, system),
                            old.attio_record,
                            survivor,
                            m,
                        )
                        .await?;
                    tracing::warn!(tenant = %tenant, system = %system, records = %format!("{} and {}", old.attio_record, k.attio_record), "a CRM merged records linked to two Attio records: queued for a person");
                    done.push(format!(
                        "identity conflict {id}: {} and {} are one record in {system}",
                        old.attio_record, k.attio_record
                    ));
                }
            }
        }
        Ok(done)
    }
}
