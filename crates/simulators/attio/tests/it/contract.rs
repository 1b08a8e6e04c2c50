//! Every endpoint's answer validates against Attio's OpenAPI response schema.

use attio_sim::SimConfig;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::openapi::OpenApi;

use crate::{Client, sim, token};

fn id(v: &Value, key: &str) -> String {
    v["data"]["id"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

#[tokio::test]
async fn every_endpoint_answers_within_the_openapi_schema() {
    let spec = OpenApi::load();
    let s = sim(SimConfig {
        reads_per_second: 10_000,
        writes_per_second: 10_000,
        ..SimConfig::default()
    })
    .await;
    let c = Client::new(&s, &token('a'));
    let (_, person) = c
        .post("/v2/objects/people/records", json!({"data": {"values": {
            "email_addresses": ["ada@x.com"], "name": "Lovelace, Ada", "phone_numbers": ["+44 20 7946 0958"],
            "primary_location": "1 Infinite Loop", "job_title": "CTO"}}}))
        .await;
    let pid = id(&person, "record_id");
    let (_, company) = c.post("/v2/objects/companies/records", json!({"data": {"values": {"name": "Acme", "domains": ["acme.com"], "categories": ["SaaS"]}}})).await;
    let (_, deal) = c.post("/v2/objects/deals/records", json!({"data": {"values": {"name": "D", "stage": "Lead", "value": 10, "associated_company": [{"target_object": "companies", "target_record_id": id(&company, "record_id")}]}}})).await;
    let did = id(&deal, "record_id");
    let (_, entry) = c.post("/v2/lists/sales/entries", json!({"data": {"parent_record_id": did, "parent_object": "deals", "entry_values": {"stage": "Lead", "priority": 3}}})).await;
    let eid = id(&entry, "entry_id");
    let (_, note) = c.post("/v2/notes", json!({"data": {"parent_object": "people", "parent_record_id": pid, "title": "T", "format": "plaintext", "content": "c"}})).await;
    let nid = id(&note, "note_id");
    let (_, members) = c.get("/v2/workspace_members").await;
    let mid = members["data"][0]["id"]["workspace_member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, task) = c.post("/v2/tasks", json!({"data": {"content": "x", "format": "plaintext", "deadline_at": null, "is_completed": false,
        "linked_records": [{"target_object": "people", "target_record_id": pid}],
        "assignees": [{"referenced_actor_type": "workspace-member", "referenced_actor_id": mid}]}})).await;
    let tid = id(&task, "task_id");
    let (_, hook) = c.post("/v2/webhooks", json!({"data": {"target_url": "https://example.com/h", "subscriptions": [{"event_type": "record.created", "filter": null}]}})).await;
    let wid = id(&hook, "webhook_id");

    let rec = format!("/v2/objects/people/records/{pid}");
    let ent = format!("/v2/lists/sales/entries/{eid}");
    let patch = json!({"data": {"values": {"job_title": "CEO"}}});
    let entry_patch = json!({"data": {"entry_values": {"stage": "In Progress"}}});
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v2/self".into(), None),
        (Method::GET, "/v2/objects".into(), None),
        (Method::GET, "/v2/objects/people".into(), None),
        (Method::GET, "/v2/objects/people/attributes".into(), None),
        (
            Method::GET,
            "/v2/objects/people/attributes/email_addresses".into(),
            None,
        ),
        (
            Method::GET,
            "/v2/objects/companies/attributes/categories/options".into(),
            None,
        ),
        (
            Method::GET,
            "/v2/objects/deals/attributes/stage/statuses".into(),
            None,
        ),
        (
            Method::POST,
            "/v2/objects/people/records/query".into(),
            Some(json!({"filter": {"name": "Ada Lovelace"}})),
        ),
        (
            Method::POST,
            "/v2/objects/deals/records/query".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v2/objects/companies/records/query".into(),
            Some(json!({})),
        ),
        (Method::GET, rec.clone(), None),
        (Method::PATCH, rec.clone(), Some(patch.clone())),
        (Method::PUT, rec.clone(), Some(patch)),
        (
            Method::GET,
            format!("{rec}/attributes/job_title/values?show_historic=true"),
            None,
        ),
        (
            Method::PUT,
            "/v2/objects/people/records?matching_attribute=email_addresses".into(),
            Some(json!({"data": {"values": {"email_addresses": ["ada@x.com"]}}})),
        ),
        (Method::GET, "/v2/lists".into(), None),
        (Method::GET, "/v2/lists/sales".into(), None),
        (Method::GET, "/v2/lists/sales/attributes".into(), None),
        (
            Method::POST,
            "/v2/lists/sales/entries/query".into(),
            Some(json!({})),
        ),
        (Method::GET, ent.clone(), None),
        (Method::PATCH, ent.clone(), Some(entry_patch.clone())),
        (Method::PUT, ent.clone(), Some(entry_patch)),
        (
            Method::GET,
            format!("{ent}/attributes/stage/values?show_historic=true"),
            None,
        ),
        (
            Method::PUT,
            "/v2/lists/sales/entries".into(),
            Some(
                json!({"data": {"parent_record_id": did, "parent_object": "deals", "entry_values": {}}}),
            ),
        ),
        (Method::GET, "/v2/notes".into(), None),
        (Method::GET, format!("/v2/notes/{nid}"), None),
        (Method::GET, "/v2/tasks".into(), None),
        (Method::GET, format!("/v2/tasks/{tid}"), None),
        (
            Method::PATCH,
            format!("/v2/tasks/{tid}"),
            Some(json!({"data": {"is_completed": true}})),
        ),
        (Method::GET, "/v2/webhooks".into(), None),
        (Method::GET, format!("/v2/webhooks/{wid}"), None),
        (
            Method::PATCH,
            format!("/v2/webhooks/{wid}"),
            Some(json!({"data": {"target_url": "https://example.com/other"}})),
        ),
        (Method::GET, "/v2/workspace_members".into(), None),
        (Method::GET, format!("/v2/workspace_members/{mid}"), None),
        (Method::DELETE, format!("/v2/notes/{nid}"), None),
        (Method::DELETE, format!("/v2/tasks/{tid}"), None),
        (Method::DELETE, format!("/v2/webhooks/{wid}"), None),
        (Method::DELETE, ent, None),
        (Method::DELETE, rec, None),
    ];
    // The creates made above are checked too.
    let mut failures = Vec::new();
    for (path, body) in [
        ("/v2/objects/people/records", &person),
        ("/v2/objects/deals/records", &deal),
        ("/v2/lists/sales/entries", &entry),
        ("/v2/notes", &note),
        ("/v2/tasks", &task),
        ("/v2/webhooks", &hook),
    ] {
        if let Err(e) = spec.check_response("POST", path, 200, body) {
            failures.push(format!("POST {path}: {e}"));
        }
    }
    for (method, path, body) in calls {
        let (status, resp) = c.call(method.clone(), &path, body).await;
        assert_eq!(status, 200, "{method} {path}: {resp}");
        let bare = path.split('?').next().unwrap_or_default();
        if let Err(e) = spec.check_response(method.as_str(), bare, 200, &resp) {
            failures.push(format!("{method} {bare}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers do not fit the schema:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
