//! The CRM plugins this build knows: the one list a new CRM is added to. Everything else (the
//! webhook routes, the pollers, tenant checks, the API document) is derived from it.

use domain::ids::SystemId;
use domain::tenant::CrmConnection;
use ports::provider::{ConnectionError, CrmProvider, WebhookFeed};

/// Every CRM plugin of this build; adding a CRM adds its line here.
static PROVIDERS: &[&(dyn CrmProvider + 'static)] =
    &[&adapter_hubspot::PROVIDER, &adapter_salesforce::PROVIDER];

/// Why a system cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown CRM system {system:?}; this build knows {known}")]
    Unknown { system: String, known: String },
    #[error("{system} sends no webhooks here")]
    NoWebhooks { system: SystemId },
    #[error("{system} is not polled (it sends its changes by webhook)")]
    NotPolled { system: SystemId },
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

/// The plugins, looked up by system id.
#[derive(Clone, Copy)]
pub struct Registry {
    providers: &'static [&'static dyn CrmProvider],
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| p.system()))
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The plugins compiled into this build.
    pub fn builtin() -> Self {
        Self {
            providers: PROVIDERS,
        }
    }

    /// A registry of the given plugins (tests, a build with fewer CRMs).
    pub fn of(providers: &'static [&'static dyn CrmProvider]) -> Self {
        Self { providers }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static dyn CrmProvider> + '_ {
        self.providers.iter().copied()
    }

    /// The plugin of `system`; `Unknown` naming the known ones otherwise.
    pub fn get(&self, system: &str) -> Result<&'static dyn CrmProvider, RegistryError> {
        self.iter()
            .find(|p| p.system().as_str() == system)
            .ok_or_else(|| RegistryError::Unknown {
                system: system.chars().take(64).collect(),
                known: self.known(),
            })
    }

    /// The id of `system` when a plugin of this build serves it (the lookup mapping checks use).
    pub fn system_of(&self, system: &str) -> Option<SystemId> {
        self.get(system).ok().map(|p| p.system())
    }

    /// The webhook intake of `system`: `Unknown`, or `NoWebhooks` when it sends none.
    pub fn webhooks(&self, system: &str) -> Result<&'static dyn WebhookFeed, RegistryError> {
        let p = self.get(system)?;
        p.feed()
            .webhooks
            .ok_or(RegistryError::NoWebhooks { system: p.system() })
    }

    /// The plugin of `system` when it is polled: `Unknown`, or `NotPolled`.
    pub fn polled(&self, system: &str) -> Result<&'static dyn CrmProvider, RegistryError> {
        let p = self.get(system)?;
        if p.feed().polling {
            Ok(p)
        } else {
            Err(RegistryError::NotPolled { system: p.system() })
        }
    }

    /// Checks a tenant's connection: a known system, settings and secrets its plugin accepts.
    pub fn check(&self, connection: &CrmConnection) -> Result<(), RegistryError> {
        self.get(connection.system.as_str())?.check(connection)?;
        Ok(())
    }

    /// The known systems, for messages: `hubspot, salesforce`.
    pub fn known(&self) -> String {
        self.iter()
            .map(|p| p.system().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
