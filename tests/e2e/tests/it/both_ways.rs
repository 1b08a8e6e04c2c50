//! Everything both ways, across real processes (webhook-api and a sync-worker on PostgreSQL,
//! with the three simulators): a person's company is kept in step as it changes on each side —
//! Attio's `company` reference, HubSpot's contact–company association (told by
//! `contact.associationChange` webhooks) and Salesforce's `Contact.AccountId` (polled) — with the
//! person created in the same moment as the company it names (the reference waits for the
//! company's link); a company born in HubSpot and a contact born in Salesforce each appear once
//! in Attio and once in the other CRM; and once quiet, nobody writes anything more.

use std::time::Duration;

use domain::field::FieldValue;
use domain::ids::ExternalId;
use ports::crm::ExternalCrm;
use serde_json::{Value, json};

use crate::attio_to_crms::{HUBSPOT_TOKEN, prop};
use crate::control::{Deployment, Rig, rig_with};
use crate::eventually;

const MAPPINGS: &str = r#"
[crm.hubspot]
poll_interval_s = 1
poll_window_s = 30

[[targets]]
attio_object = "companies"
system = "hubspot"
external_object = "companies"
id_property = "attio_record_id"
match_on = "domains"
fields = [
  { attio = { attribute = "name" }, external = "name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "domain", rule = "latest_wins" },
]

[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
match_on = "email_addresses"
fields = [
  { attio = { attribute = "email_addresses" }, external = "email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "last_name" }, external = "lastname", rule = "latest_wins" },
  { attio = { attribute = "company", references = "companies" }, external = "associations.companies", rule = "latest_wins" },
]

[[targets]]
attio_object = "companies"
system = "salesforce"
external_object = "Account"
id_property = "Attio_Id__c"
match_on = "domains"
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "Website", rule = "latest_wins" },
]

[[targets]]
attio_object = "people"
system = "salesforce"
external_object = "Contact"
id_property = "Attio_Id__c"
match_on = "email_addresses"
fields = [
  { attio = { attribute = "email_addresses" }, external = "Email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "last_name" }, external = "LastName", rule = "latest_wins" },
  { attio = { attribute = "company", references = "companies" }, external = "AccountId", rule = "latest_wins" },
]

[[targets]]
attio_object = "deals"
system = "hubspot"
external_object = "deals"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "name" }, external = "dealname", rule = "latest_wins" },
  { attio = { attribute = "associated_company", references = "companies" }, external = "associations.companies", rule = "latest_wins" },
  { attio = { attribute = "associated_people", references = "people" }, external = "associations.contacts", rule = "latest_wins" },
]

[[targets]]
attio_object = "deals"
system = "salesforce"
external_object = "Opportunity"
id_property = "Attio_Id__c"
create_with = { CloseDate = "2027-03-31", StageName = "Prospecting" }
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "associated_company", references = "companies" }, external = "AccountId", rule = "latest_wins" },
  { attio = { attribute = "associated_people", references = "people" }, external = "OpportunityContactRole.ContactId", rule = "latest_wins" },
]

[[stages]]
list = "sales"
attribute = "stage"
system = "hubspot"
property = "dealstage"
transform = { type = "map_values", values = { "Lead" = "appointmentscheduled", "In Progress" = "qualifiedtobuy", "Won 🎉" = "closedwon", "Lost" = "closedlost" } }

[[stages]]
list = "sales"
attribute = "stage"
system = "salesforce"
property = "StageName"
transform = { type = "map_values", values = { "Lead" = "Prospecting", "In Progress" = "Negotiation/Review", "Won 🎉" = "Closed Won", "Lost" = "Closed Lost" } }
"#;

const SUBSCRIPTIONS: &[&str] = &[
    "contact.creation",
    "contact.associationChange",
    "company.creation",
    "deal.associationChange",
    "contact.merge",
    "deal.propertyChange:dealstage",
];

pub(crate) const WITHIN: Duration = Duration::from_secs(60);

async fn attio_create(rig: &Rig, object: &str, values: Value) -> String {
    let r = rig
        .attio()
        .call(
            reqwest::Method::POST,
            &format!("/v2/objects/{object}/records"),
            Some(json!({"data": {"values": values}})),
        )
        .await;
    r["data"]["id"]["record_id"].as_str().unwrap().to_owned()
}

/// The Attio records of `object` matching `filter`.
pub(crate) async fn attio_find(rig: &Rig, object: &str, filter: Value) -> Vec<Value> {
    let found = rig
        .attio()
        .call(
            reqwest::Method::POST,
            &format!("/v2/objects/{object}/records/query"),
            Some(json!({ "filter": filter })),
        )
        .await;
    found["data"].as_array().cloned().unwrap_or_default()
}

/// The company Attio's person names.
async fn attio_company(rig: &Rig, person: &str) -> Option<String> {
    let r = rig
        .attio()
        .call(
            reqwest::Method::GET,
            &format!("/v2/objects/people/records/{person}"),
            None,
        )
        .await;
    r["data"]["values"]["company"][0]["target_record_id"]
        .as_str()
        .map(str::to_owned)
}

/// HubSpot's record holding Attio id `attio_id`.
async fn hubspot_id(rig: &Rig, object: &str, attio_id: &str) -> Option<ExternalId> {
    let found = rig
        .hubspot
        .get_by(object, &prop("attio_record_id"), attio_id, &[prop("name")])
        .await
        .ok()?;
    Some(found.id)
}

