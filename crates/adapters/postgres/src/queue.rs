//! The queue, its dead letters and the inbox on PostgreSQL. See ADR 0003 for the semantics and
//! ADR 0005 for how they map onto SQL.

use std::time::Duration;

use async_trait::async_trait;
use domain::idempotency::IdempotencyKey;
use domain::ids::{InboxId, JobId, SystemId, TenantId};
use domain::job::{DeadLetter, Job, JobKey, NewJob};
use ports::error::{PortError, PortResult};
use ports::queue::{
    DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, LeaseToken, PartitionBacklog,
    QueueDepth, Reservation, ReserveFilter,
};
use ports::stores::{Accepted, InboundDelivery, Inbox, StoredDelivery};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt, db};

/// A new job or inbox id: time-ordered (UUIDv7), so that the primary keys' B-trees grow at their
/// right edge instead of dirtying a random leaf page per insert (which, once an index outgrows
/// the buffer cache, turns into reads and evictions on the accept path).
fn row_id() -> Uuid {
    Uuid::now_v7()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn job_from_row(row: &PgRow) -> PortResult<Job> {
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let tenant = TenantId::parse(&tenant).map_err(|e| corrupt("job tenant", e))?;
    let key = JobKey::new(
        tenant,
        &row.try_get::<String, _>("partition").map_err(db)?,
        &row.try_get::<String, _>("entity").map_err(db)?,
    )
    .map_err(|e| corrupt("job key", e))?;
    let payloads: sqlx::types::Json<Vec<Value>> = row.try_get("payloads").map_err(db)?;
    Ok(Job {
        id: JobId::from_uuid(row.try_get("job_id").map_err(db)?),
        key,
        payloads: payloads.0,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts").map_err(db)?).unwrap_or(0),
        max_attempts: u32::try_from(row.try_get::<i32, _>("max_attempts").map_err(db)?)
            .unwrap_or(1),
        enqueued_at: row.try_get("enqueued_at").map_err(db)?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

/// Decodes what `enqueue_job` returned; `None` for another outcome.
fn enqueued(outcome: &str, job: Option<Uuid>) -> PortResult<Option<EnqueueOutcome>> {
    let id = || {
        job.map(JobId::from_uuid)
            .ok_or_else(|| PortError::backend("PostgreSQL queue", "no job id returned"))
    };
    Ok(match outcome {
        "enqueued" => Some(EnqueueOutcome::Enqueued(id()?)),
        "coalesced" => Some(EnqueueOutcome::Coalesced(id()?)),
        _ => None,
    })
}

/// Serialises writers of one key for the rest of the transaction, so that a key's jobs commit in
/// `seq` order.
async fn lock_key(conn: &mut PgConnection, key: &JobKey) -> PortResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key.to_string())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

impl PgStore {
    /// Enqueues inside the caller's (tenant-scoped) transaction.
    async fn enqueue_in(&self, conn: &mut PgConnection, new: NewJob) -> PortResult<EnqueueOutcome> {
        let (outcome, job): (String, Option<Uuid>) =
            sqlx::query_as("SELECT outcome, job FROM enqueue_job($1, $2, $3, $4, $5, $6, $7)")
                .bind(new.key.tenant.as_str())
                .bind(&new.key.partition)
                .bind(&new.key.entity)
                .bind(sqlx::types::Json(&new.payload))
                .bind(i32::try_from(new.max_attempts.max(1)).unwrap_or(i32::MAX))
                .bind(secs(new.delay))
                .bind(row_id())
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
        enqueued(&outcome, job)?
            .ok_or_else(|| PortError::backend("PostgreSQL queue", format!("outcome {outcome:?}")))
    }

    /// Moves a held job to the dead letters; `LeaseLost` if the lease is not current.
    async fn bury(
        &self,
        r: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()> {
        let mut tx = self.begin_tenant_relaxed(&r.job.key.tenant).await?;
        let moved = sqlx::query(
            "WITH gone AS (DELETE FROM jobs WHERE job_id = $1 AND lease_token = $2 RETURNING *)
             INSERT INTO dead_letters (job_id, tenant_id, partition, entity, payloads, attempts, max_attempts,
                                       enqueued_at, error, failed_at, needs_reconciliation)
             SELECT job_id, tenant_id, partition, entity, payloads, attempts, max_attempts, enqueued_at, $3, now(), $4
             FROM gone",
        )
        .bind(r.job.id.as_uuid())
        .bind(r.lease.0)
        .bind(error)
        .bind(needs_reconciliation)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, job: NewJob) -> PortResult<EnqueueOutcome> {
        let mut tx = self.begin_tenant(&job.key.tenant).await?;
        let out = self.enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(db)?;
        self.wake_workers();
        Ok(out)
    }

    async fn reserve(
        &self,
        _consumer: &str,
        lease: Duration,
        filter: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        let tenants: Option<Vec<String>> = (!filter.tenants.is_empty()).then(|| {
            filter
                .tenants
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect()
        });
        let partitions: Option<Vec<String>> =
            (!filter.partitions.is_empty()).then(|| filter.partitions.iter().cloned().collect());
        let token = Uuid::new_v4();
        let mut tx = self.begin_system_relaxed().await?;
        let row = sqlx::query(
            "WITH candidate AS (
                 SELECT j.job_id FROM jobs j
                 WHERE (j.lease_token IS NULL OR j.lease_expires_at <= now())
                   AND j.not_before <= now()
                   AND ($1::text[] IS NULL OR j.tenant_id = ANY($1))
                   AND ($2::text[] IS NULL OR j.partition = ANY($2))
                   AND NOT EXISTS (SELECT 1 FROM jobs o
                                   WHERE o.tenant_id = j.tenant_id AND o.partition = j.partition
                                     AND o.entity = j.entity AND o.seq < j.seq)
                 ORDER BY j.seq
                 LIMIT 1
                 FOR UPDATE OF j SKIP LOCKED)
             UPDATE jobs SET lease_token = $3, lease_expires_at = now() + make_interval(secs => $4),
                             attempts = attempts + 1, fresh = false
             FROM candidate
             WHERE jobs.job_id = candidate.job_id
               AND (jobs.lease_token IS NULL OR jobs.lease_expires_at <= now())
             RETURNING jobs.job_id, jobs.tenant_id, jobs.partition, jobs.entity, jobs.payloads, jobs.attempts,
                       jobs.max_attempts, jobs.enqueued_at, jobs.last_error, jobs.lease_expires_at",
        )
        .bind(tenants)
        .bind(partitions)
        .bind(token)
        .bind(secs(lease))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Reservation {
            job: job_from_row(&row)?,
            lease: LeaseToken(token),
            lease_expires_at: row.try_get("lease_expires_at").map_err(db)?,
        }))
    }

    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        let mut tx = self.begin_tenant_relaxed(&r.job.key.tenant).await?;
        let done = sqlx::query("DELETE FROM jobs WHERE job_id = $1 AND lease_token = $2")
            .bind(r.job.id.as_uuid())
            .bind(r.lease.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        tx.commit().await.map_err(db)?;
        self.wake_workers();
        Ok(())
    }

    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        let mut tx = self.begin_tenant_relaxed(&r.job.key.tenant).await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3) WHERE job_id = $1 AND lease_token = $2",
        )
        .bind(r.job.id.as_uuid())
        .bind(r.lease.0)
        .bind(secs(lease))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        tx.commit().await.map_err(db)
    }

    async fn fail(
        &self,
        r: &Reservation,
        error: &str,
        retry_after: Duration,
    ) -> PortResult<FailOutcome> {
        let mut tx = self.begin_tenant_relaxed(&r.job.key.tenant).await?;
        let row = sqlx::query(
            "SELECT attempts, max_attempts FROM jobs WHERE job_id = $1 AND lease_token = $2 FOR UPDATE",
        )
        .bind(r.job.id.as_uuid())
        .bind(r.lease.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(PortError::LeaseLost(r.job.id))?;
        let (attempts, max): (i32, i32) =
            (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
        if attempts >= max {
            drop(tx);
            self.bury(r, error, false).await?;
            return Ok(FailOutcome::DeadLettered);
        }
        let at: OffsetDateTime = sqlx::query_scalar(
            "UPDATE jobs SET lease_token = NULL, lease_expires_at = NULL, last_error = $3,
                             not_before = now() + make_interval(secs => $4)
             WHERE job_id = $1 AND lease_token = $2 RETURNING not_before",
        )
        .bind(r.job.id.as_uuid())
        .bind(r.lease.0)
        .bind(error)
        .bind(secs(retry_after))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.wake_workers();
        Ok(FailOutcome::Retrying { at })
    }

    async fn dead_letter(
        &self,
        r: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()> {
        self.bury(r, error, needs_reconciliation).await
    }

    async fn release(&self, r: &Reservation) -> PortResult<()> {
        let mut tx = self.begin_tenant_relaxed(&r.job.key.tenant).await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_token = NULL, lease_expires_at = NULL, not_before = now(),
                             attempts = greatest(attempts - 1, 0)
             WHERE job_id = $1 AND lease_token = $2",
        )
        .bind(r.job.id.as_uuid())
        .bind(r.lease.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        tx.commit().await.map_err(db)?;
        self.wake_workers();
        Ok(())
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        let mut tx = self.begin_system().await?;
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE (lease_token IS NULL OR lease_expires_at <= now()) AND not_before <= now()),
                    count(*) FILTER (WHERE (lease_token IS NULL OR lease_expires_at <= now()) AND not_before > now()),
                    count(*) FILTER (WHERE lease_token IS NOT NULL AND lease_expires_at > now()),
                    (SELECT count(*) FROM dead_letters)
             FROM jobs",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let n = |i: usize| -> PortResult<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(i).map_err(db)?).unwrap_or(0))
        };
        Ok(QueueDepth {
            ready: n(0)?,
            delayed: n(1)?,
            in_flight: n(2)?,
            dead: n(3)?,
        })
    }

    async fn backlog(&self, tenant: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT partition, count(*), min(enqueued_at) FROM jobs
             WHERE tenant_id = $1 GROUP BY partition ORDER BY partition",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(PartitionBacklog {
                    partition: r.try_get(0).map_err(db)?,
                    jobs: u64::try_from(r.try_get::<i64, _>(1).map_err(db)?).unwrap_or(0),
                    oldest_enqueued_at: r.try_get(2).map_err(db)?,
                })
            })
            .collect()
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.notify.notified()).await;
    }
}

