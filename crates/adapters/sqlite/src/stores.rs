//! Idempotency keys, links, sync states, conflicts, tenants and the write ledger on SQLite.

use std::time::Duration;

use async_trait::async_trait;
use domain::audit::AuditEntry;
use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::deletes::{DeleteRecord, DeleteStatus};
use domain::field::ValueHash;
use domain::idempotency::IdempotencyKey;
use domain::ids::{ConflictId, DeleteId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::FieldKey;
use domain::mapping_doc::{MappingDocument, StoredMappings};
use domain::merge::{FieldConflict, Snapshot};
use domain::sync_state::SyncState;
use domain::tenant::Tenant;
use ports::error::{PortError, PortResult};
use ports::stores::{
    AuditLog, Claim, ConflictStore, DeleteStore, IdempotencyStore, LinkStore, MappingStore,
    SyncStateStore, TenantStore, WriteLedger,
};
use sealing::tenant::SealedTenant;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use crate::{SqliteStore, corrupt, db, dur_ms, from_ms, now_ms, to_ms};

fn json<T: Serialize>(v: &T) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::Invalid(e.to_string()))
}

fn parse<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> PortResult<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Claims a key inside the caller's transaction; `true` when it is new (or its claim expired).
pub(crate) async fn claim_in(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    key: &IdempotencyKey,
    retention: Duration,
) -> PortResult<bool> {
    let now = now_ms();
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, key) DO UPDATE SET expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= ?4",
    )
    .bind(tenant.as_str())
    .bind(key.as_str())
    .bind(now.saturating_add(dur_ms(retention)))
    .bind(now)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(claimed.rows_affected() == 1)
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        retention: Duration,
    ) -> PortResult<Claim> {
        let mut tx = self.begin().await?;
        let new = claim_in(&mut tx, tenant, key, retention).await?;
        tx.commit().await.map_err(db)?;
        Ok(if new { Claim::New } else { Claim::Duplicate })
    }
}

fn link_from_row(row: &SqliteRow) -> PortResult<IdentityLink> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    Ok(IdentityLink {
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("link tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("link object", e))?,
        attio_record: RecordId::parse(&text("attio_record")?)
            .map_err(|e| corrupt("link record", e))?,
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("link system", e))?,
        external_object: text("external_object")?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("link external id", e))?,
        snapshot: parse::<Snapshot>(&text("snapshot")?, "snapshot")?,
        updated_at: from_ms(row.try_get("updated_at").map_err(db)?)?,
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(db)?).unwrap_or(0),
    })
}

