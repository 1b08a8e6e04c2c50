//! The intake rules, on the memory stores.

use std::time::Duration;

use crate::{OLD_SECRET, SECRET, record_event, spawn_app};

/// The next deliverable job, if any.
async fn next_job(app: &crate::TestApp) -> Option<ports::queue::Reservation> {
    app.queue
        .reserve(
            "test",
            Duration::from_secs(30),
            &ports::queue::ReserveFilter::all(),
        )
        .await
        .unwrap()
}

const RECORD: &str = "bf071e1f-6035-429d-b874-d83ea64ea13b";

#[tokio::test]
async fn a_signed_delivery_is_stored_and_enqueued_once() {
    let app = spawn_app().await;
    let body = record_event("record.updated", RECORD);
    let (status, answer) = app.post_attio("acme", &body, SECRET, Some("key-1")).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    assert_eq!(answer["enqueued"], true);
    let (status, again) = app.post_attio("acme", &body, SECRET, Some("key-1")).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(
        app.queue.depth().await.unwrap().ready,
        1,
        "one job for two identical deliveries"
    );
    let job = next_job(&app).await.unwrap();
    assert_eq!(job.job.payloads[0]["source"], "attio");
    assert_eq!(
        job.job.payloads[0]["delivery"],
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        "the job carries the delivery as Attio sent it"
    );
    assert_eq!(job.job.key.entity, RECORD);
    assert_eq!(job.job.max_attempts, 3);
}

#[tokio::test]
async fn the_previous_secret_is_accepted_during_rotation() {
    let app = spawn_app().await;
    let (status, _) = app
        .post_attio(
            "acme",
            &record_event("record.created", RECORD),
            OLD_SECRET,
            Some("rot-1"),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_signatures_and_unknown_tenants_store_nothing() {
    let app = spawn_app().await;
    let body = record_event("record.updated", RECORD);
    let (status, answer) = app
        .post_attio("acme", &body, "not-the-secret", Some("k"))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid signature"))
    );
    let unsigned = app
        .http
        .post(format!("{}/v1/webhooks/attio/acme", app.url))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let (status, _) = app.post_attio("nobody", &body, SECRET, Some("k")).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post_attio("Not A Tenant!", &body, SECRET, Some("k"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.queue.depth().await.unwrap().ready, 0);
    // The refused key was not claimed: the genuine delivery with the same key is accepted.
    let (status, answer) = app.post_attio("acme", &body, SECRET, Some("k")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, _) = app.post_attio("acme", &big, SECRET, Some("big")).await;
    assert_eq!(status, 413);
    assert_eq!(app.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test]
async fn signed_garbage_is_quarantined_and_acknowledged() {
    let app = spawn_app().await;
    let (status, answer) = app
        .post_attio("acme", "{\"events\": 42}", SECRET, Some("junk"))
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("quarantined"))
    );
    let tenant = domain::ids::TenantId::parse("acme").unwrap();
    let q = app.inbox.quarantined(&tenant, 10).await.unwrap();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].delivery
            .quarantine
            .as_deref()
            .unwrap()
            .starts_with("not an Attio delivery")
    );
    assert_eq!(app.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test]
async fn unknown_event_types_are_stored_and_acknowledged_without_a_job() {
    let app = spawn_app().await;
    let body = record_event("record.teleported", RECORD);
    let (status, answer) = app.post_attio("acme", &body, SECRET, Some("future")).await;
    assert_eq!(
        (status, answer["status"].as_str(), &answer["enqueued"]),
        (200, Some("accepted"), &serde_json::json!(false))
    );
    assert_eq!(app.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test]
async fn hubspot_deliveries_are_checked_with_the_v3_signature() {
    let app = spawn_app().await;
    let body = r#"[{"eventId":1,"subscriptionId":2,"portalId":3,"appId":4,"occurredAt":1760000000000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":1234,"changeSource":"CRM","changeFlag":"NEW"}]"#;
    let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let uri = "http://hooks.example/v1/webhooks/hubspot/acme";
    let post = |sig: String, ts: i64| {
        app.http
            .post(format!("{}/v1/webhooks/hubspot/acme", app.url))
            .header("X-HubSpot-Signature-v3", sig)
            .header("X-HubSpot-Request-Timestamp", ts.to_string())
            .body(body)
            .send()
    };
    let good = adapter_hubspot::sign_v3(crate::HUBSPOT_SECRET, "POST", uri, body.as_bytes(), ts);
    assert_eq!(post(good.clone(), ts).await.unwrap().status(), 200);
    let stale_ts = ts - 10 * 60 * 1000;
    let stale = adapter_hubspot::sign_v3(
        crate::HUBSPOT_SECRET,
        "POST",
        uri,
        body.as_bytes(),
        stale_ts,
    );
    assert_eq!(
        post(stale, stale_ts).await.unwrap().status(),
        401,
        "older than five minutes"
    );
    let wrong = adapter_hubspot::sign_v3("other", "POST", uri, body.as_bytes(), ts);
    assert_eq!(post(wrong, ts).await.unwrap().status(), 401);
    let job = next_job(&app).await.unwrap();
    assert_eq!(
        (job.job.key.partition.as_str(), job.job.key.entity.as_str()),
        ("hubspot", "1234")
    );
    let mut payload = job.job.payloads[0].clone();
    let trace = payload
        .as_object_mut()
        .and_then(|p| p.remove("trace"))
        .expect("the job carries a trace");
    assert!(domain::trace::TraceParent::parse(trace.as_str().unwrap()).is_ok());
    assert_eq!(
        payload,
        serde_json::json!({"source": "crm", "system": "hubspot", "changes": [{"object": "contacts", "id": "1234", "deleted": false}]}),
        "the worker gets provider-neutral changes"
    );
}

#[tokio::test]
async fn a_webhook_path_naming_no_webhook_plugin_answers_404_with_the_reason() {
    let app = spawn_app().await;
    for (system, says) in [
        (
            "pipedrive",
            "unknown CRM system \"pipedrive\"; this build knows hubspot, salesforce",
        ),
        ("salesforce", "salesforce sends no webhooks here"),
    ] {
        let r = app
            .http
            .post(format!("{}/v1/webhooks/{system}/acme", app.url))
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], says);
    }
    assert_eq!(app.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test]
