//! References both ways: a person's company (Attio's `company` reference ↔ HubSpot's
//! contact–company association ↔ Salesforce's `Contact.AccountId`), kept in step as it changes on
//! each side, and a reference that waits for its target to be linked.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_memory::SystemClock;
use domain::field::FieldValue;
use domain::ids::{ExternalId, ObjectRef, ObjectSlug, RecordId, SystemId};
use domain::link::LinkLookup;
use domain::mapping::{FieldMapping, ObjectMapping, SyncRule};
use domain::value::ValueData;
use domain::write::{RecordTarget, RecordWrite, WriteValue};
use ports::attio::{AttioRecords, UpdateMode};
use ports::crm::ExternalCrm;
use ports::stores::LinkStore;
use services::ServiceError;
use services::outbound::{Action, OutboundSync, SyncTarget};

use crate::outbound::{World, field, prop, slug, world};

fn companies() -> ObjectSlug {
    ObjectSlug::parse("companies").unwrap()
}

fn people() -> ObjectSlug {
    ObjectSlug::parse("people").unwrap()
}

/// People with their company, and companies, mapped to both CRMs.
fn targets() -> Vec<SyncTarget> {
    let company_ref = |external: &str| FieldMapping {
        attio: domain::mapping::AttioField {
            references: Some(companies()),
            ..field("company", None, external, SyncRule::LatestWins).attio
        },
        ..field("company", None, external, SyncRule::LatestWins)
    };
    let target = |object: ObjectSlug, system: &str, external: &str, fields, id: &str| SyncTarget {
        mapping: ObjectMapping::new(object, SystemId::parse(system).unwrap(), external, fields)
            .unwrap(),
        id_property: prop(id),
        create_with: BTreeMap::new(),
    };
    vec![
        target(
            companies(),
            "hubspot",
            "companies",
            vec![field("name", None, "name", SyncRule::LatestWins)],
            "attio_record_id",
        ),
        target(
            people(),
            "hubspot",
            "contacts",
            vec![
                field("name", Some("last_name"), "lastname", SyncRule::LatestWins),
                company_ref("associations.companies"),
            ],
            "attio_record_id",
        ),
        target(
            companies(),
            "salesforce",
            "Account",
            vec![field("name", None, "Name", SyncRule::LatestWins)],
            "Attio_Id__c",
        ),
        target(
            people(),
            "salesforce",
            "Contact",
            vec![
                field("name", Some("last_name"), "LastName", SyncRule::LatestWins),
                company_ref("AccountId"),
            ],
            "Attio_Id__c",
        ),
    ]
}

fn sync(w: &World) -> OutboundSync {
    OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(SystemClock),
        targets(),
    )
}

async fn create_company(w: &World, name: &str) -> RecordId {
    let write = RecordWrite::new().set(slug("name"), vec![WriteValue::Text(name.into())]);
    w.attio
        .create_record(&ObjectRef::from(companies()), &write)
        .await
        .unwrap()
        .id
        .record_id
}

fn reference(company: Option<RecordId>) -> Vec<WriteValue> {
    company
        .map(|id| WriteValue::RecordReference {
            target_object: companies(),
            target: RecordTarget::Id(id),
        })
        .into_iter()
        .collect()
}

async fn set_company(w: &World, person: RecordId, company: Option<RecordId>) {
    let write = RecordWrite::new().set(slug("company"), reference(company));
    w.attio
        .update_record(
            &ObjectRef::from(people()),
            person,
            &write,
            UpdateMode::Overwrite,
        )
        .await
        .unwrap();
}

/// The company Attio's person refers to now.
async fn attio_company(w: &World, person: RecordId) -> Option<RecordId> {
    let record = w
        .attio
        .get_record(&ObjectRef::from(people()), person)
        .await
        .unwrap();
    record.current("company").find_map(|v| match &v.data {
        ValueData::RecordReference(r) => Some(r.target_record_id),
        _ => None,
    })
}

async fn linked(w: &World, object: ObjectSlug, record: RecordId, system: &str) -> ExternalId {
    let lookup = LinkLookup::Attio {
        object,
        record,
        system: SystemId::parse(system).unwrap(),
    };
    w.links
        .find(&w.tenant, &lookup)
        .await
        .unwrap()
        .unwrap()
        .external_id
}

