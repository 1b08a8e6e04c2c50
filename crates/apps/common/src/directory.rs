//! A tenant's provider clients, built from its stored credentials and kept for a few minutes
//! (so rotated credentials take effect without a restart). A CRM connection whose settings cannot
//! build a client is skipped and logged; the Attio client failing to build fails the tenant.
//!
//! Connection settings read from a tenant's `CrmConnection`:
//! - `hubspot`: setting `base_url` (default `https://api.hubapi.com`), secret `token`;
//! - `salesforce`: setting `login_url` (the org's My Domain), setting `client_id`, and either
//!   secret `client_secret` (client credentials) or secret `private_key` with setting `username`
//!   (JWT bearer; setting `audience`, default `https://login.salesforce.com`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::tenant::{CrmConnection, Tenant};
use ports::crm::{ExternalActivities, ExternalCrm};
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::{PortError, PortResult};
use ports::limiter::RateLimiter;
use ports::stores::TenantStore;

const KEEP: Duration = Duration::from_secs(300);

pub struct TenantDirectory {
    tenants: Arc<dyn TenantStore>,
    limiter: Arc<dyn RateLimiter>,
    attio_base_url: String,
    cache: Mutex<HashMap<TenantId, (Instant, TenantClients)>>,
}

impl std::fmt::Debug for TenantDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantDirectory")
            .field("attio_base_url", &self.attio_base_url)
            .finish_non_exhaustive()
    }
}

fn invalid(system: &str, e: impl std::fmt::Display) -> PortError {
    PortError::Invalid(format!(
        "the {system} connection cannot build a client: {e}"
    ))
}

fn setting<'a>(c: &'a CrmConnection, key: &str) -> PortResult<&'a str> {
    c.settings
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| invalid(c.system.as_str(), format!("setting {key} is missing")))
}

/// One CRM connection's client, as both ports it serves.
type CrmClient = (Arc<dyn ExternalCrm>, Arc<dyn ExternalActivities>);

impl TenantDirectory {
    pub fn new(
        tenants: Arc<dyn TenantStore>,
        limiter: Arc<dyn RateLimiter>,
        attio_base_url: &str,
    ) -> Self {
        Self {
            tenants,
            limiter,
            attio_base_url: attio_base_url.to_owned(),
            cache: Mutex::default(),
        }
    }

    /// The connection's client, as its CRM and its activities port.
    fn crm(&self, tenant: &Tenant, c: &CrmConnection) -> PortResult<Option<CrmClient>> {
        match c.system.as_str() {
            "hubspot" => {
                let base = c
                    .settings
                    .get("base_url")
                    .map(String::as_str)
                    .unwrap_or("https://api.hubapi.com");
                let token = c
                    .secrets
                    .get("token")
                    .cloned()
                    .ok_or_else(|| invalid("hubspot", "secret token is missing"))?;
                let cfg = HubSpotConfig::new(base, token, tenant.id.clone())
                    .map_err(|e| invalid("hubspot", e))?;
                let client = HubSpotClient::new(cfg, self.limiter.clone())
                    .map_err(|e| invalid("hubspot", e))?;
                let client = Arc::new(client);
                Ok(Some((client.clone(), client)))
            }
            "salesforce" => {
                let client_id = setting(c, "client_id")?.to_owned();
                let auth = match (c.secrets.get("client_secret"), c.secrets.get("private_key")) {
                    (Some(secret), _) => SalesforceAuth::ClientCredentials {
                        client_id,
                        client_secret: secret.clone(),
                    },
                    (None, Some(key)) => SalesforceAuth::JwtBearer {
                        client_id,
                        username: setting(c, "username")?.to_owned(),
                        private_key_pem: key.clone(),
                        audience: c
                            .settings
                            .get("audience")
                            .cloned()
                            .unwrap_or_else(|| "https://login.salesforce.com".into()),
                    },
                    (None, None) => {
                        return Err(invalid(
                            "salesforce",
                            "secret client_secret or private_key is missing",
                        ));
                    }
                };
                let cfg = SalesforceConfig::new(setting(c, "login_url")?, auth, tenant.id.clone())
                    .map_err(|e| invalid("salesforce", e))?;
                let client =
                    Arc::new(SalesforceClient::new(cfg).map_err(|e| invalid("salesforce", e))?);
                Ok(Some((client.clone(), client)))
            }
            other => {
                tracing::warn!(tenant = %tenant.id, system = other, "no adapter for this system; its mappings are skipped");
                Ok(None)
            }
        }
    }

    fn build(&self, tenant: &Tenant) -> PortResult<TenantClients> {
        let attio_cfg = AttioConfig::new(
            &self.attio_base_url,
            tenant.attio.api_token.clone(),
            tenant.id.clone(),
        )
        .map_err(|e| invalid("attio", e))?;
        let attio = Arc::new(
            AttioClient::new(attio_cfg, self.limiter.clone()).map_err(|e| invalid("attio", e))?,
        );
        let mut crms: BTreeMap<SystemId, Arc<dyn ExternalCrm>> = BTreeMap::new();
        let mut activities: BTreeMap<SystemId, Arc<dyn ExternalActivities>> = BTreeMap::new();
        for c in &tenant.crms {
            // A connection that cannot build a client does not take Attio (or the other CRMs)
            // down with it: it is left out, so its mappings report "not connected", and logged.
            match self.crm(tenant, c) {
                Ok(Some((crm, acts))) => {
                    crms.insert(c.system.clone(), crm);
                    activities.insert(c.system.clone(), acts);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, system = %c.system, error = %e, "a CRM connection is unusable; it is skipped");
                }
            }
        }
        Ok(TenantClients {
            attio: attio.clone(),
            schema: attio.clone(),
            lists: attio.clone(),
            notes: attio.clone(),
            tasks: attio,
            crms,
            activities,
        })
    }
}

#[async_trait]
impl ClientDirectory for TenantDirectory {
    async fn clients(&self, tenant: &TenantId) -> PortResult<TenantClients> {
        if let Some((at, c)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            && at.elapsed() < KEEP
        {
            return Ok(c.clone());
        }
        let t = self.tenants.get(tenant).await?;
        let clients = self.build(&t)?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), (Instant::now(), clients.clone()));
        Ok(clients)
    }
}
