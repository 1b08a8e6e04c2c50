//! Mappings checked against the live schemas of attio-sim, hubspot-sim and salesforce-sim: a
//! sound document has no problem; one with five kinds of mistakes has each named, with its
//! mapping and field; and the catalog serves a tenant's stored mappings, else the defaults.

use std::sync::Arc;

use adapter_memory::MemoryMappingStore;
use domain::ids::{SystemId, TenantId};
use domain::mapping::SyncRule;
use domain::mapping_doc::{MappingDocument, ProblemKind};
use ports::directory::ClientDirectory;
use ports::stores::MappingStore;
use serde_json::json;
use services::mappings::{MappingCatalog, validate};

use crate::outbound::{targets, world};

fn system_of(name: &str) -> Option<SystemId> {
    ["hubspot", "salesforce"]
        .contains(&name)
        .then(|| SystemId::parse(name).unwrap())
}

fn doc(v: serde_json::Value) -> MappingDocument {
    serde_json::from_value(v).unwrap()
}

fn sound() -> MappingDocument {
    doc(json!({"targets": [
        {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins", "transform": {"type": "lowercase"}},
            {"attio": {"attribute": "name", "part": "first_name"}, "external": "firstname", "rule": "latest_wins"},
            {"attio": {"attribute": "job_title"}, "external": "jobtitle", "rule": "manual"},
        ]},
        {"attio_object": "people", "system": "salesforce", "external_object": "Contact", "id_property": "Attio_Id__c", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "Email", "rule": "latest_wins"},
            {"attio": {"attribute": "name", "part": "last_name"}, "external": "LastName", "rule": "latest_wins"},
        ]},
        {"attio_object": "deals", "system": "hubspot", "external_object": "deals", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "name"}, "external": "dealname", "rule": "latest_wins"},
            {"attio": {"attribute": "stage"}, "external": "dealstage", "rule": "attio_to_external", "transform": {"type": "map_values", "values": {
                "Lead": "appointmentscheduled", "In Progress": "qualifiedtobuy", "Won 🎉": "closedwon", "Lost": "closedlost"}}},
        ]},
    ]}))
}

#[tokio::test]
async fn a_sound_mapping_has_no_problem_and_five_mistakes_are_each_named() {
    let w = world(true, SyncRule::LatestWins).await;
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    let problems = validate(&sound(), &clients, system_of).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    let wrong = doc(json!({"targets": [
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
    ]}));
    let problems = validate(&wrong, &clients, system_of).await.unwrap();
    let found: Vec<(usize, Option<&str>, ProblemKind)> = problems
        .iter()
        .map(|p| (p.target, p.field.as_deref(), p.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            (0, Some("favourite_colour"), ProblemKind::UnknownAttribute),
            (1, Some("name.full_name"), ProblemKind::ReadOnly),
            (1, Some("job_title"), ProblemKind::TypeMismatch),
            (1, Some("LastName"), ProblemKind::RequiredUnmapped),
            (2, Some("stage"), ProblemKind::MissingOption),
        ],
        "{problems:#?}"
    );
    for p in &problems {
        assert!(!p.message.is_empty());
    }
    assert!(
        problems[4].message.contains("closedgone"),
        "{}",
        problems[4].message
    );
}

#[tokio::test]
async fn static_mistakes_are_listed_together_before_any_provider_is_asked() {
    let w = world(true, SyncRule::LatestWins).await;
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    let wrong = doc(json!({"targets": [
        {"attio_object": "People!", "system": "pipedrive", "external_object": "persons", "id_property": "id", "fields": []},
        {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "on_delete": "shred", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"},
        ]},
        {"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"},
            {"attio": {"attribute": "job_title"}, "external": "email", "rule": "latest_wins"},
        ]},
    ]}));
    let problems = validate(&wrong, &clients, system_of).await.unwrap();
    let targets: Vec<usize> = problems.iter().map(|p| p.target).collect();
    assert_eq!(targets, vec![0, 0, 1, 2], "{problems:#?}");
    assert!(problems.iter().all(|p| p.kind == ProblemKind::Invalid));
}

#[tokio::test]
async fn the_catalog_serves_stored_mappings_else_the_defaults() {
    let store = Arc::new(MemoryMappingStore::default());
    let catalog = MappingCatalog::stored(
        targets(SyncRule::LatestWins),
        store.clone(),
        system_of,
        std::time::Duration::ZERO,
    );
    let (acme, beta) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("beta").unwrap(),
    );
    assert_eq!(
        catalog.of(&acme).await.unwrap().targets.len(),
        2,
        "the defaults"
    );
    store
        .put(
            &acme,
            &sound(),
            None,
            "ops",
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let mine = catalog.of(&acme).await.unwrap();
    assert_eq!((mine.targets.len(), mine.version), (3, Some(1)));
    assert_eq!(
        catalog.of(&beta).await.unwrap().targets.len(),
        2,
        "others keep the defaults"
    );
}

