//! Owners both ways: an Attio actor-reference attribute (a deal's `owner`) ↔ a CRM's owner
//! property (HubSpot's `hubspot_owner_id`, Salesforce's `OwnerId`), matched by e-mail address.
//!
//! Both sides of the merge compare the owner's e-mail (lower case): Attio's workspace member
//! and the CRM's owner are each looked up by id. An owner one side has and the other cannot
//! name — no Attio member or no CRM owner with that e-mail — is left out of the sync for that
//! record (reported as deferred, logged, never marked synced); a value Attio's member or the
//! CRM's owner gains later is synced then.

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::ids::{ObjectSlug, TenantId};
use domain::mapping::{FieldKey, ObjectMapping};
use domain::merge::{FieldWrite, SideState};
use domain::value::AttributeType;
use ports::directory::TenantClients;

use crate::error::ServiceResult;
use crate::outbound::OutboundSync;

/// Who is who on both sides: ids to e-mail addresses (lower case).
#[derive(Debug, Default, Clone)]
pub(crate) struct OwnerBook {
    members: BTreeMap<String, String>,
    crm: BTreeMap<String, String>,
    /// The mapped actor-reference fields.
    fields: Vec<FieldKey>,
}

impl OwnerBook {
    /// The CRM's owner id for an e-mail address.
    fn crm_id(&self, email: &str) -> Option<&str> {
        self.crm
            .iter()
            .find(|(_, e)| e.as_str() == email)
            .map(|(id, _)| id.as_str())
    }

    /// Each side's value as the e-mail it names (`None`: it names nobody the other side has).
    fn email(&self, ids: &BTreeMap<String, String>, v: &FieldValue) -> Option<FieldValue> {
        match v.clone().normalized() {
            FieldValue::Empty => Some(FieldValue::Empty),
            FieldValue::Text(id) => ids.get(&id).map(|e| FieldValue::text(e.clone())),
            _ => None,
        }
    }

    /// The writes to the CRM with each owner's e-mail put back into the CRM's owner id.
    pub(crate) fn to_crm_ids(&self, writes: &[FieldWrite]) -> Vec<FieldWrite> {
        writes
            .iter()
            .map(|w| match (&w.value, self.fields.contains(&w.key)) {
                (FieldValue::Text(email), true) => FieldWrite {
                    key: w.key.clone(),
                    value: self
                        .crm_id(email)
                        .map(FieldValue::text)
                        .unwrap_or(FieldValue::Empty),
                },
                _ => w.clone(),
            })
            .collect()
    }
}

impl OutboundSync {
    /// Puts both sides of every mapped owner into e-mail addresses, in place. Returns the book
    /// (`None` when the mapping has no owner) and the owner fields left out because one side
    /// names someone the other side does not have.
    pub(crate) async fn owners_as_emails(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        mapping: &ObjectMapping,
        clients: &TenantClients,
        (attio, external): (&mut SideState, &mut SideState),
    ) -> ServiceResult<(Option<OwnerBook>, Vec<FieldKey>)> {
        let attributes = self.attributes(tenant, object, clients).await?;
        let fields: Vec<FieldKey> = mapping
            .fields()
            .iter()
            .filter(|f| {
                attributes.iter().any(|a| {
                    a.api_slug == f.attio.attribute.as_str()
                        && a.attribute_type == AttributeType::ActorReference
                })
            })
            .map(|f| f.key())
            .collect();
        if fields.is_empty() {
            return Ok((None, Vec::new()));
        }
        let Some(crm) = clients.crms.get(&mapping.system) else {
            return Ok((None, Vec::new()));
        };
        let lower = |s: &str| s.trim().to_lowercase();
        let book = OwnerBook {
            members: clients
                .members
                .list_members()
                .await?
                .into_iter()
                .map(|m| {
                    (
                        m.id.workspace_member_id.to_string(),
                        lower(&m.email_address),
                    )
                })
                .collect(),
            crm: crm
                .owners()
                .await?
                .into_iter()
                .map(|o| (o.id.to_string(), lower(&o.email)))
                .collect(),
            fields: fields.clone(),
        };
        let mut unmatched = Vec::new();
        for key in &fields {
            let a = attio.get(key).map(|s| s.value.clone()).unwrap_or_default();
            let e = external
                .get(key)
                .map(|s| s.value.clone())
                .unwrap_or_default();
            let (Some(a), Some(e)) = (book.email(&book.members, &a), book.email(&book.crm, &e))
            else {
                tracing::warn!(tenant = %tenant, field = %key, system = %mapping.system, "an owner is left out: it is not a known Attio member or CRM owner");
                unmatched.push(key.clone());
                continue;
            };
            // Each side must be able to name the other's owner.
            let crm_can = |v: &FieldValue| match v {
                FieldValue::Text(email) => book.crm_id(email).is_some(),
                _ => true,
            };
            let attio_can = |v: &FieldValue| {
                matches!(v, FieldValue::Text(email) if book.members.values().any(|m| m == email))
                    || v.is_empty()
            };
            if !crm_can(&a) || !attio_can(&e) {
                tracing::warn!(tenant = %tenant, field = %key, system = %mapping.system, attio = ?a, crm = ?e, "an owner is left out: the other side has no one with that e-mail");
                unmatched.push(key.clone());
                continue;
            }
            if let Some(s) = attio.get_mut(key) {
                s.value = a;
            }
            if let Some(s) = external.get_mut(key) {
                s.value = e;
            }
        }
        Ok((Some(book), unmatched))
    }
}
