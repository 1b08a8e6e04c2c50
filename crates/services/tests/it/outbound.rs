//! The outbound sync: an Attio person reaches HubSpot and Salesforce, once, with only what
//! changed; external edits are left for the inbound sync, never overwritten or marked synced.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::{
    MemoryAuditLog, MemoryConflictStore, MemoryLinkStore, MemoryRateLimiter, MemoryWriteLedger,
    SystemClock,
};
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use async_trait::async_trait;
use domain::field::FieldValue;
use domain::ids::{AttributeSlug, ObjectRef, ObjectSlug, RecordId, SystemId, TenantId};
use domain::ledger::LedgerKey;
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::{
    AttioField, ExternalProperty, FieldKey, FieldMapping, ObjectMapping, SyncRule, Transform,
};
use domain::tenant::Secret;
use domain::value::AttributeType;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::AttioRecords;
use ports::crm::{ExternalActivities, ExternalCrm, ExternalUpsert};
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::{PortError, PortResult};
use ports::stores::{ConflictStore, LinkStore, WriteLedger};
use services::ServiceError;
use services::outbound::{Action, OutboundSync, SyncTarget};

pub struct Directory(pub TenantClients);

#[async_trait]
impl ClientDirectory for Directory {
    async fn clients(&self, _tenant: &TenantId) -> PortResult<TenantClients> {
        Ok(self.0.clone())
    }
}

pub fn prop(p: &str) -> ExternalProperty {
    ExternalProperty::parse(p).unwrap()
}

pub fn slug(s: &str) -> AttributeSlug {
    AttributeSlug::parse(s).unwrap()
}

pub fn field(attribute: &str, part: Option<&str>, external: &str, rule: SyncRule) -> FieldMapping {
    FieldMapping {
        attio: AttioField {
            attribute: slug(attribute),
            part: part.map(str::to_owned),
            all_values: false,
            references: None,
        },
        external: prop(external),
        rule,
        transform: if external.eq_ignore_ascii_case("email") {
            Transform::Lowercase
        } else {
            Transform::Identity
        },
    }
}

pub fn targets(title_rule: SyncRule) -> Vec<SyncTarget> {
    let people = ObjectSlug::parse("people").unwrap();
    let map = |system: &str, object: &str, names: [&str; 4], id: &str| SyncTarget {
        mapping: ObjectMapping::new(
            people.clone(),
            SystemId::parse(system).unwrap(),
            object,
            vec![
                field("email_addresses", None, names[0], SyncRule::LatestWins),
                field("name", Some("first_name"), names[1], SyncRule::LatestWins),
                field("name", Some("last_name"), names[2], SyncRule::LatestWins),
                field("job_title", None, names[3], title_rule),
            ],
        )
        .unwrap(),
        id_property: prop(id),
        create_with: Default::default(),
    };
    vec![
        map(
            "hubspot",
            "contacts",
            ["email", "firstname", "lastname", "jobtitle"],
            "attio_record_id",
        ),
        map(
            "salesforce",
            "Contact",
            ["Email", "FirstName", "LastName", "Title"],
            "Attio_Id__c",
        ),
    ]
}

pub struct World {
    pub _sims: (
        attio_sim::RunningSim,
        hubspot_sim::RunningSim,
        salesforce_sim::RunningSim,
    ),
    pub attio: AttioClient,
    pub hubspot: HubSpotClient,
    pub salesforce: SalesforceClient,
    pub ledger: Arc<MemoryWriteLedger>,
    pub conflicts: Arc<MemoryConflictStore>,
    pub audit: Arc<MemoryAuditLog>,
    pub sync: OutboundSync,
    pub tenant: TenantId,
    pub links: Arc<MemoryLinkStore>,
    pub directory: Arc<Directory>,
    pub title_rule: SyncRule,
}

impl World {
    /// Another outbound sync over the same clients and stores.
    pub fn outbound(&self) -> OutboundSync {
        OutboundSync::new(
            self.directory.clone(),
            self.links.clone(),
            self.ledger.clone(),
            self.conflicts.clone(),
            Arc::new(SystemClock),
            targets(self.title_rule),
        )
    }
}

