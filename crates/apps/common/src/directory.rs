//! A tenant's provider clients, built from its stored credentials and kept for a few minutes
//! (so rotated credentials take effect without a restart). Each CRM connection is built by its
//! plugin from the [`Registry`]; one whose settings cannot build a client, or whose system this
//! build does not know, is left out and logged with the reason (its mappings then report "not
//! connected"); the Attio client failing to build fails the tenant.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use adapter_attio_http::{AttioClient, AttioConfig};
use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::tenant::Tenant;
use ports::crm::{ExternalActivities, ExternalCrm};
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::{PortError, PortResult};
use ports::limiter::RateLimiter;
use ports::stores::TenantStore;

use crate::registry::Registry;

const KEEP: Duration = Duration::from_secs(300);

pub struct TenantDirectory {
    tenants: Arc<dyn TenantStore>,
    limiter: Arc<dyn RateLimiter>,
    attio_base_url: String,
    registry: Registry,
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
            registry: Registry::builtin(),
            cache: Mutex::default(),
        }
    }

    /// Builds CRM clients with these plugins instead of the built-in ones.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
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
            let built = self
                .registry
                .get(c.system.as_str())
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    p.connect(&tenant.id, c, self.limiter.clone())
                        .map_err(|e| e.to_string())
                });
            match built {
                Ok(ports) => {
                    crms.insert(c.system.clone(), ports.crm);
                    if let Some(acts) = ports.activities {
                        activities.insert(c.system.clone(), acts);
                    }
                }
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
            tasks: attio.clone(),
            members: attio,
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