/// The statements (find, delete) and binds of a lookup; `?1` is always the tenant.
fn lookup_sql(lookup: &LinkLookup) -> (&'static str, &'static str, [String; 3]) {
    match lookup {
        LinkLookup::Attio {
            object,
            record,
            system,
        } => (
            "SELECT * FROM links WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3 AND system = ?4",
            "DELETE FROM links WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3 AND system = ?4",
            [object.to_string(), record.to_string(), system.to_string()],
        ),
        LinkLookup::External {
            system,
            external_object,
            external_id,
        } => (
            "SELECT * FROM links WHERE tenant_id = ?1 AND system = ?2 AND external_object = ?3 AND external_id = ?4",
            "DELETE FROM links WHERE tenant_id = ?1 AND system = ?2 AND external_object = ?3 AND external_id = ?4",
            [
                system.to_string(),
                external_object.clone(),
                external_id.to_string(),
            ],
        ),
    }
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn find(
        &self,
        tenant: &TenantId,
        lookup: &LinkLookup,
    ) -> PortResult<Option<IdentityLink>> {
        let (sql, _, [a, b, c]) = lookup_sql(lookup);
        let row = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(a)
            .bind(b)
            .bind(c)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(link_from_row).transpose()
    }

    async fn links_of(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
    ) -> PortResult<Vec<IdentityLink>> {
        let rows = sqlx::query("SELECT * FROM links WHERE tenant_id = ? AND object = ? AND attio_record = ? ORDER BY system")
            .bind(tenant.as_str())
            .bind(object.as_str())
            .bind(record.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(link_from_row).collect()
    }

    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink> {
        let sql = if link.version == 0 {
            "INSERT INTO links (tenant_id, object, attio_record, system, external_object, external_id, snapshot, updated_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)
             ON CONFLICT (tenant_id, object, attio_record, system) DO NOTHING
             RETURNING *"
        } else {
            "UPDATE links SET external_object = ?5, external_id = ?6, snapshot = ?7, updated_at = ?8, version = version + 1
             WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3 AND system = ?4 AND version = ?9
             RETURNING *"
        };
        let mut tx = self.begin().await?;
        let row = sqlx::query(sql)
            .bind(link.tenant.as_str())
            .bind(link.object.as_str())
            .bind(link.attio_record.to_string())
            .bind(link.system.as_str())
            .bind(&link.external_object)
            .bind(link.external_id.as_str())
            .bind(json(&link.snapshot)?)
            .bind(to_ms(link.updated_at))
            .bind(version(link.version))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| {
                PortError::Stale(format!(
                    "link of {} to {} changed since version {}",
                    link.attio_record, link.system, link.version
                ))
            })?;
        tx.commit().await.map_err(db)?;
        link_from_row(&row)
    }

    async fn repoint(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        from: RecordId,
        to: RecordId,
    ) -> PortResult<u64> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM links WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3
               AND system IN (SELECT system FROM links WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?4)",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(from.to_string())
        .bind(to.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let moved = sqlx::query("UPDATE links SET attio_record = ?4, version = version + 1 WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3")
            .bind(tenant.as_str())
            .bind(object.as_str())
            .bind(from.to_string())
            .bind(to.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(moved.rows_affected())
    }

    async fn count(&self, tenant: &TenantId) -> PortResult<u64> {
        let mut tx = self.begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn delete(&self, tenant: &TenantId, lookup: &LinkLookup) -> PortResult<()> {
        let (_, sql, [a, b, c]) = lookup_sql(lookup);
        let done = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("link {lookup:?}")));
        }
        Ok(())
    }
}

#[async_trait]
impl SyncStateStore for SqliteStore {
    async fn get(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
    ) -> PortResult<Option<SyncState>> {
        let row: Option<(String, i64)> = sqlx::query_as("SELECT state, version FROM sync_states WHERE tenant_id = ? AND object = ? AND system = ?")
            .bind(tenant.as_str())
            .bind(object.as_str())
            .bind(system.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|(s, v)| {
            Ok(SyncState {
                version: u64::try_from(v).unwrap_or(0),
                ..parse::<SyncState>(&s, "sync state")?
            })
        })
        .transpose()
    }

    async fn save(&self, state: &SyncState) -> PortResult<SyncState> {
        let saved = SyncState {
            version: state.version + 1,
            ..state.clone()
        };
        let sql = if state.version == 0 {
            "INSERT INTO sync_states (tenant_id, object, system, state, version) VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT DO NOTHING"
        } else {
            "UPDATE sync_states SET state = ?4, version = version + 1 WHERE tenant_id = ?1 AND object = ?2 AND system = ?3 AND version = ?5"
        };
        let mut tx = self.begin().await?;
        let done = sqlx::query(sql)
            .bind(state.tenant.as_str())
            .bind(state.object.as_str())
            .bind(state.system.as_str())
            .bind(json(&saved)?)
            .bind(version(state.version))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::Stale(format!(
                "sync state of {}/{} changed since version {}",
                state.object, state.system, state.version
            )));
        }
        tx.commit().await.map_err(db)?;
        Ok(saved)
    }

    async fn list(&self, tenant: &TenantId) -> PortResult<Vec<SyncState>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, version FROM sync_states WHERE tenant_id = ? ORDER BY object, system",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(s, v)| {
                Ok(SyncState {
                    version: u64::try_from(v).unwrap_or(0),
                    ..parse::<SyncState>(&s, "sync state")?
                })
            })
            .collect()
    }
}

fn conflict_from_row(row: &SqliteRow) -> PortResult<ConflictRecord> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let resolution: Option<String> = row.try_get("resolution").map_err(db)?;
    let resolved_at: Option<i64> = row.try_get("resolved_at").map_err(db)?;
    let resolution = match (resolution, resolved_at) {
        (Some(r), Some(at)) => Some((parse::<Resolution>(&r, "resolution")?, from_ms(at)?)),
        _ => None,
    };
    Ok(ConflictRecord {
        id: ConflictId::parse(&text("conflict_id")?).map_err(|e| corrupt("conflict id", e))?,
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("conflict tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("conflict object", e))?,
        attio_record: RecordId::parse(&text("attio_record")?)
            .map_err(|e| corrupt("conflict record", e))?,
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("conflict system", e))?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("conflict external id", e))?,
        conflict: parse::<FieldConflict>(&text("conflict")?, "conflict")?,
        detected_at: from_ms(row.try_get("detected_at").map_err(db)?)?,
        last_seen: from_ms(row.try_get("last_seen").map_err(db)?)?,
        resolution,
    })
}

