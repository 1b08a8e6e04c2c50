//! `sync-worker [--config FILE]`: the composition root. Reads the layered configuration (refusing
//! to start on an invalid one), opens the stores and the rate limiter, runs the job loop, and on
//! SIGTERM or Ctrl-C stops taking jobs, finishes or releases the ones in hand, and exits.

use std::path::PathBuf;
use std::sync::Arc;

use adapter_memory::MemoryRateLimiter;
use anyhow::{Context, Result};
use clap::Parser;
use ports::limiter::RateLimiter;
use sync_worker::RawConfig;

/// mimalloc: the system allocator cost a tenth of the intake's CPU time under load (ADR 0011).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sync-worker", about = "attio-sync's job worker")]
struct Args {
    /// A TOML configuration file (then `ATTIO_SYNC_*` variables override it).
    #[arg(long, env = "ATTIO_SYNC_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = app_common::telemetry::init("sync-worker", "info")?;
    let args = Args::parse();
    let settings = RawConfig::load(args.config.as_deref())?.validate()?;
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let stores = app_common::open_stores(&settings.store, &settings.queue).await?;
    let limiter: Arc<dyn RateLimiter> = match &settings.redis_url {
        Some(url) => Arc::new(
            adapter_redis::RedisStore::connect(&adapter_redis::RedisConfig {
                url: url.clone(),
                namespace: "attio-sync".into(),
            })
            .await
            .context("cannot connect to Redis")?,
        ),
        None => Arc::new(MemoryRateLimiter::default()),
    };
    if let Some(addr) = settings.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        services::worker::describe_metrics();
        services::retention::describe_metrics();
        services::deletes::describe_metrics();
        tracing::info!(%addr, "metrics at /metrics");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        app_common::shutdown_signal().await;
        let _ = tx.send(true);
    });
    println!("sync-worker {} started", settings.worker.consumer);
    let stats = sync_worker::run(&settings, stores, limiter, rx).await;
    tracing::info!(
        acked = stats.acked,
        retried = stats.retried,
        dead_lettered = stats.dead_lettered,
        released = stats.released,
        "sync-worker stopped"
    );
    telemetry.shutdown().await;
    Ok(())
}
