//! References between records (a person's company, a deal's company and people), synced as the
//! CRM's ids of the records they name.
//!
//! A mapped record-reference attribute names the Attio object it refers to
//! (`AttioField::references`). Both sides of the merge compare in the CRM's id space: Attio's
//! record ids are translated through the referenced object's identity links for that CRM before
//! the merge, and a CRM's ids written into Attio are translated back after it. A reference whose
//! target is not linked there yet *waits*: it is left out of the merge (its snapshot entry kept),
//! the rest of the record syncs, and the job answers `NotReady` so that it runs again once the
//! target's own job has linked it — as a list entry waits for its parent.

use domain::field::FieldValue;
use domain::ids::{ObjectSlug, RecordId, SystemId, TenantId};
use domain::link::LinkLookup;
use domain::mapping::{FieldKey, FieldMapping, ObjectMapping};
use domain::merge::{FieldWrite, SideState};

use crate::error::ServiceResult;
use crate::outbound::OutboundSync;

/// The ids a reference holds: none, one, or several (HubSpot's associations, Attio's
/// multi-valued references).
fn ids_of(v: &FieldValue) -> Option<Vec<String>> {
    match v.clone().normalized() {
        FieldValue::Empty => Some(Vec::new()),
        FieldValue::Text(t) => Some(vec![t]),
        FieldValue::List(items) => Some(items),
        FieldValue::Number(_) | FieldValue::Bool(_) => None,
    }
}

/// One id as text, several as a list (sorted, as lists compare).
fn value_of(mut ids: Vec<String>) -> FieldValue {
    match ids.len() {
        0 => FieldValue::Empty,
        1 => FieldValue::Text(ids.remove(0)),
        _ => FieldValue::List(ids).normalized(),
    }
}

fn references(mapping: &ObjectMapping) -> impl Iterator<Item = (&FieldMapping, &ObjectSlug)> {
    mapping
        .fields()
        .iter()
        .filter_map(|f| Some((f, f.attio.references.as_ref()?)))
}

impl OutboundSync {
    /// Puts Attio's side of each reference field into the CRM's ids, in place. Returns the
    /// fields that wait: a referenced record not linked to this CRM yet.
    pub(crate) async fn references_to_crm(
        &self,
        tenant: &TenantId,
        mapping: &ObjectMapping,
        attio: &mut SideState,
    ) -> ServiceResult<Vec<FieldKey>> {
        let mut waiting = Vec::new();
        for (f, target) in references(mapping) {
            let key = f.key();
            let Some(side) = attio.get_mut(&key) else {
                continue;
            };
            match self
                .crm_ids(tenant, &mapping.system, target, &side.value)
                .await?
            {
                Some(ids) => side.value = value_of(ids),
                None => {
                    tracing::debug!(tenant = %tenant, field = %key, system = %mapping.system, "a reference waits: its target is not linked yet");
                    waiting.push(key);
                }
            }
        }
        Ok(waiting)
    }

    /// Puts the CRM's ids of each reference write into Attio's record ids. Returns the writes,
    /// translated, and the reference fields that wait (a CRM record not linked to Attio yet).
    pub(crate) async fn references_into_attio(
        &self,
        tenant: &TenantId,
        mapping: &ObjectMapping,
        writes: &[FieldWrite],
    ) -> ServiceResult<(Vec<FieldWrite>, Vec<FieldKey>)> {
        let (mut out, mut waiting) = (Vec::new(), Vec::new());
        for w in writes {
            let target = mapping
                .fields()
                .iter()
                .find(|f| f.key() == w.key)
                .and_then(|f| f.attio.references.as_ref());
            let Some(target) = target else {
                out.push(w.clone());
                continue;
            };
            match self
                .attio_ids(tenant, &mapping.system, target, &w.value)
                .await?
            {
                Some(ids) => out.push(FieldWrite {
                    key: w.key.clone(),
                    value: value_of(ids),
                }),
                None => {
                    tracing::debug!(tenant = %tenant, field = %w.key, system = %mapping.system, "a reference waits: the CRM's record it names is not linked yet");
                    waiting.push(w.key.clone());
                }
            }
        }
        Ok((out, waiting))
    }

    /// The CRM ids of the `target` records named in `value` (Attio record ids); `None` when one
    /// is not linked to the CRM.
    async fn crm_ids(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        target: &ObjectSlug,
        value: &FieldValue,
    ) -> ServiceResult<Option<Vec<String>>> {
        let Some(ids) = ids_of(value) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for id in ids {
            let Ok(record) = RecordId::parse(&id) else {
                return Ok(None);
            };
            let lookup = LinkLookup::Attio {
                object: target.clone(),
                record,
                system: system.clone(),
            };
            match self.links.find(tenant, &lookup).await? {
                Some(link) => out.push(link.external_id.to_string()),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// The Attio records of `target` linked to the CRM ids in `value`; `None` when one is not
    /// linked (or `target` is not mapped to the CRM).
    async fn attio_ids(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        target: &ObjectSlug,
        value: &FieldValue,
    ) -> ServiceResult<Option<Vec<String>>> {
        let Some(ids) = ids_of(value) else {
            return Ok(None);
        };
        let Some(external_object) = self
            .targets_of(tenant, target)
            .await?
            .into_iter()
            .find(|t| &t.mapping.system == system)
            .map(|t| t.mapping.external_object)
        else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for id in ids {
            let Ok(external_id) = domain::ids::ExternalId::parse(&id) else {
                return Ok(None);
            };
            let lookup = LinkLookup::External {
                system: system.clone(),
                external_object: external_object.clone(),
                external_id,
            };
            match self.links.find(tenant, &lookup).await? {
                Some(link) => out.push(link.attio_record.to_string()),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }
}
