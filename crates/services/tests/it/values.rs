//! Value types both ways, a table per CRM: a value set in Attio reaches the CRM in the CRM's form,
//! and the CRM's form of another value, set in the CRM on a second record, comes back into Attio
//! as that value — e-mail addresses, phone numbers (E.164), domains, multiselects (`;`-separated
//! in the CRM), selects and statuses through value maps, currency amounts and text.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_memory::SystemClock;
use domain::field::FieldValue;
use domain::ids::{ObjectRef, ObjectSlug, RecordId, SystemId};
use domain::mapping::{FieldMapping, ObjectMapping, SyncRule};
use domain::value::AttributeType;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::AttioRecords;
use ports::crm::ExternalUpsert;
use serde_json::json;
use services::outbound::{OutboundSync, SyncTarget};

use crate::outbound::{World, field, prop, slug, world};

/// One row: an Attio attribute mapped to a CRM property, the value given to the first record in
/// Attio and the CRM's form of it, and the CRM's form given to the second record in the CRM with
/// the Attio values it becomes.
struct Case {
    object: &'static str,
    attribute: &'static str,
    attio_type: AttributeType,
    /// Multiselect mapped whole (`all_values`).
    all: bool,
    external_object: &'static str,
    property: &'static str,
    transform: serde_json::Value,
    a: &'static [&'static str],
    a_in_crm: &'static str,
    b_in_crm: &'static str,
    b: &'static [&'static str],
}

