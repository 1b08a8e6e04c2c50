//! The queue, its dead letters and the inbox on SQLite (semantics: ADR 0003).

use std::time::Duration;

use async_trait::async_trait;
use domain::idempotency::IdempotencyKey;
use domain::ids::{InboxId, JobId, SystemId, TenantId};
use domain::job::{DeadLetter, Job, JobKey, JobPayload, NewJob};
use ports::error::{PortError, PortResult};
use ports::queue::{
    DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, LeaseToken, PartitionBacklog,
    QueueDepth, Reservation, ReserveFilter,
};
use ports::stores::{Accepted, InboundDelivery, Inbox, StoredDelivery};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{SqliteStore, corrupt, db, dur_ms, from_ms, now_ms, to_ms};

fn job_from_row(row: &SqliteRow) -> PortResult<Job> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let tenant = TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("job tenant", e))?;
    let payloads: Vec<Value> =
        serde_json::from_str(&text("payloads")?).map_err(|e| corrupt("payloads", e))?;
    Ok(Job {
        id: JobId::parse(&text("job_id")?).map_err(|e| corrupt("job id", e))?,
        key: JobKey::new(tenant, &text("partition")?, &text("entity")?)
            .map_err(|e| corrupt("job key", e))?,
        payloads,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(db)?).unwrap_or(0),
        max_attempts: u32::try_from(row.try_get::<i64, _>("max_attempts").map_err(db)?)
            .unwrap_or(1),
        enqueued_at: from_ms(row.try_get("enqueued_at").map_err(db)?)?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

/// Appends a payload to a JSON array text.
fn append(payloads: &str, payload: &JobPayload) -> PortResult<String> {
    let mut all: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(payloads).map_err(|e| corrupt("payloads", e))?;
    all.push(payload.as_raw());
    serde_json::to_string(&all).map_err(|e| corrupt("payloads", e))
}

impl SqliteStore {
    /// Wakes every waiting consumer, and leaves a permit for one between an empty `reserve` and
    /// its wait, which would otherwise sleep through the new job.
    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    async fn enqueue_in(
        &self,
        conn: &mut SqliteConnection,
        new: NewJob,
    ) -> PortResult<EnqueueOutcome> {
        let fresh: Option<(String, String)> = sqlx::query_as(
            "SELECT job_id, payloads FROM jobs WHERE tenant_id = ? AND partition = ? AND entity = ? AND fresh = 1
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(new.key.tenant.as_str())
        .bind(&new.key.partition)
        .bind(&new.key.entity)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        if let Some((id, payloads)) = fresh {
            sqlx::query("UPDATE jobs SET payloads = ? WHERE job_id = ?")
                .bind(append(&payloads, &new.payload)?)
                .bind(&id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            return Ok(EnqueueOutcome::Coalesced(
                JobId::parse(&id).map_err(|e| corrupt("job id", e))?,
            ));
        }
        let id = Uuid::new_v4();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(new.key.tenant.as_str())
        .bind(&new.key.partition)
        .bind(&new.key.entity)
        .bind(serde_json::to_string(&[&new.payload]).map_err(|e| PortError::Invalid(e.to_string()))?)
        .bind(i64::from(new.max_attempts.max(1)))
        .bind(now)
        .bind(now.saturating_add(dur_ms(new.delay)))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        Ok(EnqueueOutcome::Enqueued(JobId::from_uuid(id)))
    }

    async fn bury(
        &self,
        r: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "INSERT INTO dead_letters (job_id, tenant_id, partition, entity, payloads, attempts, max_attempts,
                                       enqueued_at, error, failed_at, needs_reconciliation)
             SELECT job_id, tenant_id, partition, entity, payloads, attempts, max_attempts, enqueued_at, ?, ?, ?
             FROM jobs WHERE job_id = ? AND lease_token = ?",
        )
        .bind(error)
        .bind(now_ms())
        .bind(needs_reconciliation)
        .bind(r.job.id.to_string())
        .bind(r.lease.0.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        sqlx::query("DELETE FROM jobs WHERE job_id = ?")
            .bind(r.job.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.wake();
        Ok(())
    }

    /// Runs an update that needs the current lease; `LeaseLost` when it matched nothing.
    async fn with_lease(
        &self,
        r: &Reservation,
        sql: &'static str,
        args: (Option<i64>, Option<&str>),
    ) -> PortResult<()> {
        let mut tx = self.begin().await?;
        let mut q = sqlx::query(sql);
        if let Some(n) = args.0 {
            q = q.bind(n);
        }
        if let Some(s) = args.1 {
            q = q.bind(s.to_owned());
        }
        let done = q
            .bind(r.job.id.to_string())
            .bind(r.lease.0.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::LeaseLost(r.job.id));
        }
        tx.commit().await.map_err(db)?;
        self.wake();
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> PortResult<EnqueueOutcome> {
        let mut tx = self.begin().await?;
        let out = self.enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(db)?;
        self.wake();
        Ok(out)
    }

    async fn reserve(
        &self,
        _consumer: &str,
        lease: Duration,
        filter: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        let now = now_ms();
        let tenants = serde_json::to_string(
            &filter
                .tenants
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let partitions = serde_json::to_string(&filter.partitions).unwrap_or_default();
        let token = Uuid::new_v4();
        let expires = now.saturating_add(dur_ms(lease));
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE jobs SET lease_token = ?1, lease_expires_at = ?2, attempts = attempts + 1, fresh = 0
             WHERE seq = (
                 SELECT j.seq FROM jobs j
                 WHERE (j.lease_token IS NULL OR j.lease_expires_at <= ?3) AND j.not_before <= ?3
                   AND (?4 = '[]' OR j.tenant_id IN (SELECT value FROM json_each(?4)))
                   AND (?5 = '[]' OR j.partition IN (SELECT value FROM json_each(?5)))
                   AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.tenant_id = j.tenant_id AND o.partition = j.partition
                                                       AND o.entity = j.entity AND o.seq < j.seq)
                 ORDER BY j.seq LIMIT 1)
             RETURNING *",
        )
        .bind(token.to_string())
        .bind(expires)
        .bind(now)
        .bind(tenants)
        .bind(partitions)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Reservation {
            job: job_from_row(&row)?,
            lease: LeaseToken(token),
            lease_expires_at: from_ms(expires)?,
        }))
    }

    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        self.with_lease(
            r,
            "DELETE FROM jobs WHERE job_id = ? AND lease_token = ?",
            (None, None),
        )
        .await
    }

    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        let until = now_ms().saturating_add(dur_ms(lease));
        self.with_lease(
            r,
            "UPDATE jobs SET lease_expires_at = ? WHERE job_id = ? AND lease_token = ?",
            (Some(until), None),
        )
        .await
    }

    async fn fail(
        &self,
        r: &Reservation,
        error: &str,
        retry_after: Duration,
    ) -> PortResult<FailOutcome> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT attempts, max_attempts FROM jobs WHERE job_id = ? AND lease_token = ?",
        )
        .bind(r.job.id.to_string())
        .bind(r.lease.0.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (attempts, max) = row.ok_or(PortError::LeaseLost(r.job.id))?;
        if attempts >= max {
            self.bury(r, error, false).await?;
            return Ok(FailOutcome::DeadLettered);
        }
        let at = now_ms().saturating_add(dur_ms(retry_after));
        self.with_lease(
            r,
            "UPDATE jobs SET not_before = ?, last_error = ?, lease_token = NULL, lease_expires_at = NULL
             WHERE job_id = ? AND lease_token = ?",
            (Some(at), Some(error)),
        )
        .await?;
        Ok(FailOutcome::Retrying { at: from_ms(at)? })
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
        self.with_lease(
            r,
            "UPDATE jobs SET not_before = ?, lease_token = NULL, lease_expires_at = NULL, attempts = max(attempts - 1, 0)
             WHERE job_id = ? AND lease_token = ?",
            (Some(now_ms()), None),
        )
        .await
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        let now = now_ms();
        let (ready, delayed, in_flight, dead): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT
                 (SELECT count(*) FROM jobs WHERE (lease_token IS NULL OR lease_expires_at <= ?1) AND not_before <= ?1),
                 (SELECT count(*) FROM jobs WHERE (lease_token IS NULL OR lease_expires_at <= ?1) AND not_before > ?1),
                 (SELECT count(*) FROM jobs WHERE lease_token IS NOT NULL AND lease_expires_at > ?1),
                 (SELECT count(*) FROM dead_letters)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(QueueDepth {
            ready: n(ready),
            delayed: n(delayed),
            in_flight: n(in_flight),
            dead: n(dead),
        })
    }

    async fn backlog(&self, tenant: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT partition, count(*), min(enqueued_at) FROM jobs
             WHERE tenant_id = ? GROUP BY partition ORDER BY partition",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(partition, jobs, oldest)| {
                Ok(PartitionBacklog {
                    partition,
                    jobs: u64::try_from(jobs).unwrap_or(0),
                    oldest_enqueued_at: Some(from_ms(oldest)?),
                })
            })
            .collect()
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.notify.notified()).await;
    }
}

