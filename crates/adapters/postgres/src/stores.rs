//! Idempotency keys, links, sync states, conflicts and the write ledger on PostgreSQL. Each
//! operation runs in a transaction scoped to its tenant, so row-level security backs up every
//! `WHERE tenant_id = …`.

use std::collections::BTreeMap;
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
use ports::error::{PortError, PortResult};
use ports::stores::{
    AuditLog, Claim, ConflictStore, DeleteStore, IdempotencyStore, LinkStore, MappingStore,
    SyncStateStore, WriteLedger,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use crate::PgStore;
use crate::error::{corrupt, db};

/// Claims a key inside the caller's transaction; `true` when it is new (or its claim expired).
pub(crate) async fn claim_in(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &IdempotencyKey,
    retention: Duration,
) -> PortResult<bool> {
    sqlx::query_scalar("SELECT claim_key($1, $2, $3)")
        .bind(tenant.as_str())
        .bind(key.as_str())
        .bind(retention.as_secs_f64())
        .fetch_one(conn)
        .await
        .map_err(db)
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        retention: Duration,
    ) -> PortResult<Claim> {
        let mut tx = self.begin_tenant(tenant).await?;
        let new = claim_in(&mut tx, tenant, key, retention).await?;
        tx.commit().await.map_err(db)?;
        Ok(if new { Claim::New } else { Claim::Duplicate })
    }
}

fn link_from_row(row: &PgRow) -> PortResult<IdentityLink> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let snapshot: Json<Snapshot> = row.try_get("snapshot").map_err(db)?;
    Ok(IdentityLink {
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("link tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("link object", e))?,
        attio_record: RecordId::from_uuid(row.try_get("attio_record").map_err(db)?),
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("link system", e))?,
        external_object: text("external_object")?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("link external id", e))?,
        snapshot: snapshot.0,
        updated_at: row.try_get("updated_at").map_err(db)?,
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(db)?).unwrap_or(0),
    })
}