/// Where each CRM's record of the person points: HubSpot's associated companies, Salesforce's
/// `AccountId`.
async fn crm_companies(w: &World, person: RecordId) -> (Vec<ExternalId>, FieldValue) {
    let hs = linked(w, people(), person, "hubspot").await;
    let sf = linked(w, people(), person, "salesforce").await;
    let associated = w
        .hubspot
        .associations("contacts", &hs, "companies")
        .await
        .unwrap();
    let account = w
        .salesforce
        .get("Contact", &sf, &[prop("AccountId")])
        .await
        .unwrap()
        .properties[&prop("AccountId")]
        .clone();
    (associated, account)
}

#[tokio::test]
async fn a_persons_company_follows_each_side_and_waits_for_its_target() {
    let w = world(true, SyncRule::LatestWins).await;
    let sync = sync(&w);
    let (acme, globex) = (
        create_company(&w, "Acme").await,
        create_company(&w, "Globex").await,
    );
    let name = WriteValue::personal_name("Ada", "Lovelace");
    let person = w
        .attio
        .create_record(
            &ObjectRef::from(people()),
            &RecordWrite::new()
                .set(slug("name"), vec![name])
                .set(slug("company"), reference(Some(acme))),
        )
        .await
        .unwrap()
        .id
        .record_id;

    // The company is not linked yet: the person syncs, its reference waits.
    let e = sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::NotReady(m) if m.contains("company")),
        "{e}"
    );
    assert!(e.is_retryable());
    let (associated, account) = crm_companies(&w, person).await;
    assert!(
        associated.is_empty() && account.is_empty(),
        "{associated:?} {account:?}"
    );

    for c in [acme, globex] {
        sync.sync_record(&w.tenant, &companies(), c).await.unwrap();
    }
    let reports = sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    assert!(
        reports.iter().all(|r| r.action == Action::Updated),
        "{reports:?}"
    );
    let acme_hs = linked(&w, companies(), acme, "hubspot").await;
    let acme_sf = linked(&w, companies(), acme, "salesforce").await;
    let (globex_hs, globex_sf) = (
        linked(&w, companies(), globex, "hubspot").await,
        linked(&w, companies(), globex, "salesforce").await,
    );
    assert_eq!(
        crm_companies(&w, person).await,
        (vec![acme_hs.clone()], FieldValue::text(acme_sf.as_str()))
    );

    // In HubSpot, the contact moves to Globex: Attio follows, and Salesforce after it.
    let contact = linked(&w, people(), person, "hubspot").await;
    w.hubspot
        .dissociate("contacts", &contact, "companies", &acme_hs)
        .await
        .unwrap();
    w.hubspot
        .associate("contacts", &contact, "companies", &globex_hs)
        .await
        .unwrap();
    sync.sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    assert_eq!(attio_company(&w, person).await, Some(globex));
    assert_eq!(
        crm_companies(&w, person).await,
        (
            vec![globex_hs.clone()],
            FieldValue::text(globex_sf.as_str())
        )
    );

    // In Salesforce, back to Acme: Attio follows, and HubSpot after it.
    let sf_contact = linked(&w, people(), person, "salesforce").await;
    let back = BTreeMap::from([(prop("AccountId"), FieldValue::text(acme_sf.as_str()))]);
    w.salesforce
        .update("Contact", &sf_contact, &back)
        .await
        .unwrap();
    sync.sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    assert_eq!(attio_company(&w, person).await, Some(acme));
    assert_eq!(
        crm_companies(&w, person).await,
        (vec![acme_hs.clone()], FieldValue::text(acme_sf.as_str()))
    );

    // In Attio, no company: both CRMs let go.
    set_company(&w, person, None).await;
    sync.sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let (associated, account) = crm_companies(&w, person).await;
    assert!(
        associated.is_empty() && account.is_empty(),
        "{associated:?} {account:?}"
    );
    assert_eq!(attio_company(&w, person).await, None);

    // Quiet: nothing more to write anywhere.
    let reports = sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    assert!(
        reports
            .iter()
            .all(|r| r.action == Action::Unchanged && r.written_to_attio.is_empty()),
        "{reports:?}"
    );
}