pub async fn world(connect_salesforce: bool, title_rule: SyncRule) -> World {
    let addr = || "127.0.0.1:0".parse().unwrap();
    let a = attio_sim::start(addr(), attio_sim::SimConfig::default())
        .await
        .unwrap();
    let h = hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
        .await
        .unwrap();
    let s = salesforce_sim::start(addr(), salesforce_sim::SalesforceConfig::default())
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let limiter = Arc::new(MemoryRateLimiter::default());
    let attio = AttioClient::new(
        AttioConfig::new(
            &a.url(),
            Secret::new("a".repeat(64)).unwrap(),
            tenant.clone(),
        )
        .unwrap(),
        limiter.clone(),
    )
    .unwrap();
    let hubspot = HubSpotClient::new(
        HubSpotConfig::new(
            &h.url(),
            Secret::new("pat-na1-services").unwrap(),
            tenant.clone(),
        )
        .unwrap(),
        limiter,
    )
    .unwrap();
    let sf = salesforce_sim::SalesforceConfig::default();
    let salesforce = SalesforceClient::new(
        SalesforceConfig::new(
            &s.url(),
            SalesforceAuth::ClientCredentials {
                client_id: sf.app.client_id,
                client_secret: Secret::new(sf.app.client_secret).unwrap(),
            },
            tenant.clone(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut crms: BTreeMap<SystemId, Arc<dyn ExternalCrm>> = BTreeMap::new();
    let mut activities: BTreeMap<SystemId, Arc<dyn ExternalActivities>> = BTreeMap::new();
    let hs = Arc::new(hubspot.clone());
    crms.insert(SystemId::parse("hubspot").unwrap(), hs.clone());
    activities.insert(SystemId::parse("hubspot").unwrap(), hs);
    if connect_salesforce {
        let sf = Arc::new(salesforce.clone());
        crms.insert(SystemId::parse("salesforce").unwrap(), sf.clone());
        activities.insert(SystemId::parse("salesforce").unwrap(), sf);
    }
    let attio_arc = Arc::new(attio.clone());
    let clients = TenantClients {
        attio: attio_arc.clone(),
        schema: attio_arc.clone(),
        lists: attio_arc.clone(),
        notes: attio_arc.clone(),
        tasks: attio_arc.clone(),
        members: attio_arc,
        crms,
        activities,
    };
    let ledger = Arc::new(MemoryWriteLedger::default());
    let conflicts = Arc::new(MemoryConflictStore::default());
    let links = Arc::new(MemoryLinkStore::default());
    let audit = Arc::new(MemoryAuditLog::default());
    let directory = Arc::new(Directory(clients));
    let sync = OutboundSync::new(
        directory.clone(),
        links.clone(),
        ledger.clone(),
        conflicts.clone(),
        Arc::new(SystemClock),
        targets(title_rule),
    )
    .with_audit(audit.clone());
    World {
        _sims: (a, h, s),
        attio,
        hubspot,
        salesforce,
        ledger,
        conflicts,
        audit,
        sync,
        tenant,
        links,
        directory,
        title_rule,
    }
}

/// Salesforce REST, as a person's edits in Salesforce reach it.
pub async fn salesforce_rest(
    w: &World,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let sf = w._sims.2.url();
    let app = salesforce_sim::SalesforceConfig::default().app;
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{sf}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut req = http
        .request(method, format!("{sf}/services/data/v62.0{path}"))
        .bearer_auth(token["access_token"].as_str().unwrap());
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

pub fn people() -> ObjectSlug {
    ObjectSlug::parse("people").unwrap()
}

pub async fn create_person(
    w: &World,
    email: &str,
    first: &str,
    last: &str,
    title: &str,
) -> RecordId {
    let email =
        WriteValue::from_json(&AttributeType::EmailAddress, &serde_json::json!(email)).unwrap();
    let write = RecordWrite::new()
        .set(slug("email_addresses"), vec![email])
        .set(slug("name"), vec![WriteValue::personal_name(first, last)])
        .set(slug("job_title"), vec![WriteValue::Text(title.into())]);
    w.attio
        .create_record(&ObjectRef::from(people()), &write)
        .await
        .unwrap()
        .id
        .record_id
}

pub async fn set_title(w: &World, id: RecordId, title: &str) {
    let write = RecordWrite::new().set(slug("job_title"), vec![WriteValue::Text(title.into())]);
    w.attio
        .update_record(
            &ObjectRef::from(people()),
            id,
            &write,
            ports::attio::UpdateMode::Overwrite,
        )
        .await
        .unwrap();
}

pub async fn hubspot_contact(w: &World, id: RecordId) -> BTreeMap<ExternalProperty, FieldValue> {
    let wanted = [
        prop("email"),
        prop("firstname"),
        prop("lastname"),
        prop("jobtitle"),
    ];
    w.hubspot
        .get_by(
            "contacts",
            &prop("attio_record_id"),
            &id.to_string(),
            &wanted,
        )
        .await
        .unwrap()
        .properties
}

pub async fn salesforce_contact(w: &World, id: RecordId) -> BTreeMap<ExternalProperty, FieldValue> {
    let page = w
        .salesforce
        .query(&format!("SELECT Id, Email, FirstName, LastName, Title FROM Contact WHERE Attio_Id__c = '{id}'"), false, None)
        .await
        .unwrap();
    assert_eq!(
        page.records.len(),
        1,
        "exactly one Salesforce contact for the record"
    );
    page.records[0].properties.clone()
}

#[tokio::test]
async fn a_new_person_reaches_both_crms_and_a_second_run_writes_nothing() {
    let w = world(true, SyncRule::LatestWins).await;
    let id = create_person(&w, "Ada@Example.com", "Ada", "Lovelace", "Analyst").await;
    let reports = w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .iter()
            .all(|r| r.action == Action::Created && r.written.len() == 4),
        "{reports:?}"
    );

    let hs = hubspot_contact(&w, id).await;
    assert_eq!(
        hs[&prop("email")],
        FieldValue::text("ada@example.com"),
        "the mapping's transform applied"
    );
    assert_eq!(hs[&prop("lastname")], FieldValue::text("Lovelace"));
    let sf = salesforce_contact(&w, id).await;
    assert_eq!(sf[&prop("Title")], FieldValue::text("Analyst"));
    assert_eq!(sf[&prop("FirstName")], FieldValue::text("Ada"));

    // Echo suppression: what we wrote is in the ledger under the external record.
    let hs_id = reports[0].external_id.clone().unwrap();
    let key = LedgerKey {
        tenant: w.tenant.clone(),
        system: SystemId::parse("hubspot").unwrap(),
        object: "contacts".into(),
        record: hs_id.as_str().into(),
        field: domain::mapping::FieldKey::parse("job_title").unwrap(),
    };
    let now = time::OffsetDateTime::now_utc();
    assert!(
        w.ledger
            .is_echo(&key, &FieldValue::text("Analyst").value_hash(), now)
            .await
            .unwrap()
    );
    assert!(
        !w.ledger
            .is_echo(&key, &FieldValue::text("CEO").value_hash(), now)
            .await
            .unwrap()
    );

    let again = w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| r.action == Action::Unchanged && r.written.is_empty()),
        "{again:?}"
    );
    assert_eq!(again[0].external_id, Some(hs_id));
}

#[tokio::test]
async fn an_attio_change_writes_only_the_changed_field() {
    let w = world(true, SyncRule::LatestWins).await;
    let id = create_person(&w, "grace@example.com", "Grace", "Hopper", "Engineer").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    set_title(&w, id, "Rear Admiral").await;
    let reports = w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    for r in &reports {
        assert_eq!(r.action, Action::Updated);
        assert_eq!(
            r.written,
            vec![domain::mapping::FieldKey::parse("job_title").unwrap()]
        );
    }
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("jobtitle")],
        FieldValue::text("Rear Admiral")
    );
    assert_eq!(
        salesforce_contact(&w, id).await[&prop("Title")],
        FieldValue::text("Rear Admiral")
    );
}

