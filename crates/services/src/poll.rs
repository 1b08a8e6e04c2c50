//! Polling a CRM that sends no webhooks here (Salesforce): every pass asks each tenant's CRM for
//! the records changed since shortly before the previous pass began, and syncs each linked one
//! both ways. Passes overlap (by `window`), so a change seen twice is settled once: the merge finds
//! nothing left to do the second time, and our own writes (echoes) likewise.
//!
//! A pass costs provider calls in proportion to what changed on the polled side: a changed
//! record whose mapped values all equal its link's snapshot (our own echo, or a change to unmapped
//! properties) is left alone without reading Attio or another CRM. A real change becomes a job
//! ([`ChangePoller::with_queue`]: the worker syncs it, inside its budgets, retries and trace), or
//! is synced at once without a queue.
//!
//! With a cursor store ([`ChangePoller::with_cursor`]) the start of each tenant's last complete
//! pass is kept in `SyncState` (object `poll_<external object>`), so a poller that was down for
//! hours reads everything changed meanwhile; a pass that fails keeps the old cursor. Without one,
//! each pass looks back `window` only, and a longer outage misses changes.

use std::sync::Arc;
use std::time::Duration;

use domain::ids::{ObjectSlug, SystemId, TenantId};
use domain::job::{JobKey, NewJob};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::ExternalProperty;
use domain::merge::external_changes;
use domain::sync_state::{BackfillPhase, SyncState};
use ports::clock::Clock;
use ports::directory::ClientDirectory;
use ports::error::PortError;
use ports::provider::CrmChange;
use ports::queue::JobQueue;
use ports::stores::{LinkStore, SyncStateStore, TenantStore};

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{OutboundSync, SyncTarget, external_side};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub seen: u64,
    /// Real changes: synced, or enqueued for a worker.
    pub synced: u64,
    pub unlinked: u64,
    /// Changed records whose mapped values the last sync already saw (echoes included).
    pub unchanged: u64,
    /// Linked records deleted in the CRM, or merged into another there: handed on as a delete
    /// or a merge.
    pub gone: u64,
    /// Its notes and tasks.
    pub activities: activity::ActivityStats,
}

mod activity;

pub use activity::ActivityStats;

/// The poller of one system.
pub struct ChangePoller {
    system: SystemId,
    directory: Arc<dyn ClientDirectory>,
    tenants: Arc<dyn TenantStore>,
    links: Arc<dyn LinkStore>,
    outbound: Arc<OutboundSync>,
    clock: Arc<dyn Clock>,
    /// Each tenant's mappings (of which this system's are polled).
    catalog: Arc<crate::mappings::MappingCatalog>,
    cursors: Option<Arc<dyn SyncStateStore>>,
    queue: Option<Arc<dyn JobQueue>>,
    usage: Option<Arc<dyn ports::stores::UsageLog>>,
    /// The CRM properties list entries' stages are written to (`[[stages]]` of this system).
    stage_properties: Vec<ExternalProperty>,
    pub window: Duration,
}