/// A CRM record that points at a company nobody linked: the reference waits (and says so)
/// rather than writing a wrong or empty company into Attio.
#[tokio::test]
async fn a_reference_to_an_unlinked_crm_record_waits() {
    let w = world(true, SyncRule::LatestWins).await;
    let sync = sync(&w);
    let acme = create_company(&w, "Acme").await;
    let person = w
        .attio
        .create_record(
            &ObjectRef::from(people()),
            &RecordWrite::new()
                .set(
                    slug("name"),
                    vec![WriteValue::personal_name("Ada", "Lovelace")],
                )
                .set(slug("company"), reference(Some(acme))),
        )
        .await
        .unwrap()
        .id
        .record_id;
    sync.sync_record(&w.tenant, &companies(), acme)
        .await
        .unwrap();
    sync.sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    // A company made in HubSpot only, and the contact moved to it there.
    let made = w
        .hubspot
        .upsert_batch(
            "companies",
            &prop("attio_record_id"),
            &[ports::crm::ExternalUpsert {
                key: "made-in-hubspot".into(),
                properties: BTreeMap::from([(prop("name"), FieldValue::text("Initech"))]),
            }],
        )
        .await
        .unwrap();
    let ports::crm::RecordOutcome::Created(stranger) = &made[0] else {
        panic!("{made:?}")
    };
    let contact = linked(&w, people(), person, "hubspot").await;
    let acme_hs = linked(&w, companies(), acme, "hubspot").await;
    w.hubspot
        .dissociate("contacts", &contact, "companies", &acme_hs)
        .await
        .unwrap();
    w.hubspot
        .associate("contacts", &contact, "companies", stranger)
        .await
        .unwrap();
    let e = sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::NotReady(m) if m.contains("company (hubspot)")),
        "{e}"
    );
    // Attio still names Acme; nothing was marked synced.
    assert_eq!(attio_company(&w, person).await, Some(acme));
    let e = sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::NotReady(_)), "{e}");
}

