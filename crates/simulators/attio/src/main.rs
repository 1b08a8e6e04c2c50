//! `attio-sim --listen 127.0.0.1:0 [--tokens FILE] [--reads-per-second N] [--writes-per-second N]`
//!
//! Prints `listening on http://ADDR:PORT` as its first line, then serves until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "attio-sim", about = "A local simulator of Attio's REST API v2")]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A tokens file (JSON: {"tokens": [{"token", "workspace", "scopes"}]}); without it every
    /// well-formed 64-character token is a workspace of its own.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Read requests per second per workspace.
    #[arg(long, default_value_t = 100)]
    reads_per_second: u32,
    /// Write requests per second per workspace.
    #[arg(long, default_value_t = 25)]
    writes_per_second: u32,
    /// Faults to inject, as JSON (e.g. `{"error_rate":0.1,"duplicate_rate":0.2}`); change them
    /// later with `PUT /_sim/faults`.
    #[arg(long)]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tokens = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a tokens file", path.display()))?,
            )
        }
        None => None,
    };
    let faults: attio_sim::Faults =
        sim_support::parse_faults(args.faults.as_deref()).map_err(anyhow::Error::msg)?;
    let config = attio_sim::SimConfig {
        faults,
        tokens,
        reads_per_second: args.reads_per_second,
        writes_per_second: args.writes_per_second,
        ..attio_sim::SimConfig::default()
    };
    let running = attio_sim::start(args.listen, config)
        .await
        .context("cannot listen")?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
