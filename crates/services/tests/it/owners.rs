//! Owners both ways: a deal's owner (an Attio workspace member) ↔ HubSpot's `hubspot_owner_id`
//! ↔ Salesforce's `OwnerId`, matched by e-mail; an owner the other side does not have is left
//! out and reported, never guessed.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_memory::SystemClock;
use domain::field::FieldValue;
use domain::ids::{ExternalId, ObjectRef, ObjectSlug, RecordId, SystemId};
use domain::mapping::{ObjectMapping, SyncRule};
use domain::value::ValueData;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::{AttioRecords, AttioWorkspace};
use ports::crm::ExternalCrm;
use serde_json::json;
use services::outbound::{OutboundSync, SyncTarget};

use crate::outbound::{World, field, prop, slug, world};

fn deals() -> ObjectSlug {
    ObjectSlug::parse("deals").unwrap()
}

fn targets() -> Vec<SyncTarget> {
    vec![
        SyncTarget {
            mapping: ObjectMapping::new(
                deals(),
                SystemId::parse("hubspot").unwrap(),
                "deals",
                vec![
                    field("name", None, "dealname", SyncRule::LatestWins),
                    field("owner", None, "hubspot_owner_id", SyncRule::LatestWins),
                ],
            )
            .unwrap(),
            id_property: prop("attio_record_id"),
            create_with: BTreeMap::new(),
        },
        SyncTarget {
            mapping: ObjectMapping::new(
                deals(),
                SystemId::parse("salesforce").unwrap(),
                "Opportunity",
                vec![
                    field("name", None, "Name", SyncRule::LatestWins),
                    field("owner", None, "OwnerId", SyncRule::LatestWins),
                ],
            )
            .unwrap(),
            id_property: prop("Attio_Id__c"),
            create_with: [
                (prop("CloseDate"), FieldValue::text("2027-03-31")),
                (prop("StageName"), FieldValue::text("Prospecting")),
            ]
            .into(),
        },
    ]
}

