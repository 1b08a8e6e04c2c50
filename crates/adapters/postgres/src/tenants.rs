//! Tenants with their credentials sealed under the master key.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use ports::error::{PortError, PortResult};
use ports::stores::TenantStore;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::PgStore;
use crate::error::{corrupt, db};

/// The plaintext that gets sealed. Lives only inside this module, only while sealing or opening.
#[derive(Serialize, Deserialize)]
struct Credentials {
    attio_token: String,
    webhook_secrets: Vec<String>,
    /// system → secret name → value
    crm_secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// Non-secret CRM settings, stored as JSON.
#[derive(Serialize, Deserialize)]
struct CrmSettings {
    system: String,
    settings: BTreeMap<String, String>,
}

impl PgStore {
    fn seal(&self, t: &Tenant) -> PortResult<Vec<u8>> {
        let creds = Credentials {
            attio_token: t.attio.api_token.expose().to_owned(),
            webhook_secrets: t
                .attio
                .webhook_secrets
                .iter()
                .map(|s| s.expose().to_owned())
                .collect(),
            crm_secrets: t
                .crms
                .iter()
                .map(|c| {
                    (
                        c.system.to_string(),
                        c.secrets
                            .iter()
                            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                            .collect(),
                    )
                })
                .collect(),
        };
        let plain =
            serde_json::to_vec(&creds).map_err(|e| PortError::backend("sealing credentials", e))?;
        self.cipher
            .seal(&plain, t.id.as_str().as_bytes())
            .map_err(|e| PortError::backend("sealing credentials", e))
    }

    fn tenant_from_row(&self, row: &PgRow) -> PortResult<Tenant> {
        let id = TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(db)?)
            .map_err(|e| corrupt("tenant id", e))?;
        let sealed: Vec<u8> = row.try_get("credentials").map_err(db)?;
        let plain = self
            .cipher
            .open(&sealed, id.as_str().as_bytes())
            .map_err(|e| PortError::backend(format!("credentials of tenant {id}"), e))?;
        let creds: Credentials =
            serde_json::from_slice(&plain).map_err(|e| corrupt("tenant credentials", e))?;
        let settings: Json<Vec<CrmSettings>> = row.try_get("crm_settings").map_err(db)?;
        let secret = |s: String| Secret::new(s).map_err(|e| corrupt("tenant secret", e));
        let mut crm_secrets = creds.crm_secrets;
        let crms = settings
            .0
            .into_iter()
            .map(|c| {
                let secrets = crm_secrets
                    .remove(&c.system)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| Ok((k, secret(v)?)))
                    .collect::<PortResult<BTreeMap<_, _>>>()?;
                Ok(CrmConnection {
                    system: SystemId::parse(&c.system).map_err(|e| corrupt("crm system", e))?,
                    settings: c.settings,
                    secrets,
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        Ok(Tenant {
            id,
            name: row.try_get("name").map_err(db)?,
            attio: AttioCredentials {
                api_token: secret(creds.attio_token)?,
                webhook_secrets: creds
                    .webhook_secrets
                    .into_iter()
                    .map(secret)
                    .collect::<PortResult<_>>()?,
            },
            crms,
            created_at: row.try_get("created_at").map_err(db)?,
        })
    }
}

fn settings_of(t: &Tenant) -> Json<Vec<CrmSettings>> {
    Json(
        t.crms
            .iter()
            .map(|c| CrmSettings {
                system: c.system.to_string(),
                settings: c.settings.clone(),
            })
            .collect(),
    )
}

#[async_trait]
impl TenantStore for PgStore {
    async fn create(&self, t: &Tenant) -> PortResult<()> {
        t.validate()?;
        let sealed = self.seal(t)?;
        let mut tx = self.begin_system().await?;
        let done = sqlx::query(
            "INSERT INTO tenants (tenant_id, name, credentials, crm_settings, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(t.id.as_str())
        .bind(&t.name)
        .bind(sealed)
        .bind(settings_of(t))
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::Conflict(format!("tenant {} exists", t.id)));
        }
        tx.commit().await.map_err(db)
    }

    async fn get(&self, id: &TenantId) -> PortResult<Tenant> {
        let mut tx = self.begin_tenant(id).await?;
        let row = sqlx::query("SELECT * FROM tenants WHERE tenant_id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("tenant {id}")))?;
        tx.commit().await.map_err(db)?;
        self.tenant_from_row(&row)
    }

    async fn list(&self) -> PortResult<Vec<Tenant>> {
        let mut tx = self.begin_system().await?;
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY tenant_id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(|r| self.tenant_from_row(r)).collect()
    }

    async fn update(&self, t: &Tenant) -> PortResult<()> {
        t.validate()?;
        let sealed = self.seal(t)?;
        let mut tx = self.begin_tenant(&t.id).await?;
        let done = sqlx::query("UPDATE tenants SET name = $2, credentials = $3, crm_settings = $4 WHERE tenant_id = $1")
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(sealed)
            .bind(settings_of(t))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("tenant {}", t.id)));
        }
        tx.commit().await.map_err(db)
    }

    async fn delete(&self, id: &TenantId) -> PortResult<()> {
        let mut tx = self.begin_tenant(id).await?;
        let done = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("tenant {id}")));
        }
        tx.commit().await.map_err(db)
    }
}
