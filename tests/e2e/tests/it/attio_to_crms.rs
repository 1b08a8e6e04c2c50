//! People, companies and deals created, updated, merged and deleted in attio-sim reach hubspot-sim and salesforce-sim through
//! webhook-api and two sync-worker processes on PostgreSQL (tenants, links, ledger, sync state)
//! and Redis (the inbox, the queue, dead letters and the shared rate budgets) — exactly once each, with duplicated
//! and reordered deliveries injected and one worker killed with SIGKILL mid-run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use adapter_postgres::{MasterKey, PgConfig, PgStore};
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use domain::field::FieldValue;
use domain::ids::{SystemId, TenantId};
use domain::mapping::ExternalProperty;
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use ports::error::PortError;
use ports::stores::TenantStore;
use serde_json::{Value, json};

use crate::{Proc, eventually, start};

pub const MASTER_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
pub const ATTIO_TOKEN: &str = "e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0";
const ADMIN_TOKEN: &str = "e2e-operator-token-0123456789abcdefghij";
const HUBSPOT_APP_SECRET: &str = "e2e-hubspot-app-secret";
pub const HUBSPOT_TOKEN: &str = "pat-na1-e2e";

pub const MAPPINGS: &str = r#"
[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "email_addresses" }, external = "email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "first_name" }, external = "firstname", rule = "latest_wins" },
  { attio = { attribute = "name", part = "last_name" }, external = "lastname", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "jobtitle", rule = "latest_wins" },
]

[[targets]]
attio_object = "people"
system = "salesforce"
external_object = "Contact"
id_property = "Attio_Id__c"
fields = [
  { attio = { attribute = "email_addresses" }, external = "Email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "first_name" }, external = "FirstName", rule = "latest_wins" },
  { attio = { attribute = "name", part = "last_name" }, external = "LastName", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "Title", rule = "latest_wins" },
]

[[targets]]
attio_object = "companies"
system = "hubspot"
external_object = "companies"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "name" }, external = "name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "domain", rule = "latest_wins" },
]

[[targets]]
attio_object = "companies"
system = "salesforce"
external_object = "Account"
id_property = "Attio_Id__c"
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "Website", rule = "latest_wins" },
]

[[targets]]
attio_object = "deals"
system = "hubspot"
external_object = "deals"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "name" }, external = "dealname", rule = "latest_wins" },
  { attio = { attribute = "value" }, external = "amount", rule = "latest_wins" },
  { attio = { attribute = "stage" }, external = "dealstage", rule = "attio_to_external", transform = { type = "map_values", values = { "Lead" = "appointmentscheduled", "In Progress" = "qualifiedtobuy", "Won 🎉" = "closedwon", "Lost" = "closedlost" } } },
]
"#;

pub fn prop(p: &str) -> ExternalProperty {
    ExternalProperty::parse(p).unwrap()
}

pub struct Attio {
    pub http: reqwest::Client,
    pub url: String,
}

impl Attio {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ATTIO_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn create_person(&self, i: usize) -> String {
        let body = json!({"data": {"values": {
            "email_addresses": [format!("Person{i}@Example.com")],
            "name": [{"first_name": format!("First{i}"), "last_name": format!("Last{i}"), "full_name": format!("First{i} Last{i}")}],
            "job_title": format!("Title {i}"),
        }}});
        let r = self
            .call(
                reqwest::Method::POST,
                "/v2/objects/people/records",
                Some(body),
            )
            .await;
        r["data"]["id"]["record_id"].as_str().unwrap().to_owned()
    }
}

/// Tenant `acme` with the simulators' credentials.
pub fn tenant(webhook_secret: &str, hubspot_url: &str, sf_url: &str) -> Tenant {
    Tenant {
        id: TenantId::parse("acme").unwrap(),
        name: "Acme".into(),
        attio: AttioCredentials {
            api_token: Secret::new(ATTIO_TOKEN).unwrap(),
            webhook_secrets: vec![Secret::new(webhook_secret).unwrap()],
        },
        crms: vec![
            CrmConnection {
                system: SystemId::parse("hubspot").unwrap(),
                settings: BTreeMap::from([("base_url".to_owned(), hubspot_url.to_owned())]),
                secrets: BTreeMap::from([(
                    "token".to_owned(),
                    Secret::new(HUBSPOT_TOKEN).unwrap(),
                )]),
            },
            CrmConnection {
                system: SystemId::parse("salesforce").unwrap(),
                settings: BTreeMap::from([
                    ("login_url".to_owned(), sf_url.to_owned()),
                    ("client_id".to_owned(), "ck-e2e".to_owned()),
                ]),
                secrets: BTreeMap::from([(
                    "client_secret".to_owned(),
                    Secret::new("cs-e2e").unwrap(),
                )]),
            },
        ],
        api_keys: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
    }
}