#[async_trait]
impl ConflictStore for SqliteStore {
    async fn record(&self, c: &ConflictRecord) -> PortResult<ConflictId> {
        let id: String = sqlx::query_scalar(
            "INSERT INTO conflicts (conflict_id, tenant_id, object, attio_record, system, external_id, conflict, detected_at, resolution, resolved_at, field, last_seen)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id, object, attio_record, system, field) WHERE resolution IS NULL
             DO UPDATE SET conflict = excluded.conflict, external_id = excluded.external_id,
                           last_seen = excluded.last_seen
             RETURNING conflict_id",
        )
        .bind(c.id.to_string())
        .bind(c.tenant.as_str())
        .bind(c.object.as_str())
        .bind(c.attio_record.to_string())
        .bind(c.system.as_str())
        .bind(c.external_id.as_str())
        .bind(json(&c.conflict)?)
        .bind(to_ms(c.detected_at))
        .bind(c.resolution.as_ref().map(|(r, _)| json(r)).transpose()?)
        .bind(c.resolution.as_ref().map(|(_, at)| to_ms(*at)))
        .bind(c.field().as_str())
        .bind(to_ms(c.last_seen))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        ConflictId::parse(&id).map_err(|e| corrupt("conflict id", e))
    }

    async fn open(
        &self,
        tenant: &TenantId,
        filter: &ConflictFilter,
        limit: usize,
    ) -> PortResult<Vec<ConflictRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM conflicts WHERE tenant_id = ?1 AND resolution IS NULL
               AND (?3 IS NULL OR object = ?3) AND (?4 IS NULL OR system = ?4)
               AND (?5 IS NULL OR field = ?5) AND (?6 IS NULL OR attio_record = ?6)
               AND (?7 IS NULL OR detected_at < ?7)
             ORDER BY detected_at, conflict_id LIMIT ?2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(filter.object.as_ref().map(ObjectSlug::as_str))
        .bind(filter.system.as_ref().map(SystemId::as_str))
        .bind(filter.field.as_ref().map(FieldKey::as_str))
        .bind(filter.record.map(|r| r.to_string()))
        .bind(filter.detected_before.map(to_ms))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(conflict_from_row).collect()
    }

    async fn count_open(&self, tenant: &TenantId) -> PortResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conflicts WHERE tenant_id = ? AND resolution IS NULL",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn get(&self, tenant: &TenantId, id: ConflictId) -> PortResult<ConflictRecord> {
        let row = sqlx::query("SELECT * FROM conflicts WHERE tenant_id = ? AND conflict_id = ?")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("conflict {id}")))?;
        conflict_from_row(&row)
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        id: ConflictId,
        resolution: Resolution,
        at: OffsetDateTime,
    ) -> PortResult<ConflictRecord> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE conflicts SET resolution = ?, resolved_at = ? WHERE tenant_id = ? AND conflict_id = ? AND resolution IS NULL RETURNING *",
        )
        .bind(json(&resolution)?)
        .bind(to_ms(at))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        match row {
            Some(row) => conflict_from_row(&row),
            None => {
                ConflictStore::get(self, tenant, id).await?;
                Err(PortError::Conflict(format!(
                    "conflict {id} is already resolved"
                )))
            }
        }
    }
}

