//! Records born in a CRM: a HubSpot contact with no link becomes (or links) an Attio person
//! matched by e-mail through Attio's assert, is filled from HubSpot and goes on to Salesforce; a
//! second delivery of the same change creates nothing; one whose e-mail matches a person linked
//! to another HubSpot contact queues an identity conflict; a mapping without `match_on` leaves
//! CRM-born records out of Attio.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::conflict::ConflictFilter;
use domain::field::FieldValue;
use domain::ids::{ObjectRef, SystemId};
use domain::mapping::{FieldKey, SyncRule};
use domain::merge::ConflictReason;
use ports::attio::{AttioRecords, Query};
use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};
use ports::stores::ConflictStore;
use services::outbound::{OutboundSync, SyncTarget};
use services::pipeline::{DeletePolicy, EventPipeline, Handled};

use crate::outbound::{World, create_person, people, prop, salesforce_contact, targets, world};

fn hubspot() -> SystemId {
    SystemId::parse("hubspot").unwrap()
}

/// The test world's mappings, adopting CRM-born people by e-mail.
fn adopting() -> Vec<SyncTarget> {
    targets(SyncRule::LatestWins)
        .into_iter()
        .map(|mut t| {
            t.mapping = t
                .mapping
                .adopting(FieldKey::parse("email_addresses").unwrap())
                .unwrap();
            t
        })
        .collect()
}

fn pipeline(w: &World, targets: Vec<SyncTarget>) -> EventPipeline {
    let outbound = OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(adapter_memory::SystemClock),
        targets,
    );
    EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        Arc::new(outbound),
        DeletePolicy::Archive,
    )
}

/// A contact created in HubSpot (upserted by e-mail, no Attio id); its HubSpot id.
async fn born_in_hubspot(
    w: &World,
    email: &str,
    first: &str,
    title: &str,
) -> domain::ids::ExternalId {
    let create = ExternalUpsert {
        key: email.to_owned(),
        properties: BTreeMap::from([
            (prop("email"), FieldValue::text(email)),
            (prop("firstname"), FieldValue::text(first)),
            (prop("lastname"), FieldValue::text("Born")),
            (prop("jobtitle"), FieldValue::text(title)),
        ]),
    };
    match w
        .hubspot
        .upsert_batch("contacts", &prop("email"), &[create])
        .await
        .unwrap()
        .remove(0)
    {
        RecordOutcome::Created(id) | RecordOutcome::Updated(id) => id,
        other => panic!("{other:?}"),
    }
}

