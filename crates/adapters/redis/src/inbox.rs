//! The inbox on Redis: one script claims the delivery's key, stores the delivery and enqueues its
//! job, so the three happen together or not at all (ADR 0011).
//!
//! A delivery lives in `{ns}:inbox:{tenant}:{id}` (a hash) for the dedupe retention, the same
//! time its key is remembered; quarantined ones are also listed in `{ns}:quarantine:{tenant}` (a
//! sorted set by arrival), whose members are dropped once their delivery has expired.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use domain::idempotency::IdempotencyKey;
use domain::ids::{InboxId, JobId, SystemId, TenantId};
use domain::job::NewJob;
use ports::error::{PortError, PortResult};
use ports::queue::EnqueueOutcome;
use ports::stores::{Accepted, InboundDelivery, Inbox, StoredDelivery};
use redis::AsyncCommands;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::scripts::ACCEPT;
use crate::{RedisStore, rerr};

fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::backend(format!("Redis inbox entry ({what})"), e.to_string())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    fn inbox_key(&self, tenant: &TenantId, id: InboxId) -> String {
        self.key(&format!("inbox:{tenant}:{id}"))
    }

    fn quarantine_key(&self, tenant: &TenantId) -> String {
        self.key(&format!("quarantine:{tenant}"))
    }

    /// The delivery stored under `id`, or `None` once it expired.
    async fn read_delivery(
        &self,
        tenant: &TenantId,
        id: InboxId,
    ) -> PortResult<Option<StoredDelivery>> {
        let mut fields: HashMap<String, Vec<u8>> = self
            .conn()
            .hgetall(self.inbox_key(tenant, id))
            .await
            .map_err(rerr)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut text = |k: &str| -> PortResult<String> {
            let raw = fields.remove(k).ok_or_else(|| corrupt("field", k))?;
            String::from_utf8(raw).map_err(|e| corrupt(k, e))
        };
        let source = SystemId::parse(&text("source")?).map_err(|e| corrupt("source", e))?;
        let key = IdempotencyKey::from_provider(&text("key")?).map_err(|e| corrupt("key", e))?;
        let received: i128 = text("received")?
            .parse()
            .map_err(|e| corrupt("received", e))?;
        let received_at =
            OffsetDateTime::from_unix_timestamp_nanos(received).map_err(|e| corrupt("time", e))?;
        let quarantine = (text("quarantined")? == "1")
            .then(|| text("reason"))
            .transpose()?;
        let body = fields
            .remove("body")
            .ok_or_else(|| corrupt("field", "body"))?;
        Ok(Some(StoredDelivery {
            id,
            delivery: InboundDelivery {
                tenant: tenant.clone(),
                source,
                key,
                body,
                received_at,
                quarantine,
            },
        }))
    }
}

#[async_trait]
impl Inbox for RedisStore {
    async fn accept(
        &self,
        delivery: &InboundDelivery,
        job: Option<NewJob>,
        retention: Duration,
    ) -> PortResult<Accepted> {
        if let Some(j) = &job
            && j.key.tenant != delivery.tenant
        {
            return Err(PortError::Invalid(
                "the job belongs to another tenant than the delivery".into(),
            ));
        }
        let id = InboxId::from_uuid(Uuid::new_v4());
        let mut call = ACCEPT.prepare_invoke();
        call.arg(&self.ns)
            .arg(delivery.tenant.as_str())
            .arg(delivery.key.as_str())
            .arg(ms(retention))
            .arg(id.to_string())
            .arg(delivery.source.as_str())
            .arg(delivery.body.as_slice())
            .arg(delivery.received_at.unix_timestamp_nanos().to_string())
            .arg(u8::from(delivery.quarantine.is_some()))
            .arg(delivery.quarantine.as_deref().unwrap_or_default());
        if let Some(j) = &job {
            let payload =
                serde_json::to_string(&j.payload).map_err(|e| PortError::Invalid(e.to_string()))?;
            call.arg(&j.key.partition)
                .arg(&j.key.entity)
                .arg(payload)
                .arg(j.max_attempts.max(1))
                .arg(u64::try_from(j.delay.as_millis()).unwrap_or(u64::MAX))
                .arg(Uuid::new_v4().to_string());
        }
        let reply: Vec<String> = call.invoke_async(&mut self.conn()).await.map_err(rerr)?;
        let job = |kind: &str, raw: &str| -> PortResult<EnqueueOutcome> {
            let jid = JobId::parse(raw).map_err(|e| corrupt("job id", e))?;
            Ok(if kind == "coalesced" {
                EnqueueOutcome::Coalesced(jid)
            } else {
                EnqueueOutcome::Enqueued(jid)
            })
        };
        match reply.as_slice() {
            [d] if d == "duplicate" => Ok(Accepted::Duplicate),
            [s] if s == "stored" => Ok(Accepted::Stored { id, job: None }),
            [s, kind, jid] if s == "stored" => Ok(Accepted::Stored {
                id,
                job: Some(job(kind, jid)?),
            }),
            other => Err(corrupt("reply", format!("{other:?}"))),
        }
    }

    async fn get(&self, tenant: &TenantId, id: InboxId) -> PortResult<StoredDelivery> {
        self.read_delivery(tenant, id)
            .await?
            .ok_or_else(|| PortError::NotFound(format!("delivery {id}")))
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> PortResult<Vec<StoredDelivery>> {
        let index = self.quarantine_key(tenant);
        let mut out = Vec::new();
        let mut start = 0isize;
        let page = limit.clamp(1, 500) as isize;
        while out.len() < limit {
            let ids: Vec<String> = self
                .conn()
                .zrange(&index, start, start + page - 1)
                .await
                .map_err(rerr)?;
            if ids.is_empty() {
                break;
            }
            start += page;
            for raw in &ids {
                let id = InboxId::parse(raw).map_err(|e| corrupt("id", e))?;
                match self.read_delivery(tenant, id).await? {
                    Some(d) if out.len() < limit => out.push(d),
                    Some(_) => break,
                    None => {
                        // Expired with its retention: forget it in the index too.
                        let _: i64 = self.conn().zrem(&index, raw).await.map_err(rerr)?;
                        start -= 1;
                    }
                }
            }
        }
        Ok(out)
    }
}