#[tokio::test]
async fn an_external_edit_is_written_back_into_attio_once() {
    let w = world(false, SyncRule::LatestWins).await;
    let id = create_person(&w, "alan@example.com", "Alan", "Turing", "Mathematician").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    // Someone edits the first name and the title in HubSpot.
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([
            (prop("firstname"), FieldValue::text("Al")),
            (prop("jobtitle"), FieldValue::text("Codebreaker")),
        ]),
    };
    w.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    let mut back = r.written_to_attio.clone();
    back.sort();
    assert_eq!(
        back,
        vec![
            FieldKey::parse("job_title").unwrap(),
            FieldKey::parse("name.first_name").unwrap()
        ]
    );
    assert!(
        r.written.is_empty() && r.deferred_inbound.is_empty(),
        "{r:?}"
    );
    let record = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let name = record.current("name").next().unwrap();
    match &name.data {
        domain::value::ValueData::PersonalName(n) => {
            assert_eq!(
                (n.first_name.as_deref(), n.last_name.as_deref()),
                (Some("Al"), Some("Turing")),
                "the other part is kept"
            );
        }
        other => panic!("{other:?}"),
    }
    // In step now: the next run writes nothing either way.
    let again = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert!(
        again.written.is_empty() && again.written_to_attio.is_empty(),
        "{again:?}"
    );
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("firstname")],
        FieldValue::text("Al")
    );
}

