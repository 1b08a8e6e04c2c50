//! The sync-worker binary: refuses an invalid configuration with the reason, runs, and stops
//! cleanly on SIGTERM. (Its job handling is tested in `services` and end to end in `tests/e2e`,
//! which also needs this binary built: this test binary makes `cargo test` build it.)

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn an_invalid_configuration_stops_the_process_with_the_reason() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .env("ATTIO_SYNC_ON_DELETE", "shred")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("on_delete"), "{err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--config", "/nonexistent/worker.toml"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[tokio::test]
async fn the_worker_runs_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .env("ATTIO_SYNC_CONSUMER", "it-worker")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert_eq!(first, "sync-worker it-worker started");
    let pid = child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exits cleanly on SIGTERM: {exit:?}");
}

#[tokio::test]
async fn metrics_are_served_when_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .env("ATTIO_SYNC_CONSUMER", "it-metrics")
        .env("ATTIO_SYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        "sync-worker it-metrics started"
    );
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["acked", "retried", "dead_lettered", "released"] {
        assert!(
            body.contains(&format!("worker_jobs_total{{outcome=\"{outcome}\"}} 0")),
            "{body}"
        );
    }
    child.kill().await.unwrap();
}
