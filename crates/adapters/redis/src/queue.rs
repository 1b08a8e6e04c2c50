use std::time::Duration;

use async_trait::async_trait;
use domain::ids::{JobId, TenantId};
use domain::job::{DeadLetter, Job, JobKey, NewJob};
use ports::error::{PortError, PortResult};
use ports::queue::{
    DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, LeaseToken, PartitionBacklog,
    QueueDepth, Reservation, ReserveFilter,
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::scripts::{
    ACK, BACKLOG, DEAD_LETTER, DEAD_ONE, DEPTH, ENQUEUE, EXTEND, FAIL, LIST_DEAD, PURGE, RELEASE,
    REPLAY, RESERVE,
};
use crate::{RedisStore, rerr};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::backend(format!("Redis queue entry ({what})"), e.to_string())
}

fn at_ms(v: &str) -> PortResult<OffsetDateTime> {
    let ms: i128 = v.parse().map_err(|e| corrupt("time", e))?;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).map_err(|e| corrupt("time", e))
}

fn num(v: &str, what: &str) -> PortResult<u32> {
    v.parse().map_err(|e| corrupt(what, e))
}

/// Builds a job from tenant, partition, entity, payloads, attempts, max, enqueued (ms), error.
fn job(id: &str, f: &[String]) -> PortResult<Job> {
    let [
        tenant,
        partition,
        entity,
        payloads,
        attempts,
        max,
        enq,
        err,
        ..,
    ] = f
    else {
        return Err(corrupt("job", "missing fields"));
    };
    let tenant = TenantId::parse(tenant).map_err(|e| corrupt("tenant", e))?;
    Ok(Job {
        id: JobId::parse(id).map_err(|e| corrupt("id", e))?,
        key: JobKey::new(tenant, partition, entity).map_err(|e| corrupt("key", e))?,
        payloads: serde_json::from_str::<Vec<Value>>(payloads)
            .map_err(|e| corrupt("payloads", e))?,
        attempts: num(attempts, "attempts")?,
        max_attempts: num(max, "max attempts")?,
        enqueued_at: at_ms(enq)?,
        last_error: (!err.is_empty()).then(|| err.clone()),
    })
}

impl RedisStore {
    async fn settle(
        &self,
        script: &redis::Script,
        r: &Reservation,
        extra: &[String],
    ) -> PortResult<()> {
        let mut s = script.prepare_invoke();
        s.arg(&self.ns)
            .arg(r.job.id.to_string())
            .arg(r.lease.0.to_string());
        for a in extra {
            s.arg(a);
        }
        let ok: i64 = s.invoke_async(&mut self.conn()).await.map_err(rerr)?;
        if ok == 1 {
            Ok(())
        } else {
            Err(PortError::LeaseLost(r.job.id))
        }
    }
}

#[async_trait]
impl JobQueue for RedisStore {
    async fn enqueue(&self, new: NewJob) -> PortResult<EnqueueOutcome> {
        let payload = new.payload.as_str();
        let (kind, id): (String, String) = ENQUEUE
            .arg(&self.ns)
            .arg(new.key.tenant.as_str())
            .arg(&new.key.partition)
            .arg(&new.key.entity)
            .arg(payload)
            .arg(new.max_attempts.max(1))
            .arg(ms(new.delay))
            .arg(Uuid::new_v4().to_string())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let id = JobId::parse(&id).map_err(|e| corrupt("id", e))?;
        Ok(if kind == "coalesced" {
            EnqueueOutcome::Coalesced(id)
        } else {
            EnqueueOutcome::Enqueued(id)
        })
    }

    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        filter: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        let token = Uuid::new_v4();
        let tenants: Vec<&str> = filter.tenants.iter().map(|t| t.as_str()).collect();
        let partitions: Vec<&String> = filter.partitions.iter().collect();
        let reply: Option<Vec<String>> = RESERVE
            .arg(&self.ns)
            .arg(consumer)
            .arg(ms(lease).max(1))
            .arg(token.to_string())
            .arg(serde_json::to_string(&tenants).unwrap_or_else(|_| "[]".into()))
            .arg(serde_json::to_string(&partitions).unwrap_or_else(|_| "[]".into()))
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let Some(f) = reply else { return Ok(None) };
        let (Some(exp), Some(id)) = (f.get(8), f.get(9)) else {
            return Err(corrupt("reservation", "short reply"));
        };
        Ok(Some(Reservation {
            job: job(id, &f)?,
            lease: LeaseToken(token),
            lease_expires_at: at_ms(exp)?,
        }))
    }

    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        self.settle(&ACK, r, &[]).await
    }

    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        self.settle(&EXTEND, r, &[ms(lease).max(1).to_string()])
            .await
    }

    async fn fail(
        &self,
        r: &Reservation,
        error: &str,
        retry_after: Duration,
    ) -> PortResult<FailOutcome> {
        let reply: Vec<String> = FAIL
            .arg(&self.ns)
            .arg(r.job.id.to_string())
            .arg(r.lease.0.to_string())
            .arg(error)
            .arg(ms(retry_after))
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        match reply.first().map(String::as_str) {
            Some("retry") => Ok(FailOutcome::Retrying {
                at: at_ms(reply.get(1).map(String::as_str).unwrap_or("0"))?,
            }),
            Some("dead") => Ok(FailOutcome::DeadLettered),
            _ => Err(PortError::LeaseLost(r.job.id)),
        }
    }

    async fn dead_letter(
        &self,
        r: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()> {
        self.settle(
            &DEAD_LETTER,
            r,
            &[error.to_owned(), u8::from(needs_reconciliation).to_string()],
        )
        .await
    }

    async fn release(&self, r: &Reservation) -> PortResult<()> {
        self.settle(&RELEASE, r, &[]).await
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        let d: Vec<i64> = DEPTH
            .arg(&self.ns)
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let n = |i: usize| u64::try_from(d.get(i).copied().unwrap_or(0)).unwrap_or(0);
        Ok(QueueDepth {
            ready: n(0),
            delayed: n(1),
            in_flight: n(2),
            dead: n(3),
        })
    }

    /// Counts the jobs at the head of their key (ready, in flight or delayed); see `BACKLOG`.
    async fn backlog(&self, tenant: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        let flat: Vec<String> = BACKLOG
            .arg(&self.ns)
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let mut out = flat
            .chunks(3)
            .map(|c| match c {
                [partition, jobs, oldest] => Ok(PartitionBacklog {
                    partition: partition.clone(),
                    jobs: jobs.parse().map_err(|e| corrupt("backlog", e))?,
                    oldest_enqueued_at: if oldest.is_empty() {
                        None
                    } else {
                        Some(at_ms(oldest)?)
                    },
                }),
                _ => Err(corrupt("backlog", "a short row")),
            })
            .collect::<PortResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(out)
    }

    /// Streams have no cheap cross-stream wake-up here: wait a short while and let the caller poll.
    async fn wait_for_work(&self, max_wait: Duration) {
        tokio::time::sleep(max_wait.min(Duration::from_millis(50))).await;
    }
}