/// An owner added in HubSpot and a user in Salesforce with this e-mail; their ids.
async fn owner_everywhere(w: &World, email: &str) -> (String, String) {
    let http = reqwest::Client::new();
    let hs: serde_json::Value = http
        .post(format!("{}/_sim/owners", w._sims.1.url()))
        .json(&json!({"email": email, "firstName": "Owner", "lastName": email}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made: serde_json::Value = crate::outbound::salesforce_rest(
        w,
        reqwest::Method::POST,
        "/sobjects/User",
        Some(json!({"LastName": "Owner", "Email": email, "IsActive": true})),
    )
    .await
    .json()
    .await
    .unwrap();
    let sf = made["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_owned();
    (hs["id"].as_str().unwrap().to_owned(), sf)
}

async fn attio_owner(w: &World, deal: RecordId) -> Option<String> {
    let r = w
        .attio
        .get_record(&ObjectRef::from(deals()), deal)
        .await
        .unwrap();
    let id = r.current("owner").find_map(|v| match &v.data {
        ValueData::ActorReference(a) => a.referenced_actor_id.clone(),
        _ => None,
    })?;
    let members = w.attio.list_members().await.unwrap();
    members
        .into_iter()
        .find(|m| m.id.workspace_member_id.to_string() == id)
        .map(|m| m.email_address)
}

async fn crm_owners(
    w: &World,
    reports: &[services::outbound::SystemReport],
) -> (FieldValue, FieldValue) {
    let id = |s: &str| -> ExternalId {
        reports
            .iter()
            .find(|r| r.system.as_str() == s)
            .and_then(|r| r.external_id.clone())
            .unwrap()
    };
    let hs = w
        .hubspot
        .get("deals", &id("hubspot"), &[prop("hubspot_owner_id")])
        .await
        .unwrap();
    let sf = w
        .salesforce
        .get("Opportunity", &id("salesforce"), &[prop("OwnerId")])
        .await
        .unwrap();
    (
        hs.properties[&prop("hubspot_owner_id")].clone(),
        sf.properties[&prop("OwnerId")].clone(),
    )
}

#[tokio::test]
async fn a_deals_owner_follows_each_side_by_email() {
    let w = world(true, SyncRule::LatestWins).await;
    let sync = OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(SystemClock),
        targets(),
    );
    let members = w.attio.list_members().await.unwrap();
    let email_of = |prefix: &str| {
        members
            .iter()
            .find(|m| m.email_address.starts_with(prefix))
            .unwrap()
            .email_address
            .clone()
    };
    let (sales, admin) = (email_of("sales@"), email_of("admin@"));
    let (sales_hs, sales_sf) = owner_everywhere(&w, &sales).await;
    let (admin_hs, admin_sf) = owner_everywhere(&w, &admin).await;

    let deal = w
        .attio
        .create_record(
            &ObjectRef::from(deals()),
            &RecordWrite::new()
                .set(slug("name"), vec![WriteValue::Text("Engine".into())])
                .set(slug("stage"), vec![WriteValue::Status("Lead".into())])
                .set(
                    slug("owner"),
                    vec![
                        WriteValue::from_json(
                            &domain::value::AttributeType::ActorReference,
                            &json!(sales),
                        )
                        .unwrap(),
                    ],
                ),
        )
        .await
        .unwrap()
        .id
        .record_id;
    let reports = sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    assert_eq!(
        crm_owners(&w, &reports).await,
        (FieldValue::text(&sales_hs), FieldValue::text(&sales_sf)),
        "{reports:?}"
    );

    // HubSpot hands the deal to the admin: Attio, then Salesforce, follow.
    let hs_deal = reports
        .iter()
        .find(|r| r.system.as_str() == "hubspot")
        .unwrap()
        .external_id
        .clone()
        .unwrap();
    let to_admin = BTreeMap::from([(prop("hubspot_owner_id"), FieldValue::text(&admin_hs))]);
    w.hubspot
        .update("deals", &hs_deal, &to_admin)
        .await
        .unwrap();
    let reports = sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    assert_eq!(attio_owner(&w, deal).await.as_deref(), Some(admin.as_str()));
    assert_eq!(
        crm_owners(&w, &reports).await,
        (FieldValue::text(&admin_hs), FieldValue::text(&admin_sf))
    );

    // Salesforce hands it back: Attio and HubSpot follow.
    let sf_deal = reports
        .iter()
        .find(|r| r.system.as_str() == "salesforce")
        .unwrap()
        .external_id
        .clone()
        .unwrap();
    let back = BTreeMap::from([(prop("OwnerId"), FieldValue::text(&sales_sf))]);
    w.salesforce
        .update("Opportunity", &sf_deal, &back)
        .await
        .unwrap();
    let reports = sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    assert_eq!(attio_owner(&w, deal).await.as_deref(), Some(sales.as_str()));
    assert_eq!(
        crm_owners(&w, &reports).await,
        (FieldValue::text(&sales_hs), FieldValue::text(&sales_sf))
    );

    // A HubSpot owner who is no Attio member: left out and reported, Attio keeps its owner.
    let (stranger_hs, _) = owner_everywhere(&w, "stranger@elsewhere.example").await;
    let to_stranger = BTreeMap::from([(prop("hubspot_owner_id"), FieldValue::text(&stranger_hs))]);
    w.hubspot
        .update("deals", &hs_deal, &to_stranger)
        .await
        .unwrap();
    let reports = sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    let hubspot = reports
        .iter()
        .find(|r| r.system.as_str() == "hubspot")
        .unwrap();
    assert!(
        hubspot
            .deferred_inbound
            .iter()
            .any(|k| k.as_str() == "owner"),
        "{reports:?}"
    );
    assert_eq!(attio_owner(&w, deal).await.as_deref(), Some(sales.as_str()));

    // Back to a known owner there: in step, and a further sync writes nothing.
    let to_sales = BTreeMap::from([(prop("hubspot_owner_id"), FieldValue::text(&sales_hs))]);
    w.hubspot
        .update("deals", &hs_deal, &to_sales)
        .await
        .unwrap();
    sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    let again = sync.sync_record(&w.tenant, &deals(), deal).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| r.written.is_empty() && r.written_to_attio.is_empty()),
        "{again:?}"
    );
}
