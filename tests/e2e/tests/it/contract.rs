//! Third-party contract tests: the providers' mainstream Python clients (Attio's `attio` SDK,
//! HubSpot's `hubspot-api-client`, `simple-salesforce`; pinned in
//! `tests/contract/requirements.txt`) drive the three simulators through their typed methods
//! (`tests/contract/test_*.py`). The simulators are written from the vendors' documentation; these
//! clients are written from the same documents by others, so a divergence our own adapters share
//! with the simulators shows up here.
//!
//! The harness makes a virtual environment under `target/contract-venv` from PyPI (kept while the
//! requirements are unchanged), starts the simulators in this process, and runs pytest.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) async fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A virtual environment under `target/{name}` with the pinned packages of `requirements`
/// (relative to the workspace); made (or remade) when they differ from what it was made with.
pub(crate) async fn venv_of(name: &str, requirements: &str) -> PathBuf {
    let root = workspace();
    let requirements = root.join(requirements);
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let dir = root.join("target").join(name);
    let stamp = dir.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "python3 -m venv (install python3 and python3-venv)",
    )
    .await;
    run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install of the pinned packages (needs PyPI)",
    )
    .await;
    std::fs::write(&stamp, wanted).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_mainstream_clients_accept_the_simulators() {
    let venv = venv_of("contract-venv", "tests/contract/requirements.txt").await;
    let addr = || "127.0.0.1:0".parse().unwrap();
    let attio = attio_sim::start(addr(), attio_sim::SimConfig::default())
        .await
        .unwrap();
    let hubspot = hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
        .await
        .unwrap();
    let hubspot_limited = hubspot_sim::start(
        addr(),
        hubspot_sim::HubSpotConfig {
            per_ten_seconds: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let salesforce = salesforce_sim::start(addr(), salesforce_sim::SalesforceConfig::default())
        .await
        .unwrap();
    let output = run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/contract",
            ])
            .current_dir(workspace())
            .env("ATTIO_SIM_URL", attio.url())
            .env("HUBSPOT_SIM_URL", hubspot.url())
            .env("HUBSPOT_SIM_LIMITED_URL", hubspot_limited.url())
            .env("SALESFORCE_SIM_URL", salesforce.url()),
        "pytest tests/contract",
    )
    .await;
    // pytest's closing line, e.g. "24 passed in 2.10s": every suite ran and none was skipped.
    let summary = output.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "{output}"
    );
    println!("{output}");
}
