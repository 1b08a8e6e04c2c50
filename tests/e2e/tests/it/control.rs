//! The conflict queue and the audit trail across real processes, in both deployments: webhook-api
//! and sync-worker on PostgreSQL, and `attio-sync run` on an embedded SQLite file. Three people
//! have their title changed in Attio and in HubSpot at once, where the mapping leaves the title
//! to a person (`manual`): three conflicts, listed through the admin API, resolved one each way
//! (Attio's, HubSpot's, a typed value). Both sides and Salesforce then hold the chosen value;
//! the simulators' request logs show each side written exactly as often as it differed (no echo
//! write); each record's history names every write's side, source, rule and cause. Then five
//! people deleted in Attio at once trip the delete breaker (two deletes a window): the rest are
//! held, listed, one rejected and the others approved through the admin API, and carried out.
//! A contact created in HubSpot becomes an Attio person (matched by e-mail) and reaches
//! Salesforce. Then webhooks are lost on both sides (the simulators' `drop_rate`): a dry run reports the
//! drift, a reconciliation pass repairs it with the same report. Last, tenant `beta` is added
//! beside `acme`: mappings with five kinds of mistakes are refused
//! with each named (checked against the simulators' live schemas), its own are stored, and each
//! tenant's people reach its own HubSpot account by its own mappings.

use std::sync::Arc;
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use domain::field::FieldValue;
use domain::ids::TenantId;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert};
use serde_json::{Value, json};

use crate::attio_to_crms::{ATTIO_TOKEN, Attio, HUBSPOT_TOKEN, MASTER_KEY, prop};
use crate::{Proc, eventually, start};

pub(crate) const ADMIN_TOKEN: &str = "e2e-control-token-0123456789abcdefghijkl";
const HUBSPOT_APP_SECRET: &str = "e2e-control-hubspot-secret";