/// The statements (find, delete) and binds of a lookup; `$1` is always the tenant.
fn lookup_sql(lookup: &LinkLookup) -> (&'static str, &'static str, [String; 3]) {
    match lookup {
        LinkLookup::Attio {
            object,
            record,
            system,
        } => (
            "SELECT * FROM links WHERE tenant_id = $1 AND object = $2 AND attio_record = $3::uuid AND system = $4",
            "DELETE FROM links WHERE tenant_id = $1 AND object = $2 AND attio_record = $3::uuid AND system = $4",
            [object.to_string(), record.to_string(), system.to_string()],
        ),
        LinkLookup::External {
            system,
            external_object,
            external_id,
        } => (
            "SELECT * FROM links WHERE tenant_id = $1 AND system = $2 AND external_object = $3 AND external_id = $4",
            "DELETE FROM links WHERE tenant_id = $1 AND system = $2 AND external_object = $3 AND external_id = $4",
            [
                system.to_string(),
                external_object.clone(),
                external_id.to_string(),
            ],
        ),
    }
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl LinkStore for PgStore {
    async fn find(
        &self,
        tenant: &TenantId,
        lookup: &LinkLookup,
    ) -> PortResult<Option<IdentityLink>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let (sql, _, [a, b, c]) = lookup_sql(lookup);
        let row = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(a)
            .bind(b)
            .bind(c)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(link_from_row).transpose()
    }

    async fn links_of(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
    ) -> PortResult<Vec<IdentityLink>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query("SELECT * FROM links WHERE tenant_id = $1 AND object = $2 AND attio_record = $3 ORDER BY system")
            .bind(tenant.as_str())
            .bind(object.as_str())
            .bind(record.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(link_from_row).collect()
    }

    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink> {
        let mut tx = self.begin_tenant(&link.tenant).await?;
        let row = if link.version == 0 {
            sqlx::query(
                "INSERT INTO links (tenant_id, object, attio_record, system, external_object, external_id, snapshot, updated_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)
                 ON CONFLICT (tenant_id, object, attio_record, system) DO NOTHING
                 RETURNING *",
            )
        } else {
            sqlx::query(
                "UPDATE links SET external_object = $5, external_id = $6, snapshot = $7, updated_at = $8, version = version + 1
                 WHERE tenant_id = $1 AND object = $2 AND attio_record = $3 AND system = $4 AND version = $9
                 RETURNING *",
            )
        }
        .bind(link.tenant.as_str())
        .bind(link.object.as_str())
        .bind(link.attio_record.as_uuid())
        .bind(link.system.as_str())
        .bind(&link.external_object)
        .bind(link.external_id.as_str())
        .bind(Json(&link.snapshot))
        .bind(link.updated_at)
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
        let mut tx = self.begin_tenant(tenant).await?;
        sqlx::query(
            "DELETE FROM links f WHERE f.tenant_id = $1 AND f.object = $2 AND f.attio_record = $3
               AND EXISTS (SELECT 1 FROM links t WHERE t.tenant_id = $1 AND t.object = $2
                                                  AND t.attio_record = $4 AND t.system = f.system)",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(from.as_uuid())
        .bind(to.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let moved = sqlx::query(
            "UPDATE links SET attio_record = $4, version = version + 1
             WHERE tenant_id = $1 AND object = $2 AND attio_record = $3",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(from.as_uuid())
        .bind(to.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(moved.rows_affected())
    }

    async fn count(&self, tenant: &TenantId) -> PortResult<u64> {
        let mut tx = self.begin_tenant(tenant).await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn delete(&self, tenant: &TenantId, lookup: &LinkLookup) -> PortResult<()> {
        let mut tx = self.begin_tenant(tenant).await?;
        let (_, sql, [a, b, c]) = lookup_sql(lookup);
        let done = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("link {lookup:?}")));
        }
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl SyncStateStore for PgStore {
    async fn get(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
    ) -> PortResult<Option<SyncState>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let state: Option<(Json<SyncState>, i64)> = sqlx::query_as(
            "SELECT state, version FROM sync_states WHERE tenant_id = $1 AND object = $2 AND system = $3",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(system.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(state.map(|(s, v)| SyncState {
            version: u64::try_from(v).unwrap_or(0),
            ..s.0
        }))
    }

    async fn save(&self, state: &SyncState) -> PortResult<SyncState> {
        let mut tx = self.begin_tenant(&state.tenant).await?;
        let saved = SyncState {
            version: state.version + 1,
            ..state.clone()
        };
        let done = if state.version == 0 {
            sqlx::query(
                "INSERT INTO sync_states (tenant_id, object, system, state, version) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT DO NOTHING",
            )
        } else {
            sqlx::query(
                "UPDATE sync_states SET state = $4, version = version + 1
                 WHERE tenant_id = $1 AND object = $2 AND system = $3 AND version = $5",
            )
        }
        .bind(state.tenant.as_str())
        .bind(state.object.as_str())
        .bind(state.system.as_str())
        .bind(Json(&saved))
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
        let mut tx = self.begin_tenant(tenant).await?;
        let rows: Vec<(Json<SyncState>, i64)> = sqlx::query_as(
            "SELECT state, version FROM sync_states WHERE tenant_id = $1 ORDER BY object, system",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(s, v)| SyncState {
                version: u64::try_from(v).unwrap_or(0),
                ..s.0
            })
            .collect())
    }
}

fn conflict_from_row(row: &PgRow) -> PortResult<ConflictRecord> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let conflict: Json<FieldConflict> = row.try_get("conflict").map_err(db)?;
    let resolution: Option<Json<Resolution>> = row.try_get("resolution").map_err(db)?;
    let resolved_at: Option<OffsetDateTime> = row.try_get("resolved_at").map_err(db)?;
    Ok(ConflictRecord {
        id: ConflictId::from_uuid(row.try_get("conflict_id").map_err(db)?),
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("conflict tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("conflict object", e))?,
        attio_record: RecordId::from_uuid(row.try_get("attio_record").map_err(db)?),
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("conflict system", e))?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("conflict external id", e))?,
        conflict: conflict.0,
        detected_at: row.try_get("detected_at").map_err(db)?,
        last_seen: row.try_get("last_seen").map_err(db)?,
        resolution: resolution.zip(resolved_at).map(|(r, at)| (r.0, at)),
    })
}

#[async_trait]
impl ConflictStore for PgStore {
    async fn record(&self, c: &ConflictRecord) -> PortResult<ConflictId> {
        let mut tx = self.begin_tenant(&c.tenant).await?;
        let id: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO conflicts (conflict_id, tenant_id, object, attio_record, system, external_id, conflict, detected_at, resolution, resolved_at, field, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (tenant_id, object, attio_record, system, field) WHERE resolution IS NULL
             DO UPDATE SET conflict = EXCLUDED.conflict, external_id = EXCLUDED.external_id,
                           last_seen = EXCLUDED.last_seen
             RETURNING conflict_id",
        )
        .bind(c.id.as_uuid())
        .bind(c.tenant.as_str())
        .bind(c.object.as_str())
        .bind(c.attio_record.as_uuid())
        .bind(c.system.as_str())
        .bind(c.external_id.as_str())
        .bind(Json(&c.conflict))
        .bind(c.detected_at)
        .bind(c.resolution.as_ref().map(|(r, _)| Json(r)))
        .bind(c.resolution.as_ref().map(|(_, at)| *at))
        .bind(c.field().as_str())
        .bind(c.last_seen)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(ConflictId::from_uuid(id))
    }

    async fn open(
        &self,
        tenant: &TenantId,
        filter: &ConflictFilter,
        limit: usize,
    ) -> PortResult<Vec<ConflictRecord>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM conflicts WHERE tenant_id = $1 AND resolution IS NULL
               AND ($3::text IS NULL OR object = $3) AND ($4::text IS NULL OR system = $4)
               AND ($5::text IS NULL OR field = $5) AND ($6::uuid IS NULL OR attio_record = $6)
               AND ($7::timestamptz IS NULL OR detected_at < $7)
             ORDER BY detected_at, conflict_id LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(filter.object.as_ref().map(ObjectSlug::as_str))
        .bind(filter.system.as_ref().map(SystemId::as_str))
        .bind(filter.field.as_ref().map(FieldKey::as_str))
        .bind(filter.record.map(|r| *r.as_uuid()))
        .bind(filter.detected_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(conflict_from_row).collect()
    }

    async fn count_open(&self, tenant: &TenantId) -> PortResult<u64> {
        let mut tx = self.begin_tenant(tenant).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conflicts WHERE tenant_id = $1 AND resolution IS NULL",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn get(&self, tenant: &TenantId, id: ConflictId) -> PortResult<ConflictRecord> {
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query("SELECT * FROM conflicts WHERE tenant_id = $1 AND conflict_id = $2")
            .bind(tenant.as_str())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("conflict {id}")))?;
        tx.commit().await.map_err(db)?;
        conflict_from_row(&row)
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        id: ConflictId,
        resolution: Resolution,
        at: OffsetDateTime,
    ) -> PortResult<ConflictRecord> {
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query(
            "UPDATE conflicts SET resolution = $3, resolved_at = $4
             WHERE tenant_id = $1 AND conflict_id = $2 AND resolution IS NULL RETURNING *",
        )
        .bind(tenant.as_str())
        .bind(id.as_uuid())
        .bind(Json(&resolution))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            let exists: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM conflicts WHERE tenant_id = $1 AND conflict_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            return Err(match exists {
                Some(_) => PortError::Conflict(format!("conflict {id} is already resolved")),
                None => PortError::NotFound(format!("conflict {id}")),
            });
        };
        tx.commit().await.map_err(db)?;
        conflict_from_row(&row)
    }
}

