//! `sync-worker`: consumes the durable queue and runs each job through the event pipeline.
//!
//! [`config`] is the layered, validated configuration (stores, providers, job loop, mappings);
//! `app_common::directory` builds a tenant's provider clients from its stored credentials; [`run`]
//! wires the services together and runs the job loop until shutdown.

pub mod config;

use std::sync::Arc;

use adapter_memory::SystemClock;
use app_common::Stores;
use ports::limiter::RateLimiter;
use services::outbound::OutboundSync;
use services::pipeline::EventPipeline;
use services::worker::{PipelineHandler, Worker, WorkerStats};
use tokio::sync::watch;

pub use config::{RawConfig, Settings};

/// Builds the pipeline over `stores` and runs the job loop until `shutdown` turns true.
pub async fn run(
    settings: &Settings,
    stores: Stores,
    limiter: Arc<dyn RateLimiter>,
    shutdown: watch::Receiver<bool>,
) -> WorkerStats {
    let directory = Arc::new(app_common::directory::TenantDirectory::new(
        stores.tenants.clone(),
        limiter,
        &settings.attio_base_url,
    ));
    // Each tenant's stored mappings, else this worker's file; re-read every 2 s, so a change
    // through the admin API reaches every worker within that.
    let registry = app_common::registry::Registry::builtin();
    let catalog = Arc::new(services::mappings::MappingCatalog::stored(
        settings.targets.clone(),
        stores.mappings.clone(),
        move |name| registry.system_of(name),
        std::time::Duration::from_secs(2),
    ));
    let gate = Arc::new(
        services::deletes::SafeDeletes::new(
            stores.deletes.clone(),
            Arc::new(SystemClock),
            settings.deletes.clone(),
        )
        .with_catalog(catalog.clone())
        .with_links(stores.links.clone()),
    );
    let outbound = Arc::new(
        OutboundSync::new(
            directory.clone(),
            stores.links.clone(),
            stores.ledger.clone(),
            stores.conflicts.clone(),
            Arc::new(SystemClock),
            settings.targets.clone(),
        )
        .with_schema_cache(stores.cache.clone())
        .with_audit(stores.audit.clone())
        .with_safe_deletes(gate.clone())
        .with_catalog(catalog.clone()),
    );
    let directory_for_poll = directory.clone();
    let backfill = Arc::new(
        services::backfill::Backfill::new(
            directory.clone(),
            stores.links.clone(),
            stores.ledger.clone(),
            stores.sync_state.clone(),
            Arc::new(SystemClock),
            settings.targets.clone(),
        )
        .with_catalog(catalog.clone()),
    );
    let pipeline = Arc::new(
        EventPipeline::new(
            directory,
            stores.links.clone(),
            outbound.clone(),
            settings.delete_policy,
        )
        .with_stage_targets(settings.stages.clone())
        .with_safe_deletes(gate),
    );
    let reconciler = Arc::new(services::reconcile::Reconciler::new(
        directory_for_poll.clone(),
        outbound.clone(),
        stores.sync_state.clone(),
        Arc::new(SystemClock),
    ));
    let worker = Worker::new(
        stores.queue.clone(),
        Arc::new(PipelineHandler {
            pipeline,
            backfill: Some(backfill),
            reconciler: Some(reconciler),
        }),
        settings.worker.clone(),
    )
    .with_usage(stores.usage.clone());
    let schedule = settings.reconcile_interval.map(|every| {
        tokio::spawn(schedule_reconciliations(
            stores.clone(),
            directory_for_poll.clone(),
            catalog.clone(),
            every,
            settings.worker.retry.max_attempts,
        ))
    });
    // Plugins that send no webhooks here are polled, on the workers configured to.
    let pollers: Vec<_> = settings
        .polls
        .iter()
        .map(|poll| {
            let mut p = services::poll::ChangePoller::new(
                poll.system.clone(),
                directory_for_poll.clone(),
                stores.tenants.clone(),
                stores.links.clone(),
                outbound.clone(),
                Arc::new(SystemClock),
                settings.targets.clone(),
            )
            .with_cursor(stores.sync_state.clone())
            .with_queue(stores.queue.clone())
            .with_usage(stores.usage.clone())
            .with_catalog(catalog.clone())
            .with_stage_properties(
                settings
                    .stages
                    .iter()
                    .filter(|s| s.system == poll.system)
                    .map(|s| s.property.clone())
                    .collect(),
            );
            p.window = poll.window;
            spawn_poller(p, poll.system.clone(), poll.interval, shutdown.clone())
        })
        .collect();
    // The ledger's entries outlive their use by design (echo suppression until they expire);
    // drop them afterwards (ADR 0020), and the audit trail's after its retention.
    let purge = settings.purge_interval.map(|interval| {
        let retention = services::retention::Retention::new(Arc::new(SystemClock))
            .with_ledger(stores.ledger.clone())
            .with_audit(stores.audit.clone(), settings.audit_retention);
        tokio::spawn(retention.run(interval))
    });
    tracing::info!(consumer = %settings.worker.consumer, concurrency = settings.worker.concurrency, targets = settings.targets.len(), "sync-worker running");
    let stats = worker.run(shutdown).await;
    for task in pollers.into_iter().chain(purge).chain(schedule) {
        task.abort();
    }
    stats
}