fn dead_from_row(row: &SqliteRow) -> PortResult<DeadLetter> {
    let mut job = job_from_row(row)?;
    let error: String = row.try_get("error").map_err(db)?;
    job.last_error = Some(error.clone());
    Ok(DeadLetter {
        job,
        error,
        failed_at: from_ms(row.try_get("failed_at").map_err(db)?)?,
        needs_reconciliation: row.try_get("needs_reconciliation").map_err(db)?,
    })
}

#[async_trait]
impl DeadLetterQueue for SqliteStore {
    async fn list_dead(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT *, NULL AS last_error FROM dead_letters WHERE tenant_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(dead_from_row).collect()
    }

    async fn dead_letter_of(&self, tenant: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        let row = sqlx::query(
            "SELECT *, NULL AS last_error FROM dead_letters WHERE tenant_id = ? AND job_id = ?",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(dead_from_row)
            .unwrap_or_else(|| Err(PortError::NotFound(format!("dead letter {id}"))))
    }

    async fn replay(&self, tenant: &TenantId, id: JobId) -> PortResult<JobId> {
        let new_id = Uuid::new_v4();
        let now = now_ms();
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before, fresh)
             SELECT ?, tenant_id, partition, entity, payloads, max_attempts, ?, ?, 0
             FROM dead_letters WHERE job_id = ? AND tenant_id = ?",
        )
        .bind(new_id.to_string())
        .bind(now)
        .bind(now)
        .bind(id.to_string())
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if moved.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        sqlx::query("DELETE FROM dead_letters WHERE job_id = ? AND tenant_id = ?")
            .bind(id.to_string())
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.wake();
        Ok(JobId::from_uuid(new_id))
    }

    async fn purge(&self, tenant: &TenantId, id: JobId) -> PortResult<()> {
        let done = sqlx::query("DELETE FROM dead_letters WHERE job_id = ? AND tenant_id = ?")
            .bind(id.to_string())
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        Ok(())
    }
}

