//! The binary: refuses an invalid configuration with a clear message, serves, and stops on SIGTERM.

use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn an_invalid_configuration_stops_the_process_with_the_reason() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .env("ATTIO_SYNC_MAX_ATTEMPTS", "0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_attempts"), "{err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env(
            "ATTIO_SYNC_STORE__URL",
            "postgres://u:hunter2@127.0.0.1:1/x",
        )
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("master_key") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test]
async fn the_binary_serves_and_stops_gracefully_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exits cleanly on SIGTERM: {exit:?}");
}
