//! `cargo xtask fuzz [SECONDS]`: every cargo-fuzz target of `fuzz/` run for a bounded time
//! (60 s each by default) on the nightly toolchain, from its seed corpus in `fuzz/seeds/`; a table
//! of target → runs, crashes at the end, and a failure when any target crashed (its input is in
//! `fuzz/artifacts/<target>/`; turn it into a regression test).
//!
//! Needs `cargo install cargo-fuzz` and a nightly toolchain (`rustup toolchain install
//! nightly`); it says so when either is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The targets, in `fuzz/Cargo.toml`'s order.
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml"))
        .with_context(|| format!("cannot read {}", fuzz.join("Cargo.toml").display()))?;
    Ok(manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "attio-sync-fuzz")
        .map(str::to_owned)
        .collect())
}

/// The `#N` of libFuzzer's last status line: how many inputs it ran.
fn runs(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix('#'))
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .with_context(|| format!("SECONDS must be a whole number, not {s:?}"))?,
        None => 60,
    };
    let fuzz = root.join("fuzz");
    let available = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        bail!(
            "cargo-fuzz on the nightly toolchain is needed: rustup toolchain install nightly && cargo install cargo-fuzz"
        );
    }
    let mut rows = Vec::new();
    let mut crashed = Vec::new();
    for t in targets(&fuzz)? {
        let corpus = fuzz.join("corpus").join(&t);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(&t);
        eprintln!("$ cargo +nightly fuzz run {t} ({seconds} s)");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "-O", &t])
            .arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        let out = cmd
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096",
            ])
            .output()
            .with_context(|| format!("cannot run the fuzz target {t}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let n = runs(&stderr).unwrap_or(0);
        if out.status.success() {
            rows.push((t, n, "0".to_owned()));
        } else {
            let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            rows.push((t.clone(), n, "1 (see fuzz/artifacts)".to_owned()));
            crashed.push(t);
        }
    }
    println!("\n| target | inputs run | crashes |\n|---|---|---|");
    for (t, n, c) in &rows {
        println!("| `{t}` | {n} | {c} |");
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        bail!("fuzz targets crashed: {}", crashed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_are_read_from_the_manifest_and_runs_from_libfuzzers_last_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let t = targets(&root.join("fuzz")).unwrap();
        assert!(
            t.contains(&"attio_webhook".to_owned()) && t.len() >= 5,
            "{t:?}"
        );
        let log = "INFO: seed\n#2\tINITED cov: 10\n#4096\tpulse  cov: 12\n#81234\tDONE   cov: 30\nDone 81234 runs";
        assert_eq!(runs(log), Some(81234));
        assert_eq!(runs("nothing"), None);
    }
}
