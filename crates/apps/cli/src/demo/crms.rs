//! The CRMs the demo syncs to: each one's simulator, its tenant connection and mappings, and how
//! to look a person up there. A CRM joins the demo with one entry in [`start`].

use std::sync::Arc;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use anyhow::Result;
use domain::field::FieldValue;
use domain::ids::TenantId;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::limiter::RateLimiter;
use serde_json::{Value, json};

use super::{Expect, addr, random_hex};

fn prop(p: &str) -> Result<ExternalProperty> {
    ExternalProperty::parse(p).map_err(anyhow::Error::msg)
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

    /// The worker's mapping of Attio's people to it.
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
"#
            }
        }
    }

    /// Sets the job title of the Attio `record`'s copy here, as a person using the CRM would.
    pub async fn edit_title(&self, record: &str, title: &str) -> Result<()> {
        use ports::crm::{ExternalCrm, ExternalUpsert};
        match self {
            Self::HubSpot { client, .. } => {
                let edit = ExternalUpsert {
                    key: record.to_owned(),
                    properties: [(prop("jobtitle")?, FieldValue::text(title))].into(),
                };
                client
                    .upsert_batch("contacts", &prop("attio_record_id")?, &[edit])
                    .await?;
            }
            Self::Salesforce { client, .. } => {
                let rows = client
                    .query(
                        &format!("SELECT Id, LastName FROM Contact WHERE Attio_Id__c = '{record}'"),
                        false,
                        None,
                    )
                    .await?
                    .records;
                let last = rows
                    .first()
                    .and_then(|r| r.properties.get(&prop("LastName").ok()?).cloned())
                    .unwrap_or_else(|| FieldValue::text("Unknown"));
                let edit = ExternalUpsert {
                    key: record.to_owned(),
                    properties: [
                        (prop("LastName")?, last),
                        (prop("Title")?, FieldValue::text(title)),
                    ]
                    .into(),
                };
                client
                    .upsert_batch("Contact", &prop("Attio_Id__c")?, &[edit])
                    .await?;
            }
        }
        Ok(())
    }

    /// Changes the first name of the Attio `record`'s copy here (HubSpot only; the demo's
    /// conflict). `Ok(false)` for a CRM that does not take part.
    pub async fn edit_first_name(&self, record: &str, name: &str) -> Result<bool> {
        use ports::crm::{ExternalCrm, ExternalUpsert};
        let Self::HubSpot { client, .. } = self else {
            return Ok(false);
        };
        let edit = ExternalUpsert {
            key: record.to_owned(),
            properties: [(prop("firstname")?, FieldValue::text(name))].into(),
        };
        client
            .upsert_batch("contacts", &prop("attio_record_id")?, &[edit])
            .await?;
        Ok(true)
    }

    /// The first name of the Attio `record`'s copy here (HubSpot only, as for the conflict);
    /// `None` for a CRM that does not take part or a copy not found.
    pub async fn first_name(&self, record: &str) -> Result<Option<FieldValue>> {
        let Self::HubSpot { client, .. } = self else {
            return Ok(None);
        };
        let found = client
            .get_by(
                "contacts",
                &prop("attio_record_id")?,
                record,
                &[prop("firstname")?],
            )
            .await;
        Ok(found
            .ok()
            .and_then(|r| r.properties.get(&prop("firstname").ok()?).cloned()))
    }

    /// The CRM's id of the Attio `record` once it looks as `expect` says; `None` until then.
    pub async fn find(&self, record: &str, expect: &Expect) -> Result<Option<String>> {
        match self {
            Self::HubSpot { client, .. } => {
                let found = client
                    .get_by(
                        "contacts",
                        &prop("attio_record_id")?,
                        record,
                        &[prop("jobtitle")?],
                    )
                    .await;
                Ok(match (found, expect) {
                    (Ok(r), Expect::Title(t))
                        if !r.archived
                            && r.properties.get(&prop("jobtitle")?)
                                == Some(&FieldValue::text(t)) =>
                    {
                        Some(r.id.as_str().to_owned())
                    }
                    (Err(ports::error::PortError::NotFound(_)), Expect::Gone) => {
                        Some("archived".into())
                    }
                    _ => None,
                })
            }
            Self::Salesforce { client, .. } => {
                let rows = client
                    .query(
                        &format!("SELECT Id, Title FROM Contact WHERE Attio_Id__c = '{record}'"),
                        false,
                        None,
                    )
                    .await?
                    .records;
                Ok(match (rows.as_slice(), expect) {
                    ([r], Expect::Title(t))
                        if r.properties.get(&prop("Title")?) == Some(&FieldValue::text(t)) =>
                    {
                        Some(r.id.as_str().to_owned())
                    }
                    ([], Expect::Gone) => Some("deleted".into()),
                    _ => None,
                })
            }
        }
    }
}
