//! The CRMs the demo syncs to: each one's simulator, its tenant connection and mappings, and how
//! to read and edit a synced record there. A CRM joins the demo with one entry in [`start`].

use std::sync::Arc;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use anyhow::{Context, Result};
use domain::field::FieldValue;
use domain::ids::TenantId;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert};
use ports::limiter::RateLimiter;
use serde_json::{Value, json};

use super::{addr, random_hex};

fn prop(p: &str) -> Result<ExternalProperty> {
    ExternalProperty::parse(p).map_err(anyhow::Error::msg)
}

/// The Attio objects the demo syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obj {
    Person,
    Company,
    Deal,
}

/// The synced fields the demo reads and edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Title,
    FirstName,
    Name,
    Stage,
}

/// One CRM of the demo, with its simulator running.
pub enum DemoCrm {
    HubSpot {
        sim: hubspot_sim::RunningSim,
        client: HubSpotClient,
    },
    Salesforce {
        sim: salesforce_sim::RunningSim,
        client: SalesforceClient,
        secret: String,
    },
}

/// The secret HubSpot's app signs its webhooks with, in the demo.
const HUBSPOT_APP_SECRET: &str = "demo-hubspot-app-secret";

/// Starts every CRM simulator of the demo, with a client for the tenant's records there. HubSpot
/// delivers title changes to the API at `api_url`, signed; the worker polls Salesforce.
pub async fn start(
    tenant: &TenantId,
    limiter: Arc<dyn RateLimiter>,
    api_url: &str,
) -> Result<Vec<DemoCrm>> {
    let webhooks = hubspot_sim::WebhookSettings::new(
        &format!("{api_url}/v1/webhooks/hubspot/{tenant}"),
        HUBSPOT_APP_SECRET,
        vec![
            hubspot_sim::Subscription::parse(1, "contact.propertyChange:jobtitle")
                .map_err(anyhow::Error::msg)?,
        ],
    );
    let config = hubspot_sim::HubSpotConfig {
        webhooks: Some(webhooks),
        ..Default::default()
    };
    let hubspot = hubspot_sim::start(addr(), config).await?;
    let client = HubSpotClient::new(
        HubSpotConfig::new(&hubspot.url(), Secret::new("pat-na1-demo")?, tenant.clone())?,
        limiter,
    )?;
    let hubspot = DemoCrm::HubSpot {
        sim: hubspot,
        client,
    };
    let mut cfg = salesforce_sim::SalesforceConfig::default();
    cfg.app.client_id = "demo-consumer-key".into();
    cfg.app.client_secret = random_hex(16);
    let secret = cfg.app.client_secret.clone();
    let sim = salesforce_sim::start(addr(), cfg).await?;
    let client = SalesforceClient::new(SalesforceConfig::new(
        &sim.url(),
        SalesforceAuth::ClientCredentials {
            client_id: "demo-consumer-key".into(),
            client_secret: Secret::new(secret.clone())?,
        },
        tenant.clone(),
    )?)?;
    let salesforce = DemoCrm::Salesforce {
        sim,
        client,
        secret,
    };
    Ok(vec![hubspot, salesforce])
}

/// The CRM whose changes arrive by webhook, and whose mapping leaves a first name changed on both
/// sides to a person: the one the demo's simultaneous edits are made in.
pub fn pushing(crms: &[DemoCrm]) -> Result<&DemoCrm> {
    crms.iter()
        .find(|c| matches!(c, DemoCrm::HubSpot { .. }))
        .context("the demo has no CRM that delivers webhooks")
}