async fn the_job_carries_the_request_trace_or_a_new_one() {
    let app = spawn_app().await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (n, traceparent) in [(1, Some(parent)), (2, Some("garbage")), (3, None)] {
        let body = record_event(
            "record.updated",
            &format!("bf071e1f-6035-429d-b874-d83ea64ea1{n:02}"),
        );
        let mut req = app
            .http
            .post(format!("{}/v1/webhooks/attio/acme", app.url))
            .header(
                "Attio-Signature",
                adapter_attio_http::sign_attio(SECRET, body.as_bytes()),
            )
            .header("Idempotency-Key", format!("trace-{n}"))
            .body(body);
        if let Some(t) = traceparent {
            req = req.header("traceparent", t);
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
    let mut traces = Vec::new();
    while let Some(r) = next_job(&app).await {
        traces.push(services::worker::trace_of(&r.job).expect("every job has a trace"));
        app.queue.ack(&r).await.unwrap();
    }
    assert_eq!(traces.len(), 3);
    assert_eq!(traces[0].to_string(), parent, "the sender's trace is kept");
    for t in &traces[1..] {
        assert_ne!(
            t.trace_id(),
            traces[0].trace_id(),
            "an invalid or missing one starts a new trace"
        );
    }
}

#[tokio::test]
async fn health_and_readiness_answer_and_shutdown_is_graceful() {
    let app = spawn_app().await;
    let h = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let r: serde_json::Value = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ready");
    let url = app.url.clone();
    app.shutdown().await;
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn metrics_count_each_outcome() {
    let app = spawn_app().await;
    let body = record_event("record.updated", RECORD);
    app.post_attio("acme", &body, SECRET, Some("m-1")).await;
    app.post_attio("acme", &body, SECRET, Some("m-1")).await;
    app.post_attio("acme", &body, "wrong", Some("m-2")).await;
    app.post_attio("acme", "{\"x\":", SECRET, Some("m-3")).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    app.post_attio("acme", &big, SECRET, Some("m-4")).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is shared by every app in this test binary: check presence, not exact counts.
    for outcome in [
        "accepted",
        "duplicate",
        "unsigned",
        "quarantined",
        "too_large",
    ] {
        let line = format!("webhook_deliveries_total{{source=\"attio\",outcome=\"{outcome}\"}}");
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    assert!(text.contains("webhook_answer_seconds"), "{text}");
    assert!(text.contains("queue_jobs{state=\"ready\"}"), "{text}");
}

/// Stored deliveries past the dedupe retention (and its hour of grace) are forgotten by the task
/// `main` starts beside the server (ADR 0020); a young one stays; `purge_interval_s = 0` starts
/// no task.
#[tokio::test]
async fn deliveries_past_the_retention_are_forgotten_by_the_purge_task() {
    use domain::idempotency::IdempotencyKey;
    use domain::ids::{SystemId, TenantId};
    use ports::stores::{Accepted, InboundDelivery};
    use time::OffsetDateTime;

    let stores = crate::memory_stores().await;
    let mut settings = crate::settings();
    let t = TenantId::parse("acme").unwrap();
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for (key, received_at) in [
        (
            "old",
            now - settings.dedupe_retention - Duration::from_secs(2 * 3600),
        ),
        (
            "young",
            now - settings.dedupe_retention + Duration::from_secs(3600),
        ),
    ] {
        let d = InboundDelivery {
            tenant: t.clone(),
            source: SystemId::attio(),
            key: IdempotencyKey::from_provider(key).unwrap(),
            body: b"{}".to_vec(),
            received_at,
            quarantine: None,
        };
        let accepted = stores
            .inbox
            .accept(&d, None, settings.dedupe_retention)
            .await
            .unwrap();
        let Accepted::Stored { id, .. } = accepted else {
            panic!("a new key is stored: {accepted:?}");
        };
        ids.push(id);
    }
    settings.purge_interval = None;
    assert!(webhook_api::spawn_retention(&settings, stores.inbox.clone()).is_none());
    settings.purge_interval = Some(Duration::from_millis(20));
    let task = webhook_api::spawn_retention(&settings, stores.inbox.clone()).unwrap();
    let mut gone = false;
    for _ in 0..250 {
        if stores.inbox.get(&t, ids[0]).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(gone, "the old delivery was forgotten within 5 s");
    assert!(
        stores.inbox.get(&t, ids[1]).await.is_ok(),
        "the young one stays"
    );
    // The operator sees it in the metrics (the recorder is the process's, shared by the tests).
    let app = crate::spawn_app_with(stores, settings, None).await;
    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let purged: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("retention_purged_total{what=\"deliveries\"} "))
        .unwrap_or_else(|| panic!("no purge counter in {metrics}"))
        .parse()
        .unwrap();
    assert!(purged >= 1.0, "{purged} deliveries counted as purged");
}