/// Attio's addresses, first (the primary) first.
async fn attio_emails(w: &World, id: RecordId) -> Vec<String> {
    let r = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let values: Vec<_> = r.current("email_addresses").cloned().collect();
    FieldValue::ordered_texts(&values, None)
}

#[tokio::test]
async fn a_crms_email_becomes_the_primary_address_and_the_others_stay() {
    let w = world(false, SyncRule::LatestWins).await;
    // Attio lists values newest first: the address added last is the primary.
    let id = create_person(&w, "ada@work.example", "Ada", "Lovelace", "Analyst").await;
    let both: Vec<WriteValue> = ["ada@work.example", "ada@example.com"]
        .iter()
        .map(|e| {
            WriteValue::from_json(&AttributeType::EmailAddress, &serde_json::json!(e)).unwrap()
        })
        .collect();
    w.attio
        .update_record(
            &ObjectRef::from(people()),
            id,
            &RecordWrite::new().set(slug("email_addresses"), both),
            ports::attio::UpdateMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!(
        attio_emails(&w, id).await,
        ["ada@example.com", "ada@work.example"]
    );
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("email")],
        FieldValue::text("ada@example.com"),
        "the primary goes out"
    );
    let edit = |email: &str| ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([(prop("email"), FieldValue::text(email))]),
    };
    w.hubspot
        .upsert_batch(
            "contacts",
            &prop("attio_record_id"),
            &[edit("countess@example.com")],
        )
        .await
        .unwrap();
    let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert_eq!(
        r.written_to_attio,
        vec![FieldKey::parse("email_addresses").unwrap()]
    );
    assert_eq!(
        attio_emails(&w, id).await,
        ["countess@example.com", "ada@work.example"],
        "the CRM's address is the new primary; the other stays"
    );
    let again = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert!(
        again.written.is_empty() && again.written_to_attio.is_empty(),
        "in step: {again:?}"
    );

    // A value Attio cannot take is deferred: reported on every run, never marked synced.
    w.hubspot
        .upsert_batch(
            "contacts",
            &prop("attio_record_id"),
            &[edit("not an address")],
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
        assert_eq!(
            r.deferred_inbound,
            vec![FieldKey::parse("email_addresses").unwrap()],
            "still pending on every run"
        );
        assert!(r.written_to_attio.is_empty());
    }
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("email")],
        FieldValue::text("not an address"),
        "not overwritten"
    );
}

#[tokio::test]
async fn changes_on_both_sides_under_a_manual_rule_become_a_conflict() {
    let w = world(false, SyncRule::Manual).await;
    let id = create_person(&w, "kay@example.com", "Katherine", "Johnson", "Computer").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([(prop("jobtitle"), FieldValue::text("Physicist"))]),
    };
    w.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    set_title(&w, id, "Mathematician").await;
    let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert_eq!(
        r.conflicts,
        vec![domain::mapping::FieldKey::parse("job_title").unwrap()]
    );
    assert!(r.written.is_empty());
    let open = w
        .conflicts
        .open(&w.tenant, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0].conflict.external.value,
        FieldValue::text("Physicist")
    );
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("jobtitle")],
        FieldValue::text("Physicist"),
        "a person decides"
    );
}