/// The Attio webhook for the API at `api_url`; returns its secret (Attio shows it once).
pub async fn register_webhook(attio: &Attio, api_url: &str) -> String {
    let hook = attio
        .call(
            reqwest::Method::POST,
            "/v2/webhooks",
            Some(json!({"data": {"target_url": format!("{api_url}/v1/webhooks/attio/acme"), "subscriptions": [
                {"event_type": "record.created", "filter": null},
                {"event_type": "record.updated", "filter": null},
                {"event_type": "record.deleted", "filter": null},
            ]}})),
        )
        .await;
    hook["data"]["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_reach_hubspot_and_salesforce_exactly_once_through_real_processes() {
    // PostgreSQL, in a schema of this run's own.
    let db_url = testkit::postgres_url().await;
    let schema = format!(
        "e2e_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut pg_cfg = PgConfig::new(
        Secret::new(db_url.clone()).unwrap(),
        MasterKey::from_hex(MASTER_KEY).unwrap(),
    );
    pg_cfg.schema = Some(schema.clone());
    let pg = PgStore::connect(&pg_cfg).await.unwrap();
    // Redis, in a namespace of the same name.
    let redis_url = testkit::redis_url().await;
    let redis = adapter_redis::RedisStore::connect(&adapter_redis::RedisConfig {
        url: Secret::new(redis_url.clone()).unwrap(),
        namespace: schema.clone(),
    })
    .await
    .unwrap();

    // The API's address is fixed first: Attio and HubSpot are told where to deliver.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api_url = format!("http://127.0.0.1:{port}");

    // The three simulators; HubSpot delivers title changes to the API, signed v3.
    let attio_sim = start("attio-sim", &["--listen", "127.0.0.1:0"], &[], true).await;
    let hubspot_hook = format!("{api_url}/v1/webhooks/hubspot/acme");
    let hubspot_sim = start(
        "hubspot-sim",
        &[
            "--listen",
            "127.0.0.1:0",
            "--webhook-url",
            &hubspot_hook,
            "--webhook-secret",
            HUBSPOT_APP_SECRET,
            "--subscribe",
            "contact.propertyChange:jobtitle",
        ],
        &[],
        true,
    )
    .await;
    let sf_sim = start(
        "salesforce-sim",
        &[
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "ck-e2e",
            "--client-secret",
            "cs-e2e",
        ],
        &[],
        true,
    )
    .await;
    let (attio_url, hubspot_url, sf_url) = (
        attio_sim.url.clone().unwrap(),
        hubspot_sim.url.clone().unwrap(),
        sf_sim.url.clone().unwrap(),
    );

    // Every process exports its spans to one collector, within 100 ms of ending them.
    let collector = testkit::otlp::Collector::start().await;

    // The API, on the same database.
    let store_env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("ATTIO_SYNC_STORE__KIND", "postgres".to_owned()),
            ("ATTIO_SYNC_STORE__URL", db_url.clone()),
            ("ATTIO_SYNC_STORE__SCHEMA", schema.clone()),
            ("ATTIO_SYNC_MASTER_KEY", MASTER_KEY.to_owned()),
            ("ATTIO_SYNC_QUEUE__KIND", "redis".to_owned()),
            ("ATTIO_SYNC_QUEUE__URL", redis_url.clone()),
            ("ATTIO_SYNC_QUEUE__NAMESPACE", schema.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let api = start(
        "webhook-api",
        &["--listen", &format!("127.0.0.1:{port}")],
        &store_env(&[
            ("ATTIO_SYNC_DEBOUNCE_MS", "300".into()),
            ("ATTIO_SYNC_PUBLIC_URL", api_url.clone()),
            ("ATTIO_SYNC_ATTIO_BASE_URL", attio_url.clone()),
            ("ATTIO_SYNC_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ]),
        true,
    )
    .await;

    // The operator adds the tenant; the API registers its Attio webhook and keeps the secret.
    let attio = Attio {
        http: reqwest::Client::new(),
        url: attio_url.clone(),
    };
    let added = attio
        .http
        .post(format!("{api_url}/v1/admin/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "id": "acme",
            "name": "Acme",
            "attio": {"api_token": ATTIO_TOKEN},
            "crms": [
                {"system": "hubspot", "settings": {"base_url": hubspot_url}, "secrets": {"token": HUBSPOT_TOKEN, "client_secret": HUBSPOT_APP_SECRET}},
                {"system": "salesforce", "settings": {"login_url": sf_url, "client_id": "ck-e2e"}, "secrets": {"client_secret": "cs-e2e"}},
            ],
            "register_webhook": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        added.status(),
        201,
        "{}",
        added.text().await.unwrap_or_default()
    );
    let tenant = pg.get(&TenantId::parse("acme").unwrap()).await.unwrap();
    assert_eq!(
        tenant.attio.webhook_secrets.len(),
        1,
        "the registered webhook's secret is stored"
    );

    // Two workers.
    let dir = std::env::temp_dir().join(format!("attio-sync-{schema}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mappings = dir.join("worker.toml");
    std::fs::write(&mappings, MAPPINGS).unwrap();
    let worker_env = |name: &str| -> Vec<(&'static str, String)> {
        store_env(&[
            ("ATTIO_SYNC_ATTIO_BASE_URL", attio_url.clone()),
            ("ATTIO_SYNC_CONSUMER", name.to_owned()),
            ("ATTIO_SYNC_REDIS_URL", redis_url.clone()),
            ("ATTIO_SYNC_LEASE_S", "5".into()),
            ("ATTIO_SYNC_RETRY_BASE_MS", "200".into()),
            ("ATTIO_SYNC_RETRY_CAP_MS", "2000".into()),
            ("ATTIO_SYNC_MAX_ATTEMPTS", "8".into()),
            ("ATTIO_SYNC_CONFIG", mappings.display().to_string()),
        ])
    };
    let mut w1: Proc = start("sync-worker", &[], &worker_env("w1"), false).await;
    // The second worker also polls Salesforce (which sends no webhooks here).
    let mut w2_env = worker_env("w2");
    w2_env.push(("ATTIO_SYNC_CRM__SALESFORCE__POLL_INTERVAL_S", "1".into()));
    w2_env.push(("ATTIO_SYNC_CRM__SALESFORCE__POLL_WINDOW_S", "60".into()));
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w2_env.push((
        "ATTIO_SYNC_METRICS_LISTEN",
        format!("127.0.0.1:{metrics_port}"),
    ));
    let _w2: Proc = start("sync-worker", &[], &w2_env, false).await;

    // Duplicated and reordered deliveries from Attio.
    let faults = reqwest::Client::new()
        .put(format!("{attio_url}/_sim/faults"))
        .body(r#"{"duplicate_rate": 0.5, "reorder_window_ms": 300}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);

    // Clients that read the CRMs' own APIs.
    let limiter = Arc::new(MemoryRateLimiter::default());
    let hubspot = HubSpotClient::new(
        HubSpotConfig::new(
            &hubspot_url,
            Secret::new(HUBSPOT_TOKEN).unwrap(),
            tenant.id.clone(),
        )
        .unwrap(),
        limiter,
    )
    .unwrap();
    let salesforce = SalesforceClient::new(
        SalesforceConfig::new(
            &sf_url,
            SalesforceAuth::ClientCredentials {
                client_id: "ck-e2e".into(),
                client_secret: Secret::new("cs-e2e").unwrap(),
            },
            tenant.id.clone(),
        )
        .unwrap(),
    )
    .unwrap();
    let hs_title = |id: String| {
        let hubspot = hubspot.clone();
        async move {
            match hubspot
                .get_by(
                    "contacts",
                    &prop("attio_record_id"),
                    &id,
                    &[prop("jobtitle"), prop("email")],
                )
                .await
            {
                Ok(r) if !r.archived => Some(r.properties),
                _ => None,
            }
        }
    };
    let sf_rows = |id: String| {
        let salesforce = salesforce.clone();
        async move {
            salesforce
                .query(
                    &format!("SELECT Id, Title, Email FROM Contact WHERE Attio_Id__c = '{id}'"),
                    false,
                    None,
                )
                .await
                .unwrap()
                .records
        }
    };

    // Create five people while HubSpot answers slowly, so jobs are in hand; then kill one worker
    // with SIGKILL. Its leases expire and the other worker finishes its jobs.
    let http = reqwest::Client::new();
    let slow = http
        .put(format!("{hubspot_url}/_sim/faults"))
        .body(r#"{"latency_ms": 1500}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(attio.create_person(i).await);
    }
    eventually("jobs in hand", Duration::from_secs(30), || async {
        let d = ports::queue::JobQueue::depth(&redis).await.unwrap();
        (d.in_flight >= 2).then_some(())
    })
    .await;
    w1.kill9().await;
    http.put(format!("{hubspot_url}/_sim/faults"))
        .body("{}")
        .send()
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let props = eventually(
            &format!("person {i} in HubSpot"),
            Duration::from_secs(60),
            || hs_title(id.clone()),
        )
        .await;
        assert_eq!(
            props[&prop("email")],
            FieldValue::text(format!("person{i}@example.com"))
        );
        let rows = eventually(
            &format!("person {i} in Salesforce"),
            Duration::from_secs(60),
            || {
                let f = sf_rows(id.clone());
                async move { Some(f.await).filter(|r| !r.is_empty()) }
            },
        )
        .await;
        assert_eq!(
            rows.len(),
            1,
            "exactly one Salesforce contact for person {i}"
        );
    }

    // Update one; the new title arrives on both sides.
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/people/records/{}", ids[0]),
            Some(json!({"data": {"values": {"job_title": "Chief Scientist"}}})),
        )
        .await;
    eventually("the new title in HubSpot", Duration::from_secs(60), || {
        let f = hs_title(ids[0].clone());
        async move {
            f.await
                .filter(|p| p[&prop("jobtitle")] == FieldValue::text("Chief Scientist"))
        }
    })
    .await;
    eventually(
        "the new title in Salesforce",
        Duration::from_secs(60),
        || {
            let f = sf_rows(ids[0].clone());
            async move {
                Some(f.await).filter(|r| {
                    r.len() == 1
                        && r[0].properties[&prop("Title")] == FieldValue::text("Chief Scientist")
                })
            }
        },
    )
    .await;

    // A note and a task on that person reach the linked contact in both CRMs; deleting the
    // note in Attio deletes its copies.
    let note = attio
        .call(
            reqwest::Method::POST,
            "/v2/notes",
            Some(json!({"data": {"parent_object": "people", "parent_record_id": ids[0],
                "title": "Call notes", "format": "plaintext", "content": "Wants the enterprise plan."}})),
        )
        .await;
    let note_id = note["data"]["id"]["note_id"].as_str().unwrap().to_owned();
    attio
        .call(
            reqwest::Method::POST,
            "/v2/tasks",
            Some(
                json!({"data": {"content": "Send the contract", "format": "plaintext",
                "deadline_at": null, "is_completed": false, "assignees": [],
                "linked_records": [{"target_object": "people", "target_record_id": ids[0]}]}}),
            ),
        )
        .await;
    let hs_contact = hubspot
        .get_by("contacts", &prop("attio_record_id"), &ids[0], &[])
        .await
        .unwrap()
        .id;
    let sf_contact = sf_rows(ids[0].clone()).await[0].id.clone();
    let hs_engagements = |kind: &'static str| {
        let (hubspot, contact) = (hubspot.clone(), hs_contact.clone());
        async move {
            hubspot
                .associations("contacts", &contact, kind)
                .await
                .unwrap()
        }
    };
    let sf_children = |object: &'static str, parent: &'static str| {
        let (salesforce, contact) = (salesforce.clone(), sf_contact.clone());
        async move {
            salesforce
                .query(
                    &format!(
                        "SELECT Id FROM {object} WHERE {parent} = '{}'",
                        contact.as_str()
                    ),
                    false,
                    None,
                )
                .await
                .unwrap()
                .records
        }
    };
    for (what, kind, object, parent) in [
        ("the note", "notes", "Note", "ParentId"),
        ("the task", "tasks", "Task", "WhoId"),
    ] {
        eventually(
            &format!("{what} in HubSpot"),
            Duration::from_secs(60),
            || {
                let f = hs_engagements(kind);
                async move { Some(f.await).filter(|a| a.len() == 1) }
            },
        )
        .await;
        eventually(
            &format!("{what} in Salesforce"),
            Duration::from_secs(60),
            || {
                let f = sf_children(object, parent);
                async move { Some(f.await).filter(|r| r.len() == 1) }
            },
        )
        .await;
    }
    let hs_note = hs_engagements("notes").await[0].clone();
    attio
        .call(
            reqwest::Method::DELETE,
            &format!("/v2/notes/{note_id}"),
            None,
        )
        .await;
    eventually(
        "the note's deletion in Salesforce",
        Duration::from_secs(60),
        || {
            let f = sf_children("Note", "ParentId");
            async move { f.await.is_empty().then_some(()) }
        },
    )
    .await;
    eventually(
        "the note's deletion in HubSpot",
        Duration::from_secs(60),
        || {
            let (hubspot, id) = (hubspot.clone(), hs_note.clone());
            async move {
                match ports::crm::ExternalCrm::get(&hubspot, "notes", &id, &[]).await {
                    Err(PortError::NotFound(_)) => Some(()),
                    Ok(r) if r.archived => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;

    // Delete one; it is archived on both sides.
    attio
        .call(
            reqwest::Method::DELETE,
            &format!("/v2/objects/people/records/{}", ids[1]),
            None,
        )
        .await;
    eventually("the deletion in HubSpot", Duration::from_secs(60), || {
        let f = hs_title(ids[1].clone());
        async move { f.await.is_none().then_some(()) }
    })
    .await;
    eventually(
        "the deletion in Salesforce",
        Duration::from_secs(60),
        || {
            let f = sf_rows(ids[1].clone());
            async move { f.await.is_empty().then_some(()) }
        },
    )
    .await;

    // Two ways: a title edited in HubSpot reaches Attio (HubSpot's signed webhook, the API, a
    // worker's merge), and Attio's echo of that write changes nothing in HubSpot.
    let edit = ports::crm::ExternalUpsert {
        key: ids[3].clone(),
        properties: BTreeMap::from([(prop("jobtitle"), FieldValue::text("Edited in HubSpot"))]),
    };
    ports::crm::ExternalCrm::upsert_batch(&hubspot, "contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    eventually("the HubSpot edit in Attio", Duration::from_secs(60), || {
        let (attio, id) = (&attio, ids[3].clone());
        async move {
            let r = attio
                .call(
                    reqwest::Method::GET,
                    &format!("/v2/objects/people/records/{id}"),
                    None,
                )
                .await;
            (r["data"]["values"]["job_title"][0]["value"] == "Edited in HubSpot").then_some(())
        }
    })
    .await;
    eventually(
        "the HubSpot edit in Salesforce",
        Duration::from_secs(60),
        || {
            let f = sf_rows(ids[3].clone());
            async move {
                let rows = f.await;
                (rows.len() == 1
                    && rows[0].properties[&prop("Title")] == FieldValue::text("Edited in HubSpot"))
                .then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hs = hs_title(ids[3].clone()).await.unwrap();
    assert_eq!(
        hs[&prop("jobtitle")],
        FieldValue::text("Edited in HubSpot"),
        "the echo changed nothing"
    );

    // And from Salesforce: a title edited there is polled into Attio and carried on to HubSpot.
    let sf_edit = ports::crm::ExternalUpsert {
        key: ids[4].clone(),
        properties: BTreeMap::from([
            (prop("LastName"), FieldValue::text("Last4")),
            (prop("Title"), FieldValue::text("Edited in Salesforce")),
        ]),
    };
    ports::crm::ExternalCrm::upsert_batch(&salesforce, "Contact", &prop("Attio_Id__c"), &[sf_edit])
        .await
        .unwrap();
    eventually(
        "the Salesforce edit in Attio",
        Duration::from_secs(60),
        || {
            let (attio, id) = (&attio, ids[4].clone());
            async move {
                let r = attio
                    .call(
                        reqwest::Method::GET,
                        &format!("/v2/objects/people/records/{id}"),
                        None,
                    )
                    .await;
                (r["data"]["values"]["job_title"][0]["value"] == "Edited in Salesforce")
                    .then_some(())
            }
        },
    )
    .await;
    eventually(
        "the Salesforce edit in HubSpot",
        Duration::from_secs(60),
        || {
            let f = hs_title(ids[4].clone());
            async move {
                f.await
                    .filter(|p| p[&prop("jobtitle")] == FieldValue::text("Edited in Salesforce"))
                    .map(|_| ())
            }
        },
    )
    .await;

    // A company reaches HubSpot and Salesforce; a deal reaches HubSpot with its stage translated,
    // and follows the stage as it moves.
    let company = attio
        .call(
            reqwest::Method::POST,
            "/v2/objects/companies/records",
            Some(json!({"data": {"values": {"name": "Globex", "domains": ["globex.example"]}}})),
        )
        .await["data"]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let company_props = eventually("the company in HubSpot", Duration::from_secs(60), || {
        let (hubspot, id) = (hubspot.clone(), company.clone());
        async move {
            hubspot
                .get_by(
                    "companies",
                    &prop("attio_record_id"),
                    &id,
                    &[prop("name"), prop("domain")],
                )
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(
        company_props.properties[&prop("domain")],
        FieldValue::text("globex.example")
    );
    let account = eventually("the company in Salesforce", Duration::from_secs(60), || {
        let (salesforce, id) = (salesforce.clone(), company.clone());
        async move {
            let rows = salesforce
                .query(
                    &format!("SELECT Id, Name, Website FROM Account WHERE Attio_Id__c = '{id}'"),
                    false,
                    None,
                )
                .await
                .unwrap()
                .records;
            rows.into_iter().next()
        }
    })
    .await;
    assert_eq!(
        account.properties[&prop("Website")],
        FieldValue::text("globex.example")
    );
    let deal = attio
        .call(
            reqwest::Method::POST,
            "/v2/objects/deals/records",
            Some(json!({"data": {"values": {"name": "Globex renewal", "stage": "Lead", "value": 5000}}})),
        )
        .await["data"]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deal_stage = |want: &'static str| {
        let (hubspot, id) = (hubspot.clone(), deal.clone());
        async move {
            let r = hubspot
                .get_by("deals", &prop("attio_record_id"), &id, &[prop("dealstage")])
                .await
                .ok()?;
            (r.properties[&prop("dealstage")] == FieldValue::text(want)).then_some(())
        }
    };
    eventually("the deal in HubSpot", Duration::from_secs(60), || {
        deal_stage("appointmentscheduled")
    })
    .await;
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/deals/records/{deal}"),
            Some(json!({"data": {"values": {"stage": "Won 🎉"}}})),
        )
        .await;
    eventually("the won stage in HubSpot", Duration::from_secs(60), || {
        deal_stage("closedwon")
    })
    .await;

    // Companies and deals are updated, merged and deleted too.
    let hs_name = |object: &'static str, name_prop: &'static str, id: String| {
        let hubspot = hubspot.clone();
        async move {
            match hubspot
                .get_by(object, &prop("attio_record_id"), &id, &[prop(name_prop)])
                .await
            {
                Ok(r) if !r.archived => Some(r.properties[&prop(name_prop)].clone()),
                _ => None,
            }
        }
    };
    let sf_accounts = |id: String| {
        let salesforce = salesforce.clone();
        async move {
            salesforce
                .query(
                    &format!("SELECT Id, Name FROM Account WHERE Attio_Id__c = '{id}'"),
                    false,
                    None,
                )
                .await
                .unwrap()
                .records
        }
    };
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/companies/records/{company}"),
            Some(json!({"data": {"values": {"name": "Globex Corporation"}}})),
        )
        .await;
    eventually(
        "the renamed company in both CRMs",
        Duration::from_secs(60),
        || {
            let (h, f) = (
                hs_name("companies", "name", company.clone()),
                sf_accounts(company.clone()),
            );
            async move {
                let renamed = FieldValue::text("Globex Corporation");
                let rows = f.await;
                (h.await == Some(renamed.clone())
                    && rows.len() == 1
                    && rows[0].properties[&prop("Name")] == renamed)
                    .then_some(())
            }
        },
    )
    .await;
    let twin = attio
        .call(
            reqwest::Method::POST,
            "/v2/objects/companies/records",
            Some(json!({"data": {"values": {"name": "Globex (duplicate)", "domains": ["globex-dup.example"]}}})),
        )
        .await["data"]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        "the twin company in both CRMs",
        Duration::from_secs(60),
        || {
            let (h, f) = (
                hs_name("companies", "name", twin.clone()),
                sf_accounts(twin.clone()),
            );
            async move { (h.await.is_some() && f.await.len() == 1).then_some(()) }
        },
    )
    .await;
    attio
        .call(
            reqwest::Method::POST,
            &format!("/_sim/objects/companies/records/{company}/merge"),
            Some(json!({"duplicate": twin})),
        )
        .await;
    eventually(
        "the company merge in both CRMs",
        Duration::from_secs(60),
        || {
            let (h, f) = (
                hs_name("companies", "name", twin.clone()),
                sf_accounts(twin.clone()),
            );
            async move { (h.await.is_none() && f.await.is_empty()).then_some(()) }
        },
    )
    .await;
    assert!(
        hs_name("companies", "name", company.clone())
            .await
            .is_some()
            && sf_accounts(company.clone()).await.len() == 1,
        "the surviving company stays in both CRMs"
    );
    let deal_twin = attio
        .call(
            reqwest::Method::POST,
            "/v2/objects/deals/records",
            Some(json!({"data": {"values": {"name": "Globex renewal (twin)", "stage": "Lead", "value": 10}}})),
        )
        .await["data"]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the twin deal in HubSpot", Duration::from_secs(60), || {
        let f = hs_name("deals", "dealname", deal_twin.clone());
        async move { f.await.map(|_| ()) }
    })
    .await;
    attio
        .call(
            reqwest::Method::POST,
            &format!("/_sim/objects/deals/records/{deal}/merge"),
            Some(json!({"duplicate": deal_twin})),
        )
        .await;
    eventually("the deal merge in HubSpot", Duration::from_secs(60), || {
        let f = hs_name("deals", "dealname", deal_twin.clone());
        async move { f.await.is_none().then_some(()) }
    })
    .await;
    for (object, name_prop, id) in [
        ("deals", "dealname", &deal),
        ("companies", "name", &company),
    ] {
        assert!(
            hs_name(object, name_prop, id.clone()).await.is_some(),
            "the surviving {object} record is still there"
        );
        attio
            .call(
                reqwest::Method::DELETE,
                &format!("/v2/objects/{object}/records/{id}"),
                None,
            )
            .await;
        eventually(
            &format!("the deleted {object} record archived"),
            Duration::from_secs(60),
            || {
                let f = hs_name(object, name_prop, id.clone());
                async move { f.await.is_none().then_some(()) }
            },
        )
        .await;
    }
    assert!(
        sf_accounts(company.clone()).await.is_empty(),
        "the deleted company is gone from Salesforce"
    );

    // Merge two people in Attio's app: the duplicate's CRM records are merged (HubSpot) or
    // deleted (Salesforce), and only the survivor's remain.
    let survivor = attio.create_person(5).await;
    let duplicate = attio.create_person(6).await;
    for (i, id) in [(5, &survivor), (6, &duplicate)] {
        eventually(
            &format!("person {i} in both CRMs"),
            Duration::from_secs(60),
            || {
                let (h, f) = (hs_title(id.clone()), sf_rows(id.clone()));
                async move { (h.await.is_some() && f.await.len() == 1).then_some(()) }
            },
        )
        .await;
    }
    attio
        .call(
            reqwest::Method::POST,
            &format!("/_sim/objects/people/records/{survivor}/merge"),
            Some(json!({"duplicate": duplicate})),
        )
        .await;
    eventually("the merge in HubSpot", Duration::from_secs(60), || {
        let f = hs_title(duplicate.clone());
        async move { f.await.is_none().then_some(()) }
    })
    .await;
    eventually("the merge in Salesforce", Duration::from_secs(60), || {
        let f = sf_rows(duplicate.clone());
        async move { f.await.is_empty().then_some(()) }
    })
    .await;
    assert!(
        hs_title(survivor.clone()).await.is_some(),
        "the survivor stays in HubSpot"
    );
    assert_eq!(
        sf_rows(survivor.clone()).await.len(),
        1,
        "the survivor stays in Salesforce"
    );
    ids.push(survivor.clone());

    // People whose deliveries were lost reach both CRMs through a backfill the operator starts.
    http.put(format!("{attio_url}/_sim/faults"))
        .body(r#"{"drop_rate": 1.0}"#)
        .send()
        .await
        .unwrap();
    let lost = vec![attio.create_person(7).await, attio.create_person(8).await];
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        hs_title(lost[0].clone()).await.is_none(),
        "the dropped delivery synced nothing"
    );
    http.put(format!("{attio_url}/_sim/faults"))
        .body("{}")
        .send()
        .await
        .unwrap();
    for system in ["hubspot", "salesforce"] {
        let r = http
            .post(format!("{api_url}/v1/admin/tenants/acme/backfills"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"object": "people", "system": system}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    for id in &lost {
        eventually(
            "a backfilled person in both CRMs",
            Duration::from_secs(60),
            || {
                let (h, f) = (hs_title(id.clone()), sf_rows(id.clone()));
                async move { (h.await.is_some() && f.await.len() == 1).then_some(()) }
            },
        )
        .await;
    }
    let states: Value = http
        .get(format!("{api_url}/v1/admin/tenants/acme/sync-state"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        states
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["object"] == "people" && s["phase"] == "completed"),
        "{states}"
    );
    ids.extend(lost);

    // Exactly once: every HubSpot contact belongs to one person, and one per live person.
    let mut after = None;
    let mut live = Vec::new();
    loop {
        let page = hubspot
            .list("contacts", &[prop("attio_record_id")], after)
            .await
            .unwrap();
        live.extend(page.records.into_iter().filter_map(|r| {
            match &r.properties[&prop("attio_record_id")] {
                FieldValue::Text(t) => Some(t.clone()),
                _ => None,
            }
        }));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    live.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, id)| id.clone())
        .collect();
    expected.sort();
    assert_eq!(
        live, expected,
        "one HubSpot contact per live person, no duplicates"
    );
    let sf_all = salesforce
        .query("SELECT Id, Attio_Id__c FROM Contact", false, None)
        .await
        .unwrap()
        .records;
    assert_eq!(sf_all.len(), 7, "one Salesforce contact per live person");
    assert!(matches!(
        hubspot
            .get_by("contacts", &prop("attio_record_id"), &ids[1], &[])
            .await,
        Err(PortError::NotFound(_))
    ));
    let depth = ports::queue::JobQueue::depth(&redis).await.unwrap();
    assert_eq!(depth.dead, 0, "nothing was dead-lettered");
    // The surviving worker's metrics count the jobs it settled.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let acked: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("worker_jobs_total{outcome=\"acked\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no acked count in {metrics}"));
    assert!(acked > 0.0, "{metrics}");
    // One trace across the processes: an Attio delivery's `webhook` span in the API, the `job` span
    // that continued it in a worker, and the job's HubSpot calls under that.
    eventually(
        "a delivery traced from the API to HubSpot",
        Duration::from_secs(10),
        || {
            let spans = collector.spans();
            async move {
                spans
                    .iter()
                    .filter(|s| {
                        s.service == "webhook-api"
                            && s.name == "webhook"
                            && s.attributes.get("source").map(String::as_str) == Some("attio")
                    })
                    .find_map(|hook| {
                        let job = spans.iter().find(|s| {
                            s.service == "sync-worker"
                                && s.name == "job"
                                && s.trace_id == hook.trace_id
                                && s.parent_span_id == hook.span_id
                        })?;
                        spans.iter().find(|s| {
                            s.service == "sync-worker"
                                && s.name == "hubspot.request"
                                && s.trace_id == job.trace_id
                                && s.parent_span_id == job.span_id
                        })
                    })
                    .map(|_| ())
            }
        },
    )
    .await;
    drop((attio_sim, hubspot_sim, sf_sim, api));
    let _ = std::fs::remove_dir_all(dir);
    drop_namespace(&redis_url, &schema).await;
}

/// Deletes this run's Redis keys.
async fn drop_namespace(url: &str, ns: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{ns}}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
