//! Safe deletes: whether a record deleted on one side is deleted on the other now, kept, or held
//! for a person, and carrying out what a person decided.
//!
//! Each linked pair's delete is admitted once (the store keeps one decision per record, system
//! and origin, so a replayed delete finds it): the mapping's policy says archive, keep or hold;
//! an archive is held instead when the tenant's deletes propagated within the breaker's window
//! reached its maximum (`deletes_held_total{reason="breaker"}` counts them, and an alert watches
//! it). A held delete keeps its link until a person decides: approved, the other side's record
//! is removed; rejected, it stays; either way the link goes.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::deletes::{DeleteBreaker, DeletePolicy, DeleteRecord, DeleteStatus};
use domain::ids::{DeleteId, ObjectRef, ObjectSlug, SystemId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use ports::clock::Clock;
use ports::directory::ClientDirectory;
use ports::error::PortError;
use ports::stores::{DeleteStore, LinkStore};

use crate::error::{ServiceError, ServiceResult};

/// Describes the delete metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "deletes_propagated_total",
        "Deletes carried to the other side without a person (policy archive)"
    );
    metrics::describe_counter!(
        "deletes_held_total",
        "Deletes held for approval, by reason: the mapping's policy, or the breaker"
    );
}

/// The delete policies: defaults, and per Attio object and CRM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteRules {
    /// What an Attio delete does to the linked CRM record.
    pub on_attio_delete: DeletePolicy,
    /// What a CRM delete does to the linked Attio record (`Keep` unless configured).
    pub on_crm_delete: DeletePolicy,
    /// Overrides for one mapping: (Attio delete, CRM delete) policies.
    pub per_mapping: BTreeMap<(ObjectSlug, SystemId), (DeletePolicy, DeletePolicy)>,
    pub breaker: DeleteBreaker,
}

impl DeleteRules {
    /// The policy for a delete of a pair of `object` and `system` that happened in Attio
    /// (`from_attio`) or in the CRM.
    pub fn policy(&self, object: &ObjectSlug, system: &SystemId, from_attio: bool) -> DeletePolicy {
        let (attio, crm) = self
            .per_mapping
            .get(&(object.clone(), system.clone()))
            .copied()
            .unwrap_or((self.on_attio_delete, self.on_crm_delete));
        if from_attio { attio } else { crm }
    }
}

/// What to do with one linked pair's delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Remove the other side's record now.
    Propagate(DeleteRecord),
    /// Leave the other side's record (the policy is keep, or a person rejected it).
    Keep,
    /// Held for a person; the link stays until they decide.
    Held(DeleteRecord),
}

/// The gate every delete passes.
pub struct SafeDeletes {
    store: Arc<dyn DeleteStore>,
    clock: Arc<dyn Clock>,
    rules: DeleteRules,
    /// Tenants' stored mappings, whose own delete policies come first.
    catalog: Option<Arc<crate::mappings::MappingCatalog>>,
    /// Counts a tenant's linked pairs, for the breaker's share; without it only `max` counts.
    links: Option<Arc<dyn LinkStore>>,
}

