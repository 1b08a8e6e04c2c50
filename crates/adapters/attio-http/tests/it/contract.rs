//! Every request body the adapter builds validates against the request schema of Attio's OpenAPI
//! document. A recording proxy sits between the adapter and attio-sim.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use domain::ids::{AttributeSlug, ListSlug, ObjectRef};
use domain::schema::{ContentFormat, Subscription};
use domain::value::AttributeType;
use domain::webhook::EventType;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::*;
use serde_json::{Value, json};
use testkit::openapi::OpenApi;

use crate::{client, config, sim, token};

type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    log: Log,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if !body.is_empty() {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        p.log
            .lock()
            .unwrap()
            .push((method.to_string(), uri.path().to_owned(), json));
    }
    let mut req = p
        .http
        .request(
            method,
            format!(
                "{}{}",
                p.upstream,
                uri.path_and_query().map(|x| x.as_str()).unwrap_or("/")
            ),
        )
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let resp = req.send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn proxy(upstream: String) -> (String, Log) {
    let log: Log = Arc::default();
    let app = Router::new().fallback(forward).with_state(Proxy {
        upstream,
        http: reqwest::Client::new(),
        log: log.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

fn slug(s: &str) -> AttributeSlug {
    AttributeSlug::parse(s).unwrap()
}

#[tokio::test]
async fn every_request_body_validates_against_the_openapi_request_schema() {
    let spec = OpenApi::load();
    let s = sim(attio_sim::SimConfig {
        reads_per_second: 10_000,
        writes_per_second: 10_000,
        ..Default::default()
    })
    .await;
    let (url, log) = proxy(s.url()).await;
    let mut cfg = config(&url, &token('a'));
    cfg.write_quota = domain::limits::Quota::per_second(10_000).unwrap();
    cfg.read_quota = domain::limits::Quota::per_second(10_000).unwrap();
    let c = client(cfg);

    let people = ObjectRef::parse("people").unwrap();
    let email = |e: &str| WriteValue::from_json(&AttributeType::EmailAddress, &json!(e)).unwrap();
    let person = RecordWrite::new()
        .set(slug("email_addresses"), vec![email("ada@x.com")])
        .set(
            slug("name"),
            vec![WriteValue::personal_name("Ada", "Lovelace")],
        )
        .set(
            slug("phone_numbers"),
            vec![
                WriteValue::from_json(&AttributeType::PhoneNumber, &json!("+442079460958"))
                    .unwrap(),
            ],
        )
        .set(
            slug("primary_location"),
            vec![
                WriteValue::from_json(&AttributeType::Location, &json!("1 Infinite Loop")).unwrap(),
            ],
        );
    let p = c.create_record(&people, &person).await.unwrap();
    let pid = p.id.record_id;
    c.assert_record(&people, &slug("email_addresses"), &person)
        .await
        .unwrap();
    let title = RecordWrite::new().set(slug("job_title"), vec![WriteValue::Text("CTO".into())]);
    c.update_record(&people, pid, &title, UpdateMode::Append)
        .await
        .unwrap();
    c.update_record(&people, pid, &title, UpdateMode::Overwrite)
        .await
        .unwrap();
    let query = Query {
        filter: Some(json!({"email_addresses": "ada@x.com"})),
        sorts: vec![json!({"direction": "asc", "attribute": "name", "field": "last_name"})],
        limit: Some(10),
        offset: 0,
    };
    c.query_records(&people, &query).await.unwrap();

    let deals = ObjectRef::parse("deals").unwrap();
    let deal = RecordWrite::new()
        .set(slug("name"), vec![WriteValue::Text("Acme".into())])
        .set(slug("stage"), vec![WriteValue::Status("Lead".into())])
        .set(
            slug("value"),
            vec![WriteValue::from_json(&AttributeType::Currency, &json!(1200)).unwrap()],
        )
        .set(
            slug("associated_people"),
            vec![WriteValue::RecordReference {
                target_object: domain::ids::ObjectSlug::parse("people").unwrap(),
                target: domain::write::RecordTarget::Id(pid),
            }],
        );
    let d = c.create_record(&deals, &deal).await.unwrap();
    let sales = ListRef::Slug(ListSlug::parse("sales").unwrap());
    let stage = |s: &str| BTreeMap::from([(slug("stage"), vec![WriteValue::Status(s.into())])]);
    let entry = EntryWrite {
        parent_object: "deals".into(),
        parent_record_id: d.id.record_id,
        entry_values: stage("Lead"),
    };
    let e = c.create_entry(&sales, &entry).await.unwrap();
    c.assert_entry(&sales, &entry).await.unwrap();
    c.update_entry(&sales, e.id.entry_id, &stage("Won 🎉"), UpdateMode::Append)
        .await
        .unwrap();
    c.update_entry(&sales, e.id.entry_id, &stage("Lost"), UpdateMode::Overwrite)
        .await
        .unwrap();
    c.query_entries(
        &sales,
        &Query {
            filter: Some(json!({"stage": "Lost"})),
            ..Query::default()
        },
    )
    .await
    .unwrap();

    c.create_note(&NewNote {
        parent_object: "people".into(),
        parent_record_id: pid,
        title: "T".into(),
        format: ContentFormat::Markdown,
        content: "**c**".into(),
        created_at: Some(time::OffsetDateTime::now_utc()),
    })
    .await
    .unwrap();
    let member = c.list_members().await.unwrap()[0].id.workspace_member_id;
    let task = c
        .create_task(&NewTask {
            content: "x".into(),
            deadline_at: Some(time::OffsetDateTime::now_utc()),
            is_completed: false,
            linked_records: vec![TaskLink {
                target_object: "people".into(),
                target_record_id: pid,
            }],
            assignees: vec![member],
        })
        .await
        .unwrap();
    c.update_task(
        task.id.task_id,
        &TaskUpdate {
            is_completed: Some(true),
            deadline_at: Some(None),
            linked_records: Some(vec![]),
            assignees: Some(vec![member]),
        },
    )
    .await
    .unwrap();
    let subs = vec![Subscription {
        event_type: EventType::RecordUpdated,
        filter: Some(
            json!({"$and": [{"field": "id.object_id", "operator": "equals", "value": "x"}]}),
        ),
    }];
    let hook = c
        .create_webhook(&NewWebhook {
            target_url: "https://example.com/h".into(),
            subscriptions: subs.clone(),
        })
        .await
        .unwrap();
    c.update_webhook(
        hook.id.webhook_id,
        &WebhookUpdate {
            target_url: Some("https://example.com/other".into()),
            subscriptions: Some(subs),
        },
    )
    .await
    .unwrap();

    let log = log.lock().unwrap().clone();
    let kinds: std::collections::BTreeSet<String> = log
        .iter()
        .map(|(m, p, _)| format!("{m} {}", spec.template(p).unwrap_or_default()))
        .collect();
    assert!(
        kinds.len() >= 13,
        "the scenario covers every body-carrying operation: {kinds:?}"
    );
    let failures: Vec<String> = log
        .iter()
        .filter_map(|(m, p, body)| {
            spec.check_request(m, p, body)
                .err()
                .map(|e| format!("{m} {p}: {e}\n  body: {body}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} request bodies do not fit the document:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
