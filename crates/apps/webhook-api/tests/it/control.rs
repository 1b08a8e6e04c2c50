//! The control plane over HTTP: the conflict queue listed with its filters, shown, resolved one
//! at a time and in bulk (each decision queues the job that writes it), bad decisions refused
//! with the cause, and a record's audit trail.

use std::time::Duration;

use domain::audit::AuditEntry;
use domain::conflict::ConflictRecord;
use domain::ids::{ObjectSlug, RecordId, SystemId};
use ports::queue::ReserveFilter;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, memory_stores, settings, spawn_app_with, tenant};

const TOKEN: &str = "operator-token-0123456789abcdef0123456789";

/// The app on the memory stores with tenant `acme` and three open conflicts: two on people
/// (HubSpot's `job_title`, Salesforce's `name.first_name`) and one on companies.
async fn app() -> (TestApp, app_common::Stores, Vec<ConflictRecord>) {
    let stores = memory_stores().await;
    stores.tenants.create(&tenant("acme")).await.unwrap();
    let t = domain::ids::TenantId::parse("acme").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut made = Vec::new();
    for (n, object, system, field, age_s) in [
        (1, "people", "hubspot", "job_title", 7200),
        (2, "people", "salesforce", "name.first_name", 60),
        (3, "companies", "hubspot", "name", 30),
    ] {
        let mut c = ports::conformance::conflicts::conflict(&t, n);
        c.object = ObjectSlug::parse(object).unwrap();
        c.system = SystemId::parse(system).unwrap();
        c.conflict.key = domain::mapping::FieldKey::parse(field).unwrap();
        c.attio_record = RecordId::from_uuid(uuid::Uuid::from_u128(100 + n));
        c.detected_at = now - time::Duration::seconds(age_s);
        c.last_seen = c.detected_at;
        stores.conflicts.record(&c).await.unwrap();
        made.push(c);
    }
    let mut s = settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    (spawn_app_with(stores.clone(), s, None).await, stores, made)
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn conflicts_are_listed_with_filters_and_shown_with_both_sides() {
    let (app, _stores, made) = app().await;
    let id = |n: usize| made[n].id.to_string();
    let cases = [
        ("", vec![id(0), id(1), id(2)]),
        ("?object=people", vec![id(0), id(1)]),
        ("?system=hubspot", vec![id(0), id(2)]),
        ("?field=name.first_name", vec![id(1)]),
        ("?older_than_s=3600", vec![id(0)]),
        ("?object=people&system=hubspot", vec![id(0)]),
        (&format!("?record={}", made[2].attio_record), vec![id(2)]),
        ("?limit=1", vec![id(0)]),
    ];
    for (query, want) in cases {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/v1/admin/tenants/acme/conflicts{query}"),
                TOKEN,
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(ids(&body), want, "{query}");
    }
    let (status, shown) = app
        .call(
            Method::GET,
            &format!("/v1/admin/tenants/acme/conflicts/{}", id(0)),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["field"], "job_title");
    assert_eq!(shown["attio"]["value"], "CEO");
    assert_eq!(shown["external"]["value"], "Founder");
    assert_eq!(
        shown["snapshot"],
        json!({"attio": "CTO", "external": "CTO"})
    );
    assert_eq!(shown["reason"], "manual_rule");
    assert_eq!(shown["resolution"], Value::Null);
    for (path, status) in [
        (
            "/v1/admin/tenants/acme/conflicts?object=Not%20A%20Slug",
            400,
        ),
        ("/v1/admin/tenants/acme/conflicts?limit=0", 400),
        ("/v1/admin/tenants/acme/conflicts?colour=red", 400),
        ("/v1/admin/tenants/nobody/conflicts", 404),
        ("/v1/admin/tenants/acme/conflicts/not-a-uuid", 400),
        (
            "/v1/admin/tenants/acme/conflicts/00000000-0000-0000-0000-000000000009",
            404,
        ),
    ] {
        assert_eq!(
            app.call(Method::GET, path, TOKEN, None).await.0,
            status,
            "{path}"
        );
    }
    assert_eq!(
        app.call(
            Method::GET,
            "/v1/admin/tenants/acme/conflicts",
            "wrong",
            None
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn a_resolution_is_recorded_once_and_queues_its_writes() {
    let (app, stores, made) = app().await;
    let path = format!("/v1/admin/tenants/acme/conflicts/{}/resolve", made[0].id);
    let bad = [
        json!({}),
        json!({"keep": "both"}),
        json!({"keep": "attio", "value": "x"}),
        json!({"keep": "value"}),
        json!({"keep": "value", "value": {"nested": true}}),
        json!({"keep": "value", "value": 1.23456}),
        json!({"keep": "attio", "ids": [made[1].id.to_string()]}),
        json!({"keep": "attio", "colour": "red"}),
    ];
    for body in bad {
        let (status, answer) = app
            .call(Method::POST, &path, TOKEN, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            TOKEN,
            Some(json!({"keep": "value", "value": "Chief Scientist"})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["resolution"]["keep"], "value");
    assert_eq!(answer["resolution"]["value"], "Chief Scientist");
    let (status, _) = app
        .call(Method::POST, &path, TOKEN, Some(json!({"keep": "attio"})))
        .await;
    assert_eq!(status, 409, "resolved once");
    let job = stores
        .queue
        .reserve("test", Duration::from_secs(30), &ReserveFilter::default())
        .await
        .unwrap()
        .expect("the writes are queued");
    assert_eq!(
        job.job.payloads[0],
        json!({"source": "resolution", "conflict": made[0].id.to_string()})
    );
    assert_eq!(job.job.key.entity, made[0].attio_record.to_string());
    let (_, open) = app
        .call(Method::GET, "/v1/admin/tenants/acme/conflicts", TOKEN, None)
        .await;
    assert_eq!(
        ids(&open),
        vec![made[1].id.to_string(), made[2].id.to_string()]
    );
}

#[tokio::test]
async fn many_conflicts_are_resolved_at_once_with_each_outcome() {
    let (app, _stores, made) = app().await;
    let body = json!({
        "keep": "external",
        "ids": [made[1].id.to_string(), made[2].id.to_string(), "00000000-0000-0000-0000-000000000009", "nope"],
    });
    let (status, answer) = app
        .call(
            Method::POST,
            "/v1/admin/tenants/acme/resolutions",
            TOKEN,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["resolved"], 2);
    let outcomes: Vec<&str> = answer["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["queued", "queued", "not_found", "invalid"]);
    let (_, again) = app
        .call(
            Method::POST,
            "/v1/admin/tenants/acme/resolutions",
            TOKEN,
            Some(body),
        )
        .await;
    assert_eq!(again["resolved"], 0);
    assert_eq!(again["outcomes"][0]["outcome"], "already_resolved");
    for bad in [
        json!({"keep": "attio"}),
        json!({"keep": "attio", "ids": []}),
    ] {
        assert_eq!(
            app.call(
                Method::POST,
                "/v1/admin/tenants/acme/resolutions",
                TOKEN,
                Some(bad)
            )
            .await
            .0,
            400
        );
    }
}

#[tokio::test]
async fn a_records_history_is_answered_newest_first() {
    let (app, stores, _) = app().await;
    let t = domain::ids::TenantId::parse("acme").unwrap();
    let entries: Vec<AuditEntry> = (1..=3)
        .map(|n| ports::conformance::audit::entry(&t, 7, n))
        .collect();
    stores.audit.append(&entries).await.unwrap();
    let record = RecordId::from_uuid(uuid::Uuid::from_u128(7));
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/admin/tenants/acme/records/people/{record}/history?limit=2"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = body["entries"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["new"], "CEO 3");
    assert_eq!(got[0]["old"], "CTO");
    assert_eq!(got[0]["source"], "attio");
    assert_eq!(got[0]["written_to"], "crm-a");
    assert_eq!(got[0]["cause"], "attio delivery, job 3");
    assert_eq!(got[0]["rule"], "prefer_attio");
    for (path, status) in [
        (
            "/v1/admin/tenants/acme/records/people/nope/history".to_owned(),
            400,
        ),
        (
            format!("/v1/admin/tenants/acme/records/Bad%20Slug/{record}/history"),
            400,
        ),
        (
            format!("/v1/admin/tenants/nobody/records/people/{record}/history"),
            404,
        ),
    ] {
        assert_eq!(
            app.call(Method::GET, &path, TOKEN, None).await.0,
            status,
            "{path}"
        );
    }
}

#[tokio::test]
async fn held_deletes_are_listed_and_decided_one_at_a_time_or_all_at_once() {
    use domain::deletes::DeleteStatus;
    let (app, stores, _) = app().await;
    let t = domain::ids::TenantId::parse("acme").unwrap();
    let held: Vec<_> = (1..=4)
        .map(|n| ports::conformance::deletes::delete(&t, n, DeleteStatus::Held))
        .collect();
    for d in &held {
        stores.deletes.record(d).await.unwrap();
    }
    stores
        .deletes
        .record(&ports::conformance::deletes::delete(
            &t,
            9,
            DeleteStatus::Done,
        ))
        .await
        .unwrap();
    let (status, listed) = app
        .call(Method::GET, "/v1/admin/tenants/acme/deletes", TOKEN, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(ids(&listed).len(), 4, "only the held ones");
    assert_eq!(listed[0]["deleted_in"], "attio");
    assert_eq!(listed[0]["status"], "held");
    let one = |n: usize, how: &str| format!("/v1/admin/tenants/acme/deletes/{}/{how}", held[n].id);
    let (status, approved) = app
        .call(Method::POST, &one(0, "approve"), TOKEN, None)
        .await;
    assert_eq!(status, 202, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        app.call(Method::POST, &one(0, "reject"), TOKEN, None)
            .await
            .0,
        409
    );
    assert_eq!(
        app.call(Method::POST, &one(1, "reject"), TOKEN, None)
            .await
            .0,
        202
    );
    let job = stores
        .queue
        .reserve("test", Duration::from_secs(30), &ReserveFilter::default())
        .await
        .unwrap()
        .expect("carrying the decision out is queued");
    assert_eq!(
        job.job.payloads[0],
        json!({"source": "delete", "delete": held[0].id.to_string()})
    );
    for (body, status) in [
        (json!({"decision": "maybe", "all": true}), 400),
        (json!({"decision": "approve"}), 400),
        (
            json!({"decision": "approve", "all": true, "ids": ["x"]}),
            400,
        ),
    ] {
        assert_eq!(
            app.call(
                Method::POST,
                "/v1/admin/tenants/acme/delete-decisions",
                TOKEN,
                Some(body.clone())
            )
            .await
            .0,
            status,
            "{body}"
        );
    }
    let (status, all) = app
        .call(
            Method::POST,
            "/v1/admin/tenants/acme/delete-decisions",
            TOKEN,
            Some(json!({"decision": "approve", "all": true})),
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["decided"], 2, "the two still held");
    let (_, left) = app
        .call(Method::GET, "/v1/admin/tenants/acme/deletes", TOKEN, None)
        .await;
    assert_eq!(left, json!([]));
    let (status, glance) = app
        .call(Method::GET, "/v1/admin/tenants/acme/status", TOKEN, None)
        .await;
    assert_eq!(status, 200, "{glance}");
    assert_eq!(
        (
            glance["conflicts_open"].clone(),
            glance["deletes_held"].clone(),
            glance["mappings_version"].clone()
        ),
        (json!(3), json!(0), Value::Null),
        "{glance}"
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/admin/tenants/acme/deletes/nope/approve",
            TOKEN,
            None
        )
        .await
        .0,
        400
    );
}

/// A mappings change as the API takes it.
fn mappings_change(id_property: &str, expected: Option<u64>) -> Value {
    json!({
        "mappings": {"targets": [
            {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": id_property, "fields": [
                {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"},
            ]},
        ]},
        "expected_version": expected,
        "changed_by": "ops@acme",
    })
}

#[tokio::test]
async fn mappings_are_versioned_per_tenant_and_a_bad_or_stale_change_is_refused() {
    let (app, _stores, _) = app().await;
    let path = "/v1/admin/tenants/acme/mappings";
    let (status, none) = app.call(Method::GET, path, TOKEN, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        none["version"],
        Value::Null,
        "the workers' file until a change"
    );
    let (status, v1) = app
        .call(
            Method::PUT,
            path,
            TOKEN,
            Some(mappings_change("attio_record_id", None)),
        )
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(
        (v1["version"].clone(), v1["changed_by"].clone()),
        (json!(1), json!("ops@acme"))
    );
    let (status, stale) = app
        .call(
            Method::PUT,
            path,
            TOKEN,
            Some(mappings_change("attio_id_2", None)),
        )
        .await;
    assert_eq!(status, 409, "{stale}");
    let (status, v2) = app
        .call(
            Method::PUT,
            path,
            TOKEN,
            Some(mappings_change("attio_id_2", Some(1))),
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    let (_, shown) = app.call(Method::GET, path, TOKEN, None).await;
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["mappings"]["targets"][0]["id_property"], "attio_id_2");
    let (_, versions) = app
        .call(
            Method::GET,
            "/v1/admin/tenants/acme/mappings/versions",
            TOKEN,
            None,
        )
        .await;
    let numbers: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)]);

    // Every mistake at once, and nothing stored.
    let wrong = json!({
        "mappings": {"targets": [
            {"attio_object": "People!", "system": "pipedrive", "external_object": "persons", "id_property": "id", "fields": []},
            {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "x", "on_delete": "shred", "fields": [
                {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"},
            ]},
        ]},
        "expected_version": 2,
        "changed_by": "ops@acme",
    });
    let (status, refused) = app
        .call(Method::PUT, path, TOKEN, Some(wrong.clone()))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["problems"].as_array().unwrap().len(),
        3,
        "{refused}"
    );
    let (status, checked) = app
        .call(
            Method::POST,
            "/v1/admin/tenants/acme/mappings/validate",
            TOKEN,
            Some(wrong),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(checked["valid"], false);
    assert_eq!(checked["problems"][0]["kind"], "invalid");
    assert_eq!(
        app.call(Method::GET, path, TOKEN, None).await.1["version"],
        2,
        "nothing stored"
    );
    for (body, status) in [
        (json!({"targets": []}), 400),
        (
            json!({"mappings": {"targets": []}, "expected_version": 2}),
            400,
        ),
        (
            json!({"mappings": {"targets": []}, "expected_version": 2, "changed_by": "  "}),
            400,
        ),
    ] {
        assert_eq!(
            app.call(Method::PUT, path, TOKEN, Some(body.clone()))
                .await
                .0,
            status,
            "{body}"
        );
    }
    assert_eq!(
        app.call(
            Method::GET,
            "/v1/admin/tenants/nobody/mappings",
            TOKEN,
            None
        )
        .await
        .0,
        404
    );
}