/// Every `every`, re-checks each tenant's mappings against the live schemas (a CRM's schema can
/// change without telling us: problems are logged and counted in
/// `mapping_problems_found_total`) and queues a reconciliation of each mapped object (keyed per
/// tenant, object and system, so a pass already waiting absorbs the next).
pub async fn schedule_reconciliations(
    stores: Stores,
    directory: Arc<dyn ports::directory::ClientDirectory>,
    catalog: Arc<services::mappings::MappingCatalog>,
    every: std::time::Duration,
    max_attempts: u32,
) {
    loop {
        tokio::time::sleep(every).await;
        let tenants = match stores.tenants.list().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %ports::Chain(&e), "reconciliations not scheduled: the tenants could not be read");
                continue;
            }
        };
        for tenant in tenants {
            let mappings = match catalog.of(&tenant.id).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(tenant = %tenant.id, error = %ports::Chain(&e), "reconciliations not scheduled for a tenant");
                    continue;
                }
            };
            recheck_mappings(directory.as_ref(), &tenant.id, &mappings.targets).await;
            for t in mappings.targets.iter() {
                let (object, system) = (&t.mapping.attio_object, &t.mapping.system);
                let Ok(key) = domain::job::JobKey::new(
                    tenant.id.clone(),
                    "reconcile",
                    &format!("{object}-{system}"),
                ) else {
                    continue;
                };
                let job = domain::job::NewJob::new(
                    key,
                    serde_json::json!({"source": "reconcile", "object": object.as_str(), "system": system.as_str()}),
                )
                .with_max_attempts(max_attempts);
                if let Err(e) = stores.queue.enqueue(job).await {
                    tracing::warn!(tenant = %tenant.id, error = %ports::Chain(&e), "a reconciliation could not be queued");
                }
            }
        }
    }
}

/// Re-checks a tenant's mappings against the live schemas (see
/// `services::mappings::recheck`); a tenant whose clients cannot be built is logged and skipped.
async fn recheck_mappings(
    directory: &dyn ports::directory::ClientDirectory,
    tenant: &domain::ids::TenantId,
    targets: &[services::outbound::SyncTarget],
) {
    let clients = match directory.clients(tenant).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %ports::Chain(&e), "mappings not re-checked: the tenant's clients could not be built");
            return;
        }
    };
    if let Err(e) = services::mappings::recheck(&clients, tenant, targets).await {
        tracing::warn!(tenant = %tenant, error = %ports::Chain(&e), "mappings not re-checked: a provider could not be asked");
    }
}

/// Runs `poller`'s passes every `interval` until `stop` changes.
fn spawn_poller(
    poller: services::poll::ChangePoller,
    system: domain::ids::SystemId,
    interval: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let origin: Arc<str> = format!("{system} poll").into();
            let pass = ports::trace::with_origin(origin, poller.poll_all());
            match ports::trace::with_cause("poll", pass).await {
                Ok(s) if s.synced > 0 => {
                    tracing::debug!(%system, seen = s.seen, enqueued = s.synced, unchanged = s.unchanged, gone = s.gone, "polled")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%system, error = %ports::Chain(&e), "polling failed; the next pass retries")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {},
                _ = stop.changed() => return,
            }
        }
    })
}
