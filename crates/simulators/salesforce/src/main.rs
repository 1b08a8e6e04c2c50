//! `salesforce-sim --listen 127.0.0.1:0 [--client-id ID --client-secret S] [--jwt-public-key PEM]
//! [--daily-limit N] [--token-ttl-s N] [--faults JSON]`
//!
//! Prints `listening on http://ADDR:PORT` as its first line, then serves until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "salesforce-sim",
    about = "A local simulator of Salesforce's REST API for one org"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The connected app's consumer key.
    #[arg(long, default_value = "sim-consumer-key")]
    client_id: String,
    /// The connected app's consumer secret.
    #[arg(long, default_value = "sim-consumer-secret")]
    client_secret: String,
    /// A PEM public key (SPKI) that JWT bearer assertions must be signed for; without it the
    /// JWT flow is refused.
    #[arg(long)]
    jwt_public_key: Option<PathBuf>,
    /// The only username the JWT flow accepts as `sub`.
    #[arg(long)]
    jwt_username: Option<String>,
    /// API requests per rolling 24 hours (Developer Edition 15,000; Enterprise 100,000 + 1,000
    /// per licence).
    #[arg(long, default_value_t = 100_000)]
    daily_limit: u64,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_s: u64,
    /// Faults to inject, as JSON, e.g. `{"lock_rate":0.05,"latency_ms":20}`; change them later
    /// with `PUT /_sim/faults`.
    #[arg(long)]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let faults: salesforce_sim::Faults =
        sim_support::parse_faults(args.faults.as_deref()).map_err(anyhow::Error::msg)?;
    let jwt_public_key_pem = match &args.jwt_public_key {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --jwt-public-key {}", p.display()))?,
        ),
        None => None,
    };
    let config = salesforce_sim::SalesforceConfig {
        app: salesforce_sim::ConnectedApp {
            client_id: args.client_id,
            client_secret: args.client_secret,
            jwt_public_key_pem,
            jwt_username: args.jwt_username,
        },
        daily_limit: args.daily_limit,
        token_ttl: Duration::from_secs(args.token_ttl_s),
        faults,
        ..Default::default()
    };
    let running = salesforce_sim::start(args.listen, config)
        .await
        .context("cannot listen")?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