/// What a record needs in Attio, and in the CRM, besides the mapped value.
type Required = (
    Vec<(&'static str, WriteValue)>,
    Vec<(&'static str, &'static str)>,
);

fn required(object: &str, crm: &str, n: u32) -> Required {
    let attio = match object {
        "deals" => vec![
            ("name", WriteValue::Text(format!("Deal {n}"))),
            ("stage", WriteValue::Status("Lead".into())),
        ],
        "companies" => vec![("name", WriteValue::Text(format!("Company {n}")))],
        _ => vec![("name", WriteValue::personal_name("Ada", "Lovelace"))],
    };
    let crm = match (crm, object) {
        ("salesforce", "people") => vec![("LastName", "Lovelace")],
        _ => vec![],
    };
    (attio, crm)
}

/// The row's attribute and part: `primary_location.locality` maps one part of a location.
fn attribute_and_part(c: &Case) -> (&'static str, Option<&'static str>) {
    match c.attribute.split_once('.') {
        Some((a, p)) => (a, Some(p)),
        None => (c.attribute, None),
    }
}

fn target(c: &Case, system: &str) -> SyncTarget {
    let (attribute, part) = attribute_and_part(c);
    let mut f = FieldMapping {
        transform: serde_json::from_value(c.transform.clone()).unwrap(),
        ..field(attribute, part, c.property, SyncRule::LatestWins)
    };
    f.attio.all_values = c.all;
    let mut fields = vec![f];
    // A second field, so that a record without the mapped value still has something to sync
    // (and so gets linked).
    if c.object == "people" {
        let last = if system == "hubspot" {
            "lastname"
        } else {
            "LastName"
        };
        fields.push(field("name", Some("last_name"), last, SyncRule::LatestWins));
    }
    if c.object != "people" && c.attribute != "name" {
        let name = match (system, c.object) {
            ("hubspot", "deals") => "dealname",
            ("hubspot", _) => "name",
            _ => "Name",
        };
        fields.push(field("name", None, name, SyncRule::LatestWins));
    }
    let mut create_with = BTreeMap::new();
    if c.external_object == "Opportunity" {
        create_with.insert(prop("CloseDate"), FieldValue::text("2027-03-31"));
        create_with.insert(prop("StageName"), FieldValue::text("Prospecting"));
    }
    SyncTarget {
        mapping: ObjectMapping::new(
            ObjectSlug::parse(c.object).unwrap(),
            SystemId::parse(system).unwrap(),
            c.external_object,
            fields,
        )
        .unwrap(),
        id_property: prop(if system == "hubspot" {
            "attio_record_id"
        } else {
            "Attio_Id__c"
        }),
        create_with,
    }
}

async fn create(w: &World, c: &Case, system: &str, n: u32, values: &[&str]) -> RecordId {
    let (attio, _) = required(c.object, system, n);
    let mut write = RecordWrite::new();
    for (slug_name, v) in attio {
        write = write.set(slug(slug_name), vec![v]);
    }
    if !values.is_empty() {
        let vs = values
            .iter()
            .map(|v| {
                let json = match c.attio_type {
                    AttributeType::Currency | AttributeType::Number | AttributeType::Rating => {
                        match v.parse::<i64>() {
                            Ok(i) => json!(i),
                            Err(_) => json!(v.parse::<f64>().unwrap()),
                        }
                    }
                    // One part of a location, the others empty.
                    AttributeType::Location => {
                        let mut all = json!({"line_1": null, "line_2": null, "line_3": null,
                            "line_4": null, "locality": null, "region": null, "postcode": null,
                            "country_code": null, "latitude": null, "longitude": null});
                        all[attribute_and_part(c).1.unwrap()] = json!(v);
                        all
                    }
                    _ => json!(v),
                };
                WriteValue::from_json(&c.attio_type, &json).unwrap()
            })
            .collect();
        write = write.set(slug(attribute_and_part(c).0), vs);
    }
    w.attio
        .create_record(
            &ObjectRef::from(ObjectSlug::parse(c.object).unwrap()),
            &write,
        )
        .await
        .unwrap_or_else(|e| panic!("{}.{}: {e}", c.object, c.attribute))
        .id
        .record_id
}

async fn attio_texts(w: &World, c: &Case, id: RecordId) -> Vec<String> {
    let r = w
        .attio
        .get_record(&ObjectRef::from(ObjectSlug::parse(c.object).unwrap()), id)
        .await
        .unwrap();
    let (attribute, part) = attribute_and_part(c);
    let values: Vec<_> = r.current(attribute).cloned().collect();
    let mut texts = FieldValue::ordered_texts(&values, part);
    if c.all {
        texts.sort();
    }
    texts
}

async fn round_trip(w: &World, system: &str, cases: &[Case]) {
    let crm = w.directory.0.crms[&SystemId::parse(system).unwrap()].clone();
    for (n, c) in cases.iter().enumerate() {
        let what = format!("{system}: {}.{} ↔ {}", c.object, c.attribute, c.property);
        let t = target(c, system);
        let sync = OutboundSync::new(
            w.directory.clone(),
            w.links.clone(),
            w.ledger.clone(),
            w.conflicts.clone(),
            Arc::new(SystemClock),
            vec![t],
        );
        let object = ObjectSlug::parse(c.object).unwrap();
        let n = u32::try_from(n).unwrap() * 2;
        let a = create(w, c, system, n, c.a).await;
        let reports = sync.sync_record(&w.tenant, &object, a).await.unwrap();
        let external = reports[0]
            .external_id
            .clone()
            .unwrap_or_else(|| panic!("{what}: {reports:?}"));
        let there = crm
            .get(c.external_object, &external, &[prop(c.property)])
            .await
            .unwrap();
        let got = there
            .properties
            .get(&prop(c.property))
            .cloned()
            .unwrap_or_default();
        assert!(
            got.same_as(&FieldValue::text(c.a_in_crm)),
            "{what}: Attio {:?} reached the CRM as {got:?}, not {:?}",
            c.a,
            c.a_in_crm
        );

        let b = create(w, c, system, n + 1, &[]).await;
        let first = sync.sync_record(&w.tenant, &object, b).await.unwrap();
        let rec = w
            .attio
            .get_record(&ObjectRef::from(object.clone()), b)
            .await
            .unwrap();
        assert!(
            first[0].external_id.is_some(),
            "{what}: B is linked: {first:?} {:?}",
            rec.values
        );
        let (_, extra) = required(c.object, system, n + 1);
        let mut properties: BTreeMap<_, _> = extra
            .iter()
            .map(|(p, v)| (prop(p), FieldValue::text(*v)))
            .collect();
        properties.insert(prop(c.property), FieldValue::text(c.b_in_crm));
        let edit = ExternalUpsert {
            key: b.to_string(),
            properties,
        };
        let id_property = if system == "hubspot" {
            "attio_record_id"
        } else {
            "Attio_Id__c"
        };
        crm.upsert_batch(c.external_object, &prop(id_property), &[edit])
            .await
            .unwrap();
        let reports = sync.sync_record(&w.tenant, &object, b).await.unwrap();
        assert!(
            reports[0].deferred_inbound.is_empty(),
            "{what}: {:?} from the CRM was not taken: {reports:?}",
            c.b_in_crm
        );
        assert_eq!(
            attio_texts(w, c, b).await,
            c.b,
            "{what}: the CRM's {:?} in Attio ({reports:?})",
            c.b_in_crm
        );
        let again = sync.sync_record(&w.tenant, &object, b).await.unwrap();
        assert!(
            again[0].written.is_empty() && again[0].written_to_attio.is_empty(),
            "{what}: in step afterwards, yet {again:?}"
        );
    }
}

/// Attributes Attio's standard objects lack, made as an admin makes them
/// (`POST /v2/objects/{object}/attributes`): a date, timestamps, a rating and numbers.
async fn add_attributes(w: &World) {
    let http = reqwest::Client::new();
    for (object, slug, kind) in [
        ("deals", "close_on", "date"),
        ("deals", "closed_at", "timestamp"),
        ("deals", "fit", "rating"),
        ("deals", "seats", "number"),
        ("companies", "employee_count", "number"),
        ("people", "bounced_at", "timestamp"),
    ] {
        let r = http
            .post(format!(
                "{}/v2/objects/{object}/attributes",
                w._sims.0.url()
            ))
            .bearer_auth("a".repeat(64))
            .json(
                &json!({"data": {"title": slug, "api_slug": slug, "type": kind, "description": null,
                "is_required": false, "is_unique": false, "is_multiselect": false, "config": {}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{object}.{slug}: {}",
            r.text().await.unwrap_or_default()
        );
    }
}

fn identity() -> serde_json::Value {
    json!({"type": "identity"})
}

#[tokio::test]
async fn every_value_type_goes_both_ways_with_hubspot() {
    let w = world(true, SyncRule::LatestWins).await;
    let stages = json!({"type": "map_values", "values": {"Lead": "appointmentscheduled", "In Progress": "qualifiedtobuy", "Won 🎉": "closedwon", "Lost": "closedlost"}});
    let cases = [
        Case {
            object: "people",
            attribute: "job_title",
            attio_type: AttributeType::Text,
            all: false,
            external_object: "contacts",
            property: "jobtitle",
            transform: identity(),
            a: &["Analyst"],
            a_in_crm: "Analyst",
            b_in_crm: "Countess",
            b: &["Countess"],
        },
        Case {
            object: "people",
            attribute: "email_addresses",
            attio_type: AttributeType::EmailAddress,
            all: false,
            external_object: "contacts",
            property: "email",
            transform: identity(),
            a: &["ada@example.com"],
            a_in_crm: "ada@example.com",
            b_in_crm: "bea@example.com",
            b: &["bea@example.com"],
        },
        Case {
            object: "people",
            attribute: "phone_numbers",
            attio_type: AttributeType::PhoneNumber,
            all: false,
            external_object: "contacts",
            property: "phone",
            transform: identity(),
            a: &["+14155550123"],
            a_in_crm: "+14155550123",
            b_in_crm: "+442071838750",
            b: &["+442071838750"],
        },
        Case {
            object: "companies",
            attribute: "domains",
            attio_type: AttributeType::Domain,
            all: false,
            external_object: "companies",
            property: "domain",
            transform: identity(),
            a: &["globex.example"],
            a_in_crm: "globex.example",
            b_in_crm: "initech.example",
            b: &["initech.example"],
        },
        // Every address, as HubSpot's multiple-checkbox property holds them (`;`-separated).
        Case {
            object: "people",
            attribute: "email_addresses",
            attio_type: AttributeType::EmailAddress,
            all: true,
            external_object: "contacts",
            property: "hs_additional_emails",
            transform: identity(),
            a: &["kay@example.com", "kay@work.example"],
            a_in_crm: "kay@example.com;kay@work.example",
            b_in_crm: "lin@work.example;lin@example.com",
            b: &["lin@example.com", "lin@work.example"],
        },
        Case {
            object: "companies",
            attribute: "employee_range",
            attio_type: AttributeType::Select,
            all: false,
            external_object: "companies",
            property: "industry",
            transform: json!({"type": "map_values", "values": {"11-50": "COMPUTER_SOFTWARE", "51-250": "BANKING"}}),
            a: &["11-50"],
            a_in_crm: "COMPUTER_SOFTWARE",
            b_in_crm: "BANKING",
            b: &["51-250"],
        },
        Case {
            object: "deals",
            attribute: "value",
            attio_type: AttributeType::Currency,
            all: false,
            external_object: "deals",
            property: "amount",
            transform: identity(),
            a: &["5000"],
            a_in_crm: "5000",
            b_in_crm: "7500.5",
            b: &["7500.5"],
        },
        Case {
            object: "deals",
            attribute: "stage",
            attio_type: AttributeType::Status,
            all: false,
            external_object: "deals",
            property: "dealstage",
            transform: stages,
            a: &["In Progress"],
            a_in_crm: "qualifiedtobuy",
            b_in_crm: "closedwon",
            b: &["Won 🎉"],
        },
        Case {
            object: "deals",
            attribute: "close_on",
            attio_type: AttributeType::Date,
            all: false,
            external_object: "deals",
            property: "closedate",
            transform: identity(),
            a: &["2027-03-31"],
            a_in_crm: "2027-03-31",
            b_in_crm: "2027-06-30",
            b: &["2027-06-30"],
        },
        Case {
            object: "deals",
            attribute: "closed_at",
            attio_type: AttributeType::Timestamp,
            all: false,
            external_object: "deals",
            property: "closedate",
            transform: identity(),
            a: &["2027-03-31T14:30:00Z"],
            a_in_crm: "2027-03-31T14:30:00.000000000Z",
            b_in_crm: "2027-04-01T09:00:00Z",
            b: &["2027-04-01T09:00:00.000000000Z"],
        },
        Case {
            object: "deals",
            attribute: "fit",
            attio_type: AttributeType::Rating,
            all: false,
            external_object: "deals",
            property: "amount",
            transform: identity(),
            a: &["4"],
            a_in_crm: "4",
            b_in_crm: "3",
            b: &["3"],
        },
        Case {
            object: "deals",
            attribute: "seats",
            attio_type: AttributeType::Number,
            all: false,
            external_object: "deals",
            property: "amount",
            transform: identity(),
            a: &["40"],
            a_in_crm: "40",
            b_in_crm: "45.5",
            b: &["45.5"],
        },
        Case {
            object: "companies",
            attribute: "categories",
            attio_type: AttributeType::Select,
            all: true,
            external_object: "companies",
            property: "tags",
            transform: identity(),
            a: &["B2B", "SaaS"],
            a_in_crm: "B2B;SaaS",
            b_in_crm: "Enterprise;B2C",
            b: &["B2C", "Enterprise"],
        },
        Case {
            object: "companies",
            attribute: "primary_location.locality",
            attio_type: AttributeType::Location,
            all: false,
            external_object: "companies",
            property: "city",
            transform: identity(),
            a: &["London"],
            a_in_crm: "London",
            b_in_crm: "Lyon",
            b: &["Lyon"],
        },
        Case {
            object: "companies",
            attribute: "primary_location.country_code",
            attio_type: AttributeType::Location,
            all: false,
            external_object: "companies",
            property: "country",
            transform: identity(),
            a: &["GB"],
            a_in_crm: "GB",
            b_in_crm: "FR",
            b: &["FR"],
        },
    ];
    add_attributes(&w).await;
    round_trip(&w, "hubspot", &cases).await;
}

#[tokio::test]
async fn every_value_type_goes_both_ways_with_salesforce() {
    let w = world(true, SyncRule::LatestWins).await;
    let stages = json!({"type": "map_values", "values": {"Lead": "Prospecting", "In Progress": "Negotiation/Review", "Won 🎉": "Closed Won", "Lost": "Closed Lost"}});
    let cases = [
        Case {
            object: "people",
            attribute: "job_title",
            attio_type: AttributeType::Text,
            all: false,
            external_object: "Contact",
            property: "Title",
            transform: identity(),
            a: &["Analyst"],
            a_in_crm: "Analyst",
            b_in_crm: "Countess",
            b: &["Countess"],
        },
        Case {
            object: "people",
            attribute: "email_addresses",
            attio_type: AttributeType::EmailAddress,
            all: false,
            external_object: "Contact",
            property: "Email",
            transform: identity(),
            a: &["ada@example.com"],
            a_in_crm: "ada@example.com",
            b_in_crm: "bea@example.com",
            b: &["bea@example.com"],
        },
        Case {
            object: "people",
            attribute: "phone_numbers",
            attio_type: AttributeType::PhoneNumber,
            all: false,
            external_object: "Contact",
            property: "Phone",
            transform: identity(),
            a: &["+14155550123"],
            a_in_crm: "+14155550123",
            b_in_crm: "+442071838750",
            b: &["+442071838750"],
        },
        Case {
            object: "companies",
            attribute: "domains",
            attio_type: AttributeType::Domain,
            all: false,
            external_object: "Account",
            property: "Website",
            transform: identity(),
            a: &["globex.example"],
            a_in_crm: "globex.example",
            b_in_crm: "initech.example",
            b: &["initech.example"],
        },
        Case {
            object: "companies",
            attribute: "employee_range",
            attio_type: AttributeType::Select,
            all: false,
            external_object: "Account",
            property: "Industry",
            transform: json!({"type": "map_values", "values": {"11-50": "Technology", "51-250": "Banking"}}),
            a: &["11-50"],
            a_in_crm: "Technology",
            b_in_crm: "Banking",
            b: &["51-250"],
        },
        Case {
            object: "deals",
            attribute: "value",
            attio_type: AttributeType::Currency,
            all: false,
            external_object: "Opportunity",
            property: "Amount",
            transform: identity(),
            a: &["5000"],
            a_in_crm: "5000",
            b_in_crm: "7500.5",
            b: &["7500.5"],
        },
        Case {
            object: "deals",
            attribute: "stage",
            attio_type: AttributeType::Status,
            all: false,
            external_object: "Opportunity",
            property: "StageName",
            transform: stages,
            a: &["In Progress"],
            a_in_crm: "Negotiation/Review",
            b_in_crm: "Closed Won",
            b: &["Won 🎉"],
        },
        Case {
            object: "deals",
            attribute: "close_on",
            attio_type: AttributeType::Date,
            all: false,
            external_object: "Opportunity",
            property: "CloseDate",
            transform: identity(),
            a: &["2027-03-31"],
            a_in_crm: "2027-03-31",
            b_in_crm: "2027-06-30",
            b: &["2027-06-30"],
        },
        Case {
            object: "deals",
            attribute: "fit",
            attio_type: AttributeType::Rating,
            all: false,
            external_object: "Opportunity",
            property: "Probability",
            transform: identity(),
            a: &["4"],
            a_in_crm: "4",
            b_in_crm: "3",
            b: &["3"],
        },
        Case {
            object: "companies",
            attribute: "employee_count",
            attio_type: AttributeType::Number,
            all: false,
            external_object: "Account",
            property: "NumberOfEmployees",
            transform: identity(),
            a: &["120"],
            a_in_crm: "120",
            b_in_crm: "250",
            b: &["250"],
        },
        Case {
            object: "people",
            attribute: "bounced_at",
            attio_type: AttributeType::Timestamp,
            all: false,
            external_object: "Contact",
            property: "EmailBouncedDate",
            transform: identity(),
            a: &["2027-03-31T14:30:00Z"],
            a_in_crm: "2027-03-31T14:30:00Z",
            b_in_crm: "2027-04-01T09:00:00Z",
            b: &["2027-04-01T09:00:00.000000000Z"],
        },
        Case {
            object: "companies",
            attribute: "categories",
            attio_type: AttributeType::Select,
            all: true,
            external_object: "Account",
            property: "Tags__c",
            transform: identity(),
            a: &["B2B", "SaaS"],
            a_in_crm: "B2B;SaaS",
            b_in_crm: "Enterprise;B2C",
            b: &["B2C", "Enterprise"],
        },
        Case {
            object: "companies",
            attribute: "primary_location.locality",
            attio_type: AttributeType::Location,
            all: false,
            external_object: "Account",
            property: "BillingCity",
            transform: identity(),
            a: &["London"],
            a_in_crm: "London",
            b_in_crm: "Lyon",
            b: &["Lyon"],
        },
        Case {
            object: "companies",
            attribute: "primary_location.country_code",
            attio_type: AttributeType::Location,
            all: false,
            external_object: "Account",
            property: "BillingCountry",
            transform: identity(),
            a: &["GB"],
            a_in_crm: "GB",
            b_in_crm: "FR",
            b: &["FR"],
        },
    ];
    add_attributes(&w).await;
    round_trip(&w, "salesforce", &cases).await;
}