fn dead_from_row(row: &PgRow) -> PortResult<DeadLetter> {
    let mut job = job_from_row(row)?;
    let error: String = row.try_get("error").map_err(db)?;
    job.last_error = Some(error.clone());
    Ok(DeadLetter {
        job,
        error,
        failed_at: row.try_get("failed_at").map_err(db)?,
        needs_reconciliation: row.try_get("needs_reconciliation").map_err(db)?,
    })
}

#[async_trait]
impl DeadLetterQueue for PgStore {
    async fn list_dead(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT job_id, tenant_id, partition, entity, payloads, attempts, max_attempts, enqueued_at,
                    NULL::text AS last_error, error, failed_at, needs_reconciliation
             FROM dead_letters WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(dead_from_row).collect()
    }

    async fn dead_letter_of(&self, tenant: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query(
            "SELECT job_id, tenant_id, partition, entity, payloads, attempts, max_attempts, enqueued_at,
                    NULL::text AS last_error, error, failed_at, needs_reconciliation
             FROM dead_letters WHERE tenant_id = $1 AND job_id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref()
            .map(dead_from_row)
            .unwrap_or_else(|| Err(PortError::NotFound(format!("dead letter {id}"))))
    }

    async fn replay(&self, tenant: &TenantId, id: JobId) -> PortResult<JobId> {
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query(
            "SELECT partition, entity FROM dead_letters WHERE job_id = $1 AND tenant_id = $2",
        )
        .bind(id.as_uuid())
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))?;
        let key = JobKey::new(
            tenant.clone(),
            &row.try_get::<String, _>(0).map_err(db)?,
            &row.try_get::<String, _>(1).map_err(db)?,
        )
        .map_err(|e| corrupt("dead letter key", e))?;
        lock_key(&mut tx, &key).await?;
        let new_id = row_id();
        let moved = sqlx::query(
            "WITH gone AS (DELETE FROM dead_letters WHERE job_id = $1 AND tenant_id = $2 RETURNING *)
             INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before, fresh)
             SELECT $3, tenant_id, partition, entity, payloads, max_attempts, now(), now(), false FROM gone",
        )
        .bind(id.as_uuid())
        .bind(tenant.as_str())
        .bind(new_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        tx.commit().await.map_err(db)?;
        self.wake_workers();
        Ok(JobId::from_uuid(new_id))
    }

    async fn purge(&self, tenant: &TenantId, id: JobId) -> PortResult<()> {
        let mut tx = self.begin_tenant(tenant).await?;
        let done = sqlx::query("DELETE FROM dead_letters WHERE job_id = $1 AND tenant_id = $2")
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        tx.commit().await.map_err(db)
    }
}

