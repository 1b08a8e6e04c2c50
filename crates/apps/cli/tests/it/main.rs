//! `attio-sync demo` as a user runs it: it exits 0 and reports every change arrived.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod configuration;

#[tokio::test]
async fn the_demo_shows_every_change_arriving_in_both_crms() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["demo", "--wait-s", "60"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 changes, 6 arrivals, 0 missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deleted Alan Turing") && stdout.contains("archived"),
        "{stdout}"
    );
}

/// `attio-sync migrate` brings a PostgreSQL schema up to date and exits; a bad setting stops it
/// naming the setting.
#[tokio::test]
async fn migrate_brings_the_store_up_to_date_and_names_a_bad_setting() {
    let url = testkit::postgres_url().await;
    let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .arg("migrate")
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env("ATTIO_SYNC_STORE__URL", &url)
        .env("ATTIO_SYNC_STORE__SCHEMA", &schema)
        .env("ATTIO_SYNC_MASTER_KEY", "7".repeat(64))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("up to date"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('tenants', 'jobs', 'inbox')",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 3);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .arg("migrate")
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env("ATTIO_SYNC_STORE__URL", &url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key"));
}
