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

/// Starts the binary on a free port with `env` set; the child and the URL it listens on.
async fn start(env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .args(["--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
}

/// Sends SIGTERM and waits (at most ten seconds) for the process to end; its output.
async fn terminate(child: tokio::process::Child) -> std::process::Output {
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_binary_serves_and_stops_gracefully_on_sigterm() {
    let (child, url) = start(&[]).await;
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let out = terminate(child).await;
    assert!(
        out.status.success(),
        "exits cleanly on SIGTERM: {:?}",
        out.status
    );
}

/// On PostgreSQL, the process says at start-up when the server keeps too little recycled WAL for
/// a burst (ADR 0018), and stays silent when it keeps enough.
#[tokio::test]
async fn the_binary_warns_of_a_small_wal_reserve_on_postgres() {
    let cfg = crate::postgres::fresh_config().await;
    let reserve = adapter_postgres::PgStore::connect(&cfg)
        .await
        .unwrap()
        .min_wal_size()
        .await
        .unwrap();
    let (child, _) = start(&[
        // Info, so there are log lines to check for colour codes.
        ("RUST_LOG", "info"),
        ("ATTIO_SYNC_STORE__KIND", "postgres"),
        ("ATTIO_SYNC_STORE__URL", cfg.url.expose()),
        ("ATTIO_SYNC_STORE__SCHEMA", cfg.schema.as_deref().unwrap()),
        ("ATTIO_SYNC_MASTER_KEY", crate::postgres::MASTER_KEY),
    ])
    .await;
    let out = terminate(child).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.is_empty() && !err.contains('\u{1b}'),
        "logs written to a pipe carry no colour codes: {err:?}"
    );
    let warned = err.contains("min_wal_size");
    assert_eq!(
        warned,
        reserve < app_common::MIN_WAL_RESERVE,
        "min_wal_size is {reserve} bytes; the process said: {err}"
    );
}