impl DemoCrm {
    /// The CRM's name, as the demo's table shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HubSpot { .. } => "HubSpot",
            Self::Salesforce { .. } => "Salesforce",
        }
    }

    /// The simulator's base URL.
    pub fn url(&self) -> String {
        match self {
            Self::HubSpot { sim, .. } => sim.url(),
            Self::Salesforce { sim, .. } => sim.url(),
        }
    }

    /// The tenant's connection to it, as the admin API takes it.
    pub fn connection(&self) -> Value {
        match self {
            Self::HubSpot { sim, .. } => {
                json!({"system": "hubspot", "settings": {"base_url": sim.url()}, "secrets": {"token": "pat-na1-demo", "client_secret": HUBSPOT_APP_SECRET}})
            }
            Self::Salesforce { sim, secret, .. } => {
                json!({"system": "salesforce", "settings": {"login_url": sim.url(), "client_id": "demo-consumer-key"}, "secrets": {"client_secret": secret}})
            }
        }
    }

    /// The worker's mappings of Attio's people, companies and deals to it.
    pub fn mappings(&self) -> &'static str {
        match self {
            Self::HubSpot { .. } => {
                r#"
[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
# A first name changed on both sides waits for a person to decide (`manual`).
fields = [
  { attio = { attribute = "email_addresses" }, external = "email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "first_name" }, external = "firstname", rule = "manual" },
  { attio = { attribute = "name", part = "last_name" }, external = "lastname", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "jobtitle", rule = "latest_wins" },
]

[[targets]]
attio_object = "companies"
system = "hubspot"
external_object = "companies"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "name" }, external = "name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "domain", rule = "latest_wins" },
]

[[targets]]
attio_object = "deals"
system = "hubspot"
external_object = "deals"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "name" }, external = "dealname", rule = "latest_wins" },
  { attio = { attribute = "value" }, external = "amount", rule = "latest_wins" },
  { attio = { attribute = "stage" }, external = "dealstage", rule = "attio_to_external", transform = { type = "map_values", values = { "Lead" = "appointmentscheduled", "In Progress" = "qualifiedtobuy", "Won 🎉" = "closedwon", "Lost" = "closedlost" } } },
]
"#
            }
            Self::Salesforce { .. } => {
                r#"
[crm.salesforce]
poll_interval_s = 1
poll_window_s = 30

[[targets]]
attio_object = "people"
system = "salesforce"
external_object = "Contact"
id_property = "Attio_Id__c"
fields = [
  { attio = { attribute = "email_addresses" }, external = "Email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "first_name" }, external = "FirstName", rule = "latest_wins" },
  { attio = { attribute = "name", part = "last_name" }, external = "LastName", rule = "latest_wins" },
  { attio = { attribute = "job_title" }, external = "Title", rule = "latest_wins" },
]

[[targets]]
attio_object = "companies"
system = "salesforce"
external_object = "Account"
id_property = "Attio_Id__c"
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "domains" }, external = "Website", rule = "latest_wins" },
]