async fn people_with(w: &World, email: &str) -> Vec<domain::record::Record> {
    w.attio
        .query_records(
            &ObjectRef::from(people()),
            &Query {
                filter: Some(serde_json::json!({"email_addresses": email})),
                ..Query::default()
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_contact_born_in_hubspot_becomes_an_attio_person_once_and_reaches_salesforce() {
    let w = world(true, SyncRule::LatestWins).await;
    let p = pipeline(&w, adopting());
    let h = born_in_hubspot(&w, "born@example.com", "Bo", "Founder").await;
    for _ in 0..2 {
        let out = p
            .handle_external(&w.tenant, &hubspot(), "contacts", &h, false)
            .await
            .unwrap();
        assert!(matches!(out, Handled::Synced(_)), "{out:?}");
    }
    let found = people_with(&w, "born@example.com").await;
    assert_eq!(
        found.len(),
        1,
        "one person, however often the change arrives"
    );
    let id = found[0].id.record_id;
    let title = FieldValue::from_attio(
        found[0]
            .values
            .iter()
            .find(|(s, _)| s.as_str() == "job_title")
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default(),
        None,
        false,
    );
    assert_eq!(title, FieldValue::text("Founder"), "filled from HubSpot");
    assert_eq!(
        salesforce_contact(&w, id).await[&prop("Title")],
        FieldValue::text("Founder"),
        "and on to Salesforce"
    );
}

#[tokio::test]
async fn a_contact_matching_a_person_linked_elsewhere_is_an_identity_conflict() {
    let w = world(false, SyncRule::LatestWins).await;
    let p = pipeline(&w, adopting());
    let q = create_person(&w, "dup@example.com", "Dee", "Plicate", "Twin").await;
    p.outbound()
        .sync_record(&w.tenant, &people(), q)
        .await
        .unwrap();
    // In HubSpot, the first contact's e-mail is changed by hand and a second one takes it.
    let first = crate::outbound::hubspot_contact(&w, q).await;
    assert_eq!(first[&prop("email")], FieldValue::text("dup@example.com"));
    let edit = ExternalUpsert {
        key: q.to_string(),
        properties: BTreeMap::from([(prop("email"), FieldValue::text("other@example.com"))]),
    };
    w.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    let h2 = born_in_hubspot(&w, "dup@example.com", "Dee", "Twin").await;
    let out = p
        .handle_external(&w.tenant, &hubspot(), "contacts", &h2, false)
        .await
        .unwrap();
    assert!(
        matches!(&out, Handled::Ignored { reason } if reason.contains("identity conflict")),
        "{out:?}"
    );
    let open = w
        .conflicts
        .open(&w.tenant, &ConflictFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].conflict.reason, ConflictReason::AmbiguousIdentity);
    assert_eq!(open[0].attio_record, q);
    assert_eq!(
        people_with(&w, "dup@example.com").await.len(),
        1,
        "nothing guessed or created"
    );
}

#[tokio::test]
async fn without_match_on_a_crm_born_record_stays_out_of_attio() {
    let w = world(false, SyncRule::LatestWins).await;
    let p = pipeline(&w, targets(SyncRule::LatestWins));
    let h = born_in_hubspot(&w, "stray@example.com", "St", "Ray").await;
    let out = p
        .handle_external(&w.tenant, &hubspot(), "contacts", &h, false)
        .await
        .unwrap();
    assert!(
        matches!(&out, Handled::Ignored { reason } if reason.contains("match_on")),
        "{out:?}"
    );
    assert!(people_with(&w, "stray@example.com").await.is_empty());
}

/// A HubSpot merge: the Attio person linked to the merged-away contact is linked to the
/// survivor, so the next sync updates it and creates nothing; merging two contacts linked to two
/// Attio people merges them in Attio too (one person with both addresses), and in Salesforce.
#[tokio::test]
async fn a_hubspot_merge_moves_the_link_to_the_survivor_or_merges_in_attio() {
    let w = world(true, SyncRule::LatestWins).await;
    let ada = create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await;
    w.sync.sync_record(&w.tenant, &people(), ada).await.unwrap();
    let linked = w
        .hubspot
        .get_by("contacts", &prop("attio_record_id"), &ada.to_string(), &[])
        .await
        .unwrap()
        .id;
    let twin = born_in_hubspot(&w, "ada.twin@example.com", "Ada", "Analyst").await;
    // HubSpot keeps the twin: Ada's contact is merged into it.
    let survivor = w.hubspot.merge("contacts", &twin, &linked).await.unwrap();
    assert_eq!(survivor, twin);
    let done = w
        .sync
        .follow_merge(
            &w.tenant,
            &hubspot(),
            "contacts",
            &twin,
            std::slice::from_ref(&linked),
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    let link = |id: &domain::ids::ExternalId| domain::link::LinkLookup::External {
        system: hubspot(),
        external_object: "contacts".into(),
        external_id: id.clone(),
    };
    use ports::stores::LinkStore;
    let moved = w
        .links
        .find(&w.tenant, &link(&twin))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.attio_record, ada, "the survivor is Ada's now");
    assert!(
        w.links
            .find(&w.tenant, &link(&linked))
            .await
            .unwrap()
            .is_none()
    );
    crate::outbound::set_title(&w, ada, "Countess").await;
    let reports = w.sync.sync_record(&w.tenant, &people(), ada).await.unwrap();
    assert_eq!(reports[0].external_id.as_ref(), Some(&twin), "{reports:?}");
    assert_eq!(
        w.hubspot
            .get("contacts", &twin, &[prop("jobtitle")])
            .await
            .unwrap()
            .properties[&prop("jobtitle")],
        FieldValue::text("Countess")
    );
    let all: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/crm/v3/objects/contacts?limit=100",
            w._sims.1.url()
        ))
        .bearer_auth("pat-na1-services")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["results"].as_array().map(Vec::len),
        Some(1),
        "nothing created again: {all}"
    );

    // Grace's contact merged into Ada's: two Attio people, one HubSpot contact.
    let grace = create_person(&w, "grace@example.com", "Grace", "Hopper", "Admiral").await;
    w.sync
        .sync_record(&w.tenant, &people(), grace)
        .await
        .unwrap();
    let graces = w
        .links
        .find(
            &w.tenant,
            &domain::link::LinkLookup::Attio {
                object: people(),
                record: grace,
                system: hubspot(),
            },
        )
        .await
        .unwrap()
        .unwrap()
        .external_id;
    w.hubspot.merge("contacts", &twin, &graces).await.unwrap();
    let done = w
        .sync
        .follow_merge(
            &w.tenant,
            &hubspot(),
            "contacts",
            &twin,
            std::slice::from_ref(&graces),
        )
        .await
        .unwrap();
    assert!(done[0].contains("merged in Attio"), "{done:?}");
    // Attio made one person of the two and tells `record.merged` for each; handled, they move
    // both people's links onto it and fold their Salesforce contacts into one.
    for gone in [ada, grace] {
        assert!(
            w.attio
                .get_record(&ObjectRef::from(people()), gone)
                .await
                .is_err(),
            "{gone} is merged away"
        );
    }
    let made = people_with(&w, "grace@example.com").await;
    assert_eq!(made.len(), 1);
    let made = made[0].id.record_id;
    let emails: Vec<_> = made_emails(&w, made).await;
    assert_eq!(
        emails,
        ["ada.twin@example.com", "grace@example.com"],
        "the union (Ada's address became her twin's above)"
    );
    let p = crate::pipeline::pipeline(&w, services::pipeline::DeletePolicy::Archive);
    for original in [ada, grace] {
        let told = crate::pipeline::event(&w, "record.merged", made, Some(original)).await;
        p.handle(&w.tenant, &told).await.unwrap();
    }
    let now = w
        .links
        .find(&w.tenant, &link(&twin))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now.attio_record, made,
        "HubSpot's survivor is the new person's"
    );
    let rows = w
        .salesforce
        .query("SELECT Id, Attio_Id__c FROM Contact", false, None)
        .await
        .unwrap()
        .records;
    assert_eq!(rows.len(), 1, "one Salesforce contact: {rows:?}");
    let open = w
        .conflicts
        .open(&w.tenant, &ConflictFilter::default(), 10)
        .await
        .unwrap();
    assert!(open.is_empty(), "nobody is asked: {open:?}");
}

