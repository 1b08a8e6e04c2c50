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

/// On PostgreSQL, the process says at start-up when the server keeps too little recycled WAL for
/// a burst (ADR 0018), and stays silent when it keeps enough.
#[tokio::test]
async fn the_binary_warns_of_a_small_wal_reserve_on_postgres() {
    let url = testkit::postgres_url().await;
    let schema = format!(
        "it_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut cfg = adapter_postgres::PgConfig::new(
        domain::tenant::Secret::new(url.clone()).unwrap(),
        adapter_postgres::MasterKey::from_hex(&"7".repeat(64)).unwrap(),
    );
    cfg.schema = Some(schema.clone());
    let reserve = adapter_postgres::PgStore::connect(&cfg)
        .await
        .unwrap()
        .min_wal_size()
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env("ATTIO_SYNC_STORE__URL", &url)
        .env("ATTIO_SYNC_STORE__SCHEMA", &schema)
        .env("ATTIO_SYNC_MASTER_KEY", "7".repeat(64))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warned = err.contains("min_wal_size");
    assert_eq!(
        warned,
        reserve < app_common::MIN_WAL_RESERVE,
        "min_wal_size is {reserve} bytes; the process said: {err}"
    );
}