impl SqliteStore {
    fn tenant_from_row(&self, row: &SqliteRow) -> PortResult<Tenant> {
        let id = TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(db)?)
            .map_err(|e| corrupt("tenant id", e))?;
        let sealed = SealedTenant {
            credentials: row.try_get("credentials").map_err(db)?,
            crm_settings_json: row.try_get("crm_settings").map_err(db)?,
        };
        sealing::tenant::open(
            &self.cipher,
            id.clone(),
            row.try_get("name").map_err(db)?,
            from_ms(row.try_get("created_at").map_err(db)?)?,
            &sealed,
        )
        .map_err(|e| PortError::backend(format!("credentials of tenant {id}"), e))
    }

    fn seal(&self, t: &Tenant) -> PortResult<SealedTenant> {
        sealing::tenant::seal(&self.cipher, t)
            .map_err(|e| PortError::backend("sealing credentials", e))
    }
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create(&self, t: &Tenant) -> PortResult<()> {
        t.validate()?;
        let sealed = self.seal(t)?;
        let done = sqlx::query("INSERT INTO tenants (tenant_id, name, credentials, crm_settings, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(&sealed.credentials)
            .bind(&sealed.crm_settings_json)
            .bind(to_ms(t.created_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::Conflict(format!("tenant {} exists", t.id)));
        }
        Ok(())
    }

    async fn get(&self, id: &TenantId) -> PortResult<Tenant> {
        let row = sqlx::query("SELECT * FROM tenants WHERE tenant_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("tenant {id}")))?;
        self.tenant_from_row(&row)
    }

    async fn list(&self) -> PortResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY tenant_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| self.tenant_from_row(r)).collect()
    }

    async fn update(&self, t: &Tenant) -> PortResult<()> {
        t.validate()?;
        let sealed = self.seal(t)?;
        let done = sqlx::query(
            "UPDATE tenants SET name = ?, credentials = ?, crm_settings = ? WHERE tenant_id = ?",
        )
        .bind(&t.name)
        .bind(&sealed.credentials)
        .bind(&sealed.crm_settings_json)
        .bind(t.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("tenant {}", t.id)));
        }
        Ok(())
    }

    async fn delete(&self, id: &TenantId) -> PortResult<()> {
        let done = sqlx::query("DELETE FROM tenants WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("tenant {id}")));
        }
        Ok(())
    }
}

fn delete_from_row(row: &SqliteRow) -> PortResult<DeleteRecord> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let status = text("status")?;
    Ok(DeleteRecord {
        id: DeleteId::parse(&text("delete_id")?).map_err(|e| corrupt("delete id", e))?,
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("delete tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("delete object", e))?,
        attio_record: RecordId::parse(&text("attio_record")?)
            .map_err(|e| corrupt("delete record", e))?,
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("delete system", e))?,
        external_object: text("external_object")?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("delete external id", e))?,
        origin: SystemId::parse(&text("origin")?).map_err(|e| corrupt("delete origin", e))?,
        status: DeleteStatus::parse(&status)
            .ok_or_else(|| corrupt("delete status", format!("unknown status {status:?}")))?,
        reason: text("reason")?,
        at: from_ms(row.try_get("at").map_err(db)?)?,
        decided_at: row
            .try_get::<Option<i64>, _>("decided_at")
            .map_err(db)?
            .map(from_ms)
            .transpose()?,
    })
}

#[async_trait]
impl DeleteStore for SqliteStore {
    async fn record(&self, d: &DeleteRecord) -> PortResult<DeleteRecord> {
        self.record_gated(d, u64::MAX, OffsetDateTime::UNIX_EPOCH, "")
            .await
    }

