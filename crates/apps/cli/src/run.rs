//! `attio-sync run`: the API and a worker in one process, for one-person deployments, configured
//! by one file: `[api]` holds webhook-api's settings and `[worker]` sync-worker's
//! (docs/configuration.md), each overridable by `ATTIO_SYNC_API__…` and `ATTIO_SYNC_WORKER__…`.
//! The worker works on the API's store and queue (set them in `[api]`; an embedded SQLite file is
//! the usual choice). Prints `listening on http://ADDR:PORT` first; stops on SIGTERM or Ctrl-C,
//! finishing the requests and jobs in hand.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The one file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub api: webhook_api::RawConfig,
    pub worker: sync_worker::RawConfig,
}

/// Loads and checks the file: the worker may not name a store or queue of its own.
pub fn settings(file: Option<&Path>) -> Result<(webhook_api::Settings, sync_worker::Settings)> {
    let raw: RunConfig = app_common::load(file)?;
    let defaults = sync_worker::RawConfig::default();
    if serde_json::to_value(&raw.worker.store)? != serde_json::to_value(&defaults.store)?
        || serde_json::to_value(&raw.worker.queue)? != serde_json::to_value(&defaults.queue)?
        || raw.worker.master_key.is_some()
    {
        bail!(
            "invalid configuration: [worker] shares the API's store, queue and master key; set store, queue and master_key in [api] only"
        );
    }
    Ok((raw.api.validate()?, raw.worker.validate()?))
}

pub async fn run(file: Option<&Path>) -> Result<()> {
    let (api, mut worker) = settings(file)?;
    worker.store = api.store.clone();
    worker.queue = api.queue.clone();
    if matches!(api.store, app_common::StoreSettings::Memory) {
        tracing::warn!(
            "the store is `memory`: nothing survives a restart; set [api] store = {{ kind = \"sqlite\", path = \"…\" }}"
        );
    }
    let stores = app_common::open_stores(&api.store, &api.queue).await?;
    let limiter: Arc<dyn ports::limiter::RateLimiter> =
        Arc::new(adapter_memory::MemoryRateLimiter::default());
    let state = webhook_api::AppState::serving(&stores, api.clone(), limiter.clone());
    let listener = tokio::net::TcpListener::bind(api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", api.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let purge = webhook_api::spawn_retention(&api, stores.inbox.clone());
    let worker_task = tokio::spawn({
        let stores = stores.clone();
        async move { sync_worker::run(&worker, stores, limiter, stopped).await }
    });
    let served = webhook_api::serve(listener, state, async move {
        app_common::shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await
    .context("the server failed");
    let stats = worker_task.await.context("the worker failed")?;
    tracing::info!(acked = stats.acked, released = stats.released, "stopped");
    if let Some(p) = purge {
        p.abort();
    }
    served
}