/// A dead letter from its stream entry's field/value list.
fn dead_from_fields(fields: &[String]) -> PortResult<DeadLetter> {
    let map: std::collections::HashMap<&str, &str> = fields
        .chunks(2)
        .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
        .collect();
    let get = |k: &str| {
        map.get(k)
            .map(|s| (*s).to_owned())
            .ok_or_else(|| corrupt("dead letter", k))
    };
    let job_fields = [
        get("tenant")?,
        get("partition")?,
        get("entity")?,
        get("payloads")?,
        get("attempts")?,
        get("max")?,
        get("enq")?,
        get("err")?,
    ];
    Ok(DeadLetter {
        job: job(&get("job")?, &job_fields)?,
        error: get("err")?,
        failed_at: at_ms(&get("failed")?)?,
        needs_reconciliation: get("rec")? == "1",
    })
}

#[async_trait]
impl DeadLetterQueue for RedisStore {
    async fn list_dead(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let entries: Vec<Vec<String>> = LIST_DEAD
            .arg(&self.ns)
            .arg(tenant.as_str())
            .arg(limit.max(1))
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        entries.iter().map(|f| dead_from_fields(f)).collect()
    }

    async fn dead_letter_of(&self, tenant: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        let fields: Vec<String> = DEAD_ONE
            .arg(&self.ns)
            .arg(tenant.as_str())
            .arg(id.to_string())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        if fields.is_empty() {
            return Err(PortError::NotFound(format!("dead letter {id}")));
        }
        dead_from_fields(&fields)
    }

    async fn replay(&self, tenant: &TenantId, id: JobId) -> PortResult<JobId> {
        let new: Option<String> = REPLAY
            .arg(&self.ns)
            .arg(tenant.as_str())
            .arg(id.to_string())
            .arg(Uuid::new_v4().to_string())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        let new = new.ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))?;
        JobId::parse(&new).map_err(|e| corrupt("id", e))
    }

    async fn purge(&self, tenant: &TenantId, id: JobId) -> PortResult<()> {
        let done: i64 = PURGE
            .arg(&self.ns)
            .arg(tenant.as_str())
            .arg(id.to_string())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        if done == 1 {
            Ok(())
        } else {
            Err(PortError::NotFound(format!("dead letter {id}")))
        }
    }
}

#[async_trait]
impl ports::stores::TenantEraser for RedisStore {
    /// One script, so a concurrent accept or reserve sees the tenant's data whole or gone.
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<ports::stores::Erased> {
        let [jobs, dead, deliveries, keys]: [u64; 4] = crate::scripts::ERASE_TENANT
            .arg(&self.ns)
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        Ok(ports::stores::Erased::from([
            ("jobs", jobs),
            ("dead_letters", dead),
            ("deliveries", deliveries),
            ("delivery_keys", keys),
        ]))
    }
}