fn delivery_from_row(row: &SqliteRow) -> PortResult<StoredDelivery> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db);
    Ok(StoredDelivery {
        id: InboxId::parse(&text("inbox_id")?).map_err(|e| corrupt("inbox id", e))?,
        delivery: InboundDelivery {
            tenant: TenantId::parse(&text("tenant_id")?).map_err(|e| corrupt("inbox tenant", e))?,
            source: SystemId::parse(&text("source")?).map_err(|e| corrupt("inbox source", e))?,
            key: IdempotencyKey::from_provider(&text("idempotency_key")?)
                .map_err(|e| corrupt("inbox key", e))?,
            body: row.try_get("body").map_err(db)?,
            received_at: from_ms(row.try_get("received_at").map_err(db)?)?,
            quarantine: row.try_get("quarantine").map_err(db)?,
        },
    })
}

#[async_trait]
impl Inbox for SqliteStore {
    async fn accept(
        &self,
        d: &InboundDelivery,
        job: Option<NewJob>,
        retention: Duration,
    ) -> PortResult<Accepted> {
        let mut tx = self.begin().await?;
        if !crate::stores::claim_in(&mut tx, &d.tenant, &d.key, retention).await? {
            return Ok(Accepted::Duplicate);
        }
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO inbox (inbox_id, tenant_id, source, idempotency_key, received_at, body, quarantine)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(d.tenant.as_str())
        .bind(d.source.as_str())
        .bind(d.key.as_str())
        .bind(to_ms(d.received_at))
        .bind(&d.body)
        .bind(&d.quarantine)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let job = match job {
            Some(j) => Some(self.enqueue_in(&mut tx, j).await?),
            None => None,
        };
        tx.commit().await.map_err(db)?;
        self.wake();
        Ok(Accepted::Stored {
            id: InboxId::from_uuid(id),
            job,
        })
    }

    async fn get(&self, tenant: &TenantId, id: InboxId) -> PortResult<StoredDelivery> {
        let row = sqlx::query("SELECT * FROM inbox WHERE inbox_id = ? AND tenant_id = ?")
            .bind(id.to_string())
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| PortError::NotFound(format!("delivery {id}")))?;
        delivery_from_row(&row)
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> PortResult<Vec<StoredDelivery>> {
        let rows = sqlx::query(
            "SELECT * FROM inbox WHERE tenant_id = ? AND quarantine IS NOT NULL ORDER BY received_at LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn purge(&self, received_before: OffsetDateTime, limit: usize) -> PortResult<u64> {
        let mut tx = self.begin().await?;
        let (before, limit) = (
            to_ms(received_before),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE expires_at <= ?3 AND (tenant_id, key) IN (
                 SELECT tenant_id, idempotency_key FROM inbox
                 WHERE received_at < ?1 ORDER BY received_at, inbox_id LIMIT ?2)",
        )
        .bind(before)
        .bind(limit)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let gone = sqlx::query(
            "DELETE FROM inbox WHERE inbox_id IN (
                 SELECT inbox_id FROM inbox WHERE received_at < ?1 ORDER BY received_at, inbox_id LIMIT ?2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(gone.rows_affected())
    }
}
