//! `attio-sync`: the command line. `attio-sync demo` runs the service against its simulators in
//! one process and prints what arrived where.

mod demo;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// mimalloc: the system allocator cost a tenth of the intake's CPU time under load (ADR 0011).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "attio-sync",
    about = "Keeps Attio in step with your CRMs and your app"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the simulators, the API and a worker in this process, makes changes in Attio and shows
    /// what arrived in HubSpot and Salesforce. Needs nothing installed.
    Demo {
        /// How long to wait for every change to arrive, in seconds.
        #[arg(long, default_value_t = 30)]
        wait_s: u64,
    },
    /// Brings the configured store's schema up to date (webhook-api's settings: a file from
    /// `--config` or `ATTIO_SYNC_CONFIG`, then `ATTIO_SYNC_*`) and exits; for a release's
    /// migration job. The services also migrate at start-up.
    Migrate {
        #[arg(long, env = "ATTIO_SYNC_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    app_common::telemetry::init_logs("warn");
    match Cli::parse().command {
        Command::Demo { wait_s } => demo::run(Duration::from_secs(wait_s)).await,
        Command::Migrate { config } => {
            let settings = webhook_api::RawConfig::load(config.as_deref())?.validate()?;
            app_common::open_stores(&settings.store, &settings.queue).await?;
            println!("the store's schema is up to date");
            Ok(())
        }
    }
}
