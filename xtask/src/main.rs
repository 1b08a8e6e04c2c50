//! `cargo xtask`: the one entry point for checks.
//!
//! - `cargo xtask ci` — what CI runs: format check, clippy with warnings denied, every test of
//!   the workspace (the dependency invariants below are among them), doc tests.
//! - `cargo xtask deploy-check` — the static checks of `deploy/` (see `deploy.rs`); `ci` runs it.
//! - `cargo xtask fuzz [SECONDS]` — every fuzz target of `fuzz/` for a bounded time on nightly
//!   (see `fuzz.rs`); not part of `ci`.
//! - `cargo xtask invariants` — only the dependency invariants and the CRM-naming rule
//!   (`crm_names`), with a readable report.
//! - `cargo xtask bench queue` — the queue benchmark (criterion), ending with a table of
//!   throughput and p50/p99 latency per backend.
//! - `cargo xtask bench attio` — the Attio adapter against attio-sim: latency, throughput and the
//!   share of Attio's write budget a burst of 1,000 asserts achieves.
//! - `cargo xtask bench crm` — a bulk upsert of 10,000 contacts through the HubSpot and
//!   Salesforce adapters against their simulators with the real limits, as a share of the ceiling
//!   those limits (and the raw rate) allow, with every failed record.
//! - `cargo xtask bench webhook` — webhook-api's accepted deliveries/s and p50/p99 answer time on
//!   PostgreSQL (saturated and paced at 1,000/s), and the delay from an Attio change to the HubSpot
//!   write.

mod crm_names;
mod deploy;
mod fuzz;
mod invariants;

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("deploy-check") => deploy::check(&workspace_root()),
        Some("fuzz") => fuzz::run(&workspace_root(), &args[1..]),
        Some("invariants") => {
            let graph = invariants::Graph::from_workspace()?;
            let mut found = invariants::violations(&graph);
            let root = workspace_root();
            found.extend(crm_names::violations(&root)?);
            if found.is_empty() {
                println!(
                    "dependency invariants hold for {} workspace crates; no crate outside {:?}'s own names them",
                    graph.workspace_len(),
                    crm_names::crms(&root)?
                );
                Ok(())
            } else {
                for v in &found {
                    eprintln!("violation: {v}");
                }
                bail!("{} invariant(s) broken", found.len())
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|invariants|deploy-check|fuzz [SECONDS]|bench <queue|attio|crm|webhook>>"
            );
            bail!("unknown or missing command")
        }
    }
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    deploy::check(&workspace_root())?;
    // Doc tests first: the run should end on the test runner's summary of the real suite.
    cargo(&["test", "--workspace", "--all-features", "--doc"])?;
    if has_nextest() {
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--profile",
            "ci",
        ])?;
    } else {
        eprintln!("cargo-nextest not found; using cargo test");
        cargo(&["test", "--workspace", "--all-features", "--all-targets"])?;
    }
    Ok(())
}

/// Benchmarks by name; each is a criterion bench target of the `bench` crate.
const BENCHES: &[&str] = &["queue", "attio", "crm", "webhook"];

fn bench(args: &[String]) -> Result<()> {
    let Some(name) = args.first() else {
        bail!(
            "usage: cargo xtask bench <{}> [criterion args]",
            BENCHES.join("|")
        );
    };
    if !BENCHES.contains(&name.as_str()) {
        bail!("unknown benchmark {name:?}; known: {}", BENCHES.join(", "));
    }
    let mut cargs = vec!["bench", "-p", "bench", "--bench", name.as_str()];
    if args.len() > 1 {
        cargs.push("--");
        cargs.extend(args[1..].iter().map(String::as_str));
    }
    cargo(&cargs)
}
