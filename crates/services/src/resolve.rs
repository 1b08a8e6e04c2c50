//! Settling a conflict a person resolved: the chosen value is written to every side that does
//! not hold it yet, through the same write path as a sync (the CRM's upsert by key with its
//! ledger entry, so the CRM's notification of it is an echo; Attio's update), recorded in the
//! audit trail, and made the field's snapshot, so neither side's notification syncs anything
//! back. Running it again writes nothing: each side is compared with the chosen value first.

use domain::audit::AuditEntry;
use domain::conflict::{ConflictFilter, ConflictRecord};
use domain::ids::{ConflictId, ObjectRef, SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::LinkLookup;
use domain::merge::{FieldSnapshot, FieldWrite};
use ports::crm::{ExternalUpsert, RecordOutcome};
use ports::error::PortError;

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{OutboundSync, attio_side};

/// What settling wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// The chosen value was written to Attio.
    pub wrote_attio: bool,
    /// The chosen value was written to the CRM.
    pub wrote_external: bool,
}

impl OutboundSync {
    /// Settles the stored conflict `id` of `tenant` (see [`OutboundSync::settle`]); `NotFound`
    /// when the tenant has no such conflict.
    pub async fn settle_stored(&self, tenant: &TenantId, id: ConflictId) -> ServiceResult<Settled> {
        let conflict = self.conflicts.get(tenant, id).await?;
        self.settle(&conflict).await
    }

    /// Writes a resolved conflict's chosen value to each side that differs and makes it the
    /// field's snapshot. `NotReady` while the conflict has no resolution yet (the job was
    /// enqueued before the decision was stored); `Port(Invalid)` when the field is no longer
    /// mapped or the tenant has no connection to the system; `NotReady` when the records are
    /// not linked; `RecordRejected` when the CRM refuses the value.
    pub async fn settle(&self, conflict: &ConflictRecord) -> ServiceResult<Settled> {
        let Some((resolution, _)) = &conflict.resolution else {
            return Err(ServiceError::NotReady(format!(
                "conflict {} has no resolution yet",
                conflict.id
            )));
        };
        let (tenant, object, record_id) =
            (&conflict.tenant, &conflict.object, conflict.attio_record);
        let key = conflict.field();
        let gone = |what: String| ServiceError::Port(PortError::Invalid(what));
        let target = self
            .targets_of(tenant, object)
            .await?
            .into_iter()
            .find(|t| t.mapping.system == conflict.system)
            .ok_or_else(|| {
                gone(format!(
                    "{object} is no longer mapped to {}",
                    conflict.system
                ))
            })?;
        let mapping = &target.mapping;
        let field = mapping
            .fields()
            .iter()
            .find(|m| &m.key() == key)
            .ok_or_else(|| gone(format!("{object}.{key} is no longer mapped")))?;
        let Some((want_attio, want_external)) = resolution.chosen(&conflict.conflict, field) else {
            return Ok(Settled::default());
        };
        let (want_attio, want_external) = (want_attio.normalized(), want_external.normalized());

        let clients = self.directory.clients(tenant).await?;
        let crm = clients
            .crms
            .get(&conflict.system)
            .ok_or_else(|| gone(format!("the tenant has no {} connection", conflict.system)))?;
        let lookup = LinkLookup::Attio {
            object: object.clone(),
            record: record_id,
            system: conflict.system.clone(),
        };
        let Some(mut link) = self.links.find(tenant, &lookup).await? else {
            return Err(ServiceError::NotReady(format!(
                "{object} {record_id} is not linked to {}",
                conflict.system
            )));
        };
        let record = clients
            .attio
            .get_record(&ObjectRef::from(object.clone()), record_id)
            .await?;
        let attio_now = attio_side(mapping, &record)
            .remove(key)
            .map(|v| v.value.normalized())
            .unwrap_or_default();
        let external = crm
            .get(
                &mapping.external_object,
                &link.external_id,
                std::slice::from_ref(&field.external),
            )
            .await?;
        let external_now = external
            .properties
            .get(&field.external)
            .cloned()
            .unwrap_or_default()
            .normalized();

        let now = self.now();
        let cause = ports::trace::origin();
        let entry = |written_to: SystemId, written_record: String, old, new| AuditEntry {
            tenant: tenant.clone(),
            object: object.clone(),
            record: record_id,
            field: key.clone(),
            written_to,
            written_record,
            source: "operator".to_owned(),
            old,
            new,
            rule: format!("resolution:{}", resolution.name()),
            cause: format!("{cause}, conflict {}", conflict.id),
            at: now,
        };
        let mut settled = Settled::default();
        let mut trail = Vec::new();
        if !external_now.same_as(&want_external) {
            let upsert = ExternalUpsert {
                key: record_id.to_string(),
                properties: [(field.external.clone(), want_external.clone())].into(),
            };
            let outcome = crm
                .upsert_batch(&mapping.external_object, &target.id_property, &[upsert])
                .await?;
            if let Some(RecordOutcome::Failed { reason, retryable }) = outcome.into_iter().next() {
                return Err(ServiceError::RecordRejected {
                    system: conflict.system.clone(),
                    reason,
                    retryable,
                });
            }
            self.ledger
                .record(&[LedgerEntry {
                    key: LedgerKey {
                        tenant: tenant.clone(),
                        system: conflict.system.clone(),
                        object: mapping.external_object.clone(),
                        record: link.external_id.as_str().to_owned(),
                        field: key.clone(),
                    },
                    value_hash: want_external.value_hash(),
                    expires_at: now + self.ledger_ttl,
                }])
                .await?;
            settled.wrote_external = true;
            trail.push(entry(
                conflict.system.clone(),
                link.external_id.to_string(),
                external_now,
                want_external.clone(),
            ));
        }
        if !attio_now.same_as(&want_attio) {
            let write = FieldWrite {
                key: key.clone(),
                value: want_attio.clone(),
            };
            let (_, deferred) = self
                .write_back(
                    tenant,
                    object,
                    &record,
                    record_id,
                    mapping,
                    &[write],
                    &clients,
                )
                .await?;
            if !deferred.is_empty() {
                return Err(gone(format!(
                    "{object}.{key}: the chosen value cannot be written into Attio's attribute type"
                )));
            }
            settled.wrote_attio = true;
            trail.push(entry(
                SystemId::attio(),
                record_id.to_string(),
                attio_now,
                want_attio.clone(),
            ));
        }
        self.append_audit(trail).await;
        link.snapshot.0.insert(
            key.clone(),
            FieldSnapshot {
                attio: want_attio,
                external: want_external,
                property: Some(field.external.clone()),
            },
        );
        link.updated_at = now;
        self.links.save(&link).await?;
        // A sync that read the records before this decision may have queued the same field
        // again meanwhile: the decision covers it.
        let again = ConflictFilter {
            object: Some(object.clone()),
            system: Some(conflict.system.clone()),
            field: Some(key.clone()),
            record: Some(record_id),
            detected_before: None,
        };
        for c in self.conflicts.open(tenant, &again, 100).await? {
            match self
                .conflicts
                .resolve(tenant, c.id, resolution.clone(), now)
                .await
            {
                Ok(_) | Err(PortError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.gauge_open_conflicts(tenant).await;
        tracing::info!(tenant = %tenant, conflict = %conflict.id, how = resolution.name(), attio = settled.wrote_attio, external = settled.wrote_external, "settled a conflict");
        Ok(settled)
    }
}