fn delete_from_row(row: &PgRow) -> PortResult<DeleteRecord> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let status = text("status")?;
    Ok(DeleteRecord {
        id: DeleteId::from_uuid(row.try_get("delete_id").map_err(db)?),
        tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("delete tenant", e))?,
        object: ObjectSlug::parse(&text("object")?).map_err(|e| corrupt("delete object", e))?,
        attio_record: RecordId::from_uuid(row.try_get("attio_record").map_err(db)?),
        system: SystemId::parse(&text("system")?).map_err(|e| corrupt("delete system", e))?,
        external_object: text("external_object")?,
        external_id: ExternalId::parse(&text("external_id")?)
            .map_err(|e| corrupt("delete external id", e))?,
        origin: SystemId::parse(&text("origin")?).map_err(|e| corrupt("delete origin", e))?,
        status: DeleteStatus::parse(&status)
            .ok_or_else(|| corrupt("delete status", format!("unknown status {status:?}")))?,
        reason: text("reason")?,
        at: row.try_get("at").map_err(db)?,
        decided_at: row.try_get("decided_at").map_err(db)?,
    })
}

#[async_trait]
impl DeleteStore for PgStore {
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
        let mut tx = self.begin_tenant(&d.tenant).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('deletes:' || $1, 0))")
            .bind(d.tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let existing = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = $1 AND object = $2 AND attio_record = $3 AND system = $4 AND origin = $5",
        )
        .bind(d.tenant.as_str())
        .bind(d.object.as_str())
        .bind(d.attio_record.as_uuid())
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
                "SELECT count(*) FROM deletes WHERE tenant_id = $1 AND status = 'done' AND at >= $2",
            )
            .bind(d.tenant.as_str())
            .bind(since)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(d.id.as_uuid())
        .bind(d.tenant.as_str())
        .bind(d.object.as_str())
        .bind(d.attio_record.as_uuid())
        .bind(d.system.as_str())
        .bind(&d.external_object)
        .bind(d.external_id.as_str())
        .bind(d.origin.as_str())
        .bind(d.status.as_str())
        .bind(&d.reason)
        .bind(d.at)
        .bind(d.decided_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(d)
    }

    async fn count_done_since(&self, tenant: &TenantId, since: OffsetDateTime) -> PortResult<u64> {
        let mut tx = self.begin_tenant(tenant).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deletes WHERE tenant_id = $1 AND status = 'done' AND at >= $2",
        )
        .bind(tenant.as_str())
        .bind(since)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn held(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeleteRecord>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = $1 AND status = 'held' ORDER BY at, delete_id LIMIT $2",
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
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query("SELECT * FROM deletes WHERE tenant_id = $1 AND delete_id = $2")
            .bind(tenant.as_str())
            .bind(id.as_uuid())
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
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query(
            "SELECT * FROM deletes WHERE tenant_id = $1 AND object = $2 AND attio_record = $3 AND system = $4 AND status = 'held' LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(record.as_uuid())
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
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query(
            "UPDATE deletes SET status = $3, decided_at = $4
             WHERE tenant_id = $1 AND delete_id = $2 AND status = 'held' RETURNING *",
        )
        .bind(tenant.as_str())
        .bind(id.as_uuid())
        .bind(status.as_str())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT status FROM deletes WHERE tenant_id = $1 AND delete_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_uuid())
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

fn mappings_from_row(row: &PgRow) -> PortResult<StoredMappings> {
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let version: i64 = row.try_get("version").map_err(db)?;
    let document: Json<MappingDocument> = row.try_get("document").map_err(db)?;
    let document = document.0;
    Ok(StoredMappings {
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt("mappings tenant", e))?,
        version: u64::try_from(version).map_err(|e| corrupt("mappings version", e))?,
        document,
        changed_by: row.try_get("changed_by").map_err(db)?,
        changed_at: row.try_get("changed_at").map_err(db)?,
    })
}

