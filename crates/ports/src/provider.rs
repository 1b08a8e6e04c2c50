//! A CRM as a plugin. Each CRM crate exports one [`CrmProvider`] value that describes itself: its
//! system id, how to build its ports from a tenant's stored connection, and how its changes reach
//! us ([`ChangeFeed`]: signed webhooks in, polling with a cursor, or both). The binaries keep one
//! registry list of providers and route by these capabilities; nothing outside a CRM's own crate
//! and that list names a CRM.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::ids::{SystemId, TenantId};
use domain::tenant::CrmConnection;
use serde::{Deserialize, Serialize};

use crate::crm::{ExternalActivities, ExternalCrm};
use crate::error::PortError;
use crate::limiter::RateLimiter;

/// Why a stored connection cannot build a client; each names the system and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("the {system} connection has no setting `{key}`")]
    MissingSetting { system: SystemId, key: &'static str },
    #[error("the {system} connection has no secret `{key}`")]
    MissingSecret { system: SystemId, key: &'static str },
    #[error("the {system} connection's `{key}` is invalid: {reason}")]
    Invalid {
        system: SystemId,
        key: &'static str,
        reason: String,
    },
    #[error("the {system} connection cannot build a client: {reason}")]
    Client { system: SystemId, reason: String },
}

impl From<ConnectionError> for PortError {
    fn from(e: ConnectionError) -> Self {
        PortError::Invalid(e.to_string())
    }
}

/// The ports one CRM connection serves.
#[derive(Clone)]
pub struct CrmPorts {
    pub crm: Arc<dyn ExternalCrm>,
    /// Notes and tasks, when the CRM holds them.
    pub activities: Option<Arc<dyn ExternalActivities>>,
}

impl std::fmt::Debug for CrmPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmPorts")
            .field("system", &self.crm.system())
            .field("activities", &self.activities.is_some())
            .finish()
    }
}

/// One change a CRM reported, provider-neutral: the worker syncs the linked Attio record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmChange {
    /// The CRM's object (`contacts`, `Contact`, ...).
    pub object: String,
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
    /// Records the CRM merged into this one (which survives).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// A webhook request as received, before anything is trusted: what a signature check reads.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full public URL the provider called (some signatures cover it).
    pub url: &'a str,
    /// Header names in lower case.
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    /// The receiver's clock, in milliseconds since the epoch (for timestamp windows).
    pub now_ms: i64,
}

impl SignedRequest<'_> {
    /// A header by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Why a webhook request is refused or quarantined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The tenant's connection has no secret to check signatures with (answered 404, and logged
    /// with the setting to add).
    #[error("the connection has no webhook secret `{0}`")]
    NotConfigured(&'static str),
    /// The signature is missing, wrong or outside its time window (answered 401; nothing stored).
    #[error("bad signature: {0}")]
    Signature(String),
    /// Signed, but not the provider's event format (stored in quarantine with this reason).
    #[error("not a valid event payload: {0}")]
    Payload(String),
}

/// A CRM's signed webhooks, served at `POST /v1/webhooks/{system}/{tenant}`.
pub trait WebhookFeed: Send + Sync {
    /// One line for the API document ("A HubSpot webhook delivery (v3 signature)").
    fn summary(&self) -> &'static str;
    /// Checks the request against the connection's secrets. `NotConfigured` when the connection
    /// lacks the secret; `Signature` when the check fails.
    fn verify(
        &self,
        connection: &CrmConnection,
        request: &SignedRequest<'_>,
    ) -> Result<(), WebhookError>;
    /// The changes a verified body reports (events about objects we do not sync are left out).
    /// `Payload` when the body is not the provider's event format.
    fn parse(&self, body: &[u8]) -> Result<Vec<CrmChange>, WebhookError>;
}

/// How a CRM's changes reach attio-sync.
#[derive(Clone, Copy)]
pub struct ChangeFeed {
    /// Signed webhooks, when the CRM sends them here.
    pub webhooks: Option<&'static dyn WebhookFeed>,
    /// Whether a worker polls it (`ExternalCrm::changed_since` from a stored cursor), at the
    /// interval of the provider's section in the worker's configuration.
    pub polling: bool,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("webhooks", &self.webhooks.is_some())
            .field("polling", &self.polling)
            .finish()
    }
}

/// A CRM plugin: one value per CRM crate, listed once in the binaries' registry.
pub trait CrmProvider: Send + Sync {
    /// The id tenants name it by in `crms[].system` and mappings name in `system`; a valid
    /// [`SystemId`] (each plugin asserts it at compile time with [`SystemId::valid`]).
    fn id(&self) -> &'static str;
    /// [`CrmProvider::id`] as a system id.
    fn system(&self) -> SystemId {
        SystemId::from_static(self.id())
    }
    /// Its name for people ("HubSpot").
    fn display_name(&self) -> &'static str;
    /// Checks a connection's settings and secrets without building anything; the error names
    /// the missing or bad setting.
    fn check(&self, connection: &CrmConnection) -> Result<(), ConnectionError>;
    /// Builds the connection's ports, budgets taken from `limiter`. The errors of `check`, or
    /// `Client` when the HTTP client cannot be built.
    fn connect(
        &self,
        tenant: &TenantId,
        connection: &CrmConnection,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<CrmPorts, ConnectionError>;
    /// How its changes reach us.
    fn feed(&self) -> ChangeFeed;
}

/// Reading a connection's settings with errors that name them.
pub mod settings {
    use domain::ids::SystemId;
    use domain::tenant::{CrmConnection, Secret};

    use super::ConnectionError;

    /// A required setting.
    pub fn required<'a>(
        c: &'a CrmConnection,
        key: &'static str,
    ) -> Result<&'a str, ConnectionError> {
        c.settings
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ConnectionError::MissingSetting {
                system: c.system.clone(),
                key,
            })
    }

    /// An optional setting, or its default.
    pub fn or<'a>(c: &'a CrmConnection, key: &str, default: &'a str) -> &'a str {
        c.settings.get(key).map(String::as_str).unwrap_or(default)
    }

    /// A required secret.
    pub fn secret<'a>(
        c: &'a CrmConnection,
        key: &'static str,
    ) -> Result<&'a Secret, ConnectionError> {
        c.secrets
            .get(key)
            .ok_or_else(|| ConnectionError::MissingSecret {
                system: c.system.clone(),
                key,
            })
    }

    /// A client-building failure of `system`.
    pub fn client(system: &SystemId, e: impl std::fmt::Display) -> ConnectionError {
        ConnectionError::Client {
            system: system.clone(),
            reason: e.to_string(),
        }
    }
}
