//! `webhook-api [--config FILE] [--listen ADDR]`: the composition root. Reads the layered
//! configuration (refusing to start on an invalid one), opens the configured store, serves, and
//! on SIGTERM or Ctrl-C stops taking connections and finishes the requests in flight. Prints
//! `listening on http://ADDR:PORT` as its first line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use adapter_memory::{
    MemoryIdempotencyStore, MemoryInbox, MemoryQueue, MemoryTenantStore, SystemClock,
};
use anyhow::{Context, Result};
use clap::Parser;
use webhook_api::{AppState, RawConfig, StoreSettings};

#[derive(Debug, Parser)]
#[command(name = "webhook-api", about = "attio-sync's webhook intake")]
struct Args {
    /// A TOML configuration file (then `ATTIO_SYNC_*` variables override it).
    #[arg(long, env = "ATTIO_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut raw = RawConfig::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        raw.listen = l;
    }
    let settings = raw.validate()?;
    let clock = Arc::new(SystemClock);
    let state = match &settings.store {
        StoreSettings::Memory => {
            let queue = MemoryQueue::default();
            let inbox = MemoryInbox::new(queue.clone(), MemoryIdempotencyStore::default());
            AppState {
                tenants: Arc::new(MemoryTenantStore::default()),
                inbox: Arc::new(inbox),
                queue: Arc::new(queue),
                clock,
                settings: Arc::new(settings.clone()),
            }
        }
        StoreSettings::Sqlite { path, master_key } => {
            let key = adapter_sqlite::MasterKey::from_hex(master_key.expose())
                .context("master_key is not a valid key")?;
            let store = Arc::new(
                adapter_sqlite::SqliteStore::open(path, &key)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?,
            );
            AppState {
                tenants: store.clone(),
                inbox: store.clone(),
                queue: store,
                clock,
                settings: Arc::new(settings.clone()),
            }
        }
        StoreSettings::Postgres { url, master_key } => {
            let key = adapter_postgres::MasterKey::from_hex(master_key.expose())
                .context("master_key is not a valid key")?;
            let store = Arc::new(
                adapter_postgres::PgStore::connect(&adapter_postgres::PgConfig::new(
                    url.clone(),
                    key,
                ))
                .await
                .context("cannot connect to PostgreSQL")?,
            );
            AppState {
                tenants: store.clone(),
                inbox: store.clone(),
                queue: store,
                clock,
                settings: Arc::new(settings.clone()),
            }
        }
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    webhook_api::serve(listener, state, shutdown_signal())
        .await
        .context("the server failed")?;
    Ok(())
}
