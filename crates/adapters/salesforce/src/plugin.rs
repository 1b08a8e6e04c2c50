//! Salesforce as a plugin ([`PROVIDER`]): its connection settings and its ports. It sends no
//! webhooks here; a worker polls it (`changed_since` on `SystemModstamp`, from a stored cursor).
//!
//! A tenant's Salesforce connection: setting `login_url` (the org's My Domain), setting
//! `client_id`, and either secret `client_secret` (client credentials) or secret `private_key`
//! with setting `username` (JWT bearer; setting `audience`, default
//! `https://login.salesforce.com`).

use std::sync::Arc;

use domain::ids::TenantId;
use domain::tenant::CrmConnection;
use ports::limiter::RateLimiter;
use ports::provider::{ChangeFeed, ConnectionError, CrmPorts, CrmProvider, settings};

use crate::{SalesforceAuth, SalesforceClient, SalesforceConfig, system};

/// The Salesforce plugin.
#[derive(Debug, Clone, Copy)]
pub struct SalesforceProvider;

/// The value the registry lists.
pub static PROVIDER: SalesforceProvider = SalesforceProvider;

fn auth(c: &CrmConnection) -> Result<SalesforceAuth, ConnectionError> {
    let client_id = settings::required(c, "client_id")?.to_owned();
    match (c.secrets.get("client_secret"), c.secrets.get("private_key")) {
        (Some(secret), _) => Ok(SalesforceAuth::ClientCredentials {
            client_id,
            client_secret: secret.clone(),
        }),
        (None, Some(key)) => Ok(SalesforceAuth::JwtBearer {
            client_id,
            username: settings::required(c, "username")?.to_owned(),
            private_key_pem: key.clone(),
            audience: settings::or(c, "audience", "https://login.salesforce.com").to_owned(),
        }),
        (None, None) => Err(ConnectionError::MissingSecret {
            system: system(),
            key: "client_secret (or private_key)",
        }),
    }
}

fn login_url(c: &CrmConnection) -> Result<&str, ConnectionError> {
    let url = settings::required(c, "login_url")?;
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(ConnectionError::Invalid {
            system: system(),
            key: "login_url",
            reason: format!("{url:?} must start with https:// or http://"),
        })
    }
}

impl CrmProvider for SalesforceProvider {
    fn id(&self) -> &'static str {
        crate::SYSTEM
    }

    fn display_name(&self) -> &'static str {
        "Salesforce"
    }

    fn check(&self, connection: &CrmConnection) -> Result<(), ConnectionError> {
        login_url(connection)?;
        auth(connection).map(|_| ())
    }

    fn connect(
        &self,
        tenant: &TenantId,
        connection: &CrmConnection,
        _limiter: Arc<dyn RateLimiter>,
    ) -> Result<CrmPorts, ConnectionError> {
        // Salesforce's budget is the org's daily allowance, tracked from its own headers.
        let cfg = SalesforceConfig::new(login_url(connection)?, auth(connection)?, tenant.clone())
            .map_err(|e| settings::client(&system(), e))?;
        let client =
            Arc::new(SalesforceClient::new(cfg).map_err(|e| settings::client(&system(), e))?);
        Ok(CrmPorts {
            crm: client.clone(),
            activities: Some(client),
        })
    }

    fn feed(&self) -> ChangeFeed {
        ChangeFeed {
            webhooks: None,
            polling: true,
        }
    }
}
