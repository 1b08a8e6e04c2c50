//! Webhook deliveries: format, signature, idempotency keys, retries, filters, degradation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attio_sim::{DeliveryConfig, SimConfig, sign};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use domain::webhook::{EventSubject, WebhookDelivery};
use serde_json::{Value, json};

use crate::{Client, sim, token};

#[derive(Debug, Clone)]
pub(crate) struct Received {
    signature: String,
    legacy_signature: String,
    pub(crate) key: String,
    pub(crate) body: Vec<u8>,
}

#[derive(Debug, Default)]
pub(crate) struct Receiver {
    pub(crate) got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    pub(crate) fail_first: AtomicUsize,
}

pub(crate) async fn receiver(r: Arc<Receiver>) -> String {
    let handler = move |headers: HeaderMap, body: Bytes| {
        let r = r.clone();
        async move {
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            r.got.lock().unwrap().push(Received {
                signature: h("attio-signature"),
                legacy_signature: h("x-attio-signature"),
                key: h("idempotency-key"),
                body: body.to_vec(),
            });
            let fail = r.fail_first.load(Ordering::SeqCst) > 0;
            if fail {
                r.fail_first.fetch_sub(1, Ordering::SeqCst);
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/attio", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(handler))
            .await
            .unwrap()
    });
    url
}

pub(crate) async fn wait_for(r: &Receiver, n: usize) -> Vec<Received> {
    for _ in 0..200 {
        if r.got.lock().unwrap().len() >= n {
            return r.got.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {n} deliveries, got {}",
        r.got.lock().unwrap().len()
    );
}

fn fast() -> SimConfig {
    SimConfig {
        deliveries: DeliveryConfig {
            retry_base: Duration::from_millis(50),
            ..DeliveryConfig::default()
        },
        ..SimConfig::default()
    }
}

pub(crate) async fn subscribe(c: &Client, url: &str, subs: Value) -> (String, String) {
    let (status, hook) = c
        .post(
            "/v2/webhooks",
            json!({"data": {"target_url": url, "subscriptions": subs}}),
        )
        .await;
    assert_eq!(status, 200, "{hook}");
    (
        hook["data"]["id"]["webhook_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        hook["data"]["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn changes_are_delivered_signed_with_keys_that_survive_retries() {
    let s = sim(fast()).await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver {
        fail_first: AtomicUsize::new(1),
        ..Receiver::default()
    });
    let url = receiver(r.clone()).await;
    let all = json!(
        ["record.created", "record.updated", "record.deleted"]
            .map(|t| json!({"event_type": t, "filter": null}))
    );
    let (webhook_id, secret) = subscribe(&c, &url, all).await;

    let (_, p) = c
        .post(
            "/v2/objects/people/records",
            json!({"data": {"values": {"email_addresses": ["ada@x.com"]}}}),
        )
        .await;
    let id = p["data"]["id"]["record_id"].as_str().unwrap().to_owned();
    // Wait for the created event (first attempt fails, the retry succeeds) before the next change.
    wait_for(&r, 2).await;
    c.call(
        reqwest::Method::PATCH,
        &format!("/v2/objects/people/records/{id}"),
        Some(json!({"data": {"values": {"job_title": "CTO"}}})),
    )
    .await;
    wait_for(&r, 3).await;
    c.call(
        reqwest::Method::DELETE,
        &format!("/v2/objects/people/records/{id}"),
        None,
    )
    .await;
    let got = wait_for(&r, 4).await;

    for d in &got {
        assert_eq!(
            d.signature,
            sign(&secret, &d.body),
            "the signature is the hex HMAC-SHA256 of the raw body"
        );
        assert_eq!(d.legacy_signature, d.signature);
        assert!(!d.key.is_empty());
    }
    assert_eq!(
        got[0].key, got[1].key,
        "a retried delivery keeps its Idempotency-Key"
    );
    assert_eq!(got[0].body, got[1].body);
    assert_ne!(
        got[1].key, got[2].key,
        "different deliveries, different keys"
    );

    let self_info = c.get("/v2/self").await.1;
    let types: Vec<String> = got[1..]
        .iter()
        .map(|d| {
            let delivery = WebhookDelivery::parse(&d.body).unwrap();
            assert_eq!(delivery.webhook_id.to_string(), webhook_id);
            assert_eq!(delivery.events.len(), 1, "one event per delivery");
            let e = &delivery.events[0];
            let actor = e.actor.clone().unwrap();
            assert_eq!(
                (actor.actor_type.unwrap().as_str(), actor.id.as_deref()),
                ("api-token", self_info["client_id"].as_str())
            );
            match &e.subject {
                EventSubject::Record(rec) => assert_eq!(rec.record_id.to_string(), id),
                other => panic!("{other:?}"),
            }
            e.event_type.to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["record.created", "record.updated", "record.deleted"]
    );
    let updated = WebhookDelivery::parse(&got[2].body).unwrap();
    let attrs = c.get("/v2/objects/people/attributes/job_title").await.1;
    match &updated.events[0].subject {
        EventSubject::Record(rec) => assert_eq!(
            rec.attribute_id.map(|a| a.to_string()).as_deref(),
            attrs["data"]["id"]["attribute_id"].as_str()
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn subscription_filters_and_entry_events() {
    let s = sim(fast()).await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver::default());
    let url = receiver(r.clone()).await;
    let companies = c.get("/v2/objects/companies").await.1["data"]["id"]["object_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let subs = json!([
        {"event_type": "record.created", "filter": {"$and": [{"field": "id.object_id", "operator": "equals", "value": companies}]}},
        {"event_type": "list-entry.created", "filter": null},
    ]);
    subscribe(&c, &url, subs).await;
    c.post(
        "/v2/objects/people/records",
        json!({"data": {"values": {"email_addresses": ["p@x.com"]}}}),
    )
    .await;
    c.post(
        "/v2/objects/companies/records",
        json!({"data": {"values": {"domains": ["x.com"]}}}),
    )
    .await;
    let got = wait_for(&r, 1).await;
    let first = WebhookDelivery::parse(&got[0].body).unwrap();
    match &first.events[0].subject {
        EventSubject::Record(rec) => assert_eq!(
            rec.object_id.to_string(),
            companies,
            "the person's event was filtered out"
        ),
        other => panic!("{other:?}"),
    }
    let (_, deal) = c
        .post(
            "/v2/objects/deals/records",
            json!({"data": {"values": {"name": "D", "stage": "Lead"}}}),
        )
        .await;
    let deal_id = deal["data"]["id"]["record_id"].as_str().unwrap().to_owned();
    c.post("/v2/lists/sales/entries", json!({"data": {"parent_record_id": deal_id, "parent_object": "deals", "entry_values": {}}})).await;
    let got = wait_for(&r, 2).await;
    assert_eq!(
        got.len(),
        2,
        "deals are filtered out, the entry is delivered"
    );
    let entry = WebhookDelivery::parse(&got[1].body).unwrap();
    match &entry.events[0].subject {
        EventSubject::ListEntry(e) => assert_eq!(e.parent_record_id.to_string(), deal_id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_whose_retries_run_out_is_degraded() {
    let s = sim(SimConfig {
        deliveries: DeliveryConfig {
            retry_base: Duration::from_millis(10),
            max_retries: 2,
            ..DeliveryConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver {
        fail_first: AtomicUsize::new(usize::MAX),
        ..Receiver::default()
    });
    let url = receiver(r.clone()).await;
    let (id, _) = subscribe(
        &c,
        &url,
        json!([{"event_type": "record.created", "filter": null}]),
    )
    .await;
    c.post(
        "/v2/objects/companies/records",
        json!({"data": {"values": {"domains": ["y.com"]}}}),
    )
    .await;
    wait_for(&r, 3).await;
    for _ in 0..100 {
        if c.get(&format!("/v2/webhooks/{id}")).await.1["data"]["status"] == "degraded" {
            assert_eq!(
                r.got.lock().unwrap().len(),
                3,
                "one attempt and two retries"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the webhook was not marked degraded");
}

#[tokio::test]
async fn notes_and_tasks_are_validated_and_delivered() {
    let s = sim(fast()).await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver::default());
    let url = receiver(r.clone()).await;
    subscribe(&c, &url, json!([{"event_type": "note.created", "filter": null}, {"event_type": "task.updated", "filter": null}])).await;
    let (_, p) = c
        .post(
            "/v2/objects/people/records",
            json!({"data": {"values": {"email_addresses": ["t@x.com"]}}}),
        )
        .await;
    let pid = p["data"]["id"]["record_id"].as_str().unwrap().to_owned();
    let (status, note) = c.post("/v2/notes", json!({"data": {"parent_object": "people", "parent_record_id": pid, "title": "T", "format": "plaintext", "content": "c"}})).await;
    assert_eq!(status, 200, "{note}");
    let (status, resp) = c.post("/v2/notes", json!({"data": {"parent_object": "people", "parent_record_id": pid, "title": "T", "format": "html", "content": "c"}})).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("validation_type")),
        "format is plaintext or markdown"
    );
    let (status, resp) = c.post("/v2/tasks", json!({"data": {"content": "x", "format": "plaintext", "is_completed": false, "linked_records": [], "assignees": []}})).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("validation_type")),
        "all six fields are required: {resp}"
    );
    let (_, task) = c.post("/v2/tasks", json!({"data": {"content": "x", "format": "plaintext", "deadline_at": null, "is_completed": false, "linked_records": [], "assignees": []}})).await;
    let tid = task["data"]["id"]["task_id"].as_str().unwrap().to_owned();
    let (status, resp) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/tasks/{tid}"),
            Some(json!({"data": {"content": "y"}})),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("validation_type")),
        "content cannot be patched"
    );
    c.call(
        reqwest::Method::PATCH,
        &format!("/v2/tasks/{tid}"),
        Some(json!({"data": {"is_completed": true}})),
    )
    .await;
    let got = wait_for(&r, 2).await;
    let types: Vec<String> = got
        .iter()
        .map(|d| {
            WebhookDelivery::parse(&d.body).unwrap().events[0]
                .event_type
                .to_string()
        })
        .collect();
    assert_eq!(types, ["note.created", "task.updated"]);
    match &WebhookDelivery::parse(&got[0].body).unwrap().events[0].subject {
        EventSubject::Note(n) => assert_eq!(n.parent_record_id.to_string(), pid),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_merge_in_the_app_folds_the_duplicate_and_sends_record_merged() {
    let s = sim(fast()).await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver::default());
    let url = receiver(r.clone()).await;
    subscribe(
        &c,
        &url,
        json!([{"event_type": "record.merged", "filter": null}]),
    )
    .await;
    let person = |email: &str| json!({"data": {"values": {"email_addresses": [email]}}});
    let (_, a) = c
        .post("/v2/objects/people/records", person("kay@x.com"))
        .await;
    let (_, b) = c
        .post("/v2/objects/people/records", person("kj@x.com"))
        .await;
    let (keep, dup) = (
        a["data"]["id"]["record_id"].as_str().unwrap().to_owned(),
        b["data"]["id"]["record_id"].as_str().unwrap().to_owned(),
    );
    let (status, _) = c
        .post(
            &format!("/_sim/objects/people/records/{keep}/merge"),
            json!({"duplicate": dup}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c.get(&format!("/v2/objects/people/records/{dup}")).await;
    assert_eq!(status, 404, "the duplicate is gone");
    let (_, kept) = c.get(&format!("/v2/objects/people/records/{keep}")).await;
    let emails: Vec<&str> = kept["data"]["values"]["email_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["email_address"].as_str())
        .collect();
    assert!(
        emails.contains(&"kay@x.com") && emails.contains(&"kj@x.com"),
        "{emails:?}"
    );
    let got = wait_for(&r, 1).await;
    let d = WebhookDelivery::parse(&got[0].body).unwrap();
    match &d.events[0].subject {
        EventSubject::RecordMerged(m) => {
            assert_eq!(
                (m.record_id.to_string(), m.duplicate_record_id.to_string()),
                (keep.clone(), dup.clone())
            );
        }
        other => panic!("{other:?}"),
    }
    let (status, _) = c
        .post(
            &format!("/_sim/objects/people/records/{keep}/merge"),
            json!({"duplicate": keep}),
        )
        .await;
    assert_eq!(status, 400);
}

/// The merge API (2026, beta): a new record from the two, both originals gone, two
/// `record.merged` events naming the new record and one original each; not idempotent.
#[tokio::test]
async fn the_merge_api_makes_a_new_record_and_tells_both_originals() {
    let s = sim(fast()).await;
    let c = Client::new(&s, &token('a'));
    let r = Arc::new(Receiver::default());
    let url = receiver(r.clone()).await;
    subscribe(
        &c,
        &url,
        json!([{"event_type": "record.merged", "filter": null}]),
    )
    .await;
    let person = |email: &str, title: Option<&str>| {
        let mut values = json!({"email_addresses": [email]});
        if let Some(t) = title {
            values["job_title"] = json!(t);
        }
        json!({"data": {"values": values}})
    };
    let (_, a) = c
        .post("/v2/objects/people/records", person("kay@x.com", None))
        .await;
    let (_, b) = c
        .post(
            "/v2/objects/people/records",
            person("kj@x.com", Some("Engineer")),
        )
        .await;
    let (primary, secondary) = (
        a["data"]["id"]["record_id"].as_str().unwrap().to_owned(),
        b["data"]["id"]["record_id"].as_str().unwrap().to_owned(),
    );
    let merge = json!({"data": {"primary_record_id": primary, "secondary_record_id": secondary}});
    let (status, body) = c
        .post("/v2/objects/people/records/merge", merge.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let made = body["data"]["new_record_id"].as_str().unwrap().to_owned();
    assert!(made != primary && made != secondary);
    for gone in [&primary, &secondary] {
        let (status, _) = c.get(&format!("/v2/objects/people/records/{gone}")).await;
        assert_eq!(status, 404, "{gone} is merged away");
    }
    let (_, new) = c.get(&format!("/v2/objects/people/records/{made}")).await;
    let mut emails: Vec<&str> = new["data"]["values"]["email_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["email_address"].as_str())
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["kay@x.com", "kj@x.com"], "the union");
    assert_eq!(
        new["data"]["values"]["job_title"][0]["value"], "Engineer",
        "the secondary's value where the primary had none"
    );
    let got = wait_for(&r, 2).await;
    let mut told: Vec<(String, String)> = got
        .iter()
        .flat_map(|d| WebhookDelivery::parse(&d.body).unwrap().events)
        .map(|e| match e.subject {
            EventSubject::RecordMerged(m) => {
                (m.record_id.to_string(), m.duplicate_record_id.to_string())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    told.sort();
    let mut want = vec![(made.clone(), primary.clone()), (made.clone(), secondary)];
    want.sort();
    assert_eq!(told, want);
    let (status, _) = c.post("/v2/objects/people/records/merge", merge).await;
    assert_eq!(status, 404, "a repeat finds the originals gone");
    let (status, body) = c
        .post(
            "/v2/objects/people/records/merge",
            json!({"data": {"primary_record_id": made, "secondary_record_id": made}}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("self_merge")));
}
