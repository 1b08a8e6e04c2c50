//! The intake on a real PostgreSQL: accepted, deduplicated and enqueued in one transaction.

use std::sync::Arc;
use std::time::Duration;

use adapter_postgres::{MasterKey, PgConfig, PgStore};
use domain::tenant::Secret;
use ports::queue::{JobQueue, ReserveFilter};
use ports::stores::TenantStore;

use crate::{SECRET, record_event, settings, spawn_app_with, tenant};

/// The master key of these tests' stores, as 64 hex characters.
pub(crate) const MASTER_KEY: &str =
    "7777777777777777777777777777777777777777777777777777777777777777";

/// A store configuration on the test server in a schema no other test uses (the creation time
/// lets later runs drop leftovers).
pub(crate) async fn fresh_config() -> PgConfig {
    let url = testkit::postgres_url().await;
    let mut cfg = PgConfig::new(
        Secret::new(url).unwrap(),
        MasterKey::from_hex(MASTER_KEY).unwrap(),
    );
    let secs = time::OffsetDateTime::now_utc().unix_timestamp();
    cfg.schema = Some(format!(
        "it_{secs}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    cfg
}

async fn store() -> Arc<PgStore> {
    Arc::new(PgStore::connect(&fresh_config().await).await.unwrap())
}

#[tokio::test]
async fn deliveries_land_in_postgres_once_and_bad_ones_store_nothing() {
    let pg = store().await;
    pg.create(&tenant("acme")).await.unwrap();
    let app = spawn_app_with(app_common::Stores::from_one(pg.clone()), settings(), None).await;
    let body = record_event("record.created", "bf071e1f-6035-429d-b874-d83ea64ea13b");
    let (status, a) = app.post_attio("acme", &body, SECRET, Some("pg-1")).await;
    assert_eq!(
        (status, a["status"].as_str()),
        (200, Some("accepted")),
        "{a}"
    );
    let (_, dup) = app.post_attio("acme", &body, SECRET, Some("pg-1")).await;
    assert_eq!(dup["status"], "duplicate");
    let (status, _) = app.post_attio("acme", &body, "wrong", Some("pg-2")).await;
    assert_eq!(status, 401);
    assert_eq!(pg.depth().await.unwrap().ready, 1);
    let job = pg
        .reserve("t", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.job.payloads[0]["delivery"]["events"][0]["event_type"],
        "record.created"
    );
    app.shutdown().await;
}

/// jsonb refuses the NUL escape `\u0000`: a signed delivery carrying one is stored as received and
/// its job enqueued with the escape replaced, never answered 500 (which Attio would retry until it
/// gave up, losing the change).
#[tokio::test]
async fn a_signed_delivery_with_a_nul_escape_is_stored_and_enqueued() {
    let pg = store().await;
    pg.create(&tenant("acme")).await.unwrap();
    let app = spawn_app_with(app_common::Stores::from_one(pg.clone()), settings(), None).await;
    let mut event: serde_json::Value = serde_json::from_str(&record_event(
        "record.updated",
        "bf071e1f-6035-429d-b874-d83ea64ea13c",
    ))
    .unwrap();
    event["events"][0]["note"] = serde_json::json!("a\u{0}b");
    let body = event.to_string();
    assert!(body.contains("\\u0000"), "{body}");
    let (status, a) = app.post_attio("acme", &body, SECRET, Some("pg-nul")).await;
    assert_eq!(
        (status, a["status"].as_str()),
        (200, Some("accepted")),
        "{a}"
    );
    let id = domain::ids::InboxId::parse(a["id"].as_str().unwrap()).unwrap();
    let stored = ports::stores::Inbox::get(pg.as_ref(), &tenant("acme").id, id)
        .await
        .unwrap();
    assert_eq!(
        stored.delivery.body,
        body.as_bytes(),
        "the inbox keeps the body as received"
    );
    let job = pg
        .reserve("t", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.job.payloads[0]["delivery"]["events"][0]["note"],
        "a\u{fffd}b"
    );
    app.shutdown().await;
}