fn delivery_from_row(row: &PgRow) -> PortResult<StoredDelivery> {
    let tenant = TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(db)?)
        .map_err(|e| corrupt("inbox tenant", e))?;
    Ok(StoredDelivery {
        id: InboxId::from_uuid(row.try_get("inbox_id").map_err(db)?),
        delivery: InboundDelivery {
            tenant,
            source: SystemId::parse(&row.try_get::<String, _>("source").map_err(db)?)
                .map_err(|e| corrupt("inbox source", e))?,
            key: IdempotencyKey::from_provider(
                &row.try_get::<String, _>("idempotency_key").map_err(db)?,
            )
            .map_err(|e| corrupt("inbox key", e))?,
            body: row.try_get("body").map_err(db)?,
            received_at: row.try_get("received_at").map_err(db)?,
            quarantine: row.try_get("quarantine").map_err(db)?,
        },
    })
}

#[async_trait]
impl Inbox for PgStore {
    async fn accept(
        &self,
        d: &InboundDelivery,
        job: Option<NewJob>,
        retention: Duration,
    ) -> PortResult<Accepted> {
        if let Some(j) = &job
            && j.key.tenant != d.tenant
        {
            return Err(PortError::Invalid(
                "the job belongs to another tenant than the delivery".into(),
            ));
        }
        // Claim, store and enqueue in one transaction, grouped with concurrent deliveries and
        // committed durably (ADR 0014); then the workers are woken.
        let id = row_id();
        let (outcome, job_id) = self
            .intake
            .accept(crate::intake::Delivery {
                tenant: d.tenant.as_str().to_owned(),
                key: d.key.as_str().to_owned(),
                retention_s: retention.as_secs_f64(),
                inbox: id,
                source: d.source.as_str().to_owned(),
                received: d.received_at,
                body: d.body.clone(),
                quarantine: d.quarantine.clone(),
                job: job.map(|j| crate::intake::JobArgs {
                    id: row_id(),
                    partition: j.key.partition,
                    entity: j.key.entity,
                    payload: j.payload,
                    max_attempts: i32::try_from(j.max_attempts.max(1)).unwrap_or(i32::MAX),
                    delay_s: secs(j.delay),
                }),
            })
            .await?;
        let job = match outcome.as_str() {
            "duplicate" => return Ok(Accepted::Duplicate),
            "stored" => None,
            _ => {
                let enqueued = enqueued(&outcome, job_id)?;
                if enqueued.is_none() {
                    return Err(PortError::backend(
                        "PostgreSQL inbox",
                        format!("unknown outcome {outcome:?}"),
                    ));
                }
                self.wake_workers();
                enqueued
            }
        };
        Ok(Accepted::Stored {
            id: InboxId::from_uuid(id),
            job,
        })
    }