# Salesforce requires an Opportunity's close date, which Attio's deals lack.
[[targets]]
attio_object = "deals"
system = "salesforce"
external_object = "Opportunity"
id_property = "Attio_Id__c"
create_with = { CloseDate = "2027-03-31" }
fields = [
  { attio = { attribute = "name" }, external = "Name", rule = "latest_wins" },
  { attio = { attribute = "value" }, external = "Amount", rule = "latest_wins" },
  { attio = { attribute = "stage" }, external = "StageName", rule = "attio_to_external", transform = { type = "map_values", values = { "Lead" = "Prospecting", "In Progress" = "Negotiation/Review", "Won 🎉" = "Closed Won", "Lost" = "Closed Lost" } } },
]
"#
            }
        }
    }

    /// The CRM's object for an Attio object.
    fn object(&self, o: Obj) -> &'static str {
        match (self, o) {
            (Self::HubSpot { .. }, Obj::Person) => "contacts",
            (Self::HubSpot { .. }, Obj::Company) => "companies",
            (Self::HubSpot { .. }, Obj::Deal) => "deals",
            (Self::Salesforce { .. }, Obj::Person) => "Contact",
            (Self::Salesforce { .. }, Obj::Company) => "Account",
            (Self::Salesforce { .. }, Obj::Deal) => "Opportunity",
        }
    }

    /// The property holding the Attio record id.
    fn id_property(&self) -> &'static str {
        match self {
            Self::HubSpot { .. } => "attio_record_id",
            Self::Salesforce { .. } => "Attio_Id__c",
        }
    }

    /// The CRM's property a field is mapped to.
    fn property(&self, o: Obj, f: Field) -> &'static str {
        match (self, o, f) {
            (Self::HubSpot { .. }, _, Field::Title) => "jobtitle",
            (Self::HubSpot { .. }, _, Field::FirstName) => "firstname",
            (Self::HubSpot { .. }, Obj::Deal, Field::Name) => "dealname",
            (Self::HubSpot { .. }, _, Field::Name) => "name",
            (Self::HubSpot { .. }, _, Field::Stage) => "dealstage",
            (Self::Salesforce { .. }, _, Field::Title) => "Title",
            (Self::Salesforce { .. }, _, Field::FirstName) => "FirstName",
            (Self::Salesforce { .. }, _, Field::Name) => "Name",
            (Self::Salesforce { .. }, _, Field::Stage) => "StageName",
        }
    }

    /// How this CRM names an Attio deal stage (the mappings' value maps).
    pub fn stage(&self, attio: &str) -> &'static str {
        match (self, attio) {
            (Self::HubSpot { .. }, "Lead") => "appointmentscheduled",
            (Self::HubSpot { .. }, "Won 🎉") => "closedwon",
            (Self::HubSpot { .. }, _) => "qualifiedtobuy",
            (Self::Salesforce { .. }, "Lead") => "Prospecting",
            (Self::Salesforce { .. }, "Won 🎉") => "Closed Won",
            (Self::Salesforce { .. }, _) => "Negotiation/Review",
        }
    }

    /// The copy of the Attio `record` here (its id and the field's value); `None` while there is
    /// none, or it is archived.
    pub async fn read(
        &self,
        o: Obj,
        record: &str,
        f: Field,
    ) -> Result<Option<(String, FieldValue)>> {
        let (object, property) = (self.object(o), prop(self.property(o, f))?);
        match self {
            Self::HubSpot { client, .. } => {
                let found = client
                    .get_by(
                        object,
                        &prop(self.id_property())?,
                        record,
                        std::slice::from_ref(&property),
                    )
                    .await;
                Ok(match found {
                    Ok(r) if !r.archived => {
                        let v = r
                            .properties
                            .get(&property)
                            .cloned()
                            .unwrap_or(FieldValue::Empty);
                        Some((r.id.as_str().to_owned(), v))
                    }
                    Ok(_) | Err(ports::error::PortError::NotFound(_)) => None,
                    Err(e) => return Err(e.into()),
                })
            }
            Self::Salesforce { client, .. } => {
                let soql = format!(
                    "SELECT Id, {} FROM {object} WHERE Attio_Id__c = '{record}'",
                    property.as_str()
                );
                let rows = client.query(&soql, false, None).await?.records;
                Ok(rows.into_iter().next().map(|r| {
                    let v = r
                        .properties
                        .get(&property)
                        .cloned()
                        .unwrap_or(FieldValue::Empty);
                    (r.id.as_str().to_owned(), v)
                }))
            }
        }
    }

    /// Sets a field of the Attio `record`'s copy here, as a person using the CRM would.
    pub async fn edit(&self, o: Obj, record: &str, f: Field, value: &str) -> Result<()> {
        let (object, property) = (self.object(o), prop(self.property(o, f))?);
        let mut properties =
            std::collections::BTreeMap::from([(property, FieldValue::text(value))]);
        if let (Self::Salesforce { client, .. }, Obj::Person) = (self, o) {
            // Salesforce's upsert of a Contact wants its last name, as its API does.
            let soql = format!("SELECT Id, LastName FROM Contact WHERE Attio_Id__c = '{record}'");
            let rows = client.query(&soql, false, None).await?.records;
            let last = rows
                .first()
                .and_then(|r| r.properties.get(&prop("LastName").ok()?).cloned())
                .unwrap_or_else(|| FieldValue::text("Unknown"));
            properties.insert(prop("LastName")?, last);
        }
        let edit = ExternalUpsert {
            key: record.to_owned(),
            properties,
        };
        let id_property = prop(self.id_property())?;
        match self {
            Self::HubSpot { client, .. } => {
                client.upsert_batch(object, &id_property, &[edit]).await?
            }
            Self::Salesforce { client, .. } => {
                client.upsert_batch(object, &id_property, &[edit]).await?
            }
        };
        Ok(())
    }

    /// How many notes the copy of the Attio person `record` has here.
    pub async fn notes_on(&self, record: &str) -> Result<usize> {
        let Some((id, _)) = self.read(Obj::Person, record, Field::Title).await? else {
            return Ok(0);
        };
        match self {
            Self::HubSpot { client, .. } => {
                let id = domain::ids::ExternalId::parse(&id).context("a HubSpot id")?;
                Ok(client.associations("contacts", &id, "notes").await?.len())
            }
            Self::Salesforce { client, .. } => {
                let soql = format!("SELECT Id FROM Note WHERE ParentId = '{id}'");
                Ok(client.query(&soql, false, None).await?.records.len())
            }
        }
    }
}
