//! HubSpot as a plugin ([`PROVIDER`]): its connection settings, its ports, and its signed
//! webhooks as provider-neutral changes.
//!
//! A tenant's HubSpot connection: setting `base_url` (default `https://api.hubapi.com`), secret
//! `token` (a private app's access token), and secret `client_secret` (the app's secret, which
//! signs webhooks; without it the connection syncs but its webhooks are refused).

use std::sync::Arc;

use domain::ids::TenantId;
use domain::tenant::CrmConnection;
use ports::limiter::RateLimiter;
use ports::provider::{
    ChangeFeed, ConnectionError, CrmChange, CrmPorts, CrmProvider, SignedRequest, WebhookError,
    WebhookFeed, settings,
};

use crate::{HubSpotClient, HubSpotConfig, parse_events, system, verify_v3};

/// The HubSpot plugin.
#[derive(Debug, Clone, Copy)]
pub struct HubSpotProvider;

/// The value the registry lists.
pub static PROVIDER: HubSpotProvider = HubSpotProvider;

/// The secret that signs webhooks.
const APP_SECRET: &str = "client_secret";

/// The API's base URL: `base_url`, or HubSpot's own.
fn base_url(c: &CrmConnection) -> Result<&str, ConnectionError> {
    let base = settings::or(c, "base_url", "https://api.hubapi.com");
    if base.starts_with("https://") || base.starts_with("http://") {
        Ok(base)
    } else {
        Err(ConnectionError::Invalid {
            system: system(),
            key: "base_url",
            reason: format!("{base:?} must start with https:// or http://"),
        })
    }
}

fn config(tenant: &TenantId, c: &CrmConnection) -> Result<HubSpotConfig, ConnectionError> {
    let base = base_url(c)?;
    let token = settings::secret(c, "token")?.clone();
    HubSpotConfig::new(base, token, tenant.clone()).map_err(|e| settings::client(&system(), e))
}

impl CrmProvider for HubSpotProvider {
    fn id(&self) -> &'static str {
        crate::SYSTEM
    }

    fn display_name(&self) -> &'static str {
        "HubSpot"
    }

    fn check(&self, connection: &CrmConnection) -> Result<(), ConnectionError> {
        base_url(connection)?;
        settings::secret(connection, "token").map(|_| ())
    }

    fn connect(
        &self,
        tenant: &TenantId,
        connection: &CrmConnection,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<CrmPorts, ConnectionError> {
        let client = HubSpotClient::new(config(tenant, connection)?, limiter)
            .map_err(|e| settings::client(&system(), e))?;
        let client = Arc::new(client);
        Ok(CrmPorts {
            crm: client.clone(),
            activities: Some(client),
        })
    }

    fn feed(&self) -> ChangeFeed {
        // Webhooks tell record changes; polling (when a worker's `[crm.hubspot]` sets an
        // interval) finds the notes and tasks made in HubSpot, which no webhook tells, and
        // re-reads changed records as a net under lost deliveries.
        ChangeFeed {
            webhooks: Some(&PROVIDER),
            polling: true,
        }
    }
}

impl WebhookFeed for HubSpotProvider {
    fn summary(&self) -> &'static str {
        "A HubSpot webhook delivery (v3 signature, five-minute window)"
    }

    fn verify(&self, c: &CrmConnection, r: &SignedRequest<'_>) -> Result<(), WebhookError> {
        let secret = c
            .secrets
            .get(APP_SECRET)
            .ok_or(WebhookError::NotConfigured(APP_SECRET))?;
        verify_v3(
            secret.expose(),
            r.method,
            r.url,
            r.body,
            r.header("x-hubspot-request-timestamp").unwrap_or_default(),
            r.header("x-hubspot-signature-v3").unwrap_or_default(),
            r.now_ms,
        )
        .map_err(|e| WebhookError::Signature(e.to_string()))
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<CrmChange>, WebhookError> {
        let events = parse_events(body).map_err(|e| WebhookError::Payload(e.to_string()))?;
        // Events about objects we do not sync are kept in the stored body only.
        Ok(events
            .iter()
            .filter_map(|e| {
                let kind = e.kind();
                // A merge names the survivor (`newObjectId`, else `primaryObjectId`) and the
                // records merged into it.
                let merge = kind.action == "merge";
                let survivor = e.new_object_id.or(e.primary_object_id).filter(|_| merge);
                // An association change is a change of the record it goes from (HubSpot sends
                // one event per direction, so each side's record is synced).
                let from = e
                    .from_object_id
                    .filter(|_| kind.action == "associationChange");
                Some(CrmChange {
                    object: kind.collection()?.to_owned(),
                    id: survivor.or(from).or(e.object_id)?.to_string(),
                    deleted: kind.action == "deletion",
                    merged_from: if merge {
                        e.merged_object_ids.iter().map(u64::to_string).collect()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_record_that_changed_a_merge_its_survivor_and_the_merged() {
        let body = br#"[
          {"occurredAt":1,"subscriptionType":"contact.merge","objectId":123,"primaryObjectId":123,"mergedObjectIds":[456,789],"newObjectId":123,"numberOfPropertiesMoved":3},
          {"occurredAt":2,"subscriptionType":"contact.deletion","objectId":5},
          {"occurredAt":3,"subscriptionType":"contact.propertyChange","objectId":6,"propertyName":"email","propertyValue":"a@x.com"},
          {"occurredAt":4,"subscriptionType":"contact.associationChange","associationType":"CONTACT_TO_COMPANY","fromObjectId":7,"toObjectId":900,"associationRemoved":false,"isPrimaryAssociation":false}
        ]"#;
        let changes = HubSpotProvider.parse(body).unwrap();
        let change = |id: &str, deleted: bool, merged: &[&str]| CrmChange {
            object: "contacts".into(),
            id: id.into(),
            deleted,
            merged_from: merged.iter().map(|m| (*m).to_owned()).collect(),
        };
        assert_eq!(
            changes,
            vec![
                change("123", false, &["456", "789"]),
                change("5", true, &[]),
                change("6", false, &[]),
                change("7", false, &[]),
            ]
        );
    }
}
