//! `cargo xtask`: the one entry point for checks.
//!
//! - `cargo xtask ci` — what CI runs: format check, clippy with warnings denied, every test of
//!   the workspace (the dependency invariants below are among them), doc tests.
//! - `cargo xtask invariants` — only the dependency invariants, with a readable report.

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
        Some("invariants") => {
            let graph = invariants::Graph::from_workspace()?;
            let found = invariants::violations(&graph);
            if found.is_empty() {
                println!(
                    "dependency invariants hold for {} workspace crates",
                    graph.workspace_len()
                );
                Ok(())
            } else {
                for v in &found {
                    eprintln!("violation: {v}");
                }
                bail!("{} dependency invariant(s) broken", found.len())
            }
        }
        _ => {
            eprintln!("usage: cargo xtask <ci|invariants>");
            bail!("unknown or missing command")
        }
    }
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