    async fn get(&self, tenant: &TenantId, id: InboxId) -> PortResult<StoredDelivery> {
        let mut tx = self.begin_tenant(tenant).await?;
        let row = sqlx::query("SELECT * FROM inbox WHERE inbox_id = $1 AND tenant_id = $2")
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("delivery {id}")))?;
        tx.commit().await.map_err(db)?;
        delivery_from_row(&row)
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> PortResult<Vec<StoredDelivery>> {
        let mut tx = self.begin_tenant(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM inbox WHERE tenant_id = $1 AND quarantine IS NOT NULL ORDER BY received_at LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn purge(&self, received_before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        // Relaxed: a purge lost in a crash is done again by the next one. Its scans stay on
        // `inbox_received` and the keys' primary key whatever row-level security makes the
        // planner expect (ADR 0019).
        let mut tx = self.begin_system_relaxed().await?;
        let gone: i64 = sqlx::query_scalar(
            "WITH old AS (
                 SELECT inbox_id FROM inbox WHERE received_at < $1
                 ORDER BY received_at LIMIT $2),
             gone AS (
                 DELETE FROM inbox i USING old WHERE i.inbox_id = old.inbox_id
                 RETURNING i.tenant_id, i.idempotency_key),
             claims AS (
                 DELETE FROM idempotency_keys k
                 USING (SELECT DISTINCT tenant_id, idempotency_key FROM gone) g
                 WHERE k.tenant_id = g.tenant_id AND k.key = g.idempotency_key
                   AND k.expires_at <= now()
                 RETURNING 1)
             SELECT count(*) FROM gone",
        )
        .bind(received_before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(u64::try_from(gone).unwrap_or(0))
    }
}