/// Salesforce's record holding Attio id `attio_id`, with one more field.
async fn salesforce_row(
    rig: &Rig,
    object: &str,
    field: &str,
    attio_id: &str,
) -> Option<(ExternalId, FieldValue)> {
    let rows = rig
        .salesforce
        .query(
            &format!("SELECT Id, {field} FROM {object} WHERE Attio_Id__c = '{attio_id}'"),
            false,
            None,
        )
        .await
        .ok()?
        .records;
    let row = rows.first()?;
    Some((
        row.id.clone(),
        row.properties
            .get(&prop(field))
            .cloned()
            .unwrap_or_default(),
    ))
}

/// Where the person's CRM records point: HubSpot's associated companies, Salesforce's
/// `AccountId`.
async fn crm_companies(rig: &Rig, person: &str) -> Option<(Vec<ExternalId>, FieldValue)> {
    let contact = hubspot_id(rig, "contacts", person).await?;
    let associated = rig
        .hubspot
        .associations("contacts", &contact, "companies")
        .await
        .ok()?;
    let (_, account) = salesforce_row(rig, "Contact", "AccountId", person).await?;
    Some((associated, account))
}

/// Each company's ids in HubSpot and Salesforce, once both are linked.
async fn company_ids(rig: &Rig, company: &str) -> (ExternalId, ExternalId) {
    eventually("the company reaches both CRMs", WITHIN, || async {
        let hs = hubspot_id(rig, "companies", company).await?;
        let (sf, _) = salesforce_row(rig, "Account", "Name", company).await?;
        Some((hs, sf))
    })
    .await
}

async fn follows(
    rig: &Rig,
    what: &str,
    person: &str,
    attio: &str,
    hs: &ExternalId,
    sf: &ExternalId,
) {
    eventually(what, WITHIN, || async {
        let in_attio = attio_company(rig, person).await? == attio;
        let (associated, account) = crm_companies(rig, person).await?;
        (in_attio && associated == [hs.clone()] && account == FieldValue::text(sf.as_str()))
            .then_some(())
    })
    .await;
}

/// Every write request a simulator has logged (reads, searches and logins aside).
pub(crate) async fn all_writes(rig: &Rig, sim_url: &str) -> usize {
    let logged: Vec<Value> = rig
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
        .filter(|r| {
            matches!(
                r["method"].as_str(),
                Some("POST" | "PUT" | "PATCH" | "DELETE")
            )
        })
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            !["/query", "/search", "/batch/read", "/oauth2/"]
                .iter()
                .any(|read| path.contains(read))
        })
        .count()
}

