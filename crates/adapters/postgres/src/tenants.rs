//! Tenants with their credentials sealed under the master key.

use async_trait::async_trait;
use domain::ids::TenantId;
use domain::tenant::Tenant;
use ports::error::{PortError, PortResult};
use ports::stores::TenantStore;
use sealing::tenant::SealedTenant;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::PgStore;
use crate::error::{corrupt, db};

impl PgStore {
    fn seal(&self, t: &Tenant) -> PortResult<SealedTenant> {
        sealing::tenant::seal(&self.cipher, t)
            .map_err(|e| PortError::backend("sealing credentials", e))
    }

    fn tenant_from_row(&self, row: &PgRow) -> PortResult<Tenant> {
        let id = TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(db)?)
            .map_err(|e| corrupt("tenant id", e))?;
        let settings: Json<serde_json::Value> = row.try_get("crm_settings").map_err(db)?;
        let sealed = SealedTenant {
            credentials: row.try_get("credentials").map_err(db)?,
            crm_settings_json: settings.0.to_string(),
        };
        sealing::tenant::open(
            &self.cipher,
            id.clone(),
            row.try_get("name").map_err(db)?,
            row.try_get("created_at").map_err(db)?,
            &sealed,
        )
        .map_err(|e| PortError::backend(format!("credentials of tenant {id}"), e))
    }
}

fn settings_of(sealed: &SealedTenant) -> PortResult<Json<serde_json::Value>> {
    serde_json::from_str(&sealed.crm_settings_json)
        .map(Json)
        .map_err(|e| corrupt("crm settings", e))
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
        .bind(&sealed.credentials)
        .bind(settings_of(&sealed)?)
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
            .bind(&sealed.credentials)
            .bind(settings_of(&sealed)?)
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

/// A statement per table holding a tenant's data besides its record, with the name its count
/// goes by.
const ERASE: &[(&str, &str)] = &[
    ("DELETE FROM inbox WHERE tenant_id = $1", "deliveries"),
    (
        "DELETE FROM idempotency_keys WHERE tenant_id = $1",
        "delivery_keys",
    ),
    ("DELETE FROM jobs WHERE tenant_id = $1", "jobs"),
    (
        "DELETE FROM dead_letters WHERE tenant_id = $1",
        "dead_letters",
    ),
    ("DELETE FROM links WHERE tenant_id = $1", "links"),
    (
        "DELETE FROM sync_states WHERE tenant_id = $1",
        "sync_states",
    ),
    ("DELETE FROM conflicts WHERE tenant_id = $1", "conflicts"),
    ("DELETE FROM audit_log WHERE tenant_id = $1", "audit"),
    ("DELETE FROM deletes WHERE tenant_id = $1", "deletes"),
    (
        "DELETE FROM provider_usage WHERE tenant_id = $1",
        "usage_days",
    ),
    (
        "DELETE FROM mappings WHERE tenant_id = $1",
        "mapping_versions",
    ),
    (
        "DELETE FROM write_ledger WHERE tenant_id = $1",
        "ledger_entries",
    ),
];

#[async_trait]
impl ports::stores::TenantEraser for PgStore {
    /// One transaction under the tenant's row-level-security scope: all of it goes, or none.
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<ports::stores::Erased> {
        let mut tx = self.begin_tenant(tenant).await?;
        let mut erased = ports::stores::Erased::new();
        for (statement, what) in ERASE {
            let done = sqlx::query(*statement)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            erased.insert(what, done.rows_affected());
        }
        tx.commit().await.map_err(db)?;
        Ok(erased)
    }
}
