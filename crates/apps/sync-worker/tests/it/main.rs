//! The sync-worker binary: refuses an invalid configuration with the reason, runs, and stops
//! cleanly on SIGTERM; while it runs it drops the write ledger's expired entries. (Its job handling is tested in `services` and end to end in `tests/e2e`,
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

/// While it runs, the worker drops the write ledger's expired entries (ADR 0020); with
/// `purge_interval_s = 0` they stay.
#[tokio::test]
async fn the_running_worker_drops_expired_ledger_entries() {
    use domain::field::FieldValue;
    use domain::ids::{SystemId, TenantId};
    use domain::ledger::{LedgerEntry, LedgerKey};
    use domain::mapping::FieldKey;
    use std::sync::Arc;
    use time::OffsetDateTime;

    let now = OffsetDateTime::now_utc();
    let expired = LedgerEntry {
        key: LedgerKey {
            tenant: TenantId::parse("acme").unwrap(),
            system: SystemId::parse("hubspot").unwrap(),
            object: "contacts".into(),
            record: "1".into(),
            field: FieldKey::parse("email").unwrap(),
        },
        value_hash: FieldValue::text("a@example.com").value_hash(),
        expires_at: now - time::Duration::hours(1),
    };
    let mut left = Vec::new();
    for purge_interval_s in [0, 1] {
        let stores = app_common::open_stores(
            &app_common::StoreSettings::Memory,
            &app_common::QueueSettings::Store,
        )
        .await
        .unwrap();
        stores
            .ledger
            .record(std::slice::from_ref(&expired))
            .await
            .unwrap();
        let settings = sync_worker::RawConfig {
            purge_interval_s,
            ..sync_worker::RawConfig::default()
        }
        .validate()
        .unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let running = {
            let stores = stores.clone();
            tokio::spawn(async move {
                let limiter = Arc::new(adapter_memory::MemoryRateLimiter::default());
                sync_worker::run(&settings, stores, limiter, rx).await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(true).unwrap();
        running.await.unwrap();
        left.push(stores.ledger.purge_expired(now).await.unwrap());
    }
    assert_eq!(
        left,
        vec![1, 0],
        "the expired entry stays without purges and goes with them"
    );
}

/// The schedule queues a reconciliation of each mapped object of each tenant every interval.
#[tokio::test]
async fn the_schedule_queues_a_reconciliation_of_each_mapped_object() {
    use std::sync::Arc;

    use domain::ids::TenantId;
    use domain::tenant::{AttioCredentials, Secret, Tenant};
    use ports::queue::ReserveFilter;

    let stores = app_common::open_stores(
        &app_common::StoreSettings::Memory,
        &app_common::QueueSettings::Store,
    )
    .await
    .unwrap();
    stores
        .tenants
        .create(&Tenant {
            id: TenantId::parse("acme").unwrap(),
            name: "Acme".into(),
            attio: AttioCredentials {
                api_token: Secret::new("a".repeat(64)).unwrap(),
                webhook_secrets: Vec::new(),
            },
            crms: Vec::new(),
            api_keys: Vec::new(),
            created_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let settings = sync_worker::RawConfig {
        targets: serde_json::from_value(serde_json::json!([
            {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id",
             "fields": [{"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"}]},
        ]))
        .unwrap(),
        ..sync_worker::RawConfig::default()
    };
    let settings = settings.validate().unwrap();
    let limiter = Arc::new(adapter_memory::MemoryRateLimiter::default());
    let directory = Arc::new(app_common::directory::TenantDirectory::new(
        stores.tenants.clone(),
        limiter,
        "http://127.0.0.1:9",
    ));
    let catalog = Arc::new(services::mappings::MappingCatalog::fixed(
        settings.targets.clone(),
    ));
    let schedule = tokio::spawn(sync_worker::schedule_reconciliations(
        stores.clone(),
        directory,
        catalog,
        Duration::from_millis(50),
        3,
    ));
    let job = loop {
        if let Some(r) = stores
            .queue
            .reserve("test", Duration::from_secs(30), &ReserveFilter::default())
            .await
            .unwrap()
        {
            break r.job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    schedule.abort();
    assert_eq!(
        job.payloads[0],
        serde_json::json!({"source": "reconcile", "object": "people", "system": "hubspot"})
    );
    assert_eq!(job.key.entity, "people-hubspot");
}