#[tokio::test]
async fn unconnected_systems_are_reported_and_refused_records_are_typed_errors() {
    let w = world(false, SyncRule::LatestWins).await;
    let id = create_person(&w, "edsger@example.com", "Edsger", "Dijkstra", "Professor").await;
    let reports = w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    assert_eq!(reports[1].action, Action::NotConnected);

    // Salesforce requires LastName: a person without one is refused, not retried.
    let w = world(true, SyncRule::LatestWins).await;
    let id = create_person(&w, "mononym@example.com", "Prince", "", "Musician").await;
    match w.sync.sync_record(&w.tenant, &people(), id).await {
        Err(e @ ServiceError::RecordRejected { .. }) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("REQUIRED_FIELD_MISSING"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A record Attio no longer has is a typed NotFound.
    let gone = w
        .sync
        .sync_record(&w.tenant, &people(), RecordId::from_uuid(uuid_like()))
        .await;
    assert!(
        matches!(gone, Err(ServiceError::Port(PortError::NotFound(_)))),
        "{gone:?}"
    );
}

/// What another worker does meanwhile.
pub type Race = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A link store where another worker's work (`race`) runs just before the first save, as when
/// two workers handle two deliveries of one record at once.
pub struct RacedLinks {
    pub inner: Arc<MemoryLinkStore>,
    pub race: std::sync::Mutex<Option<Race>>,
}

impl RacedLinks {
    pub fn new(inner: Arc<MemoryLinkStore>, race: Race) -> Arc<Self> {
        Arc::new(Self {
            inner,
            race: std::sync::Mutex::new(Some(race)),
        })
    }

    pub fn raced(&self) -> bool {
        self.race.lock().unwrap().is_none()
    }
}

#[async_trait]
impl LinkStore for RacedLinks {
    async fn find(&self, t: &TenantId, l: &LinkLookup) -> PortResult<Option<IdentityLink>> {
        self.inner.find(t, l).await
    }
    async fn links_of(
        &self,
        t: &TenantId,
        o: &ObjectSlug,
        r: RecordId,
    ) -> PortResult<Vec<IdentityLink>> {
        self.inner.links_of(t, o, r).await
    }
    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink> {
        let race = self.race.lock().unwrap().take();
        if let Some(race) = race {
            race.await;
        }
        self.inner.save(link).await
    }
    async fn repoint(
        &self,
        t: &TenantId,
        o: &ObjectSlug,
        from: RecordId,
        to: RecordId,
    ) -> PortResult<u64> {
        self.inner.repoint(t, o, from, to).await
    }
    async fn delete(&self, t: &TenantId, l: &LinkLookup) -> PortResult<()> {
        self.inner.delete(t, l).await
    }
    async fn count(&self, t: &TenantId) -> PortResult<u64> {
        self.inner.count(t).await
    }
}

#[tokio::test]
async fn a_link_saved_by_a_racing_worker_is_retried_not_dead_lettered() {
    let w = world(true, SyncRule::LatestWins).await;
    let id = create_person(&w, "grace@example.com", "Grace", "Hopper", "Admiral").await;
    // The other worker syncs the same record to both CRMs between our read and our link save.
    let (other, tenant) = (w.outbound(), w.tenant.clone());
    let links = RacedLinks::new(
        w.links.clone(),
        Box::pin(async move {
            other.sync_record(&tenant, &people(), id).await.unwrap();
        }),
    );
    let sync = OutboundSync::new(
        w.directory.clone(),
        links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(SystemClock),
        targets(w.title_rule),
    );
    match sync.sync_record(&w.tenant, &people(), id).await {
        Err(e @ ServiceError::Port(PortError::Stale(_))) => {
            assert!(e.is_retryable(), "a lost race must be retried: {e}");
        }
        other => panic!("expected a stale link save, got {other:?}"),
    }
    assert!(links.raced());
    // The retry re-reads the links the other worker saved: nothing left to write anywhere, and
    // each CRM holds one contact (the upsert is by the Attio id), not two.
    let retry = sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    assert!(
        retry
            .iter()
            .all(|r| r.action == Action::Unchanged && r.written.is_empty()),
        "{retry:?}"
    );
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("jobtitle")],
        FieldValue::text("Admiral")
    );
    assert_eq!(
        salesforce_contact(&w, id).await[&prop("Title")],
        FieldValue::text("Admiral")
    );
}

