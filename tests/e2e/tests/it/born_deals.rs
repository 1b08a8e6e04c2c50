//! Deals born in each CRM, across real processes (webhook-api and a sync-worker on PostgreSQL,
//! with the three simulators): deals are matched by a chosen unique property (Attio's
//! `deal_ref`, made unique, held in each CRM's description), so a HubSpot deal (told by
//! `deal.creation`) and a Salesforce opportunity (polled) each become one Attio deal, with its
//! stage through the inverse of the stage map, and one record in the other CRM; then a stage
//! moved in each CRM moves the Attio deal and the other CRM; and once quiet, nobody writes.

use domain::field::FieldValue;
use serde_json::{Value, json};

use crate::attio_to_crms::HUBSPOT_TOKEN;
use crate::both_ways::{WITHIN, attio_find, quiet_and_nothing_dead, salesforce_token};
use crate::control::{Deployment, Rig, rig_with};
use crate::eventually;

const MAPPINGS: &str = r#"
[crm.hubspot]
poll_interval_s = 1
poll_window_s = 30

[[targets]]
attio_object = "deals"
system = "hubspot"
external_object = "deals"
id_property = "attio_record_id"
match_on = "deal_ref"
fields = [
  { attio = { attribute = "name" }, external = "dealname", rule = "latest_wins" },
  { attio = { attribute = "deal_ref" }, external = "description", rule = "latest_wins" },
  { attio = { attribute = "stage" }, external = "dealstage", rule = "latest_wins", transform = { type = "map_values", values = { "Lead" = "appointmentscheduled", "In Progress" = "qualifiedtobuy", "Won 🎉" = "closedwon", "Lost" = "closedlost" } } },
]

[[targets]]
attio_object = "deals"
system = "salesforce"
external_object = "Opportunity"
id_property = "Attio_Id__c"
match_on = "deal_ref"
create_with = { CloseDate = "2027-03-31" }
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "deal_ref" }, external = "Description", rule = "latest_wins" },
  { attio = { attribute = "stage" }, external = "StageName", rule = "latest_wins", transform = { type = "map_values", values = { "Lead" = "Prospecting", "In Progress" = "Negotiation/Review", "Won 🎉" = "Closed Won", "Lost" = "Closed Lost" } } },
]
"#;

const SUBSCRIPTIONS: &[&str] = &["deal.creation", "deal.propertyChange:dealstage"];

/// One deal as each side holds it: (Attio name and stage, HubSpot dealname and dealstage,
/// Salesforce Name and StageName), found by its reference; `None` until every side has exactly
/// one.
type Sides = ((String, String), (String, String), (String, String));

