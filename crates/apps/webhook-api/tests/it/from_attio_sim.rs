//! attio-sim's own signed deliveries, sent over HTTP to the app, land in the queue.

use std::time::Duration;

use domain::tenant::Secret;
use serde_json::json;

use crate::{settings, spawn_app_with, tenant};

#[tokio::test]
async fn a_record_created_in_attio_sim_is_delivered_signed_and_enqueued() {
    let stores = crate::memory_stores().await;
    let (tenants, queue) = (stores.tenants.clone(), stores.queue.clone());
    let app = spawn_app_with(stores, settings(), None).await;
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let token = "c".repeat(64);
    // Register the webhook as the admin API will: Attio returns the secret once.
    let created: serde_json::Value = http
        .post(format!("{}/v2/webhooks", sim.url()))
        .bearer_auth(&token)
        .json(&json!({"data": {
            "target_url": format!("{}/v1/webhooks/attio/acme", app.url),
            "subscriptions": [{"event_type": "record.created", "filter": null}]
        }}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["data"]["secret"].as_str().expect("a secret");
    let mut t = tenant("acme");
    t.attio.webhook_secrets = vec![Secret::new(secret).unwrap()];
    tenants.create(&t).await.unwrap();
    let person = http
        .post(format!("{}/v2/objects/people/records", sim.url()))
        .bearer_auth(&token)
        .json(&json!({"data": {"values": {"email_addresses": ["ada@example.com"]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(person.status(), 200);
    let mut waited = Duration::ZERO;
    while queue.depth().await.unwrap().ready == 0 {
        assert!(
            waited < Duration::from_secs(10),
            "no delivery reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(queue.depth().await.unwrap().ready, 1);
    app.shutdown().await;
}