impl std::fmt::Debug for ChangePoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePoller")
            .field("system", &self.system)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl ChangePoller {
    pub fn new(
        system: SystemId,
        directory: Arc<dyn ClientDirectory>,
        tenants: Arc<dyn TenantStore>,
        links: Arc<dyn LinkStore>,
        outbound: Arc<OutboundSync>,
        clock: Arc<dyn Clock>,
        targets: Vec<SyncTarget>,
    ) -> Self {
        let catalog = Arc::new(crate::mappings::MappingCatalog::fixed(targets));
        Self {
            system,
            directory,
            tenants,
            links,
            outbound,
            clock,
            catalog,
            cursors: None,
            queue: None,
            usage: None,
            stage_properties: Vec::new(),
            window: Duration::from_secs(120),
        }
    }

    /// Keeps each tenant's polling cursor in `store`, so no change is missed across an outage.
    /// Reads each tenant's mappings from `catalog`.
    pub fn with_catalog(mut self, catalog: Arc<crate::mappings::MappingCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    pub fn with_cursor(mut self, store: Arc<dyn SyncStateStore>) -> Self {
        self.cursors = Some(store);
        self
    }

    /// Hands real changes to the worker as jobs (`{"source": "crm", ...}`, one per record)
    /// instead of syncing them in the pass.
    pub fn with_queue(mut self, queue: Arc<dyn JobQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The CRM properties that carry list entries' stages (`StageName`): a record of an object
    /// that has one is handed to the worker whenever it changed, where its stage is compared
    /// with the Attio entry's (the link's snapshot does not hold stages).
    pub fn with_stage_properties(mut self, properties: Vec<ExternalProperty>) -> Self {
        self.stage_properties = properties;
        self
    }

    /// The stage properties `object` has, as the CRM describes it.
    async fn stage_properties_of(
        &self,
        crm: &dyn ports::crm::ExternalCrm,
        object: &str,
    ) -> ServiceResult<Vec<ExternalProperty>> {
        if self.stage_properties.is_empty() {
            return Ok(Vec::new());
        }
        let fields = crm.describe(object).await?;
        Ok(self
            .stage_properties
            .iter()
            .filter(|p| fields.iter().any(|f| f.name == p.as_str()))
            .cloned()
            .collect())
    }

    /// Adds each tenant's polling requests to its usage of the day.
    pub fn with_usage(mut self, usage: Arc<dyn ports::stores::UsageLog>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// A real change of `id`: enqueued when there is a queue, else synced now.
    async fn changed(
        &self,
        tenant: &TenantId,
        external_object: &str,
        link: &IdentityLink,
    ) -> ServiceResult<()> {
        let Some(_) = &self.queue else {
            return match self
                .outbound
                .sync_record(tenant, &link.object, link.attio_record)
                .await
            {
                Ok(_) | Err(ServiceError::Port(PortError::NotFound(_))) => Ok(()),
                Err(e) => Err(e),
            };
        };
        self.enqueue(tenant, external_object, &link.external_id)
            .await
    }

    /// A record with no link, of a mapping that adopts CRM-born records: queued as a change (or,
    /// without a queue, adopted at once).
    async fn born(
        &self,
        tenant: &TenantId,
        external_object: &str,
        id: &domain::ids::ExternalId,
    ) -> ServiceResult<()> {
        if self.queue.is_none() {
            self.outbound
                .adopt(tenant, &self.system, external_object, id)
                .await?;
            return Ok(());
        }
        self.enqueue(tenant, external_object, id).await
    }

    /// A deleted record (in `queryAll`'s answer): when it is linked, a delete — or, merged into
    /// another record, a merge naming the survivor — goes to the worker as a CRM change, which
    /// passes the delete gate or follows the merge as a webhook's would. Returns whether it
    /// was linked. Once handled its link is gone, so later passes over the same window skip it.
    async fn gone(
        &self,
        tenant: &TenantId,
        external_object: &str,
        r: &ports::crm::ExternalRecord,
    ) -> ServiceResult<bool> {
        let lookup = LinkLookup::External {
            system: self.system.clone(),
            external_object: external_object.to_owned(),
            external_id: r.id.clone(),
        };
        if self.links.find(tenant, &lookup).await?.is_none() {
            return Ok(false);
        }
        let change = match &r.merged_into {
            Some(survivor) => CrmChange {
                object: external_object.to_owned(),
                id: survivor.to_string(),
                deleted: false,
                merged_from: vec![r.id.to_string()],
            },
            None => CrmChange {
                object: external_object.to_owned(),
                id: r.id.to_string(),
                deleted: true,
                merged_from: Vec::new(),
            },
        };
        if self.queue.is_none() {
            if let Some(survivor) = &r.merged_into {
                self.outbound
                    .follow_merge(
                        tenant,
                        &self.system,
                        external_object,
                        survivor,
                        std::slice::from_ref(&r.id),
                    )
                    .await?;
            } else {
                tracing::warn!(tenant = %tenant, system = %self.system, record = %r.id, "a linked record was deleted in the CRM; without a queue the poller cannot pass it to the delete gate, so its link stays");
            }
            return Ok(true);
        }
        self.enqueue_change(tenant, change).await?;
        Ok(true)
    }

    /// Queues one changed record as a CRM change job, keyed by the record.
    async fn enqueue(
        &self,
        tenant: &TenantId,
        external_object: &str,
        id: &domain::ids::ExternalId,
    ) -> ServiceResult<()> {
        let change = CrmChange {
            object: external_object.to_owned(),
            id: id.to_string(),
            deleted: false,
            merged_from: Vec::new(),
        };
        self.enqueue_change(tenant, change).await
    }

    /// Queues one CRM change job, keyed by the record it names.
    async fn enqueue_change(&self, tenant: &TenantId, change: CrmChange) -> ServiceResult<()> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let key = JobKey::new(tenant.clone(), self.system.as_str(), &change.id)?;
        let payload = serde_json::json!({
            "source": "crm",
            "system": self.system,
            "trace": ports::trace::current().unwrap_or_else(ports::trace::new_root).to_string(),
            "changes": [change],
        });
        queue.enqueue(NewJob::new(key, payload)).await?;
        Ok(())
    }

    /// The `SyncState` object a target's cursor is kept under.
    fn cursor_slug(external_object: &str) -> ServiceResult<ObjectSlug> {
        let name: String = external_object
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        Ok(ObjectSlug::parse(&format!("poll_{name}"))?)
    }

    /// One pass over one tenant. A tenant without a connection to the system is skipped.
    pub async fn poll_tenant(&self, tenant: &TenantId) -> ServiceResult<PollStats> {
        let mut stats = PollStats::default();
        let clients = self.directory.clients(tenant).await?;
        let Some(crm) = clients.crms.get(&self.system).cloned() else {
            return Ok(stats);
        };
        let mappings = self.catalog.of(tenant).await?;
        for target in mappings
            .targets
            .iter()
            .filter(|t| t.mapping.system == self.system)
        {
            let pass_start = self.clock.now();
            let (since, cursor) = self
                .cursor_of(tenant, &target.mapping.external_object)
                .await?;
            let seen_before = stats.seen;
            let stages = self
                .stage_properties_of(crm.as_ref(), &target.mapping.external_object)
                .await?;
            let mut props: Vec<_> = target
                .mapping
                .fields()
                .iter()
                .map(|m| m.external.clone())
                .collect();
            props.extend(stages.iter().cloned());
            let mut after = None;
            loop {
                let page = crm
                    .changed_since(&target.mapping.external_object, since, &props, after)
                    .await?;
                for r in &page.records {
                    stats.seen += 1;
                    if r.archived {
                        if self
                            .gone(tenant, &target.mapping.external_object, r)
                            .await?
                        {
                            stats.gone += 1;
                        }
                        continue;
                    }
                    let lookup = LinkLookup::External {
                        system: self.system.clone(),
                        external_object: target.mapping.external_object.clone(),
                        external_id: r.id.clone(),
                    };
                    let Some(link) = self.links.find(tenant, &lookup).await? else {
                        if target.mapping.adopt_by().is_some() {
                            self.born(tenant, &target.mapping.external_object, &r.id)
                                .await?;
                            stats.synced += 1;
                        } else {
                            stats.unlinked += 1;
                        }
                        continue;
                    };
                    let external = external_side(&target.mapping, Some(r));
                    // A record that carries a stage may have moved it: the worker compares.
                    if stages.is_empty()
                        && external_changes(target.mapping.fields(), &link.snapshot, &external)
                            .is_empty()
                    {
                        stats.unchanged += 1;
                        continue;
                    }
                    self.changed(tenant, &target.mapping.external_object, &link)
                        .await?;
                    stats.synced += 1;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            self.save_cursor(
                tenant,
                &target.mapping.external_object,
                cursor,
                pass_start,
                stats.seen - seen_before,
            )
            .await?;
        }
        stats.activities = self.poll_activities(tenant, &clients).await?;
        Ok(stats)
    }

    /// Where a pass over `name` (an external object, or an activity kind) starts: shortly before
    /// the last complete pass began, or `window` back; with the stored cursor.
    async fn cursor_of(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> ServiceResult<(time::OffsetDateTime, Option<SyncState>)> {
        let window = time::Duration::try_from(self.window).unwrap_or(time::Duration::MINUTE);
        let now = self.clock.now();
        let cursor = match &self.cursors {
            Some(store) => {
                store
                    .get(tenant, &Self::cursor_slug(name)?, &self.system)
                    .await?
            }
            None => None,
        };
        let since = match &cursor {
            Some(c) => (c.updated_at - window).min(now - window),
            None => now - window,
        };
        Ok((since, cursor))
    }

    /// Records a complete pass over `name` that began at `pass_start`.
    async fn save_cursor(
        &self,
        tenant: &TenantId,
        name: &str,
        cursor: Option<SyncState>,
        pass_start: time::OffsetDateTime,
        seen: u64,
    ) -> ServiceResult<()> {
        let Some(store) = &self.cursors else {
            return Ok(());
        };
        let mut next = cursor.unwrap_or_else(|| {
            SyncState::new(
                tenant.clone(),
                Self::cursor_slug(name).unwrap_or_else(|_| unreachable!("checked by cursor_of")),
                self.system.clone(),
                pass_start,
            )
        });
        next.phase = BackfillPhase::Completed;
        next.updated_at = pass_start;
        next.records_seen += seen;
        match store.save(&next).await {
            // Another poller moved it meanwhile: its pass covers ours.
            Ok(_) | Err(PortError::Stale(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One pass over every tenant; a tenant's failure is logged and the others still run.
    pub async fn poll_all(&self) -> ServiceResult<PollStats> {
        let mut total = PollStats::default();
        for t in self.tenants.list().await? {
            let tally = ports::trace::RequestTally::default();
            let pass =
                ports::trace::counting_requests(tally.clone(), self.poll_tenant(&t.id)).await;
            if let Some(usage) = &self.usage {
                crate::worker::record_usage(usage.as_ref(), &t.id, tally).await;
            }
            match pass {
                Ok(s) => {
                    total.seen += s.seen;
                    total.synced += s.synced;
                    total.unlinked += s.unlinked;
                    total.unchanged += s.unchanged;
                    total.gone += s.gone;
                }
                Err(e) => {
                    tracing::warn!(tenant = %t.id, system = %self.system, error = %ports::Chain(&e), "a polling pass failed; the next one retries")
                }
            }
        }
        Ok(total)
    }
}