/// A deal's people in Salesforce are its contact roles (`OpportunityContactRole` rows, the
/// pseudo-field `OpportunityContactRole.ContactId`): Attio's `associated_people` set the rows
/// exactly, and a role added or removed in Salesforce — found by a polling pass, though a role's
/// change does not touch its opportunity — comes back into Attio; then nothing more is written.
#[tokio::test]
async fn a_deals_people_follow_salesforce_contact_roles() {
    let w = world(true, SyncRule::LatestWins).await;
    let deals = ObjectSlug::parse("deals").unwrap();
    let roles = "OpportunityContactRole.ContactId";
    let people_ref = FieldMapping {
        attio: domain::mapping::AttioField {
            references: Some(people()),
            ..field("associated_people", None, roles, SyncRule::LatestWins).attio
        },
        ..field("associated_people", None, roles, SyncRule::LatestWins)
    };
    let targets = vec![
        SyncTarget {
            mapping: ObjectMapping::new(
                people(),
                SystemId::parse("salesforce").unwrap(),
                "Contact",
                vec![field(
                    "name",
                    Some("last_name"),
                    "LastName",
                    SyncRule::LatestWins,
                )],
            )
            .unwrap(),
            id_property: prop("Attio_Id__c"),
            create_with: BTreeMap::new(),
        },
        SyncTarget {
            mapping: ObjectMapping::new(
                deals.clone(),
                SystemId::parse("salesforce").unwrap(),
                "Opportunity",
                vec![
                    field("name", None, "Name", SyncRule::LatestWins),
                    people_ref,
                ],
            )
            .unwrap(),
            id_property: prop("Attio_Id__c"),
            create_with: BTreeMap::from([
                (prop("CloseDate"), FieldValue::text("2027-03-31")),
                (prop("StageName"), FieldValue::text("Prospecting")),
            ]),
        },
    ];
    let sync = Arc::new(OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(SystemClock),
        targets.clone(),
    ));
    let person = |last: &'static str| {
        let w = &w;
        async move {
            let write =
                RecordWrite::new().set(slug("name"), vec![WriteValue::personal_name("A", last)]);
            w.attio
                .create_record(&ObjectRef::from(people()), &write)
                .await
                .unwrap()
                .id
                .record_id
        }
    };
    let (ada, grace) = (person("Lovelace").await, person("Hopper").await);
    for p in [ada, grace] {
        sync.sync_record(&w.tenant, &people(), p).await.unwrap();
    }
    let (ada_sf, grace_sf) = (
        linked(&w, people(), ada, "salesforce").await,
        linked(&w, people(), grace, "salesforce").await,
    );
    let set_people = |deal: Option<RecordId>, who: Vec<RecordId>| {
        let (w, deals) = (&w, deals.clone());
        async move {
            let refs = who
                .into_iter()
                .map(|p| WriteValue::RecordReference {
                    target_object: people(),
                    target: RecordTarget::Id(p),
                })
                .collect();
            let write = RecordWrite::new().set(slug("associated_people"), refs);
            match deal {
                None => {
                    let write = write
                        .set(slug("name"), vec![WriteValue::Text("Big deal".into())])
                        .set(slug("stage"), vec![WriteValue::Status("Lead".into())]);
                    w.attio
                        .create_record(&ObjectRef::from(deals), &write)
                        .await
                        .unwrap()
                        .id
                        .record_id
                }
                Some(id) => {
                    w.attio
                        .update_record(&ObjectRef::from(deals), id, &write, UpdateMode::Overwrite)
                        .await
                        .unwrap();
                    id
                }
            }
        }
    };
    let in_sf = |deal: RecordId| {
        let (w, deals) = (&w, deals.clone());
        async move {
            let opp = linked(w, deals, deal, "salesforce").await;
            w.salesforce
                .get("Opportunity", &opp, &[prop(roles)])
                .await
                .unwrap()
                .properties[&prop(roles)]
                .clone()
        }
    };
    let ids = |v: &[&ExternalId]| {
        let mut v: Vec<String> = v.iter().map(|i| i.as_str().to_owned()).collect();
        v.sort();
        FieldValue::List(v).normalized()
    };

    // Attio → Salesforce: the rows follow the people, exactly.
    let deal = set_people(None, vec![ada]).await;
    sync.sync_record(&w.tenant, &deals, deal).await.unwrap();
    assert_eq!(in_sf(deal).await, ids(&[&ada_sf]));
    set_people(Some(deal), vec![ada, grace]).await;
    sync.sync_record(&w.tenant, &deals, deal).await.unwrap();
    assert_eq!(in_sf(deal).await, ids(&[&ada_sf, &grace_sf]));

    // Salesforce → Attio: Ada's role removed there, found by a polling pass.
    let opp = linked(&w, deals.clone(), deal, "salesforce").await;
    let rows = w
        .salesforce
        .query(
            &format!(
                "SELECT Id FROM OpportunityContactRole WHERE OpportunityId = '{}' AND ContactId = '{}'",
                opp.as_str(),
                ada_sf.as_str()
            ),
            false,
            None,
        )
        .await
        .unwrap()
        .records;
    let r = crate::outbound::salesforce_rest(
        &w,
        reqwest::Method::DELETE,
        &format!("/sobjects/OpportunityContactRole/{}", rows[0].id.as_str()),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let poller = services::poll::ChangePoller::new(
        SystemId::parse("salesforce").unwrap(),
        w.directory.clone(),
        Arc::new(adapter_memory::MemoryTenantStore::default()),
        w.links.clone(),
        sync.clone(),
        Arc::new(SystemClock),
        targets,
    );
    poller.poll_tenant(&w.tenant).await.unwrap();
    let attio_people = |deal: RecordId| {
        let (w, deals) = (&w, deals.clone());
        async move {
            let r = w
                .attio
                .get_record(&ObjectRef::from(deals), deal)
                .await
                .unwrap();
            let mut v: Vec<RecordId> = r
                .current("associated_people")
                .filter_map(|v| match &v.data {
                    ValueData::RecordReference(r) => Some(r.target_record_id),
                    _ => None,
                })
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(attio_people(deal).await, [grace]);
    // And nothing more to write, on either side.
    let again = sync.sync_record(&w.tenant, &deals, deal).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| r.written.is_empty() && r.written_to_attio.is_empty()),
        "{again:?}"
    );
}