/// The re-check a scheduled pass runs first finds what no longer fits the CRM's live schema
/// (a property gone), for connected CRMs only.
#[tokio::test]
async fn a_recheck_names_a_mapping_the_crm_schema_no_longer_fits() {
    use domain::mapping::ObjectMapping;
    use services::outbound::SyncTarget;

    let w = world(false, SyncRule::LatestWins).await;
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    let gone = SyncTarget {
        mapping: ObjectMapping::new(
            crate::outbound::people(),
            SystemId::parse("hubspot").unwrap(),
            "contacts",
            vec![
                crate::outbound::field("email_addresses", None, "email", SyncRule::LatestWins),
                crate::outbound::field("job_title", None, "no_such_property", SyncRule::LatestWins),
            ],
        )
        .unwrap(),
        id_property: crate::outbound::prop("attio_record_id"),
        create_with: Default::default(),
    };
    // Salesforce is not connected in this world: its mapping is not checked.
    let mut all = targets(SyncRule::LatestWins);
    all.retain(|t| t.mapping.system.as_str() == "salesforce");
    all.push(gone);
    let found = services::mappings::recheck(&clients, &w.tenant, &all)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0.as_str(), "hubspot");
    assert_eq!(found[0].1.kind, ProblemKind::UnknownProperty);
    assert_eq!(found[0].1.field.as_deref(), Some("no_such_property"));
}

#[tokio::test]
async fn a_required_property_is_satisfied_by_create_with() {
    let w = world(true, SyncRule::LatestWins).await;
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    let opportunity = |create_with: serde_json::Value| {
        doc(json!({"targets": [
            {"attio_object": "deals", "system": "salesforce", "external_object": "Opportunity", "id_property": "Attio_Id__c",
             "create_with": create_with, "fields": [
                {"attio": {"attribute": "name"}, "external": "Name", "rule": "latest_wins"},
                {"attio": {"attribute": "stage"}, "external": "StageName", "rule": "attio_to_external", "transform": {"type": "map_values", "values": {
                    "Lead": "Prospecting", "In Progress": "Negotiation/Review", "Won 🎉": "Closed Won", "Lost": "Closed Lost"}}},
            ]},
        ]}))
    };
    let problems = validate(&opportunity(json!({})), &clients, system_of)
        .await
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::RequiredUnmapped);
    assert_eq!(problems[0].field.as_deref(), Some("CloseDate"));
    assert!(
        problems[0].message.contains("create_with"),
        "{}",
        problems[0].message
    );
    let with = opportunity(json!({"CloseDate": "2027-03-31"}));
    let problems = validate(&with, &clients, system_of).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let bad = opportunity(json!({"Close Date!": "2027-03-31"}));
    let problems = validate(&bad, &clients, system_of).await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.kind == ProblemKind::Invalid && p.message.contains("create_with")),
        "{problems:#?}"
    );
}

/// A reference is sound when it names the object it refers to and that object is mapped to the
/// same CRM; HubSpot's associations check as reference fields (`associations.companies`).
#[tokio::test]
async fn references_name_their_object_which_must_be_mapped_to_the_same_crm() {
    let w = world(true, SyncRule::LatestWins).await;
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    let company = |external: &str| json!({"attio": {"attribute": "company", "references": "companies"}, "external": external, "rule": "latest_wins"});
    let people = |system: &str,
                  object: &str,
                  id: &str,
                  last: &str,
                  reference: serde_json::Value| {
        json!(
        {"attio_object": "people", "system": system, "external_object": object, "id_property": id, "fields": [
            {"attio": {"attribute": "name", "part": "last_name"}, "external": last, "rule": "latest_wins"},
            reference,
        ]})
    };
    let companies = |system: &str, object: &str, id: &str, name: &str| {
        json!(
        {"attio_object": "companies", "system": system, "external_object": object, "id_property": id, "fields": [
            {"attio": {"attribute": "name"}, "external": name, "rule": "latest_wins"},
        ]})
    };
    let sound = doc(json!({"targets": [
        people("hubspot", "contacts", "attio_record_id", "lastname", company("associations.companies")),
        companies("hubspot", "companies", "attio_record_id", "name"),
        people("salesforce", "Contact", "Attio_Id__c", "LastName", company("AccountId")),
        companies("salesforce", "Account", "Attio_Id__c", "Name"),
    ]}));
    let problems = validate(&sound, &clients, system_of).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    // Companies are not mapped to Salesforce: the reference has no ids to translate through.
    let unmapped = doc(json!({"targets": [
        people("salesforce", "Contact", "Attio_Id__c", "LastName", company("AccountId")),
        companies("hubspot", "companies", "attio_record_id", "name"),
    ]}));
    let problems = validate(&unmapped, &clients, system_of).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Invalid);
    assert!(
        problems[0].message.contains("not mapped to salesforce"),
        "{}",
        problems[0].message
    );

    // A reference without `references`, and `references` on a text attribute.
    let unnamed = doc(json!({"targets": [
        people("hubspot", "contacts", "attio_record_id", "lastname",
            json!({"attio": {"attribute": "company"}, "external": "associations.companies", "rule": "latest_wins"})),
        {"attio_object": "companies", "system": "hubspot", "external_object": "companies", "id_property": "attio_record_id", "fields": [
            {"attio": {"attribute": "name", "references": "people"}, "external": "name", "rule": "latest_wins"},
        ]},
        people("salesforce", "Contact", "Attio_Id__c", "LastName", json!({"attio": {"attribute": "job_title"}, "external": "Title", "rule": "latest_wins"})),
    ]}));
    let problems = validate(&unnamed, &clients, system_of).await.unwrap();
    let found: Vec<(usize, Option<&str>, ProblemKind)> = problems
        .iter()
        .map(|p| (p.target, p.field.as_deref(), p.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            (0, Some("company"), ProblemKind::TypeMismatch),
            (1, Some("name"), ProblemKind::TypeMismatch),
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0].message.contains("name the object it refers to"),
        "{}",
        problems[0].message
    );
}