async fn a_persons_company_follows_every_side(rig: &Rig) -> String {
    // The person is created with the company at once: its reference waits for the company.
    let acme = attio_create(
        rig,
        "companies",
        json!({"name": "Acme", "domains": ["acme.com"]}),
    )
    .await;
    let person = attio_create(
        rig,
        "people",
        json!({
            "email_addresses": ["ada@acme.com"],
            "name": [{"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}],
            "company": [{"target_object": "companies", "target_record_id": acme}],
        }),
    )
    .await;
    let globex = attio_create(
        rig,
        "companies",
        json!({"name": "Globex", "domains": ["globex.com"]}),
    )
    .await;
    let (acme_hs, acme_sf) = company_ids(rig, &acme).await;
    let (globex_hs, globex_sf) = company_ids(rig, &globex).await;
    follows(
        rig,
        "Attio's company reaches both CRMs",
        &person,
        &acme,
        &acme_hs,
        &acme_sf,
    )
    .await;

    // Moved in HubSpot (an association change, told by webhook).
    let contact = hubspot_id(rig, "contacts", &person).await.unwrap();
    rig.hubspot
        .associate("contacts", &contact, "companies", &globex_hs)
        .await
        .unwrap();
    rig.hubspot
        .dissociate("contacts", &contact, "companies", &acme_hs)
        .await
        .unwrap();
    follows(
        rig,
        "HubSpot's move reaches Attio and Salesforce",
        &person,
        &globex,
        &globex_hs,
        &globex_sf,
    )
    .await;

    // Moved back in Salesforce (polled).
    let (sf_contact, _) = salesforce_row(rig, "Contact", "AccountId", &person)
        .await
        .unwrap();
    let back = [(prop("AccountId"), FieldValue::text(acme_sf.as_str()))].into();
    rig.salesforce
        .update("Contact", &sf_contact, &back)
        .await
        .unwrap();
    follows(
        rig,
        "Salesforce's move reaches Attio and HubSpot",
        &person,
        &acme,
        &acme_hs,
        &acme_sf,
    )
    .await;

    // A deal's company and people: to both CRMs, and a HubSpot move back into Attio and on.
    let deal = attio_create(
        rig,
        "deals",
        json!({
            "name": "Big deal",
            "stage": "Lead",
            "associated_company": [{"target_object": "companies", "target_record_id": acme}],
            "associated_people": [{"target_object": "people", "target_record_id": person}],
        }),
    )
    .await;
    let contact = hubspot_id(rig, "contacts", &person).await.unwrap();
    let (sf_contact, _) = salesforce_row(rig, "Contact", "Email", &person)
        .await
        .unwrap();
    let hs_deal = eventually(
        "the deal's company and people reach both CRMs",
        WITHIN,
        || async {
            let hs = hubspot_id(rig, "deals", &deal).await?;
            let companies = rig
                .hubspot
                .associations("deals", &hs, "companies")
                .await
                .ok()?;
            let people = rig
                .hubspot
                .associations("deals", &hs, "contacts")
                .await
                .ok()?;
            let (_, account) = salesforce_row(rig, "Opportunity", "AccountId", &deal).await?;
            let (opportunity, _) = salesforce_row(rig, "Opportunity", "Name", &deal).await?;
            let roles = rig
                .salesforce
                .get(
                    "Opportunity",
                    &opportunity,
                    &[prop("OpportunityContactRole.ContactId")],
                )
                .await
                .ok()?
                .properties
                .remove(&prop("OpportunityContactRole.ContactId"))?;
            (companies == [acme_hs.clone()]
                && people == [contact.clone()]
                && account == FieldValue::text(acme_sf.as_str())
                && roles == FieldValue::List(vec![sf_contact.as_str().to_owned()]))
            .then_some(hs)
        },
    )
    .await;
    rig.hubspot
        .associate("deals", &hs_deal, "companies", &globex_hs)
        .await
        .unwrap();
    rig.hubspot
        .dissociate("deals", &hs_deal, "companies", &acme_hs)
        .await
        .unwrap();
    eventually(
        "HubSpot's deal move reaches Attio and Salesforce",
        WITHIN,
        || async {
            let r = rig
                .attio()
                .call(
                    reqwest::Method::GET,
                    &format!("/v2/objects/deals/records/{deal}"),
                    None,
                )
                .await;
            let company =
                r["data"]["values"]["associated_company"][0]["target_record_id"].as_str()?;
            let people = r["data"]["values"]["associated_people"].as_array()?.len();
            let (_, account) = salesforce_row(rig, "Opportunity", "AccountId", &deal).await?;
            (company == globex && people == 1 && account == FieldValue::text(globex_sf.as_str()))
                .then_some(())
        },
    )
    .await;
    deal_stages_move_from_each_side(rig, &deal, &hs_deal).await;
    person
}

/// The deal's stage in each CRM and in its entry of Attio's `sales` list.
async fn stages(
    rig: &Rig,
    entry: &str,
    deal: &str,
    hs_deal: &ExternalId,
) -> Option<(String, FieldValue, FieldValue)> {
    let e = rig
        .attio()
        .call(
            reqwest::Method::GET,
            &format!("/v2/lists/sales/entries/{entry}"),
            None,
        )
        .await;
    let attio = e["data"]["entry_values"]["stage"][0]["status"]["title"]
        .as_str()?
        .to_owned();
    let hs = rig
        .hubspot
        .get("deals", hs_deal, &[prop("dealstage")])
        .await
        .ok()?
        .properties
        .get(&prop("dealstage"))
        .cloned()?;
    let (_, sf) = salesforce_row(rig, "Opportunity", "StageName", deal).await?;
    Some((attio, hs, sf))
}

/// A deal's stage (its entry in Attio's `sales` list) reaches both CRMs through the stage maps;
/// moved in HubSpot (told by webhook) and in Salesforce (found by polling, since the
/// Opportunity carries a stage), it moves in Attio and on to the other CRM.
async fn deal_stages_move_from_each_side(rig: &Rig, deal: &str, hs_deal: &ExternalId) {
    let made = rig
        .attio()
        .call(
            reqwest::Method::POST,
            "/v2/lists/sales/entries",
            Some(
                json!({"data": {"parent_record_id": deal, "parent_object": "deals",
                "entry_values": {"stage": "In Progress"}}}),
            ),
        )
        .await;
    let entry = made["data"]["id"]["entry_id"].as_str().unwrap().to_owned();
    // Each side's stage, until all three show `want` (what they show instead is printed, for
    // a failure to tell which side lagged).
    let become_ = |what: &'static str, want: [&'static str; 3]| {
        let entry = entry.clone();
        async move {
            let want = Some((
                want[0].to_owned(),
                FieldValue::text(want[1]),
                FieldValue::text(want[2]),
            ));
            eventually(what, WITHIN, || async {
                let seen = stages(rig, &entry, deal, hs_deal).await;
                if seen != want {
                    eprintln!("{what}: the stages are {seen:?}");
                }
                (seen == want).then_some(())
            })
            .await
        }
    };
    become_(
        "Attio's stage reaches both CRMs",
        ["In Progress", "qualifiedtobuy", "Negotiation/Review"],
    )
    .await;
    let won = [(prop("dealstage"), FieldValue::text("closedwon"))].into();
    rig.hubspot.update("deals", hs_deal, &won).await.unwrap();
    become_(
        "HubSpot's stage reaches Attio and Salesforce",
        ["Won 🎉", "closedwon", "Closed Won"],
    )
    .await;
    let (opportunity, _) = salesforce_row(rig, "Opportunity", "StageName", deal)
        .await
        .unwrap();
    let lost = [(prop("StageName"), FieldValue::text("Closed Lost"))].into();
    rig.salesforce
        .update("Opportunity", &opportunity, &lost)
        .await
        .unwrap();
    become_(
        "Salesforce's stage reaches Attio and HubSpot",
        ["Lost", "closedlost", "Closed Lost"],
    )
    .await;
}

/// A company born in HubSpot and a contact born in Salesforce: once in Attio, once in the other
/// CRM.
async fn records_born_in_each_crm_appear_once_everywhere(rig: &Rig) {
    // Made by hand in HubSpot: a plain create, no Attio id.
    let made = rig
        .http
        .post(format!("{}/crm/v3/objects/companies", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"domain": "born.example", "name": "Born Inc"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let company = eventually(
        "HubSpot's company becomes an Attio company",
        WITHIN,
        || async {
            let found = attio_find(rig, "companies", json!({"domains": "born.example"})).await;
            let id = found.first()?["id"]["record_id"].as_str()?.to_owned();
            salesforce_row(rig, "Account", "Name", &id)
                .await
                .filter(|(_, name)| *name == FieldValue::text("Born Inc"))
                .map(|_| id)
        },
    )
    .await;

    // Made by hand in Salesforce: a plain create, no Attio id.
    let token = salesforce_token(rig).await;
    let made = rig
        .http
        .post(format!(
            "{}/services/data/v62.0/sobjects/Contact",
            rig.sf_url
        ))
        .bearer_auth(&token)
        .json(&json!({"LastName": "Hopper", "Email": "grace@born.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let person = eventually(
        "Salesforce's contact becomes an Attio person",
        WITHIN,
        || async {
            let found = attio_find(
                rig,
                "people",
                json!({"email_addresses": "grace@born.example"}),
            )
            .await;
            let id = found.first()?["id"]["record_id"].as_str()?.to_owned();
            hubspot_id(rig, "contacts", &id).await.map(|_| id)
        },
    )
    .await;

    // An account made by hand in Salesforce: to Attio (matched by its website as a domain) and
    // on to HubSpot.
    let made = rig
        .http
        .post(format!(
            "{}/services/data/v62.0/sobjects/Account",
            rig.sf_url
        ))
        .bearer_auth(&token)
        .json(&json!({"Name": "Sf Born Ltd", "Website": "sfborn.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    eventually(
        "Salesforce's account becomes an Attio company and reaches HubSpot",
        WITHIN,
        || async {
            let found = attio_find(rig, "companies", json!({"domains": "sfborn.example"})).await;
            let id = found.first()?["id"]["record_id"].as_str()?.to_owned();
            hubspot_id(rig, "companies", &id).await.map(|_| ())
        },
    )
    .await;

    // Settled: still one of each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let one = |found: Vec<Value>| found.len();
    assert_eq!(
        one(attio_find(rig, "companies", json!({"domains": "born.example"})).await),
        1
    );
    assert_eq!(
        one(attio_find(rig, "companies", json!({"domains": "sfborn.example"})).await),
        1
    );
    let rows = rig
        .salesforce
        .query(
            "SELECT Id FROM Account WHERE Website = 'sfborn.example'",
            false,
            None,
        )
        .await
        .unwrap()
        .records;
    assert_eq!(
        rows.len(),
        1,
        "one Salesforce account made by hand, and no second"
    );
    assert_eq!(
        one(attio_find(
            rig,
            "people",
            json!({"email_addresses": "grace@born.example"})
        )
        .await),
        1
    );
    let rows = rig
        .salesforce
        .query(
            "SELECT Id FROM Account WHERE Website = 'born.example'",
            false,
            None,
        )
        .await
        .unwrap()
        .records;
    assert_eq!(rows.len(), 1, "one Salesforce account for {company}");
    let rows = rig
        .salesforce
        .query(
            "SELECT Id FROM Contact WHERE Email = 'grace@born.example'",
            false,
            None,
        )
        .await
        .unwrap()
        .records;
    assert_eq!(rows.len(), 1, "one Salesforce contact for {person}");
}

/// A Salesforce access token for requests the adapter does not make.
pub(crate) async fn salesforce_token(rig: &Rig) -> String {
    let token: Value = rig
        .http
        .post(format!("{}/services/oauth2/token", rig.sf_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "ck-e2e"),
            ("client_secret", "cs-e2e"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}

/// The person's e-mail addresses in Attio.
async fn attio_emails(rig: &Rig, person: &str) -> Vec<String> {
    let r = rig
        .attio()
        .call(
            reqwest::Method::GET,
            &format!("/v2/objects/people/records/{person}"),
            None,
        )
        .await;
    r["data"]["values"]["email_addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["email_address"].as_str().map(str::to_owned))
        .collect()
}

/// In each CRM a person merges the linked contact into a duplicate without an e-mail (so it was
/// never adopted): the link follows the survivor, the survivor is filled from Attio (its id
/// property, e-mail and company), and Attio keeps its one person with its address.
async fn a_merge_in_each_crm_leaves_one_linked_record(rig: &Rig, person: &str) {
    // HubSpot: `POST …/contacts/merge`, told by a `contact.merge` webhook.
    let made = rig
        .http
        .post(format!("{}/crm/v3/objects/contacts", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"lastname": "Lovelace"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let dup: Value = made.json().await.unwrap();
    let dup = dup["id"].as_str().unwrap().to_owned();
    let old = hubspot_id(rig, "contacts", person).await.unwrap();
    let merged = rig
        .http
        .post(format!("{}/crm/v3/objects/contacts/merge", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"primaryObjectId": dup, "objectIdToMerge": old.as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), 200);
    eventually(
        "HubSpot's survivor is linked and filled from Attio",
        WITHIN,
        || async {
            let survivor = rig
                .hubspot
                .get_by(
                    "contacts",
                    &prop("attio_record_id"),
                    person,
                    &[prop("email")],
                )
                .await
                .ok()?;
            let associated = rig
                .hubspot
                .associations("contacts", &survivor.id, "companies")
                .await
                .ok()?;
            (survivor.id.as_str() == dup
                && survivor.properties.get(&prop("email"))
                    == Some(&FieldValue::text("ada@acme.com"))
                && associated.len() == 1)
                .then_some(())
        },
    )
    .await;

    // Salesforce: a merge in its UI (the simulator's `/_sim/merge`), found by polling: the
    // merged contact is deleted with `MasterRecordId`.
    let token = salesforce_token(rig).await;
    let made = rig
        .http
        .post(format!(
            "{}/services/data/v62.0/sobjects/Contact",
            rig.sf_url
        ))
        .bearer_auth(&token)
        .json(&json!({"LastName": "Lovelace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let dup: Value = made.json().await.unwrap();
    let dup = dup["id"].as_str().unwrap().to_owned();
    let (old, _) = salesforce_row(rig, "Contact", "Email", person)
        .await
        .unwrap();
    let merged = rig
        .http
        .post(format!("{}/_sim/merge", rig.sf_url))
        .json(&json!({"object": "Contact", "master": dup, "merged": [old.as_str()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), 204);
    eventually(
        "Salesforce's survivor is linked and filled from Attio",
        WITHIN,
        || async {
            let (id, email) = salesforce_row(rig, "Contact", "Email", person).await?;
            let (_, account) = salesforce_row(rig, "Contact", "AccountId", person).await?;
            (id.as_str() == dup && email == FieldValue::text("ada@acme.com") && !account.is_empty())
                .then_some(())
        },
    )
    .await;
    assert_eq!(attio_emails(rig, person).await, ["ada@acme.com"]);
    let people = attio_find(rig, "people", json!({"email_addresses": "ada@acme.com"})).await;
    assert_eq!(people.len(), 1, "one Attio person after both merges");
}

/// A HubSpot note's text (its body), by id.
async fn hubspot_note(rig: &Rig, id: &ExternalId) -> Option<String> {
    let r = rig
        .hubspot
        .get("notes", id, &[prop("hs_note_body")])
        .await
        .ok()?;
    match r.properties.get(&prop("hs_note_body")) {
        Some(FieldValue::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

/// The person's notes in Attio: (title, text).
async fn attio_notes(rig: &Rig, person: &str) -> Vec<(String, String)> {
    let r = rig
        .attio()
        .call(
            reqwest::Method::GET,
            &format!("/v2/notes?parent_object=people&parent_record_id={person}"),
            None,
        )
        .await;
    r["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["title"].as_str().unwrap_or_default().to_owned(),
                n["content_plaintext"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// A note made in Salesforce on the person's contact reaches Attio and HubSpot, follows an edit
/// and a delete there; one made in HubSpot reaches Attio and Salesforce; nothing comes back.
async fn notes_made_in_each_crm_follow_into_attio_and_the_other(rig: &Rig, person: &str) {
    let token = salesforce_token(rig).await;
    let (contact, _) = salesforce_row(rig, "Contact", "Email", person)
        .await
        .unwrap();
    let sf = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = rig
            .http
            .request(method, format!("{}/services/data/v62.0{path}", rig.sf_url))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let made = sf(
        reqwest::Method::POST,
        "/sobjects/Note".into(),
        Some(json!({"ParentId": contact.as_str(), "Title": "Call", "Body": "Wants 40 seats."})),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201);
    let note: Value = made.json().await.unwrap();
    let note = note["id"].as_str().unwrap().to_owned();
    let hs_contact = hubspot_id(rig, "contacts", person).await.unwrap();
    let hs_copy = eventually(
        "Salesforce's note reaches Attio and HubSpot",
        WITHIN,
        || async {
            let in_attio = attio_notes(rig, person).await
                == [("Call".to_owned(), "Wants 40 seats.".to_owned())];
            let notes = rig
                .hubspot
                .associations("contacts", &hs_contact, "notes")
                .await
                .ok()?;
            let copy = notes.first()?.clone();
            (in_attio
                && notes.len() == 1
                && hubspot_note(rig, &copy).await?.ends_with("Wants 40 seats."))
            .then_some(copy)
        },
    )
    .await;

    let r = sf(
        reqwest::Method::PATCH,
        format!("/sobjects/Note/{note}"),
        Some(json!({"Body": "Wants 45 seats."})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    eventually(
        "the edit follows into Attio and HubSpot's copy",
        WITHIN,
        || async {
            let in_attio = attio_notes(rig, person).await
                == [("Call".to_owned(), "Wants 45 seats.".to_owned())];
            (in_attio
                && hubspot_note(rig, &hs_copy)
                    .await?
                    .ends_with("Wants 45 seats."))
            .then_some(())
        },
    )
    .await;

    // Made in HubSpot: to Attio and on to Salesforce.
    use ports::crm::ExternalActivities;
    let hs_note = rig
        .hubspot
        .create_activity(
            &ports::crm::ExternalActivity {
                kind: ports::crm::ActivityKind::Note,
                title: String::new(),
                body: "Met at the fair.".into(),
                at: time::OffsetDateTime::now_utc(),
                completed: false,
            },
            &[ports::crm::ActivityTarget {
                object: "contacts".into(),
                id: hs_contact.clone(),
            }],
        )
        .await
        .unwrap();
    eventually(
        "HubSpot's note reaches Attio and Salesforce",
        WITHIN,
        || async {
            let in_attio = attio_notes(rig, person)
                .await
                .iter()
                .any(|(_, t)| t == "Met at the fair.");
            let rows = rig
                .salesforce
                .query(
                    &format!(
                        "SELECT Id, Body FROM Note WHERE ParentId = '{}'",
                        contact.as_str()
                    ),
                    false,
                    None,
                )
                .await
                .ok()?
                .records;
            let in_sf = rows.iter().any(|r| {
                r.properties.get(&prop("Body")) == Some(&FieldValue::text("Met at the fair."))
            });
            (in_attio && in_sf && rows.len() == 2).then_some(())
        },
    )
    .await;

    // Deleted in Salesforce: gone from Attio and HubSpot.
    let r = sf(
        reqwest::Method::DELETE,
        format!("/sobjects/Note/{note}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    eventually(
        "the delete follows into Attio and HubSpot",
        WITHIN,
        || async {
            let in_attio = attio_notes(rig, person).await;
            let gone = hubspot_note(rig, &hs_copy).await.is_none();
            (in_attio.len() == 1 && gone).then_some(())
        },
    )
    .await;

    // HubSpot's note edited, then deleted there: Attio and Salesforce follow.
    let edited = ports::crm::ExternalActivity {
        kind: ports::crm::ActivityKind::Note,
        title: String::new(),
        body: "Met at the fair; call in May.".into(),
        at: time::OffsetDateTime::now_utc(),
        completed: false,
    };
    rig.hubspot
        .update_activity(&hs_note, &edited)
        .await
        .unwrap();
    let sf_body = || async {
        let rows = rig
            .salesforce
            .query(
                &format!(
                    "SELECT Id, Body FROM Note WHERE ParentId = '{}'",
                    contact.as_str()
                ),
                false,
                None,
            )
            .await
            .ok()?
            .records;
        Some(
            rows.iter()
                .filter_map(|r| match r.properties.get(&prop("Body")) {
                    Some(FieldValue::Text(t)) => Some(t.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    };
    eventually(
        "HubSpot's edit follows into Attio and Salesforce",
        WITHIN,
        || async {
            let in_attio = attio_notes(rig, person)
                .await
                .iter()
                .any(|(_, t)| t == "Met at the fair; call in May.");
            let in_sf = sf_body().await? == ["Met at the fair; call in May."];
            (in_attio && in_sf).then_some(())
        },
    )
    .await;
    rig.hubspot
        .delete_activity(ports::crm::ActivityKind::Note, &hs_note)
        .await
        .unwrap();
    eventually(
        "HubSpot's delete follows into Attio and Salesforce",
        WITHIN,
        || async {
            (attio_notes(rig, person).await.is_empty() && sf_body().await?.is_empty()).then_some(())
        },
    )
    .await;
}

/// A task made in Salesforce on the person's contact reaches Attio (linked to the person) and
/// HubSpot; marked done in Salesforce, it is done in Attio. A second Salesforce contact with the
/// person's e-mail (Salesforce allows it) matches a person linked to another contact: an
/// identity conflict waits in the queue, and no second person is made.
async fn a_task_and_an_ambiguous_match_from_salesforce(rig: &Rig, person: &str) {
    let token = salesforce_token(rig).await;
    let (contact, _) = salesforce_row(rig, "Contact", "Email", person)
        .await
        .unwrap();
    let sf = |method: reqwest::Method, path: String, body: Value| {
        rig.http
            .request(method, format!("{}/services/data/v62.0{path}", rig.sf_url))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let made = sf(
        reqwest::Method::POST,
        "/sobjects/Task".into(),
        json!({"WhoId": contact.as_str(), "Subject": "Send the contract", "Status": "Not Started", "ActivityDate": "2027-01-15"}),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201);
    let task: Value = made.json().await.unwrap();
    let task = task["id"].as_str().unwrap().to_owned();
    let tasks = || async {
        let r = rig
            .attio()
            .call(reqwest::Method::GET, "/v2/tasks", None)
            .await;
        r["data"].as_array().cloned().unwrap_or_default()
    };
    let hs_contact = hubspot_id(rig, "contacts", person).await.unwrap();
    eventually(
        "Salesforce's task reaches Attio and HubSpot",
        WITHIN,
        || async {
            let in_attio = tasks().await.iter().any(|t| {
                t["content_plaintext"] == "Send the contract"
                    && t["linked_records"][0]["target_record_id"] == person
            });
            let in_hs = !rig
                .hubspot
                .associations("contacts", &hs_contact, "tasks")
                .await
                .ok()?
                .is_empty();
            (in_attio && in_hs).then_some(())
        },
    )
    .await;
    let r = sf(
        reqwest::Method::PATCH,
        format!("/sobjects/Task/{task}"),
        json!({"Status": "Completed"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    eventually("done in Salesforce, done in Attio", WITHIN, || async {
        tasks()
            .await
            .iter()
            .any(|t| t["content_plaintext"] == "Send the contract" && t["is_completed"] == true)
            .then_some(())
    })
    .await;
    let r = sf(
        reqwest::Method::DELETE,
        format!("/sobjects/Task/{task}"),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    eventually(
        "deleted in Salesforce, gone from Attio and HubSpot",
        WITHIN,
        || async {
            let in_attio = tasks()
                .await
                .iter()
                .any(|t| t["content_plaintext"] == "Send the contract");
            let in_hs = rig
                .hubspot
                .associations("contacts", &hs_contact, "tasks")
                .await
                .ok()?;
            let gone = !in_attio && in_hs.is_empty();
            if !gone {
                eprintln!("after Salesforce's delete: in Attio {in_attio}, in HubSpot {in_hs:?}");
            }
            gone.then_some(())
        },
    )
    .await;

    let email: Value = rig
        .attio()
        .call(
            reqwest::Method::GET,
            &format!("/v2/objects/people/records/{person}"),
            None,
        )
        .await;
    let email = email["data"]["values"]["email_addresses"][0]["email_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = sf(
        reqwest::Method::POST,
        "/sobjects/Contact".into(),
        json!({"LastName": "Lovelace", "Email": email}),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201);
    eventually(
        "the ambiguous match waits in the conflict queue",
        WITHIN,
        || async {
            let (_, listed) = rig
                .admin(
                    reqwest::Method::GET,
                    "/v1/admin/tenants/acme/conflicts?system=salesforce",
                    None,
                )
                .await;
            listed
                .as_array()?
                .iter()
                .any(|c| c["reason"] == "ambiguous_identity")
                .then_some(())
        },
    )
    .await;
    let people = attio_find(rig, "people", json!({"email_addresses": email})).await;
    assert_eq!(people.len(), 1, "no second person");
}

/// A task made in HubSpot on the person's contact reaches Attio and Salesforce; completed in
/// HubSpot, it is done in both; deleted there, it is gone from both.
async fn a_task_made_in_hubspot_follows_into_attio_and_salesforce(rig: &Rig, person: &str) {
    use ports::crm::{ActivityKind, ActivityTarget, ExternalActivities, ExternalActivity};
    let hs_contact = hubspot_id(rig, "contacts", person).await.unwrap();
    let (contact, _) = salesforce_row(rig, "Contact", "Email", person)
        .await
        .unwrap();
    let task = |completed| ExternalActivity {
        kind: ActivityKind::Task,
        title: String::new(),
        body: "Book the demo".into(),
        at: time::OffsetDateTime::now_utc() + time::Duration::days(7),
        completed,
    };
    let made = rig
        .hubspot
        .create_activity(
            &task(false),
            &[ActivityTarget {
                object: "contacts".into(),
                id: hs_contact,
            }],
        )
        .await
        .unwrap();
    // (Attio's task completed?, Salesforce's task statuses) for the task.
    let sides = || async {
        let r = rig
            .attio()
            .call(reqwest::Method::GET, "/v2/tasks", None)
            .await;
        let attio: Vec<bool> = r["data"]
            .as_array()?
            .iter()
            .filter(|t| {
                t["content_plaintext"] == "Book the demo"
                    && t["linked_records"][0]["target_record_id"] == person
            })
            .map(|t| t["is_completed"] == true)
            .collect();
        let rows = rig
            .salesforce
            .query(
                &format!(
                    "SELECT Id, Status FROM Task WHERE WhoId = '{}'",
                    contact.as_str()
                ),
                false,
                None,
            )
            .await
            .ok()?
            .records;
        let sf: Vec<String> = rows
            .iter()
            .map(|r| match r.properties.get(&prop("Status")) {
                Some(FieldValue::Text(s)) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        Some((attio, sf))
    };
    let reach = |what: &'static str, want: (Vec<bool>, Vec<&'static str>)| async move {
        let want = Some((want.0, want.1.into_iter().map(str::to_owned).collect()));
        eventually(what, WITHIN, || async {
            let seen = sides().await;
            if seen != want {
                eprintln!("{what}: the sides show {seen:?}");
            }
            (seen == want).then_some(())
        })
        .await
    };
    reach(
        "HubSpot's task reaches Attio and Salesforce",
        (vec![false], vec!["Not Started"]),
    )
    .await;
    rig.hubspot
        .update_activity(&made, &task(true))
        .await
        .unwrap();
    reach(
        "completed in HubSpot, done in Attio and Salesforce",
        (vec![true], vec!["Completed"]),
    )
    .await;
    rig.hubspot
        .delete_activity(ActivityKind::Task, &made)
        .await
        .unwrap();
    reach(
        "deleted in HubSpot, gone from Attio and Salesforce",
        (vec![], vec![]),
    )
    .await;
}

/// A contact made by hand in HubSpot (told by `contact.creation`) becomes one Attio person and
/// one Salesforce contact.
async fn a_contact_born_in_hubspot_appears_once_everywhere(rig: &Rig) {
    let made = rig
        .http
        .post(format!("{}/crm/v3/objects/contacts", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"email": "katherine@born.example", "lastname": "Johnson"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    eventually(
        "HubSpot's contact becomes one Attio person and one Salesforce contact",
        WITHIN,
        || async {
            let found = attio_find(
                rig,
                "people",
                json!({"email_addresses": "katherine@born.example"}),
            )
            .await;
            let [one] = found.as_slice() else {
                return None;
            };
            let id = one["id"]["record_id"].as_str()?;
            let rows = rig
                .salesforce
                .query(
                    "SELECT Id, LastName, Attio_Id__c FROM Contact WHERE Email = 'katherine@born.example'",
                    false,
                    None,
                )
                .await
                .ok()?
                .records;
            let [row] = rows.as_slice() else {
                return None;
            };
            (row.properties.get(&prop("LastName")) == Some(&FieldValue::text("Johnson"))
                && row.properties.get(&prop("Attio_Id__c")) == Some(&FieldValue::text(id)))
            .then_some(())
        },
    )
    .await;
}

/// Two people, each linked in both CRMs, whose HubSpot contacts a person merges: Attio merges
/// them too (one person with both addresses), and Salesforce keeps one contact of the two.
async fn a_merge_of_two_linked_contacts_merges_them_everywhere(rig: &Rig) {
    let mut ids = Vec::new();
    for (email, last) in [("kay@merge.example", "Kay"), ("kj@merge.example", "Jay")] {
        ids.push(
            attio_create(
                rig,
                "people",
                json!({"email_addresses": [email], "name": [{"first_name": "K", "last_name": last, "full_name": format!("K {last}")}]}),
            )
            .await,
        );
    }
    let contacts = eventually("both people reach both CRMs", WITHIN, || async {
        let mut hs = Vec::new();
        for id in &ids {
            hs.push(hubspot_id(rig, "contacts", id).await?);
            salesforce_row(rig, "Contact", "Email", id).await?;
        }
        Some(hs)
    })
    .await;
    let merged = rig
        .http
        .post(format!("{}/crm/v3/objects/contacts/merge", rig.hubspot_url))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"primaryObjectId": contacts[0].as_str(), "objectIdToMerge": contacts[1].as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), 200);
    eventually(
        "one Attio person with both addresses, one Salesforce contact",
        WITHIN,
        || async {
            let found = attio_find(
                rig,
                "people",
                json!({"email_addresses": "kj@merge.example"}),
            )
            .await;
            let [one] = found.as_slice() else {
                return None;
            };
            let id = one["id"]["record_id"].as_str()?;
            let mut emails: Vec<&str> = one["values"]["email_addresses"]
                .as_array()?
                .iter()
                .filter_map(|v| v["email_address"].as_str())
                .collect();
            emails.sort_unstable();
            let rows = rig
                .salesforce
                .query(
                    "SELECT Id FROM Contact WHERE Email LIKE '%@merge.example'",
                    false,
                    None,
                )
                .await
                .ok()?
                .records;
            let survivor = hubspot_id(rig, "contacts", id).await;
            let linked_sf = salesforce_row(rig, "Contact", "Email", id).await;
            let done = emails == ["kay@merge.example", "kj@merge.example"]
                && rows.len() == 1
                && linked_sf.as_ref().is_some_and(|(sf, _)| rows[0].id == *sf)
                && survivor.as_ref() == Some(&contacts[0]);
            if !done {
                eprintln!("after the merge: Attio {id} {emails:?}, HubSpot {survivor:?}, Salesforce {linked_sf:?} of {rows:?}");
            }
            done.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_flows_both_ways_on_postgres_processes() {
    let rig = rig_with(Deployment::Distributed, 20, MAPPINGS, SUBSCRIPTIONS).await;
    let person = a_persons_company_follows_every_side(&rig).await;
    a_merge_in_each_crm_leaves_one_linked_record(&rig, &person).await;
    notes_made_in_each_crm_follow_into_attio_and_the_other(&rig, &person).await;
    a_task_and_an_ambiguous_match_from_salesforce(&rig, &person).await;
    a_task_made_in_hubspot_follows_into_attio_and_salesforce(&rig, &person).await;
    records_born_in_each_crm_appear_once_everywhere(&rig).await;
    a_contact_born_in_hubspot_appears_once_everywhere(&rig).await;
    a_merge_of_two_linked_contacts_merges_them_everywhere(&rig).await;
    quiet_and_nothing_dead(&rig).await;
}

/// Once quiet, no side writes anything more (no loop between the three) and nothing failed on
/// the way (a change that arrives after its record was merged away is acknowledged, not
/// dead-lettered).
pub(crate) async fn quiet_and_nothing_dead(rig: &Rig) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sims = [&rig.attio_url, &rig.hubspot_url, &rig.sf_url];
    let mut before = Vec::new();
    for url in sims {
        before.push(all_writes(rig, url).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (url, was) in sims.into_iter().zip(before) {
        assert_eq!(
            all_writes(rig, url).await,
            was,
            "{url} was written to while quiet"
        );
    }
    let (_, dead) = rig
        .admin(
            reqwest::Method::GET,
            "/v1/admin/tenants/acme/dead-letters",
            None,
        )
        .await;
    assert_eq!(dead, json!([]), "no dead letters");
}
