//! The operator's API: off without a token, refused with a wrong one; tenants added (with the
//! Attio webhook registered through attio-sim), shown without secrets, removed; dead letters
//! listed and replayed; the queue's depth.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::MemoryRateLimiter;
use domain::job::{JobKey, NewJob};
use ports::queue::ReserveFilter;
use serde_json::json;

use crate::{TestApp, memory_stores, settings, spawn_app, spawn_app_at_own_url, spawn_app_with};

const TOKEN: &str = "operator-token-0123456789abcdef0123456789";

async fn admin_app(attio_url: Option<String>) -> TestApp {
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let registrar = attio_url.map(|base_url| webhook_api::AttioRegistrar {
        base_url,
        limiter: Arc::new(MemoryRateLimiter::default()),
    });
    spawn_app_with(memory_stores().await, s, registrar).await
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token_and_refuses_a_wrong_one() {
    let off = spawn_app().await;
    assert_eq!(
        off.call(reqwest::Method::GET, "/v1/admin/tenants", TOKEN, None)
            .await
            .0,
        404
    );
    let on = admin_app(None).await;
    assert_eq!(
        on.call(reqwest::Method::GET, "/v1/admin/tenants", "nope", None)
            .await
            .0,
        401
    );
    let bare = on
        .http
        .get(format!("{}/v1/admin/queue", on.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    assert_eq!(
        on.call(reqwest::Method::GET, "/v1/admin/queue", TOKEN, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn adding_a_tenant_registers_its_webhook_and_deliveries_then_verify() {
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let registrar = webhook_api::AttioRegistrar {
        base_url: sim.url(),
        limiter: Arc::new(MemoryRateLimiter::default()),
    };
    let app = spawn_app_at_own_url(memory_stores().await, s, Some(registrar)).await;

    let token = "d".repeat(64);
    let body = json!({
        "id": "globex", "name": "Globex",
        "attio": {"api_token": token},
        "crms": [{"system": "hubspot", "settings": {"base_url": "http://127.0.0.1:9"}, "secrets": {"token": "pat-secret-value"}}],
        "register_webhook": true
    });
    let (status, created) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["webhook"]["target_url"],
        format!("{}/v1/webhooks/attio/globex", app.url)
    );
    let text = created.to_string();
    assert!(
        !text.contains(&token) && !text.contains("pat-secret-value"),
        "secrets never leave: {text}"
    );
    assert_eq!(created["attio"]["webhook_secrets"], json!(["***"]));
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "created_at is RFC 3339: {created_at}"
    );
    assert_eq!(
        app.call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(body)
        )
        .await
        .0,
        409
    );

    // A record created in Attio now arrives signed with the registered secret and is enqueued.
    let person = app
        .http
        .post(format!("{}/v2/objects/people/records", sim.url()))
        .bearer_auth(&token)
        .json(&json!({"data": {"values": {"email_addresses": ["ada@example.com"]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(person.status(), 200);
    let mut waited = Duration::ZERO;
    while app.queue.depth().await.unwrap().ready == 0 {
        assert!(waited < Duration::from_secs(10), "no delivery was accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }

    let (_, list) = app
        .call(reqwest::Method::GET, "/v1/admin/tenants", TOKEN, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, shown) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/globex",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (status, &shown["crms"][0]["secrets"]["token"]),
        (200, &json!("***"))
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/globex",
            TOKEN,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.call(
            reqwest::Method::GET,
            "/v1/admin/tenants/globex",
            TOKEN,
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn bad_tenants_are_refused_with_the_reason() {
    let app = admin_app(None).await;
    for (body, why) in [
        (
            json!({"id": "Bad Id", "name": "x", "attio": {"api_token": "t"}}),
            "id",
        ),
        (
            json!({"id": "ok", "name": "x", "attio": {"api_token": ""}}),
            "api_token",
        ),
        (
            json!({"id": "ok", "name": "x", "attio": {"api_token": "t"}, "surprise": 1}),
            "unknown field",
        ),
        (
            json!({"id": "ok", "name": "x", "attio": {"api_token": "t"}, "register_webhook": true}),
            "registration",
        ),
        (
            json!({"id": "ok", "name": "", "attio": {"api_token": "t"}}),
            "name",
        ),
    ] {
        let (status, answer) = app
            .call(
                reqwest::Method::POST,
                "/v1/admin/tenants",
                TOKEN,
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed() {
    let app = admin_app(None).await;
    let tenant = domain::ids::TenantId::parse("acme").unwrap();
    app.tenants.create(&crate::tenant("acme")).await.unwrap();
    app.queue
        .enqueue(NewJob::new(
            JobKey::new(tenant.clone(), "people", "r1").unwrap(),
            json!({"source": "attio"}),
        ))
        .await
        .unwrap();
    let r = app
        .queue
        .reserve("t", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
        .unwrap();
    app.queue
        .dead_letter(
            &r,
            "salesforce refused the record: REQUIRED_FIELD_MISSING",
            true,
        )
        .await
        .unwrap();
    let (status, dead) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/dead-letters",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(dead[0]["needs_reconciliation"], true);
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING")
    );
    let job = dead[0]["job_id"].as_str().unwrap().to_owned();
    let (status, replayed) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/admin/tenants/acme/dead-letters/{job}/replay"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(app.queue.depth().await.unwrap().ready, 1);
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/admin/tenants/acme/dead-letters/{job}/replay"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404, "a replayed dead letter is gone");
    let (_, depth) = app
        .call(reqwest::Method::GET, "/v1/admin/queue", TOKEN, None)
        .await;
    assert_eq!(
        (depth["ready"].as_u64(), depth["dead"].as_u64()),
        (Some(1), Some(0))
    );
    let (status, states) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/sync-state",
            TOKEN,
            None,
        )
        .await;
    assert_eq!((status, states), (200, json!([])));
}

#[tokio::test]
async fn quarantined_deliveries_are_shown_with_their_reason_and_body() {
    let stores = memory_stores().await;
    stores.tenants.create(&crate::tenant("acme")).await.unwrap();
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let app = spawn_app_with(stores, s, None).await;
    let (status, _) = app
        .post_attio("acme", "{\"events\": 42}", crate::SECRET, Some("junk"))
        .await;
    assert_eq!(status, 202);
    let (status, q) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/quarantine",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q.as_array().map(Vec::len), Some(1), "{q}");
    assert_eq!(q[0]["body"], "{\"events\": 42}");
    assert_eq!(q[0]["idempotency_key"], "junk");
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not an Attio delivery"),
        "{q}"
    );
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/quarantine",
            "wrong-token-0123456789abcdef0123456789",
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_crm_connection_no_plugin_can_build_is_refused_naming_the_cause() {
    let app = admin_app(None).await;
    let tenant = |crm: serde_json::Value| json!({"id": "initech", "name": "Initech", "attio": {"api_token": "t".repeat(40)}, "crms": [crm]});
    for (crm, says) in [
        (
            json!({"system": "pipedrive", "secrets": {"token": "x"}}),
            "unknown CRM system \"pipedrive\"; this build knows hubspot, salesforce",
        ),
        (
            json!({"system": "hubspot", "settings": {"base_url": "http://127.0.0.1:9"}}),
            "the hubspot connection has no secret `token`",
        ),
        (
            json!({"system": "salesforce", "settings": {"login_url": "ftp://x", "client_id": "c"}, "secrets": {"client_secret": "s"}}),
            "the salesforce connection's `login_url` is invalid",
        ),
        (
            json!({"system": "salesforce", "settings": {"login_url": "https://acme.my.salesforce.com"}, "secrets": {"client_secret": "s"}}),
            "the salesforce connection has no setting `client_id`",
        ),
    ] {
        let (status, body) = app
            .call(
                reqwest::Method::POST,
                "/v1/admin/tenants",
                TOKEN,
                Some(tenant(crm)),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(says),
            "{says}: {body}"
        );
    }
    let (_, list) = app
        .call(reqwest::Method::GET, "/v1/admin/tenants", TOKEN, None)
        .await;
    assert_eq!(list, json!([]), "nothing was stored");
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants/initech/backfills",
            TOKEN,
            Some(json!({"object": "people", "system": "pipedrive"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("unknown CRM system"), "{body}");
}

/// The webhooks registered in attio-sim for `token`'s workspace.
async fn sim_webhooks(
    http: &reqwest::Client,
    sim_url: &str,
    token: &str,
) -> Vec<serde_json::Value> {
    let r: serde_json::Value = http
        .get(format!("{sim_url}/v2/webhooks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn refused_and_racing_creates_leave_no_webhook_behind_and_deletion_removes_it() {
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let registrar = webhook_api::AttioRegistrar {
        base_url: sim.url(),
        limiter: Arc::new(MemoryRateLimiter::default()),
    };
    let app = Arc::new(spawn_app_at_own_url(memory_stores().await, s, Some(registrar)).await);
    let token = "h".repeat(64);
    let tenant = |name: &str, crms: serde_json::Value| json!({"id": "hooli", "name": name, "attio": {"api_token": token}, "crms": crms, "register_webhook": true});
    let hubspot = json!({"system": "hubspot", "secrets": {"token": "pat"}});
    for bad in [
        tenant("", json!([])),
        tenant("Hooli", json!([hubspot.clone(), hubspot.clone()])),
    ] {
        let (status, body) = app
            .call(reqwest::Method::POST, "/v1/admin/tenants", TOKEN, Some(bad))
            .await;
        assert_eq!(status, 400, "{body}");
    }
    assert!(
        sim_webhooks(&app.http, &sim.url(), &token).await.is_empty(),
        "a refused create registers nothing"
    );

    let creates = (0..8).map(|_| {
        let (app, body) = (app.clone(), tenant("Hooli", json!([])));
        tokio::spawn(async move {
            app.call(
                reqwest::Method::POST,
                "/v1/admin/tenants",
                TOKEN,
                Some(body),
            )
            .await
            .0
        })
    });
    let mut statuses = Vec::new();
    for c in creates {
        statuses.push(c.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(sim_webhooks(&app.http, &sim.url(), &token).await.len(), 1);

    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/hooli",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        sim_webhooks(&app.http, &sim.url(), &token).await.is_empty(),
        "deleting the tenant removes its webhook"
    );
}

#[tokio::test]
async fn a_registration_attio_does_not_answer_stores_nothing_and_says_where_it_went() {
    let logs = testkit::logs::capture_logs().expect("no other subscriber in this binary");
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    // Nothing listens on port 9 of the loopback.
    let registrar = webhook_api::AttioRegistrar {
        base_url: "http://127.0.0.1:9".into(),
        limiter: Arc::new(MemoryRateLimiter::default()),
    };
    let app = spawn_app_with(memory_stores().await, s, Some(registrar)).await;
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(json!({"id": "initrode", "name": "Initrode", "attio": {"api_token": "i".repeat(40)}, "register_webhook": true})),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Attio at http://127.0.0.1:9"),
        "{body}"
    );
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/admin/tenants/initrode",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404, "the tenant was not kept");
    let logged = logs.text();
    assert!(
        logged.contains("did not answer the webhook registration")
            && logged.contains("http://127.0.0.1:9"),
        "the failure is logged with where it went"
    );
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let app = admin_app(None).await;
    let base =
        || json!({"id": "umbrella", "name": "Umbrella", "attio": {"api_token": "u".repeat(40)}});
    let hubspot = |settings: serde_json::Value| json!({"system": "hubspot", "settings": settings, "secrets": {"token": "pat"}});
    type Tweak = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Tweak, &str)> = vec![
        (
            Box::new(|t| t["name"] = json!("Umb\u{0}rella")),
            "tenant name",
        ),
        (
            Box::new(move |t| t["crms"] = json!([hubspot(json!({"base_url": "http://x\u{0}"}))])),
            "hubspot setting \"base_url\"",
        ),
        (
            Box::new(|t| {
                t["attio"]["webhook_secrets"] =
                    json!(["a".repeat(20), "b".repeat(20), "c".repeat(20)])
            }),
            "at most two",
        ),
        (
            Box::new(|t| t["attio"]["webhook_secrets"] = json!(["x"])),
            "at least 16 characters",
        ),
        (
            Box::new(|t| t["crms"] = json!(vec![json!({"system": "hubspot"}); 1000])),
            "at most 8 connections",
        ),
        (
            Box::new(move |t| {
                t["crms"] = json!([hubspot(json!({"base_url": "h".repeat(900_000)}))])
            }),
            "longer than 2048 bytes",
        ),
    ];
    for (tweak, says) in cases {
        let mut t = base();
        tweak(&mut t);
        let (status, body) = app
            .call(reqwest::Method::POST, "/v1/admin/tenants", TOKEN, Some(t))
            .await;
        assert_eq!(status, 400, "{says}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(says),
            "{says}: {body}"
        );
    }
}

#[tokio::test]
async fn the_tenant_list_is_paged() {
    let app = admin_app(None).await;
    for i in 0..5 {
        app.tenants
            .create(&crate::tenant(&format!("t{i}")))
            .await
            .unwrap();
    }
    let page = |q: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(format!("{}/v1/admin/tenants{q}", app.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let next = r
                .headers()
                .get("x-next-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap();
            let ids: Vec<String> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, next)
        }
    };
    assert_eq!(
        page("?limit=2").await,
        (vec!["t0".into(), "t1".into()], Some("t1".into()))
    );
    assert_eq!(
        page("?limit=2&after=t1").await,
        (vec!["t2".into(), "t3".into()], Some("t3".into()))
    );
    assert_eq!(page("?limit=2&after=t3").await, (vec!["t4".into()], None));
}

/// A tenant's deliveries, jobs and dead letters, and what deleting it says it removed.
async fn delete_erases(app: &TestApp) {
    app.tenants.create(&crate::tenant("acme")).await.unwrap();
    app.tenants.create(&crate::tenant("other")).await.unwrap();
    for (tenant, n) in [("acme", 1), ("acme", 2), ("other", 3)] {
        let body = crate::record_event(
            "record.updated",
            &format!("bf071e1f-6035-429d-b874-d83ea64ea3{n:02}"),
        );
        let (status, a) = app
            .post_attio(tenant, &body, crate::SECRET, Some(&format!("erase-{n}")))
            .await;
        assert_eq!(status, 200, "{a}");
    }
    let acme = domain::ids::TenantId::parse("acme").unwrap();
    let filter = |t: &domain::ids::TenantId| {
        let mut f = ReserveFilter::all();
        f.tenants.insert(t.clone());
        f
    };
    let r = app
        .queue
        .reserve("t", Duration::from_secs(30), &filter(&acme))
        .await
        .unwrap()
        .unwrap();
    app.queue.dead_letter(&r, "gave up", false).await.unwrap();

    let (status, answer) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/acme",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"], "acme");
    let erased = &answer["erased"];
    assert_eq!(
        (
            erased["deliveries"].as_u64(),
            erased["jobs"].as_u64(),
            erased["dead_letters"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{answer}"
    );
    assert!(
        app.queue
            .reserve("t", Duration::from_secs(30), &filter(&acme))
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.dead.list_dead(&acme, 10).await.unwrap().is_empty());
    let other = domain::ids::TenantId::parse("other").unwrap();
    assert!(
        app.queue
            .reserve("t", Duration::from_secs(30), &filter(&other))
            .await
            .unwrap()
            .is_some(),
        "another tenant keeps its jobs"
    );

    // Re-created with the same id, the tenant starts empty: a delivery once seen is new again.
    app.tenants.create(&crate::tenant("acme")).await.unwrap();
    let body = crate::record_event("record.updated", "bf071e1f-6035-429d-b874-d83ea64ea301");
    let (_, again) = app
        .post_attio("acme", &body, crate::SECRET, Some("erase-1"))
        .await;
    assert_eq!(again["status"], "accepted", "{again}");
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/nobody",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deleting_a_tenant_erases_its_data_and_says_what_went() {
    delete_erases(&admin_app(None).await).await;
}

#[tokio::test]
async fn deleting_a_tenant_erases_its_data_on_postgres() {
    let pg = Arc::new(
        adapter_postgres::PgStore::connect(&crate::postgres::fresh_config().await)
            .await
            .unwrap(),
    );
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    delete_erases(&spawn_app_with(app_common::Stores::from_one(pg), s, None).await).await;
}

#[tokio::test]
async fn rotating_the_webhook_replaces_it_and_keeps_the_old_secret_as_the_previous() {
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let registrar = webhook_api::AttioRegistrar {
        base_url: sim.url(),
        limiter: Arc::new(MemoryRateLimiter::default()),
    };
    let app = spawn_app_at_own_url(memory_stores().await, s, Some(registrar)).await;
    let token = "r".repeat(64);
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(json!({"id": "rot", "name": "Rot", "attio": {"api_token": token}, "register_webhook": true})),
        )
        .await;
    assert_eq!(status, 201);
    let before = sim_webhooks(&app.http, &sim.url(), &token).await;
    assert_eq!(before.len(), 1);
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants/rot/rotate-webhook",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["old_webhooks_removed"], 1);
    let after = sim_webhooks(&app.http, &sim.url(), &token).await;
    assert_eq!(after.len(), 1, "one webhook, the new one");
    assert_ne!(after[0]["id"], before[0]["id"]);
    let (_, shown) = app
        .call(reqwest::Method::GET, "/v1/admin/tenants/rot", TOKEN, None)
        .await;
    assert_eq!(
        shown["attio"]["webhook_secrets"],
        json!(["***", "***"]),
        "current and previous"
    );

    // The new webhook's deliveries are accepted.
    let person = app
        .http
        .post(format!("{}/v2/objects/people/records", sim.url()))
        .bearer_auth(&token)
        .json(&json!({"data": {"values": {"email_addresses": ["rot@example.com"]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(person.status(), 200);
    let mut waited = Duration::ZERO;
    while app.queue.depth().await.unwrap().ready == 0 {
        assert!(waited < Duration::from_secs(10), "no delivery was accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

/// An eraser that fails its first call, as a store that is briefly unreachable does.
struct FailsOnce(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl ports::stores::TenantEraser for FailsOnce {
    async fn erase_tenant(
        &self,
        _: &domain::ids::TenantId,
    ) -> ports::PortResult<ports::stores::Erased> {
        if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(ports::PortError::unavailable("the store", "refused"));
        }
        Ok(ports::stores::Erased::new())
    }
}

#[tokio::test]
async fn a_deletion_whose_erasure_failed_is_finished_by_deleting_again() {
    let mut stores = memory_stores().await;
    stores.erasers.insert(
        0,
        Arc::new(FailsOnce(std::sync::atomic::AtomicBool::new(true))),
    );
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let app = spawn_app_with(stores, s, None).await;
    app.tenants.create(&crate::tenant("acme")).await.unwrap();
    let body = crate::record_event("record.updated", "bf071e1f-6035-429d-b874-d83ea64ea399");
    let (status, _) = app
        .post_attio("acme", &body, crate::SECRET, Some("once"))
        .await;
    assert_eq!(status, 200);

    let (status, answer) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/acme",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("delete it again")
    );
    let (status, answer) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/acme",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["erased"]["deliveries"], 1, "{answer}");
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/tenants/acme",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing is left");
}
