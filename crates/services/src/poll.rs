//! Polling a CRM that sends no webhooks here (Salesforce): every pass asks each tenant's CRM for
//! the records changed since shortly before the previous pass began, and syncs each linked one
//! both ways. Passes overlap (by `window`), so a change seen twice is settled once: the merge finds
//! nothing left to do the second time, and our own writes (echoes) likewise.
//!
//! With a cursor store ([`ChangePoller::with_cursor`]) the start of each tenant's last complete
//! pass is kept in `SyncState` (object `poll_<external object>`), so a poller that was down for
//! hours reads everything changed meanwhile; a pass that fails keeps the old cursor. Without one,
//! each pass looks back `window` only, and a longer outage misses changes.

use std::sync::Arc;
use std::time::Duration;

use domain::ids::{ObjectSlug, SystemId, TenantId};
use domain::link::LinkLookup;
use domain::sync_state::{BackfillPhase, SyncState};
use ports::clock::Clock;
use ports::directory::ClientDirectory;
use ports::error::PortError;
use ports::stores::{LinkStore, SyncStateStore, TenantStore};

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{OutboundSync, SyncTarget};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub seen: u64,
    pub synced: u64,
    pub unlinked: u64,
}

/// The poller of one system.
pub struct ChangePoller {
    system: SystemId,
    directory: Arc<dyn ClientDirectory>,
    tenants: Arc<dyn TenantStore>,
    links: Arc<dyn LinkStore>,
    outbound: Arc<OutboundSync>,
    clock: Arc<dyn Clock>,
    targets: Vec<SyncTarget>,
    cursors: Option<Arc<dyn SyncStateStore>>,
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
        let targets = targets
            .into_iter()
            .filter(|t| t.mapping.system == system)
            .collect();
        Self {
            system,
            directory,
            tenants,
            links,
            outbound,
            clock,
            targets,
            cursors: None,
            window: Duration::from_secs(120),
        }
    }

    /// Keeps each tenant's polling cursor in `store`, so no change is missed across an outage.
    pub fn with_cursor(mut self, store: Arc<dyn SyncStateStore>) -> Self {
        self.cursors = Some(store);
        self
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
        let window = time::Duration::try_from(self.window).unwrap_or(time::Duration::MINUTE);
        for target in &self.targets {
            let pass_start = self.clock.now();
            let slug = Self::cursor_slug(&target.mapping.external_object)?;
            let cursor = match &self.cursors {
                Some(store) => store.get(tenant, &slug, &self.system).await?,
                None => None,
            };
            // From shortly before the last complete pass began, or `window` back.
            let seen_before = stats.seen;
            let since = match &cursor {
                Some(c) => (c.updated_at - window).min(pass_start - window),
                None => pass_start - window,
            };
            let props: Vec<_> = target
                .mapping
                .fields()
                .iter()
                .map(|m| m.external.clone())
                .collect();
            let mut after = None;
            loop {
                let page = crm
                    .changed_since(&target.mapping.external_object, since, &props, after)
                    .await?;
                for r in &page.records {
                    stats.seen += 1;
                    if r.archived {
                        continue;
                    }
                    let lookup = LinkLookup::External {
                        system: self.system.clone(),
                        external_object: target.mapping.external_object.clone(),
                        external_id: r.id.clone(),
                    };
                    let Some(link) = self.links.find(tenant, &lookup).await? else {
                        stats.unlinked += 1;
                        continue;
                    };
                    match self
                        .outbound
                        .sync_record(tenant, &link.object, link.attio_record)
                        .await
                    {
                        Ok(_) => stats.synced += 1,
                        Err(ServiceError::Port(PortError::NotFound(_))) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if let Some(store) = &self.cursors {
                let mut next = cursor.unwrap_or_else(|| {
                    SyncState::new(tenant.clone(), slug, self.system.clone(), pass_start)
                });
                next.phase = BackfillPhase::Completed;
                next.updated_at = pass_start;
                next.records_seen += stats.seen - seen_before;
                match store.save(&next).await {
                    // Another poller moved it meanwhile: its pass covers ours.
                    Ok(_) | Err(PortError::Stale(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(stats)
    }

    /// One pass over every tenant; a tenant's failure is logged and the others still run.
    pub async fn poll_all(&self) -> ServiceResult<PollStats> {
        let mut total = PollStats::default();
        for t in self.tenants.list().await? {
            match self.poll_tenant(&t.id).await {
                Ok(s) => {
                    total.seen += s.seen;
                    total.synced += s.synced;
                    total.unlinked += s.unlinked;
                }
                Err(e) => {
                    tracing::warn!(tenant = %t.id, system = %self.system, error = %ports::Chain(&e), "a polling pass failed; the next one retries")
                }
            }
        }
        Ok(total)
    }
}
