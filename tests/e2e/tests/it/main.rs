//! attio-sync end to end, across real processes.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_robustness;
mod attio_to_crms;
mod born_deals;
mod both_ways;
mod console;
mod contract;
mod control;
mod embedded;
mod telemetry;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// A binary of the workspace, next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo nextest run --workspace` (as `cargo xtask ci` does) or `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A running process; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub url: Option<String>,
}

impl Proc {
    /// Sends SIGKILL and waits.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Starts a binary whose first stdout line is `listening on URL` (or any line, when `listens` is
/// false) and waits for it.
pub async fn start(name: &str, args: &[&str], env: &[(&str, String)], listens: bool) -> Proc {
    let mut cmd = Command::new(binary(name));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{name} did not start in 30 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{name} exited before starting"));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = listens.then(|| {
        first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} printed {first:?}"))
            .to_owned()
    });
    Proc { child, url }
}

/// Polls `check` until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