#[async_trait]
impl MappingStore for PgStore {
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
        let mut tx = self.begin_tenant(tenant).await?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM mappings WHERE tenant_id = $1")
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
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .bind(Json(document))
        .bind(changed_by)
        .bind(at)
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
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM mappings WHERE tenant_id = $1 ORDER BY version DESC LIMIT $2",
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
impl AuditLog for PgStore {
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()> {
        let mut by_tenant: BTreeMap<&TenantId, Vec<&AuditEntry>> = BTreeMap::new();
        for e in entries {
            by_tenant.entry(&e.tenant).or_default().push(e);
        }
        for (tenant, entries) in by_tenant {
            let mut tx = self.begin_tenant(tenant).await?;
            for e in entries {
                sqlx::query(
                    "INSERT INTO audit_log (tenant_id, object, record, at, entry)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant.as_str())
                .bind(e.object.as_str())
                .bind(e.record.as_uuid())
                .bind(e.at)
                .bind(Json(e))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
        }
        Ok(())
    }

    async fn history(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: RecordId,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows: Vec<Json<AuditEntry>> = sqlx::query_scalar(
            "SELECT entry FROM audit_log WHERE tenant_id = $1 AND object = $2 AND record = $3
             ORDER BY at DESC, entry_id DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(object.as_str())
        .bind(record.as_uuid())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    async fn recent(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<AuditEntry>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows: Vec<Json<AuditEntry>> = sqlx::query_scalar(
            "SELECT entry FROM audit_log WHERE tenant_id = $1 ORDER BY at DESC, entry_id DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    async fn purge(&self, before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        let mut tx = self.begin_system().await?;
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE entry_id IN
               (SELECT entry_id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl WriteLedger for PgStore {
    async fn record(&self, entries: &[LedgerEntry]) -> PortResult<()> {
        let mut by_tenant: BTreeMap<&TenantId, Vec<&LedgerEntry>> = BTreeMap::new();
        for e in entries {
            by_tenant.entry(&e.key.tenant).or_default().push(e);
        }
        for (tenant, entries) in by_tenant {
            let mut tx = self.begin_tenant(tenant).await?;
            for e in entries {
                sqlx::query(
                    "INSERT INTO write_ledger (tenant_id, system, object, record, field, value_hash, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (tenant_id, system, object, record, field)
                     DO UPDATE SET value_hash = EXCLUDED.value_hash, expires_at = EXCLUDED.expires_at",
                )
                .bind(tenant.as_str())
                .bind(e.key.system.as_str())
                .bind(&e.key.object)
                .bind(&e.key.record)
                .bind(e.key.field.as_str())
                .bind(e.value_hash.as_str())
                .bind(e.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
        }
        Ok(())
    }

    async fn is_echo(
        &self,
        key: &LedgerKey,
        hash: &ValueHash,
        now: OffsetDateTime,
    ) -> PortResult<bool> {
        let mut tx = self.begin_tenant(&key.tenant).await?;
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM write_ledger WHERE tenant_id = $1 AND system = $2 AND object = $3 AND record = $4
               AND field = $5 AND value_hash = $6 AND expires_at > $7",
        )
        .bind(key.tenant.as_str())
        .bind(key.system.as_str())
        .bind(&key.object)
        .bind(&key.record)
        .bind(key.field.as_str())
        .bind(hash.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(found.is_some())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> PortResult<u64> {
        let mut tx = self.begin_system().await?;
        let done = sqlx::query("DELETE FROM write_ledger WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ports::stores::UsageLog for PgStore {
    async fn add(
        &self,
        tenant: &TenantId,
        day: time::Date,
        counts: &[(String, u64)],
    ) -> PortResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_tenant(tenant).await?;
        for (provider, n) in counts {
            sqlx::query(
                "INSERT INTO provider_usage (tenant_id, day, provider, requests) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, day, provider) DO UPDATE SET requests = provider_usage.requests + EXCLUDED.requests",
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
        let mut tx = self.begin_tenant(tenant).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT provider, requests FROM provider_usage WHERE tenant_id = $1 AND day = $2 ORDER BY provider",
        )
        .bind(tenant.as_str())
        .bind(ports::stores::day_number(day))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(p, n)| (p, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