async fn made_emails(w: &World, id: domain::ids::RecordId) -> Vec<String> {
    let r = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let mut v: Vec<String> = r
        .current("email_addresses")
        .filter_map(|v| match &v.data {
            domain::value::ValueData::EmailAddress(e) => Some(e.email_address.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// A change of the person synced after HubSpot merged its contact away but before the merge's
/// event arrived: the sync finds the record gone, asks HubSpot where it went (the survivor's
/// `hs_merged_object_ids`), follows the merge there, and updates the survivor — no contact is
/// created again.
#[tokio::test]
async fn a_sync_that_finds_its_contact_merged_away_follows_the_merge_itself() {
    let w = world(false, SyncRule::LatestWins).await;
    let ada = create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await;
    w.sync.sync_record(&w.tenant, &people(), ada).await.unwrap();
    let linked = w
        .hubspot
        .get_by("contacts", &prop("attio_record_id"), &ada.to_string(), &[])
        .await
        .unwrap()
        .id;
    let twin = born_in_hubspot(&w, "ada.twin@example.com", "Ada", "Analyst").await;
    w.hubspot.merge("contacts", &twin, &linked).await.unwrap();
    assert_eq!(
        w.hubspot.successor("contacts", &linked).await.unwrap(),
        Some(twin.clone())
    );
    assert_eq!(w.hubspot.successor("contacts", &twin).await.unwrap(), None);

    crate::outbound::set_title(&w, ada, "Countess").await;
    let reports = w.sync.sync_record(&w.tenant, &people(), ada).await.unwrap();
    assert_eq!(reports[0].external_id.as_ref(), Some(&twin), "{reports:?}");
    let survivor = w
        .hubspot
        .get_by(
            "contacts",
            &prop("attio_record_id"),
            &ada.to_string(),
            &[prop("jobtitle")],
        )
        .await
        .unwrap();
    assert_eq!(survivor.id, twin);
    assert_eq!(
        survivor.properties[&prop("jobtitle")],
        FieldValue::text("Countess")
    );
    let all: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/crm/v3/objects/contacts?limit=100",
            w._sims.1.url()
        ))
        .bearer_auth("pat-na1-services")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["results"].as_array().map(Vec::len),
        Some(1),
        "only the survivor: {all}"
    );
}

/// Deals born in a CRM are matched by a chosen unique property: an Attio attribute made unique
/// (`deal_ref`) mapped to the CRM property holding the same reference. A HubSpot deal becomes one
/// Attio deal, with its stage through the stage map, however often its change arrives; one whose
/// reference names an Attio deal linked to another HubSpot deal is an identity conflict.
#[tokio::test]
async fn a_deal_born_in_hubspot_is_matched_by_a_chosen_unique_property() {
    use domain::ids::ObjectSlug;
    use domain::mapping::{FieldMapping, ObjectMapping, Transform};
    let w = world(false, SyncRule::LatestWins).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v2/objects/deals/attributes", w._sims.0.url()))
        .bearer_auth("a".repeat(64))
        .json(&serde_json::json!({"data": {"title": "Deal reference", "api_slug": "deal_ref", "type": "text",
            "description": null, "is_required": false, "is_unique": true, "is_multiselect": false, "config": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stages: Transform = serde_json::from_value(serde_json::json!({"type": "map_values", "values": {
        "Lead": "appointmentscheduled", "In Progress": "qualifiedtobuy", "Won 🎉": "closedwon", "Lost": "closedlost"}}))
    .unwrap();
    let deals = ObjectSlug::parse("deals").unwrap();
    let mapping = ObjectMapping::new(
        deals.clone(),
        hubspot(),
        "deals",
        vec![
            crate::outbound::field("name", None, "dealname", SyncRule::LatestWins),
            crate::outbound::field("deal_ref", None, "description", SyncRule::LatestWins),
            FieldMapping {
                transform: stages,
                ..crate::outbound::field("stage", None, "dealstage", SyncRule::LatestWins)
            },
        ],
    )
    .unwrap()
    .adopting(FieldKey::parse("deal_ref").unwrap())
    .unwrap();
    let p = pipeline(
        &w,
        vec![SyncTarget {
            mapping,
            id_property: prop("attio_record_id"),
            create_with: BTreeMap::new(),
        }],
    );
    let made_in_hubspot = |reference: &'static str| {
        let http = http.clone();
        let url = format!("{}/crm/v3/objects/deals", w._sims.1.url());
        async move {
            let made: serde_json::Value = http
                .post(url)
                .bearer_auth("pat-na1-services")
                .json(
                    &serde_json::json!({"properties": {"dealname": format!("Deal {reference}"),
                    "description": reference, "dealstage": "qualifiedtobuy"}}),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            domain::ids::ExternalId::parse(made["id"].as_str().unwrap()).unwrap()
        }
    };
    let by_ref = |reference: &'static str| {
        let attio = w.attio.clone();
        let deals = deals.clone();
        async move {
            attio
                .query_records(
                    &ObjectRef::from(deals),
                    &Query {
                        filter: Some(serde_json::json!({"deal_ref": reference})),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let born = made_in_hubspot("D-1").await;
    for _ in 0..2 {
        match p
            .handle_external(&w.tenant, &hubspot(), "deals", &born, false)
            .await
            .unwrap()
        {
            Handled::Synced(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let found = by_ref("D-1").await;
    assert_eq!(found.len(), 1, "one Attio deal");
    let stage: Vec<String> = found[0]
        .current("stage")
        .map(|v| format!("{:?}", v.data))
        .collect();
    assert!(stage.iter().any(|s| s.contains("In Progress")), "{stage:?}");

    // A second HubSpot deal with the same reference: the Attio deal is linked already.
    let twin = made_in_hubspot("D-1").await;
    match p
        .handle_external(&w.tenant, &hubspot(), "deals", &twin, false)
        .await
        .unwrap()
    {
        Handled::Ignored { reason } => assert!(reason.contains("identity conflict"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(by_ref("D-1").await.len(), 1, "still one Attio deal");
}