/// People to HubSpot (title under `manual`) and to Salesforce (title under `latest_wins`).
const MAPPINGS: &str = r#"
[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
match_on = "email_addresses"
fields = [
  { attio = { attribute = "email_addresses" }, external = "email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "last_name" }, external = "lastname", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "jobtitle", rule = "manual" },
]

[[targets]]
attio_object = "people"
system = "salesforce"
external_object = "Contact"
id_property = "Attio_Id__c"
fields = [
  { attio = { attribute = "email_addresses" }, external = "Email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "last_name" }, external = "LastName", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "Title", rule = "latest_wins" },
]
"#;

/// How the service runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deployment {
    /// webhook-api and a sync-worker, on PostgreSQL.
    Distributed,
    /// `attio-sync run` on a SQLite file.
    Embedded,
}

/// The running service and what it runs against.
pub(crate) struct Rig {
    pub(crate) api_url: String,
    pub(crate) attio_url: String,
    pub(crate) hubspot_url: String,
    pub(crate) sf_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) hubspot: HubSpotClient,
    pub(crate) salesforce: SalesforceClient,
    _procs: Vec<Proc>,
}

impl Rig {
    pub(crate) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A person created in Attio with this e-mail, last name and title; their record id.
    pub(crate) async fn create_person(
        &self,
        email: &str,
        first: &str,
        last: &str,
        title: &str,
    ) -> String {
        let body = json!({"data": {"values": {
            "email_addresses": [email],
            "name": [{"first_name": first, "last_name": last, "full_name": format!("{first} {last}")}],
            "job_title": title,
        }}});
        let r = self
            .attio()
            .call(
                reqwest::Method::POST,
                "/v2/objects/people/records",
                Some(body),
            )
            .await;
        r["data"]["id"]["record_id"].as_str().unwrap().to_owned()
    }

    pub(crate) fn attio(&self) -> Attio {
        Attio {
            http: self.http.clone(),
            url: self.attio_url.clone(),
        }
    }

    pub(crate) async fn attio_title(&self, id: &str) -> Option<String> {
        let r = self
            .attio()
            .call(
                reqwest::Method::GET,
                &format!("/v2/objects/people/records/{id}"),
                None,
            )
            .await;
        r["data"]["values"]["job_title"][0]["value"]
            .as_str()
            .map(str::to_owned)
    }

    pub(crate) async fn hubspot_title(&self, id: &str) -> Option<FieldValue> {
        let r = self
            .hubspot
            .get_by(
                "contacts",
                &prop("attio_record_id"),
                id,
                &[prop("jobtitle")],
            )
            .await
            .ok()?;
        r.properties.get(&prop("jobtitle")).cloned()
    }

    pub(crate) async fn salesforce_title(&self, id: &str) -> Option<FieldValue> {
        let rows = self
            .salesforce
            .query(
                &format!("SELECT Id, Title FROM Contact WHERE Attio_Id__c = '{id}'"),
                false,
                None,
            )
            .await
            .ok()?
            .records;
        rows.first()?.properties.get(&prop("Title")).cloned()
    }

    /// Writes a simulator logged that touch `id`: HubSpot upserts naming it, Attio record writes.
    pub(crate) async fn writes(&self, sim_url: &str, id: &str) -> usize {
        let logged: Vec<Value> = self
            .http
            .get(format!("{sim_url}/_sim/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logged
            .iter()
            .filter(|r| matches!(r["method"].as_str(), Some("POST" | "PUT" | "PATCH")))
            .filter(|r| {
                r["path"].as_str().unwrap_or_default().contains(id)
                    || r["body"].as_str().unwrap_or_default().contains(id)
            })
            .filter(|r| {
                let path = r["path"].as_str().unwrap_or_default();
                !["/query", "/search", "/batch/read", "/oauth2/"]
                    .iter()
                    .any(|read| path.contains(read))
            })
            .count()
    }
}

/// The simulators and the service (webhook-api and a sync-worker, or `attio-sync run`), with
/// tenant `acme`; a job gives up after `max_attempts`.
pub(crate) async fn rig(deployment: Deployment, max_attempts: u32) -> Rig {
    let subscriptions = ["contact.propertyChange:jobtitle", "contact.creation"];
    rig_with(deployment, max_attempts, MAPPINGS, &subscriptions).await
}

/// [`rig`] with other mappings (the worker's `[[targets]]`) and HubSpot subscriptions.
pub(crate) async fn rig_with(
    deployment: Deployment,
    max_attempts: u32,
    mappings: &str,
    subscriptions: &[&str],
) -> Rig {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api_url = format!("http://127.0.0.1:{port}");
    let attio_sim = start("attio-sim", &["--listen", "127.0.0.1:0"], &[], true).await;
    let hubspot_sim = start(
        "hubspot-sim",
        &[
            "--listen",
            "127.0.0.1:0",
            "--webhook-url",
            &format!("{api_url}/v1/webhooks/hubspot/acme"),
            "--webhook-secret",
            HUBSPOT_APP_SECRET,
        ]
        .into_iter()
        .chain(subscriptions.iter().flat_map(|s| ["--subscribe", s]))
        .collect::<Vec<_>>(),
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
    let dir = std::env::temp_dir().join(format!(
        "attio-sync-control-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let common = [
        ("ATTIO_SYNC_LEASE_S", "5"),
        ("ATTIO_SYNC_RETRY_BASE_MS", "200"),
        ("ATTIO_SYNC_RETRY_CAP_MS", "2000"),
    ];
    let max_attempts = max_attempts.to_string();
    let mut procs = vec![attio_sim, hubspot_sim, sf_sim];
    match deployment {
        Deployment::Distributed => {
            let db_url = testkit::postgres_url().await;
            let schema = format!(
                "e2e_control_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            let store = |extra: Vec<(&'static str, String)>| {
                let mut env = vec![
                    ("ATTIO_SYNC_STORE__KIND", "postgres".to_owned()),
                    ("ATTIO_SYNC_STORE__URL", db_url.clone()),
                    ("ATTIO_SYNC_STORE__SCHEMA", schema.clone()),
                    ("ATTIO_SYNC_MASTER_KEY", MASTER_KEY.to_owned()),
                    ("ATTIO_SYNC_ATTIO_BASE_URL", attio_url.clone()),
                    (
                        "RUST_LOG",
                        std::env::var("E2E_LOG").unwrap_or("warn".to_owned()),
                    ),
                ];
                env.extend(extra);
                env
            };
            procs.push(
                start(
                    "webhook-api",
                    &["--listen", &format!("127.0.0.1:{port}")],
                    &store(vec![
                        ("ATTIO_SYNC_DEBOUNCE_MS", "1000".into()),
                        ("ATTIO_SYNC_PUBLIC_URL", api_url.clone()),
                        ("ATTIO_SYNC_ADMIN_TOKEN", ADMIN_TOKEN.into()),
                    ]),
                    true,
                )
                .await,
            );
            let file = dir.join("worker.toml");
            std::fs::write(&file, mappings).unwrap();
            let mut env = store(vec![
                ("ATTIO_SYNC_CONFIG", file.display().to_string()),
                ("ATTIO_SYNC_CRM__SALESFORCE__POLL_INTERVAL_S", "1".into()),
                ("ATTIO_SYNC_DELETE_BREAKER__MAX", "2".into()),
                ("ATTIO_SYNC_DELETE_BREAKER__MAX_SHARE", "0".into()),
            ]);
            env.extend(common.iter().map(|(k, v)| (*k, (*v).to_owned())));
            env.push(("ATTIO_SYNC_MAX_ATTEMPTS", max_attempts.clone()));
            procs.push(start("sync-worker", &[], &env, false).await);
        }
        Deployment::Embedded => {
            let config = dir.join("attio-sync.toml");
            let worker = mappings.replace("[[targets]]", "[[worker.targets]]");
            std::fs::write(
                &config,
                format!(
                    "[api]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"{ADMIN_TOKEN}\"\nmaster_key = \"{MASTER_KEY}\"\n\
                     public_url = \"{api_url}\"\nattio_base_url = \"{attio_url}\"\ndebounce_ms = 1000\n\
                     store = {{ kind = \"sqlite\", path = \"{db}\" }}\n\n\
                     [worker]\nattio_base_url = \"{attio_url}\"\nlease_s = 5\nretry_base_ms = 200\nretry_cap_ms = 2000\nmax_attempts = {max_attempts}\n\
                     [worker.crm.salesforce]\npoll_interval_s = 1\n[worker.delete_breaker]\nmax = 2\nmax_share = 0\n{worker}",
                    db = dir.join("attio-sync.db").display()
                ),
            )
            .unwrap();
            let path = config.display().to_string();
            procs.push(
                start(
                    "attio-sync",
                    &["run", "--config", &path],
                    &[("RUST_LOG", "warn".to_owned())],
                    true,
                )
                .await,
            );
        }
    }
    let http = reqwest::Client::new();
    let added = http
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
    let tenant = TenantId::parse("acme").unwrap();
    let hubspot = HubSpotClient::new(
        HubSpotConfig::new(
            &hubspot_url,
            Secret::new(HUBSPOT_TOKEN).unwrap(),
            tenant.clone(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let salesforce = SalesforceClient::new(
        SalesforceConfig::new(
            &sf_url,
            SalesforceAuth::ClientCredentials {
                client_id: "ck-e2e".into(),
                client_secret: Secret::new("cs-e2e").unwrap(),
            },
            tenant,
        )
        .unwrap(),
    )
    .unwrap();
    Rig {
        api_url,
        attio_url,
        hubspot_url,
        sf_url,
        http,
        hubspot,
        salesforce,
        _procs: procs,
    }
}

/// The three resolutions and what each should leave: (how, the decision, the chosen title,
/// Attio written, HubSpot written).
fn cases(i: usize) -> (Value, &'static str, bool, bool) {
    match i {
        0 => (json!({"keep": "attio"}), "Mathematician", false, true),
        1 => (json!({"keep": "external"}), "Countess", true, false),
        _ => (
            json!({"keep": "value", "value": "Analyst of Engines"}),
            "Analyst of Engines",
            true,
            true,
        ),
    }
}

async fn conflicts_are_settled_each_way_without_echoes(rig: &Rig) {
    let attio = rig.attio();
    let wait = Duration::from_secs(60);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            rig.create_person(
                &format!("ada{i}@example.com"),
                "Ada",
                &format!("Lovelace{i}"),
                "Analyst",
            )
            .await,
        );
    }
    for id in &ids {
        eventually("each person reaches HubSpot", wait, || async {
            (rig.hubspot_title(id).await == Some(FieldValue::text("Analyst"))).then_some(())
        })
        .await;
    }
    // The same moment: Attio's title and HubSpot's change (within the API's 1 s debounce).
    for id in &ids {
        attio
            .call(
                reqwest::Method::PATCH,
                &format!("/v2/objects/people/records/{id}"),
                Some(json!({"data": {"values": {"job_title": "Mathematician"}}})),
            )
            .await;
        let edit = ExternalUpsert {
            key: id.clone(),
            properties: [(prop("jobtitle"), FieldValue::text("Countess"))].into(),
        };
        rig.hubspot
            .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
            .await
            .unwrap();
    }
    let listed = eventually("three conflicts are queued", wait, || async {
        let (status, body) = rig
            .admin(
                reqwest::Method::GET,
                "/v1/admin/tenants/acme/conflicts?field=job_title&system=hubspot",
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (body.as_array().map(Vec::len) == Some(3)).then_some(body)
    })
    .await;
    for c in listed.as_array().unwrap() {
        assert_eq!(c["attio"]["value"], "Mathematician", "{c}");
        assert_eq!(c["external"]["value"], "Countess", "{c}");
        assert_eq!(c["snapshot"]["attio"], "Analyst", "{c}");
        assert_eq!(c["reason"], "manual_rule");
    }
    // From here on, every write is the resolutions' (or an echo of them).
    for sim in [&rig.attio_url, &rig.hubspot_url] {
        rig.http
            .delete(format!("{sim}/_sim/requests"))
            .send()
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let c = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["record"] == id.as_str())
            .unwrap();
        let (decision, ..) = cases(i);
        let (status, body) = rig
            .admin(
                reqwest::Method::POST,
                &format!(
                    "/v1/admin/tenants/acme/conflicts/{}/resolve",
                    c["id"].as_str().unwrap()
                ),
                Some(decision),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    for (i, id) in ids.iter().enumerate() {
        let (_, want, ..) = cases(i);
        eventually(&format!("{want} everywhere"), wait, || async {
            let here = rig.attio_title(id).await.as_deref() == Some(want);
            let hubspot = rig.hubspot_title(id).await == Some(FieldValue::text(want));
            let salesforce = rig.salesforce_title(id).await == Some(FieldValue::text(want));
            (here && hubspot && salesforce).then_some(())
        })
        .await;
    }
    // Time for any echo: the webhooks of the resolutions' own writes, a debounce and a sync.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (i, id) in ids.iter().enumerate() {
        let (_, want, attio_written, hubspot_written) = cases(i);
        assert_eq!(
            rig.writes(&rig.attio_url, id).await,
            usize::from(attio_written),
            "{want}: Attio's writes"
        );
        assert_eq!(
            rig.writes(&rig.hubspot_url, id).await,
            usize::from(hubspot_written),
            "{want}: HubSpot's writes"
        );
    }
    let (_, open) = rig
        .admin(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/conflicts",
            None,
        )
        .await;
    assert_eq!(open, json!([]), "nothing left open");
    // The third record's history: created (out to both CRMs), the conflict's Salesforce write,
    // and the resolution (to both sides, by the operator), each with its cause.
    let (status, history) = rig
        .admin(
            reqwest::Method::GET,
            &format!("/v1/admin/tenants/acme/records/people/{}/history", ids[2]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().unwrap();
    let find = |field: &str, to: &str, source: &str, new: &str| {
        entries.iter().find(|e| {
            e["field"] == field && e["written_to"] == to && e["source"] == source && e["new"] == new
        })
    };
    let created = find("job_title", "hubspot", "attio", "Analyst").expect("the first sync");
    assert_eq!(created["rule"], "manual");
    assert!(
        created["cause"]
            .as_str()
            .unwrap()
            .starts_with("attio delivery, job "),
        "{created}"
    );
    let to_sf = find("job_title", "salesforce", "attio", "Mathematician")
        .expect("Attio's edit to Salesforce");
    assert_eq!(to_sf["old"], "Analyst");
    for side in ["attio", "hubspot"] {
        let e = find("job_title", side, "operator", "Analyst of Engines")
            .unwrap_or_else(|| panic!("the resolution's write to {side}: {history:#}"));
        assert_eq!(e["rule"], "resolution:value");
        assert!(
            e["cause"]
                .as_str()
                .unwrap()
                .starts_with("conflict resolution, job "),
            "{e}"
        );
    }
    assert_eq!(
        entries[0]["written_to"], "salesforce",
        "newest first: the resolution went on to Salesforce last"
    );
    // The tenant's status counts the requests the worker made today and the last writes.
    let (status, glance) = rig
        .admin(reqwest::Method::GET, "/v1/admin/tenants/acme/status", None)
        .await;
    assert_eq!(status, 200, "{glance}");
    let requests = |provider: &str| {
        glance["requests_today"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == provider)
            .and_then(|r| r["requests"].as_u64())
            .unwrap_or(0)
    };
    for provider in ["Attio", "HubSpot", "Salesforce"] {
        assert!(
            requests(provider) > 0,
            "{provider}'s requests today: {glance:#}"
        );
    }
    let systems: Vec<&str> = glance["last_writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["object"] == "people")
        .filter_map(|w| w["system"].as_str())
        .collect();
    assert_eq!(systems, ["attio", "hubspot", "salesforce"], "{glance:#}");
}

/// Five people deleted in Attio: ten linked pairs, two propagated before the breaker opens,
/// eight held; one rejected (its CRM record stays), the rest approved all at once (removed).
async fn a_mass_delete_is_held_for_approval(rig: &Rig) {
    let attio = rig.attio();
    let wait = Duration::from_secs(60);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            rig.create_person(
                &format!("gone{i}@example.com"),
                "Gone",
                &format!("Person{i}"),
                "Temporary",
            )
            .await,
        );
    }
    for id in &ids {
        eventually("each person reaches both CRMs", wait, || async {
            let both =
                rig.hubspot_title(id).await.is_some() && rig.salesforce_title(id).await.is_some();
            both.then_some(())
        })
        .await;
    }
    for id in &ids {
        attio
            .call(
                reqwest::Method::DELETE,
                &format!("/v2/objects/people/records/{id}"),
                None,
            )
            .await;
    }
    let held = eventually("eight deletes held", wait, || async {
        let (_, held) = rig
            .admin(reqwest::Method::GET, "/v1/admin/tenants/acme/deletes", None)
            .await;
        (held.as_array().map(Vec::len) == Some(8)).then_some(held)
    })
    .await;
    let held = held.as_array().unwrap().clone();
    assert!(
        held[0]["reason"].as_str().unwrap().contains("breaker"),
        "{}",
        held[0]
    );
    let present = |id: String, system: String| async move {
        match system.as_str() {
            "hubspot" => rig.hubspot_title(&id).await.is_some(),
            _ => rig.salesforce_title(&id).await.is_some(),
        }
    };
    let mut gone = 0;
    for id in &ids {
        for system in ["hubspot", "salesforce"] {
            if !present(id.clone(), system.to_owned()).await {
                gone += 1;
            }
        }
    }
    assert_eq!(gone, 2, "two deletes propagated before the breaker opened");
    let rejected = &held[0];
    let (status, body) = rig
        .admin(
            reqwest::Method::POST,
            &format!(
                "/v1/admin/tenants/acme/deletes/{}/reject",
                rejected["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = rig
        .admin(
            reqwest::Method::POST,
            "/v1/admin/tenants/acme/delete-decisions",
            Some(json!({"decision": "approve", "all": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decided"], 7);
    for d in &held[1..] {
        let (id, system) = (d["record"].as_str().unwrap(), d["system"].as_str().unwrap());
        eventually(
            &format!("approved: {system} {id} removed"),
            wait,
            || async { (!present(id.to_owned(), system.to_owned()).await).then_some(()) },
        )
        .await;
    }
    assert!(
        present(
            rejected["record"].as_str().unwrap().to_owned(),
            rejected["system"].as_str().unwrap().to_owned()
        )
        .await,
        "rejected: the CRM keeps its record"
    );
    let (_, left) = rig
        .admin(reqwest::Method::GET, "/v1/admin/tenants/acme/deletes", None)
        .await;
    assert_eq!(left, json!([]));
}

/// Webhooks lost on both sides (the simulators' `drop_rate` at 1): an Attio edit, a HubSpot edit
/// and a person created in Attio go nowhere. A dry run reports them without writing; the pass
/// that follows repairs them, and its drift report is the dry run's.
async fn lost_webhooks_are_repaired_by_reconciliation(rig: &Rig) {
    let attio = rig.attio();
    let wait = Duration::from_secs(60);
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            rig.create_person(
                &format!("drift{i}@example.com"),
                "Drift",
                &format!("Person{i}"),
                "Steady",
            )
            .await,
        );
    }
    for id in &ids {
        eventually("each person reaches both CRMs", wait, || async {
            let hubspot = rig.hubspot_title(id).await == Some(FieldValue::text("Steady"));
            let salesforce = rig.salesforce_title(id).await == Some(FieldValue::text("Steady"));
            (hubspot && salesforce).then_some(())
        })
        .await;
    }
    // Quiet: every job of the creations (their later events, Salesforce's poll of the records
    // it just got) has run, so no job still to come re-reads the records edited below.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let faults = |url: String, body: &'static str| {
        let http = rig.http.clone();
        async move {
            let r = http
                .put(format!("{url}/_sim/faults"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    faults(rig.attio_url.clone(), r#"{"drop_rate": 1.0}"#).await;
    faults(rig.hubspot_url.clone(), r#"{"drop_rate": 1.0}"#).await;
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/people/records/{}", ids[0]),
            Some(json!({"data": {"values": {"job_title": "Lost in Attio"}}})),
        )
        .await;
    let edit = ExternalUpsert {
        key: ids[1].clone(),
        properties: [(prop("jobtitle"), FieldValue::text("Lost in HubSpot"))].into(),
    };
    rig.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    let newcomer = rig
        .create_person("drift-new@example.com", "Drift", "Newcomer", "Unseen")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        rig.hubspot_title(&ids[0]).await,
        Some(FieldValue::text("Steady")),
        "the Attio webhook was lost"
    );
    assert_eq!(
        rig.attio_title(&ids[1]).await.as_deref(),
        Some("Steady"),
        "the HubSpot webhook was lost"
    );
    assert_eq!(
        rig.hubspot_title(&newcomer).await,
        None,
        "the creation's webhook was lost"
    );
    faults(rig.attio_url.clone(), "{}").await;
    faults(rig.hubspot_url.clone(), "{}").await;

    let report = |dry_run: bool| async move {
        let (status, body) = rig
            .admin(
                reqwest::Method::POST,
                "/v1/admin/tenants/acme/reconciliations",
                Some(json!({"object": "people", "system": "hubspot", "dry_run": dry_run})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        eventually("the pass finishes", Duration::from_secs(60), || async {
            let (_, passes) = rig
                .admin(
                    reqwest::Method::GET,
                    "/v1/admin/tenants/acme/reconciliations",
                    None,
                )
                .await;
            passes
                .as_array()
                .unwrap()
                .iter()
                .find(|p| {
                    p["dry_run"] == dry_run && p["object"] == "people" && p["phase"] == "completed"
                })
                .map(|p| p["report"].clone())
        })
        .await
    };
    let dry = report(true).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["created"].clone(), dry["repaired"].clone()),
        (json!(1), json!(2)),
        "{dry:#}"
    );
    assert_eq!(dry["fields_to_attio"], json!({"job_title": 1}), "{dry:#}");
    assert_eq!(
        rig.hubspot_title(&ids[0]).await,
        Some(FieldValue::text("Steady")),
        "a dry run writes nothing"
    );
    let mut done = report(false).await;
    assert_eq!(done["dry_run"], false);
    done["dry_run"] = json!(true);
    assert_eq!(done, dry, "the pass did what the dry run said");
    assert_eq!(
        rig.hubspot_title(&ids[0]).await,
        Some(FieldValue::text("Lost in Attio"))
    );
    assert_eq!(
        rig.attio_title(&ids[1]).await.as_deref(),
        Some("Lost in HubSpot")
    );
    assert_eq!(
        rig.hubspot_title(&newcomer).await,
        Some(FieldValue::text("Unseen"))
    );
}

/// A contact created in HubSpot (by hand: no Attio id) becomes an Attio person matched by its
/// e-mail through Attio's assert, filled from HubSpot, and goes on to Salesforce; once.
async fn a_contact_born_in_hubspot_reaches_attio_and_salesforce(rig: &Rig) {
    let create = ExternalUpsert {
        key: "born@example.com".into(),
        properties: [
            (prop("email"), FieldValue::text("Born@Example.com")),
            (prop("lastname"), FieldValue::text("Newborn")),
            (prop("jobtitle"), FieldValue::text("Founder")),
        ]
        .into(),
    };
    rig.hubspot
        .upsert_batch("contacts", &prop("email"), &[create])
        .await
        .unwrap();
    let person = eventually(
        "the HubSpot-born contact becomes an Attio person",
        Duration::from_secs(60),
        || async {
            let found = rig
                .attio()
                .call(
                    reqwest::Method::POST,
                    "/v2/objects/people/records/query",
                    Some(json!({"filter": {"email_addresses": "born@example.com"}})),
                )
                .await;
            let people = found["data"].as_array().cloned().unwrap_or_default();
            let id = people.first()?["id"]["record_id"].as_str()?.to_owned();
            (people.len() == 1 && rig.attio_title(&id).await.as_deref() == Some("Founder"))
                .then_some(id)
        },
    )
    .await;
    eventually(
        "and reaches Salesforce",
        Duration::from_secs(60),
        || async {
            (rig.salesforce_title(&person).await == Some(FieldValue::text("Founder"))).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found = rig
        .attio()
        .call(
            reqwest::Method::POST,
            "/v2/objects/people/records/query",
            Some(json!({"filter": {"email_addresses": "born@example.com"}})),
        )
        .await;
    assert_eq!(
        found["data"].as_array().map(Vec::len),
        Some(1),
        "one person"
    );
}

const BETA_ATTIO: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
const BETA_HUBSPOT: &str = "pat-na1-e2e-beta";

/// Tenant `beta` beside `acme`, with mappings of its own through the admin API: a change with
/// five kinds of mistakes is refused with each named (checked against the simulators' live
/// schemas), the sound one is stored, and each tenant's people then reach its own HubSpot
/// account by its own mappings (acme's title → `jobtitle` by the workers' file, beta's →
/// `company`).
async fn two_tenants_sync_side_by_side_with_their_own_mappings(rig: &Rig) {
    let hubspot_url = rig.hubspot_url.clone();
    let (status, body) = rig
        .admin(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            Some(json!({
                "id": "beta",
                "name": "Beta",
                "attio": {"api_token": BETA_ATTIO},
                "crms": [
                    {"system": "hubspot", "settings": {"base_url": hubspot_url}, "secrets": {"token": BETA_HUBSPOT}},
                    {"system": "salesforce", "settings": {"login_url": rig.sf_url, "client_id": "ck-e2e"}, "secrets": {"client_secret": "cs-e2e"}},
                ],
                "register_webhook": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let wrong = json!({"targets": [
        {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"},
            {"attio": {"attribute": "favourite_colour"}, "external": "website", "rule": "latest_wins"},
        ]},
        {"attio_object": "people", "system": "salesforce", "external_object": "Contact", "id_property": "Attio_Id__c", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "Email", "rule": "latest_wins"},
            {"attio": {"attribute": "name", "part": "full_name"}, "external": "Name", "rule": "latest_wins"},
            {"attio": {"attribute": "job_title"}, "external": "Birthdate", "rule": "latest_wins"},
        ]},
        {"attio_object": "deals", "system": "hubspot", "external_object": "deals", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "name"}, "external": "dealname", "rule": "latest_wins"},
            {"attio": {"attribute": "stage"}, "external": "dealstage", "rule": "attio_to_external", "transform": {"type": "map_values", "values": {
                "Lead": "appointmentscheduled", "In Progress": "qualifiedtobuy", "Won 🎉": "closedwon", "Lost": "closedgone"}}},
        ]},
    ]});
    let (status, refused) = rig
        .admin(
            reqwest::Method::PUT,
            "/v1/admin/tenants/beta/mappings",
            Some(json!({"mappings": wrong, "changed_by": "e2e"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    let kinds: Vec<&str> = refused["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "unknown_attribute",
            "read_only",
            "type_mismatch",
            "required_unmapped",
            "missing_option"
        ],
        "{refused:#}"
    );
    let own = json!({"targets": [
        {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins", "transform": {"type": "lowercase"}},
            {"attio": {"attribute": "job_title"}, "external": "company", "rule": "latest_wins"},
        ]},
    ]});
    let (status, stored) = rig
        .admin(
            reqwest::Method::PUT,
            "/v1/admin/tenants/beta/mappings",
            Some(json!({"mappings": own, "changed_by": "e2e"})),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    // Workers read a tenant's mappings again within two seconds (a poll pass may have read
    // beta's, none yet, when it was added).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let beta_attio = Attio {
        http: rig.http.clone(),
        url: rig.attio_url.clone(),
    };
    let create = |token: &'static str, title: &'static str| {
        let http = beta_attio.http.clone();
        let url = beta_attio.url.clone();
        async move {
            let body = json!({"data": {"values": {
                "email_addresses": [format!("{title}@example.com")],
                "name": [{"first_name": "Side", "last_name": title, "full_name": format!("Side {title}")}],
                "job_title": title,
            }}});
            let r: Value = http
                .post(format!("{url}/v2/objects/people/records"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["data"]["id"]["record_id"].as_str().unwrap().to_owned()
        }
    };
    let (in_acme, in_beta) = (
        create(ATTIO_TOKEN, "acmetitle").await,
        create(BETA_ATTIO, "betatitle").await,
    );
    let beta_hubspot = HubSpotClient::new(
        HubSpotConfig::new(
            &hubspot_url,
            Secret::new(BETA_HUBSPOT).unwrap(),
            TenantId::parse("beta").unwrap(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let props = [prop("jobtitle"), prop("company"), prop("email")];
    let wait = Duration::from_secs(60);
    let beta_contact = eventually(
        "beta's person reaches beta's HubSpot by beta's mappings",
        wait,
        || async {
            beta_hubspot
                .get_by("contacts", &prop("attio_record_id"), &in_beta, &props)
                .await
                .ok()
                .filter(|r| {
                    r.properties.get(&prop("company")) == Some(&FieldValue::text("betatitle"))
                })
        },
    )
    .await;
    assert_eq!(
        beta_contact
            .properties
            .get(&prop("jobtitle"))
            .cloned()
            .unwrap_or_default(),
        FieldValue::Empty
    );
    let acme_contact = eventually(
        "acme's person reaches acme's HubSpot by the file's mappings",
        wait,
        || async {
            rig.hubspot
                .get_by("contacts", &prop("attio_record_id"), &in_acme, &props)
                .await
                .ok()
                .filter(|r| {
                    r.properties.get(&prop("jobtitle")) == Some(&FieldValue::text("acmetitle"))
                })
        },
    )
    .await;
    assert_eq!(
        acme_contact
            .properties
            .get(&prop("company"))
            .cloned()
            .unwrap_or_default(),
        FieldValue::Empty
    );
    assert!(
        rig.hubspot
            .get_by("contacts", &prop("attio_record_id"), &in_beta, &props)
            .await
            .is_err(),
        "nothing of beta's in acme's account"
    );
    assert!(
        beta_hubspot
            .get_by("contacts", &prop("attio_record_id"), &in_acme, &props)
            .await
            .is_err(),
        "nothing of acme's in beta's account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_works_on_postgres_processes() {
    let rig = rig(Deployment::Distributed, 8).await;
    conflicts_are_settled_each_way_without_echoes(&rig).await;
    a_mass_delete_is_held_for_approval(&rig).await;
    lost_webhooks_are_repaired_by_reconciliation(&rig).await;
    a_contact_born_in_hubspot_reaches_attio_and_salesforce(&rig).await;
    two_tenants_sync_side_by_side_with_their_own_mappings(&rig).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_works_on_embedded_sqlite() {
    let rig = rig(Deployment::Embedded, 8).await;
    conflicts_are_settled_each_way_without_echoes(&rig).await;
    a_mass_delete_is_held_for_approval(&rig).await;
    lost_webhooks_are_repaired_by_reconciliation(&rig).await;
    a_contact_born_in_hubspot_reaches_attio_and_salesforce(&rig).await;
    two_tenants_sync_side_by_side_with_their_own_mappings(&rig).await;
}
