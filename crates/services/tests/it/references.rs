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