impl std::fmt::Debug for SafeDeletes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeDeletes")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl SafeDeletes {
    pub fn new(store: Arc<dyn DeleteStore>, clock: Arc<dyn Clock>, rules: DeleteRules) -> Self {
        Self {
            store,
            clock,
            rules,
            catalog: None,
            links: None,
        }
    }

    /// Counts the tenant's linked pairs for the breaker's `max_share`.
    pub fn with_links(mut self, links: Arc<dyn LinkStore>) -> Self {
        self.links = Some(links);
        self
    }

    /// Takes a tenant's delete policies from its stored mappings where it has them.
    pub fn with_catalog(mut self, catalog: Arc<crate::mappings::MappingCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The policy for this pair's delete: the tenant's stored mapping's, else the rules'.
    async fn policy(
        &self,
        tenant: &TenantId,
        link: &IdentityLink,
        from_attio: bool,
    ) -> ServiceResult<DeletePolicy> {
        if let Some(catalog) = &self.catalog
            && let Some(policies) = catalog.of(tenant).await?.policies
        {
            let own = policies
                .get(&(link.object.clone(), link.system.clone()))
                .copied()
                .unwrap_or_default();
            let (own, default) = if from_attio {
                (own.0, self.rules.on_attio_delete)
            } else {
                (own.1, self.rules.on_crm_delete)
            };
            return Ok(own.unwrap_or(default));
        }
        Ok(self.rules.policy(&link.object, &link.system, from_attio))
    }

    pub fn rules(&self) -> &DeleteRules {
        &self.rules
    }

    /// The held delete of this pair, if one waits for a person (then the pair is not synced:
    /// a record deleted on one side is not re-created there meanwhile).
    pub async fn held_for(
        &self,
        tenant: &TenantId,
        link: &IdentityLink,
    ) -> ServiceResult<Option<DeleteRecord>> {
        Ok(self
            .store
            .held_for(tenant, &link.object, link.attio_record, &link.system)
            .await?)
    }

    /// Admits the delete of `link`'s `origin` side (`attio`, or the link's CRM). A replayed
    /// delete gets its first decision back (a `Done` one propagates again, harmlessly).
    pub async fn admit(
        &self,
        tenant: &TenantId,
        link: &IdentityLink,
        origin: &SystemId,
    ) -> ServiceResult<Admission> {
        let from_attio = origin.as_str() == "attio";
        let policy = self.policy(tenant, link, from_attio).await?;
        if policy == DeletePolicy::Keep {
            return Ok(Admission::Keep);
        }
        let now = self.clock.now();
        let id = DeleteId::from_uuid(uuid::Uuid::new_v4());
        let window = self.rules.breaker.window;
        let (status, reason) = if policy == DeletePolicy::Hold {
            (
                DeleteStatus::Held,
                "the mapping holds deletes for approval".to_owned(),
            )
        } else {
            (DeleteStatus::Done, format!("deleted in {origin}"))
        };
        // The share is of the pairs as they were when the window began: those linked now and
        // those whose deletes it already let through.
        let linked = match (&self.links, self.rules.breaker.max_share) {
            (Some(links), Some(_)) => {
                links.count(tenant).await?
                    + self.store.count_done_since(tenant, now - window).await?
            }
            _ => u64::MAX,
        };
        let limit = self.rules.breaker.limit(linked);
        let held_reason = format!(
            "the delete breaker is open: {limit} deletes were propagated within {} s (at most {}{})",
            window.as_secs(),
            self.rules.breaker.max,
            match self.rules.breaker.max_share {
                Some(share) if linked != u64::MAX => format!(
                    ", or {:.0} % of the tenant's {linked} linked pairs",
                    share * 100.0
                ),
                _ => String::new(),
            }
        );
        let stored = self
            .store
            .record_gated(
                &DeleteRecord {
                    id,
                    tenant: tenant.clone(),
                    object: link.object.clone(),
                    attio_record: link.attio_record,
                    system: link.system.clone(),
                    external_object: link.external_object.clone(),
                    external_id: link.external_id.clone(),
                    origin: origin.clone(),
                    status,
                    reason,
                    at: now,
                    decided_at: None,
                },
                limit,
                now - window,
                &held_reason,
            )
            .await?;
        let first = stored.id == id;
        Ok(match stored.status {
            DeleteStatus::Done | DeleteStatus::Approved => {
                if first {
                    metrics::counter!("deletes_propagated_total").increment(1);
                }
                Admission::Propagate(stored)
            }
            DeleteStatus::Rejected => Admission::Keep,
            DeleteStatus::Held => {
                if first {
                    let why = if policy == DeletePolicy::Hold {
                        "policy"
                    } else {
                        "breaker"
                    };
                    metrics::counter!("deletes_held_total", "reason" => why).increment(1);
                    tracing::warn!(tenant = %tenant, delete = %stored.id, object = %stored.object, record = %stored.attio_record, system = %stored.system, reason = %stored.reason, "a delete is held for approval");
                }
                Admission::Held(stored)
            }
        })
    }

    /// Carries out a person's decision on a held delete (the worker's `delete` job): approved,
    /// the other side's record is removed (a CRM record archived; an Attio record deleted, whose
    /// own delete event then reaches the other CRMs through this gate); rejected, it stays.
    /// Either way the pair's link goes. `NotReady` while the delete is still held; `NotFound`
    /// when the tenant has no such delete.
    pub async fn carry_out(
        &self,
        tenant: &TenantId,
        id: DeleteId,
        directory: &dyn ClientDirectory,
        links: &dyn LinkStore,
    ) -> ServiceResult<DeleteStatus> {
        let d = self.store.get(tenant, id).await?;
        if d.status == DeleteStatus::Held {
            return Err(ServiceError::NotReady(format!("delete {id} is still held")));
        }
        let lookup = LinkLookup::Attio {
            object: d.object.clone(),
            record: d.attio_record,
            system: d.system.clone(),
        };
        match links.delete(tenant, &lookup).await {
            Ok(()) | Err(PortError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if d.status != DeleteStatus::Approved {
            return Ok(d.status);
        }
        let clients = directory.clients(tenant).await?;
        if d.from_attio() {
            if let Some(crm) = clients.crms.get(&d.system) {
                let outcome = crm
                    .archive_batch(&d.external_object, std::slice::from_ref(&d.external_id))
                    .await?;
                if let Some(ports::crm::RecordOutcome::Failed {
                    reason,
                    retryable: true,
                }) = outcome.into_iter().next()
                {
                    return Err(ServiceError::RecordRejected {
                        system: d.system.clone(),
                        reason,
                        retryable: true,
                    });
                }
            }
        } else {
            match clients
                .attio
                .delete_record(&ObjectRef::from(d.object.clone()), d.attio_record)
                .await
            {
                Ok(()) | Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(tenant = %tenant, delete = %id, object = %d.object, record = %d.attio_record, system = %d.system, "an approved delete was carried out");
        Ok(d.status)
    }
}
