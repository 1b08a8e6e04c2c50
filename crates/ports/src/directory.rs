//! Where services find a tenant's provider clients: the composition root builds them from the
//! tenant's stored credentials (and may cache them); services only ask.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};

use crate::attio::{AttioLists, AttioNotes, AttioRecords, AttioSchema, AttioTasks, AttioWorkspace};
use crate::crm::{ExternalActivities, ExternalCrm};
use crate::error::PortResult;

/// The provider clients of one tenant.
#[derive(Clone)]
pub struct TenantClients {
    pub attio: Arc<dyn AttioRecords>,
    pub schema: Arc<dyn AttioSchema>,
    pub lists: Arc<dyn AttioLists>,
    pub notes: Arc<dyn AttioNotes>,
    pub tasks: Arc<dyn AttioTasks>,
    /// The workspace's members (records' owners are matched by their e-mail).
    pub members: Arc<dyn AttioWorkspace>,
    /// One client per connected external CRM.
    pub crms: BTreeMap<SystemId, Arc<dyn ExternalCrm>>,
    /// Notes and tasks, per connected CRM that holds them.
    pub activities: BTreeMap<SystemId, Arc<dyn ExternalActivities>>,
}

impl std::fmt::Debug for TenantClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClients")
            .field("crms", &self.crms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait ClientDirectory: Send + Sync {
    /// The clients of a tenant. `NotFound` for an unknown tenant; `Invalid` when its stored
    /// credentials cannot build a client.
    async fn clients(&self, tenant: &TenantId) -> PortResult<TenantClients>;
}
