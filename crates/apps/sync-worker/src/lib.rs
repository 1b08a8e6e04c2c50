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
    let outbound = Arc::new(
        OutboundSync::new(
            directory.clone(),
            stores.links.clone(),
            stores.ledger.clone(),
            stores.conflicts.clone(),
            Arc::new(SystemClock),
            settings.targets.clone(),
        )
        .with_schema_cache(stores.cache.clone()),
    );
    let directory_for_poll = directory.clone();
    let backfill = Arc::new(services::backfill::Backfill::new(
        directory.clone(),
        stores.links.clone(),
        stores.ledger.clone(),
        stores.sync_state.clone(),
        Arc::new(SystemClock),
        settings.targets.clone(),
    ));
    let pipeline = Arc::new(
        EventPipeline::new(
            directory,
            stores.links.clone(),
            outbound.clone(),
            settings.delete_policy,
        )
        .with_stage_targets(settings.stages.clone()),
    );
    let worker = Worker::new(
        stores.queue.clone(),
        Arc::new(PipelineHandler {
            pipeline,
            backfill: Some(backfill),
        }),
        settings.worker.clone(),
    );
    // Salesforce sends no webhooks here: poll it, on the workers configured to.
    let poller = settings.poll_salesforce.map(|(interval, window)| {
        let mut p = services::poll::ChangePoller::new(
            domain::ids::SystemId::parse("salesforce").unwrap_or_else(|_| domain::ids::SystemId::attio()),
            directory_for_poll.clone(),
            stores.tenants.clone(),
            stores.links.clone(),
            outbound.clone(),
            Arc::new(SystemClock),
            settings.targets.clone(),
        )
        .with_cursor(stores.sync_state.clone());
        p.window = window;
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                match p.poll_all().await {
                    Ok(s) if s.synced > 0 => tracing::debug!(seen = s.seen, synced = s.synced, "polled Salesforce"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "polling Salesforce failed; the next pass retries"),
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {},
                    _ = stop.changed() => return,
                }
            }
        })
    });
    // The ledger's entries outlive their use by design (echo suppression until they expire);
    // drop them afterwards (ADR 0020).
    let purge = settings.purge_interval.map(|interval| {
        let retention = services::retention::Retention::new(Arc::new(SystemClock))
            .with_ledger(stores.ledger.clone());
        tokio::spawn(retention.run(interval))
    });
    tracing::info!(consumer = %settings.worker.consumer, concurrency = settings.worker.concurrency, targets = settings.targets.len(), "sync-worker running");
    let stats = worker.run(shutdown).await;
    for task in [poller, purge].into_iter().flatten() {
        task.abort();
    }
    stats
}