async fn sides(rig: &Rig, reference: &str) -> Option<Sides> {
    let found = attio_find(rig, "deals", json!({"deal_ref": reference})).await;
    let [deal] = found.as_slice() else {
        return None;
    };
    let title = |v: &Value| v["title"].as_str().map(str::to_owned);
    let attio = (
        deal["values"]["name"][0]["value"].as_str()?.to_owned(),
        title(&deal["values"]["stage"][0]["status"])?,
    );
    let hs: Value = rig
        .http
        .post(format!("{}/crm/v3/objects/deals/search", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({
            "filterGroups": [{"filters": [{"propertyName": "description", "operator": "EQ", "value": reference}]}],
            "properties": ["dealname", "dealstage"],
        }))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let [h] = hs["results"].as_array()?.as_slice() else {
        return None;
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let hubspot = (
        text(&h["properties"]["dealname"])?,
        text(&h["properties"]["dealstage"])?,
    );
    let rows = rig
        .salesforce
        .query(
            &format!(
                "SELECT Id, Name, StageName FROM Opportunity WHERE Description = '{reference}'"
            ),
            false,
            None,
        )
        .await
        .ok()?
        .records;
    let [row] = rows.as_slice() else {
        return None;
    };
    let field = |f: &str| match row.properties.get(&crate::attio_to_crms::prop(f)) {
        Some(FieldValue::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let salesforce = (field("Name")?, field("StageName")?);
    Some((attio, hubspot, salesforce))
}

/// Waits until the deal `reference` is once on every side with `name` and these stages
/// (Attio's, HubSpot's, Salesforce's); what the sides show instead is printed.
async fn agree(rig: &Rig, what: &str, reference: &str, name: &str, stages: [&str; 3]) {
    let pair = |stage: &str| (name.to_owned(), stage.to_owned());
    let want = Some((pair(stages[0]), pair(stages[1]), pair(stages[2])));
    eventually(what, WITHIN, || async {
        let seen = sides(rig, reference).await;
        if seen != want {
            eprintln!("{what}: the sides show {seen:?}");
        }
        (seen == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_born_in_each_crm_appear_once_and_their_stages_follow() {
    let rig = rig_with(Deployment::Distributed, 20, MAPPINGS, SUBSCRIPTIONS).await;
    // The chosen unique property: an Attio attribute made for it.
    rig.attio()
        .call(
            reqwest::Method::POST,
            "/v2/objects/deals/attributes",
            Some(json!({"data": {"title": "Deal reference", "api_slug": "deal_ref", "type": "text",
                "description": null, "is_required": false, "is_unique": true, "is_multiselect": false, "config": {}}})),
        )
        .await;

    // Made by hand in HubSpot, told by `deal.creation`.
    let made = rig
        .http
        .post(format!("{}/crm/v3/objects/deals", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"dealname": "Born in HubSpot", "description": "D-HS-1", "dealstage": "qualifiedtobuy"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let hs_deal: Value = made.json().await.unwrap();
    agree(
        &rig,
        "HubSpot's deal becomes one Attio deal and one Salesforce opportunity",
        "D-HS-1",
        "Born in HubSpot",
        ["In Progress", "qualifiedtobuy", "Negotiation/Review"],
    )
    .await;

    // Made by hand in Salesforce, found by polling.
    let token = salesforce_token(&rig).await;
    let made = rig
        .http
        .post(format!(
            "{}/services/data/v62.0/sobjects/Opportunity",
            rig.sf_url
        ))
        .bearer_auth(&token)
        .json(&json!({"Name": "Born in Salesforce", "Description": "D-SF-1", "StageName": "Closed Won", "CloseDate": "2027-06-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let opportunity: Value = made.json().await.unwrap();
    agree(
        &rig,
        "Salesforce's opportunity becomes one Attio deal and one HubSpot deal",
        "D-SF-1",
        "Born in Salesforce",
        ["Won 🎉", "closedwon", "Closed Won"],
    )
    .await;

    // Stages moved in each CRM: HubSpot's (webhook) and Salesforce's (polled).
    let moved = rig
        .http
        .patch(format!(
            "{}/crm/v3/objects/deals/{}",
            rig.hubspot_url,
            hs_deal["id"].as_str().unwrap()
        ))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"dealstage": "closedlost"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    agree(
        &rig,
        "HubSpot's stage reaches Attio and Salesforce",
        "D-HS-1",
        "Born in HubSpot",
        ["Lost", "closedlost", "Closed Lost"],
    )
    .await;
    let moved = rig
        .http
        .patch(format!(
            "{}/services/data/v62.0/sobjects/Opportunity/{}",
            rig.sf_url,
            opportunity["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&json!({"StageName": "Prospecting"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 204);
    agree(
        &rig,
        "Salesforce's stage reaches Attio and HubSpot",
        "D-SF-1",
        "Born in Salesforce",
        ["Lead", "appointmentscheduled", "Prospecting"],
    )
    .await;

    quiet_and_nothing_dead(&rig).await;
    for reference in ["D-HS-1", "D-SF-1"] {
        assert!(
            sides(&rig, reference).await.is_some(),
            "{reference}: once on every side"
        );
    }
}