    async fn record_gated(
        &self,
        d: &DeleteRecord,
        max: u64,
        since: OffsetDateTime,
        held_reason: &str,
    ) -> PortResult<DeleteRecord> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3 AND system = ?4 AND origin = ?5",
        )
        .bind(d.tenant.as_str())
        .bind(d.object.as_str())
        .bind(d.attio_record.to_string())
        .bind(d.system.as_str())
        .bind(d.origin.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(row) = existing {
            tx.commit().await.map_err(db)?;
            return delete_from_row(&row);
        }
        let mut d = d.clone();
        if d.status == DeleteStatus::Done {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deletes WHERE tenant_id = ?1 AND status = 'done' AND at >= ?2",
            )
            .bind(d.tenant.as_str())
            .bind(to_ms(since))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if u64::try_from(done).unwrap_or_default() >= max {
                d.status = DeleteStatus::Held;
                d.reason = held_reason.to_owned();
            }
        }
        sqlx::query(
            "INSERT INTO deletes (delete_id, tenant_id, object, attio_record, system, external_object, external_id, origin, status, reason, at, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(d.id.to_string())
        .bind(d.tenant.as_str())
        .bind(d.object.as_str())
        .bind(d.attio_record.to_string())
        .bind(d.system.as_str())
        .bind(&d.external_object)
        .bind(d.external_id.as_str())
        .bind(d.origin.as_str())
        .bind(d.status.as_str())
        .bind(&d.reason)
        .bind(to_ms(d.at))
        .bind(d.decided_at.map(to_ms))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(d)
    }

    async fn count_done_since(&self, tenant: &TenantId, since: OffsetDateTime) -> PortResult<u64> {
        let mut tx = self.begin().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deletes WHERE tenant_id = ?1 AND status = 'done' AND at >= ?2",
        )
        .bind(tenant.as_str())
        .bind(to_ms(since))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn held(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeleteRecord>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = ?1 AND status = 'held' ORDER BY at, delete_id LIMIT ?2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(delete_from_row).collect()
    }

    async fn get(&self, tenant: &TenantId, id: DeleteId) -> PortResult<DeleteRecord> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT * FROM deletes WHERE tenant_id = ?1 AND delete_id = ?2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("delete {id}")))?;
        tx.commit().await.map_err(db)?;
        delete_from_row(&row)
    }

    async fn held_for(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        system: &SystemId,
    ) -> PortResult<Option<DeleteRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = ?1 AND object = ?2 AND attio_record = ?3 AND system = ?4 AND status = 'held' LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(record.to_string())
        .bind(system.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(delete_from_row).transpose()
    }

    async fn decide(
        &self,
        tenant: &TenantId,
        id: DeleteId,
        status: DeleteStatus,
        at: OffsetDateTime,
    ) -> PortResult<DeleteRecord> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE deletes SET status = ?3, decided_at = ?4
             WHERE tenant_id = ?1 AND delete_id = ?2 AND status = 'held' RETURNING *",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(to_ms(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT status FROM deletes WHERE tenant_id = ?1 AND delete_id = ?2",
            )
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            return Err(match found {
                Some(s) => PortError::Conflict(format!("delete {id} is {s}, not held")),
                None => PortError::NotFound(format!("delete {id}")),
            });
        };
        tx.commit().await.map_err(db)?;
        delete_from_row(&row)
    }
}

fn mappings_from_row(row: &SqliteRow) -> PortResult<StoredMappings> {
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let version: i64 = row.try_get("version").map_err(db)?;
    let document: MappingDocument = parse(
        &row.try_get::<String, _>("document").map_err(db)?,
        "mappings",
    )?;
    Ok(StoredMappings {
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("mappings tenant", e))?,
        version: u64::try_from(version).map_err(|e| corrupt("mappings version", e))?,
        document,
        changed_by: row.try_get("changed_by").map_err(db)?,
        changed_at: from_ms(row.try_get("changed_at").map_err(db)?)?,
    })
}

#[async_trait]
impl MappingStore for SqliteStore {
    async fn current(&self, tenant: &TenantId) -> PortResult<Option<StoredMappings>> {
        Ok(self.versions(tenant, 1).await?.pop())
    }

