//! The contact API for the tenant's app: keys made by the operator (only their digests stored),
//! refused keys, and each operation reaching attio-sim.

use std::sync::Arc;

use adapter_memory::{MemoryCache, MemoryRateLimiter};
use domain::tenant::Secret;
use serde_json::{Value, json};

use crate::{TestApp, memory_stores, settings, spawn_full, tenant};

const ADMIN: &str = "operator-token-0123456789abcdef0123456789";

async fn app_with_contacts() -> (attio_sim::RunningSim, TestApp) {
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let stores = memory_stores().await;
    let mut acme = tenant("acme");
    acme.attio.api_token = Secret::new("c".repeat(64)).unwrap();
    stores.tenants.create(&acme).await.unwrap();
    stores.tenants.create(&tenant("other")).await.unwrap();
    let contacts = services::contact::ContactService::new(
        Arc::new(app_common::directory::TenantDirectory::new(
            stores.tenants.clone(),
            Arc::new(MemoryRateLimiter::default()),
            &sim.url(),
        )),
        Arc::new(MemoryCache::default()),
    );
    let mut s = settings();
    s.admin_token = Some(Secret::new(ADMIN).unwrap());
    let app = spawn_full(stores, s, None, false, Some(Arc::new(contacts))).await;
    (sim, app)
}

async fn key(app: &TestApp, tenant: &str) -> String {
    let r: Value = app
        .http
        .post(format!("{}/v1/admin/tenants/{tenant}/api-keys", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn only_the_tenants_own_keys_open_its_contact_api() {
    let (_sim, app) = app_with_contacts().await;
    let acme = key(&app, "acme").await;
    let other = key(&app, "other").await;
    assert!(acme.starts_with("ask_") && acme.len() > 60);
    let stored = app
        .tenants
        .get(&domain::ids::TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.api_keys,
        vec![domain::tenant::ApiKeyDigest::of(&acme)],
        "only the digest is kept"
    );
    let path = "/v1/tenants/acme/people?email=ada@example.com";
    assert_eq!(
        app.call(reqwest::Method::GET, path, &other, None).await.0,
        401,
        "another tenant's key"
    );
    assert_eq!(
        app.call(reqwest::Method::GET, path, "ask_guess", None)
            .await
            .0,
        401
    );
    assert_eq!(
        app.call(
            reqwest::Method::GET,
            "/v1/tenants/nobody/people?email=a@b.co",
            &acme,
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        app.call(reqwest::Method::GET, path, &acme, None).await.0,
        404,
        "a valid key, no such person"
    );
    // Revoked keys stop working at once on this replica.
    let revoke = app
        .http
        .delete(format!("{}/v1/admin/tenants/acme/api-keys", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(
        app.call(reqwest::Method::GET, path, &acme, None).await.0,
        401
    );
}

#[tokio::test]
async fn people_notes_tasks_and_pipeline_entries_through_the_api() {
    let (_sim, app) = app_with_contacts().await;
    let k = key(&app, "acme").await;
    let (status, person) = app.call(
        reqwest::Method::PUT,
        "/v1/tenants/acme/people",
        &k,
        Some(json!({"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "job_title": "Engineer"})),
    )
    .await;
    assert_eq!(status, 200, "{person}");
    let (_, again) = app
        .call(
            reqwest::Method::PUT,
            "/v1/tenants/acme/people",
            &k,
            Some(json!({"email": "grace@example.com", "job_title": "Rear Admiral"})),
        )
        .await;
    assert_eq!(again["id"], person["id"], "idempotent per e-mail");
    let (status, found) = app
        .call(
            reqwest::Method::GET,
            "/v1/tenants/acme/people?email=grace@example.com",
            &k,
            None,
        )
        .await;
    assert_eq!(
        (status, found["job_title"].as_str()),
        (200, Some("Rear Admiral"))
    );

    let id = person["id"].as_str().unwrap();
    let (status, note) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/tenants/acme/people/{id}/notes"),
            &k,
            Some(json!({"title": "Call", "content": "COBOL"})),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    let (status, task) = app
        .call(
            reqwest::Method::POST,
            "/v1/tenants/acme/tasks",
            &k,
            Some(json!({"content": "Send the manual", "record": id})),
        )
        .await;
    assert_eq!(status, 201, "{task}");

    for (body, why) in [
        (json!({"email": "not-an-address"}), "bad e-mail"),
        (json!({"email": "a@b.co", "shoe_size": 9}), "unknown field"),
    ] {
        let (status, answer) = app
            .call(
                reqwest::Method::PUT,
                "/v1/tenants/acme/people",
                &k,
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/tenants/acme/tasks",
            &k,
            Some(json!({"content": ""})),
        )
        .await;
    assert_eq!(status, 400);
    // A person is not a deal: the sales pipeline refuses it, typed, not a 500.
    let (status, answer) = app
        .call(
            reqwest::Method::POST,
            "/v1/tenants/acme/lists/sales/entries",
            &k,
            Some(json!({"object": "people", "record": id, "stage": "Lead"})),
        )
        .await;
    assert!(matches!(status, 400 | 404 | 422), "{status} {answer}");
}

#[tokio::test]
async fn an_attio_event_flushes_the_cached_person() {
    let (sim, app) = app_with_contacts().await;
    let k = key(&app, "acme").await;
    let (_, person) = app
        .call(
            reqwest::Method::PUT,
            "/v1/tenants/acme/people",
            &k,
            Some(json!({"email": "kay@example.com", "job_title": "Computer"})),
        )
        .await;
    let id = person["id"].as_str().unwrap().to_owned();
    let (_, found) = app
        .call(
            reqwest::Method::GET,
            "/v1/tenants/acme/people?email=kay@example.com",
            &k,
            None,
        )
        .await;
    assert_eq!(found["job_title"], "Computer", "now cached");
    // Someone changes the title in Attio; the cached copy is stale until Attio's event arrives.
    app.http
        .patch(format!("{}/v2/objects/people/records/{id}", sim.url()))
        .bearer_auth("c".repeat(64))
        .json(&json!({"data": {"values": {"job_title": "Mathematician"}}}))
        .send()
        .await
        .unwrap();
    let (_, stale) = app
        .call(
            reqwest::Method::GET,
            "/v1/tenants/acme/people?email=kay@example.com",
            &k,
            None,
        )
        .await;
    assert_eq!(stale["job_title"], "Computer", "served from the cache");
    let (status, _) = app
        .post_attio(
            "acme",
            &crate::record_event("record.updated", &id),
            crate::SECRET,
            Some("flush-1"),
        )
        .await;
    assert_eq!(status, 200);
    let (_, fresh) = app
        .call(
            reqwest::Method::GET,
            "/v1/tenants/acme/people?email=kay@example.com",
            &k,
            None,
        )
        .await;
    assert_eq!(fresh["job_title"], "Mathematician", "the event flushed it");
}