fn uuid_like() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0)
}

/// Salesforce requires an Opportunity's `CloseDate`, which Attio's deals lack: `create_with`
/// writes it when the sync creates the record, and never again.
#[tokio::test]
async fn create_with_fills_a_required_property_on_creation_only() {
    let w = world(true, SyncRule::LatestWins).await;
    let deals = ObjectSlug::parse("deals").unwrap();
    let stage_map = serde_json::from_value(serde_json::json!({
        "type": "map_values", "values": {"Lead": "Prospecting", "Won 🎉": "Closed Won"}
    }))
    .unwrap();
    let mapping = ObjectMapping::new(
        deals.clone(),
        SystemId::parse("salesforce").unwrap(),
        "Opportunity",
        vec![
            field("name", None, "Name", SyncRule::LatestWins),
            FieldMapping {
                transform: stage_map,
                ..field("stage", None, "StageName", SyncRule::AttioToExternal)
            },
        ],
    )
    .unwrap();
    let target = |create_with: &[(&str, &str)]| SyncTarget {
        mapping: mapping.clone(),
        id_property: prop("Attio_Id__c"),
        create_with: create_with
            .iter()
            .map(|(p, v)| (prop(p), FieldValue::text(*v)))
            .collect(),
    };
    let sync = |t: SyncTarget| {
        OutboundSync::new(
            w.directory.clone(),
            w.links.clone(),
            w.ledger.clone(),
            w.conflicts.clone(),
            Arc::new(SystemClock),
            vec![t],
        )
    };
    let attio_url = w._sims.0.url();
    let http = reqwest::Client::new();
    let deal = http
        .post(format!("{attio_url}/v2/objects/deals/records"))
        .bearer_auth("a".repeat(64))
        .json(&serde_json::json!({"data": {"values": {"name": "Globex renewal", "stage": "Lead"}}}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = RecordId::parse(deal["data"]["id"]["record_id"].as_str().unwrap()).unwrap();

    let refused = sync(target(&[])).sync_record(&w.tenant, &deals, id).await;
    assert!(
        matches!(&refused, Err(ServiceError::RecordRejected { reason, .. }) if reason.contains("CloseDate")),
        "without it Salesforce refuses the Opportunity: {refused:?}"
    );
    let with = sync(target(&[("CloseDate", "2027-03-31")]));
    let reports = with.sync_record(&w.tenant, &deals, id).await.unwrap();
    assert_eq!(reports[0].action, Action::Created, "{reports:?}");
    let opportunity = || async {
        w.salesforce
            .query(
                &format!("SELECT Id, Name, StageName, CloseDate FROM Opportunity WHERE Attio_Id__c = '{id}'"),
                false,
                None,
            )
            .await
            .unwrap()
            .records
    };
    let rows = opportunity().await;
    assert_eq!(rows.len(), 1);
    let props = &rows[0].properties;
    assert_eq!(props[&prop("CloseDate")], FieldValue::text("2027-03-31"));
    assert_eq!(props[&prop("StageName")], FieldValue::text("Prospecting"));

    // A person moves the close date in Salesforce; a later sync of a rename leaves it.
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: [(prop("CloseDate"), FieldValue::text("2027-06-30"))].into(),
    };
    w.salesforce
        .upsert_batch("Opportunity", &prop("Attio_Id__c"), &[edit])
        .await
        .unwrap();
    http.patch(format!("{attio_url}/v2/objects/deals/records/{id}"))
        .bearer_auth("a".repeat(64))
        .json(&serde_json::json!({"data": {"values": {"name": "Globex renewal 2027"}}}))
        .send()
        .await
        .unwrap();
    let reports = with.sync_record(&w.tenant, &deals, id).await.unwrap();
    assert_eq!(reports[0].action, Action::Updated, "{reports:?}");
    let rows = opportunity().await;
    assert_eq!(
        rows[0].properties[&prop("Name")],
        FieldValue::text("Globex renewal 2027")
    );
    assert_eq!(
        rows[0].properties[&prop("CloseDate")],
        FieldValue::text("2027-06-30"),
        "written on creation only"
    );
}
