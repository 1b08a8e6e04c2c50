//! Fault injection, at start and while running.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use attio_sim::{DeliveryConfig, Faults, SimConfig};
use domain::webhook::{EventSubject, WebhookDelivery};
use serde_json::json;

use crate::deliveries::{Receiver, receiver, subscribe, wait_for};
use crate::{Client, sim, token};

async fn set(s: &attio_sim::RunningSim, faults: serde_json::Value) -> u16 {
    let r = reqwest::Client::new()
        .put(format!("{}/_sim/faults", s.url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn api_faults_can_be_switched_on_and_off_while_running() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    assert_eq!(set(&s, json!({"error_rate": 1.0})).await, 200);
    let (status, body) = c.get("/v2/objects").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("internal_server_error"))
    );
    let (status, _) = c
        .post(
            "/v2/objects/companies/records",
            json!({"data": {"values": {"domains": ["z.com"]}}}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(set(&s, json!({"latency_ms": 300})).await, 200);
    let start = Instant::now();
    assert_eq!(c.get("/v2/objects").await.0, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "latency is added"
    );
    assert_eq!(
        set(&s, json!({"timeout_rate": 1.0, "hang_ms": 200})).await,
        200
    );
    assert_eq!(c.get("/v2/objects").await.0, 504);
    assert_eq!(set(&s, json!({})).await, 200);
    let (_, records) = c
        .post("/v2/objects/companies/records/query", json!({}))
        .await;
    assert_eq!(
        records["data"],
        json!([]),
        "a request answered with an injected error had no effect"
    );
    assert_eq!(
        set(&s, json!({"error_rate": 2.0})).await,
        400,
        "rates are shares"
    );
    assert_eq!(
        set(&s, json!({"bogus": 1})).await,
        400,
        "unknown switches are refused"
    );
}

#[tokio::test]
async fn faults_given_at_start_apply_from_the_first_request() {
    let s = sim(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    assert_eq!(Client::new(&s, &token('a')).get("/v2/objects").await.0, 500);
}

#[tokio::test]
async fn deliveries_can_be_duplicated_dropped_and_reordered() {
    let s = sim(SimConfig {
        deliveries: DeliveryConfig {
            retry_base: Duration::from_millis(20),
            ..DeliveryConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver {
        fail_first: AtomicUsize::new(0),
        ..Receiver::default()
    });
    let url = receiver(r.clone()).await;
    subscribe(
        &c,
        &url,
        json!([{"event_type": "record.created", "filter": null}]),
    )
    .await;
    let create = |d: &str| json!({"data": {"values": {"domains": [d]}}});

    set(&s, json!({"duplicate_rate": 1.0})).await;
    c.post("/v2/objects/companies/records", create("a.com"))
        .await;
    let got = wait_for(&r, 2).await;
    assert_eq!(
        got[0].key, got[1].key,
        "a duplicate carries the same Idempotency-Key"
    );
    assert_eq!(got[0].body, got[1].body);

    set(&s, json!({"drop_rate": 1.0})).await;
    c.post("/v2/objects/companies/records", create("dropped.com"))
        .await;
    set(&s, json!({"reorder_window_ms": 300})).await;
    let mut ids = Vec::new();
    for d in ["r1.com", "r2.com", "r3.com"] {
        let (_, rec) = c.post("/v2/objects/companies/records", create(d)).await;
        ids.push(rec["data"]["id"]["record_id"].as_str().unwrap().to_owned());
    }
    let got = wait_for(&r, 5).await;
    assert_eq!(got.len(), 5, "the dropped delivery never arrives");
    let order: Vec<String> = got[2..]
        .iter()
        .map(
            |d| match &WebhookDelivery::parse(&d.body).unwrap().events[0].subject {
                EventSubject::Record(rec) => rec.record_id.to_string(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    ids.reverse();
    assert_eq!(
        order, ids,
        "deliveries within the window arrive newest first"
    );
}
