//! `attio-sync`: the command line. `attio-sync demo` runs the service against its simulators in
//! one process and prints what arrived where.

mod admin;
mod control;
mod demo;
mod doctor;
mod run;

use std::process::ExitCode;
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
    #[command(flatten)]
    connection: admin::Connection,
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
    /// Runs the API and a worker in this process (one-person deployments): one file with `[api]`
    /// and `[worker]` sections (docs/configuration.md).
    Run {
        #[arg(long, env = "ATTIO_SYNC_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Checks a deployment from its configuration (the `run` file) and says what to fix: the
    /// store, PostgreSQL's WAL reserve, each tenant's Attio token and webhook, its CRM
    /// credentials and the mappings. Exit 1 when something needs fixing.
    Doctor {
        #[arg(long, env = "ATTIO_SYNC_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Tenants: add, list, show, remove, and their API keys.
    #[command(subcommand)]
    Tenant(admin::TenantCmd),
    /// Dead letters: list and replay.
    #[command(subcommand)]
    Dlq(admin::DlqCmd),
    /// Quarantined deliveries.
    #[command(subcommand)]
    Quarantine(admin::QuarantineCmd),
    /// Backfills: start (optionally following its progress) and status.
    #[command(subcommand)]
    Backfill(admin::BackfillCmd),
    /// Conflicts waiting for a person: list, show, resolve (one or many).
    #[command(subcommand)]
    Conflicts(control::ConflictsCmd),
    /// Deletes held for approval: list, approve, reject (ids or all).
    #[command(subcommand)]
    Deletes(control::DeletesCmd),
    /// A tenant's mappings: show, validate or apply a file, versions.
    #[command(subcommand)]
    Mappings(control::MappingsCmd),
    /// A synced record's per-field audit trail: who changed what, where, and why.
    History {
        tenant: String,
        object: String,
        record: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Compares an object's Attio records with a CRM and repairs the drift (or, with
    /// `--dry-run`, reports what a pass would do, optionally for a candidate `--mappings` file);
    /// `--follow` waits for the drift report.
    Reconcile {
        tenant: String,
        #[arg(long)]
        object: String,
        #[arg(long)]
        system: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        mappings: Option<std::path::PathBuf>,
        #[arg(long)]
        follow: bool,
    },
    /// The queue's depth; with a tenant, its open conflicts, held deletes, dead letters, mappings
    /// version and last reconciliations.
    Status { tenant: Option<String> },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // `run` installs the services' own logs and traces.
        app_common::telemetry::init_logs("warn");
    }
    let c = &cli.connection;
    let admin = match cli.command {
        Command::Demo { wait_s } => return exit(demo::run(Duration::from_secs(wait_s)).await),
        Command::Migrate { config } => return exit(migrate(config).await),
        Command::Run { config } => return exit(serve(config).await),
        Command::Doctor { config } => return doctor(config, c.json).await,
        Command::Tenant(cmd) => admin::tenant(c, cmd).await,
        Command::Dlq(cmd) => admin::dlq(c, cmd).await,
        Command::Quarantine(cmd) => admin::quarantine(c, cmd).await,
        Command::Backfill(cmd) => admin::backfill(c, cmd).await,
        Command::Conflicts(cmd) => control::conflicts(c, cmd).await,
        Command::Deletes(cmd) => control::deletes(c, cmd).await,
        Command::Mappings(cmd) => match control::mappings(c, cmd).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::History {
            tenant,
            object,
            record,
            limit,
        } => control::history(c, &tenant, &object, &record, limit).await,
        Command::Reconcile {
            tenant,
            object,
            system,
            dry_run,
            mappings,
            follow,
        } => control::reconcile(c, &tenant, &object, &system, dry_run, mappings, follow).await,
        Command::Status { tenant } => admin::status(c, tenant.as_deref()).await,
    };
    match admin {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attio-sync: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `doctor`: 0 when nothing needs fixing, 1 when something does, 2 for an invalid configuration.
async fn doctor(config: Option<std::path::PathBuf>, json: bool) -> ExitCode {
    match doctor::checks(config.as_deref()).await {
        Ok(checks) if doctor::report(&checks, json) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("attio-sync: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A local command's outcome as an exit code: 1 with the whole cause on failure.
fn exit(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attio-sync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `run`, with the services' logs and traces.
async fn serve(config: Option<std::path::PathBuf>) -> Result<()> {
    let telemetry = app_common::telemetry::init("attio-sync", "info")?;
    let ran = run::run(config.as_deref()).await;
    telemetry.shutdown().await;
    ran
}

async fn migrate(config: Option<std::path::PathBuf>) -> Result<()> {
    let settings = webhook_api::RawConfig::load(config.as_deref())?.validate()?;
    app_common::open_stores(&settings.store, &settings.queue).await?;
    println!("the store's schema is up to date");
    Ok(())
}