    async fn put(
        &self,
        tenant: &TenantId,
        document: &MappingDocument,
        expected: Option<u64>,
        changed_by: &str,
        at: OffsetDateTime,
    ) -> PortResult<StoredMappings> {
        let mut tx = self.begin().await?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM mappings WHERE tenant_id = ?1")
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let newest = newest.and_then(|v| u64::try_from(v).ok());
        let stale = || {
            PortError::Stale(format!(
                "the mappings of {tenant} are at version {}, not {}",
                newest.unwrap_or(0),
                expected.unwrap_or(0)
            ))
        };
        if newest != expected {
            return Err(stale());
        }
        let version = newest.unwrap_or(0) + 1;
        let done = sqlx::query(
            "INSERT INTO mappings (tenant_id, version, document, changed_by, changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .bind(json(document)?)
        .bind(changed_by)
        .bind(to_ms(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(stale());
        }
        tx.commit().await.map_err(db)?;
        Ok(StoredMappings {
            tenant: tenant.clone(),
            version,
            document: document.clone(),
            changed_by: changed_by.to_owned(),
            changed_at: at,
        })
    }

    async fn versions(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<StoredMappings>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT * FROM mappings WHERE tenant_id = ?1 ORDER BY version DESC LIMIT ?2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(mappings_from_row).collect()
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO audit_log (tenant_id, object, record, at, entry) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(e.tenant.as_str())
            .bind(e.object.as_str())
            .bind(e.record.to_string())
            .bind(to_ms(e.at))
            .bind(json(e)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn history(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT entry FROM audit_log WHERE tenant_id = ? AND object = ? AND record = ?
             ORDER BY at DESC, entry_id DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(record.to_string())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| parse::<AuditEntry>(r, "audit entry"))
            .collect()
    }

    async fn recent(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<AuditEntry>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT entry FROM audit_log WHERE tenant_id = ? ORDER BY at DESC, entry_id DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| parse::<AuditEntry>(r, "audit entry"))
            .collect()
    }

    async fn purge(&self, before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE entry_id IN
               (SELECT entry_id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
        )
        .bind(to_ms(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl WriteLedger for SqliteStore {
    async fn record(&self, entries: &[LedgerEntry]) -> PortResult<()> {
        let mut tx = self.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO write_ledger (tenant_id, system, object, record, field, value_hash, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (tenant_id, system, object, record, field)
                 DO UPDATE SET value_hash = excluded.value_hash, expires_at = excluded.expires_at",
            )
            .bind(e.key.tenant.as_str())
            .bind(e.key.system.as_str())
            .bind(&e.key.object)
            .bind(&e.key.record)
            .bind(e.key.field.as_str())
            .bind(e.value_hash.as_str())
            .bind(to_ms(e.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn is_echo(
        &self,
        key: &LedgerKey,
        hash: &ValueHash,
        now: OffsetDateTime,
    ) -> PortResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM write_ledger WHERE tenant_id = ? AND system = ? AND object = ? AND record = ? AND field = ?
               AND value_hash = ? AND expires_at > ?",
        )
        .bind(key.tenant.as_str())
        .bind(key.system.as_str())
        .bind(&key.object)
        .bind(&key.record)
        .bind(key.field.as_str())
        .bind(hash.as_str())
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> PortResult<u64> {
        let done = sqlx::query("DELETE FROM write_ledger WHERE expires_at <= ?")
            .bind(to_ms(now))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

/// A statement per table holding a tenant's data besides its record, with the name its count
/// goes by.
const ERASE: &[(&str, &str)] = &[
    ("DELETE FROM inbox WHERE tenant_id = ?", "deliveries"),
    (
        "DELETE FROM idempotency_keys WHERE tenant_id = ?",
        "delivery_keys",
    ),
    ("DELETE FROM jobs WHERE tenant_id = ?", "jobs"),
    (
        "DELETE FROM dead_letters WHERE tenant_id = ?",
        "dead_letters",
    ),
    ("DELETE FROM links WHERE tenant_id = ?", "links"),
    ("DELETE FROM sync_states WHERE tenant_id = ?", "sync_states"),
    ("DELETE FROM conflicts WHERE tenant_id = ?", "conflicts"),
    ("DELETE FROM audit_log WHERE tenant_id = ?", "audit"),
    ("DELETE FROM deletes WHERE tenant_id = ?", "deletes"),
    (
        "DELETE FROM provider_usage WHERE tenant_id = ?",
        "usage_days",
    ),
    (
        "DELETE FROM mappings WHERE tenant_id = ?",
        "mapping_versions",
    ),
    (
        "DELETE FROM write_ledger WHERE tenant_id = ?",
        "ledger_entries",
    ),
];

#[async_trait]
impl ports::stores::TenantEraser for SqliteStore {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<ports::stores::Erased> {
        let mut tx = self.begin().await?;
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

#[async_trait]
impl ports::stores::UsageLog for SqliteStore {
    async fn add(
        &self,
        tenant: &TenantId,
        day: time::Date,
        counts: &[(String, u64)],
    ) -> PortResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (provider, n) in counts {
            sqlx::query(
                "INSERT INTO provider_usage (tenant_id, day, provider, requests) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, day, provider) DO UPDATE SET requests = requests + excluded.requests",
            )
            .bind(tenant.as_str())
            .bind(ports::stores::day_number(day))
            .bind(provider)
            .bind(i64::try_from(*n).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn on_day(&self, tenant: &TenantId, day: time::Date) -> PortResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT provider, requests FROM provider_usage WHERE tenant_id = ? AND day = ? ORDER BY provider",
        )
        .bind(tenant.as_str())
        .bind(ports::stores::day_number(day))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(p, n)| (p, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
