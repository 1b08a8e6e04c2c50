//! Group commit of the inbox (ADR 0014).
//!
//! Every accept is durable before it is answered, so each one used to cost a transaction and a
//! WAL flush of its own; under load PostgreSQL's backends then queued on the WAL write lock. Here
//! one task gathers the deliveries that arrive while earlier batches are committing and accepts
//! each gathered batch in one call of `accept_deliveries` (migration 0003): one transaction, one
//! flush. Nothing waits for a batch to fill: a delivery that finds no batch in progress is
//! committed alone, at once, so a quiet intake answers as fast as before.
//!
//! A batch that fails as a whole (a deadlock with another writer, a value PostgreSQL refuses) is
//! retried one delivery at a time, so each caller gets its own outcome and one bad delivery
//! cannot fail the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use domain::job::JobPayload;
use ports::error::{PortError, PortResult};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::error::db;

/// What `accept_delivery` returned: the outcome's name and the job, if any.
pub(crate) type Outcome = (String, Option<Uuid>);

/// The job part of a delivery, as the SQL functions take it.
#[derive(Debug)]
pub(crate) struct JobArgs {
    pub id: Uuid,
    pub partition: String,
    pub entity: String,
    pub payload: JobPayload,
    pub max_attempts: i32,
    pub delay_s: f64,
}

/// One delivery to accept, owned so that it can wait in the batcher's queue.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub tenant: String,
    pub key: String,
    pub retention_s: f64,
    pub inbox: Uuid,
    pub source: String,
    pub received: OffsetDateTime,
    pub body: Vec<u8>,
    pub quarantine: Option<String>,
    pub job: Option<JobArgs>,
}

struct Pending {
    delivery: Delivery,
    reply: oneshot::Sender<PortResult<Outcome>>,
}

/// How deliveries are grouped.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// The most deliveries in one transaction; 1 commits each on its own.
    pub max_batch: usize,
    /// Batches committing at once (each holds a pooled connection while it runs).
    pub concurrency: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            concurrency: 2,
        }
    }
}

/// What the intake has committed since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntakeStats {
    /// Transactions of one or more deliveries (a failed batch's one-by-one retries included).
    pub commits: u64,
    /// Deliveries answered (stored, duplicate or failed).
    pub deliveries: u64,
    /// The most deliveries one transaction held.
    pub largest_batch: u64,
    /// Batches that failed as a whole and were retried one delivery at a time.
    pub split_batches: u64,
    /// Deliveries that spent [`SLOW`] or more in the intake (queued for a batch and committed).
    pub slow_accepts: u64,
    /// Transactions on which PostgreSQL took [`SLOW`] or more (the call until its answer).
    pub slow_commits: u64,
    /// The deliveries those slow transactions held.
    pub slow_commit_deliveries: u64,
    /// The longest one transaction took.
    pub slowest_commit: Duration,
}

/// What counts as slow in [`IntakeStats`]: issue 6's answer-time budget at 1,000 deliveries/s.
pub const SLOW: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    deliveries: AtomicU64,
    largest_batch: AtomicU64,
    split_batches: AtomicU64,
    slow_accepts: AtomicU64,
    slow_commits: AtomicU64,
    slow_commit_deliveries: AtomicU64,
    slowest_commit_us: AtomicU64,
}

impl Counters {
    /// Records how long a transaction of `size` deliveries took.
    fn timed(&self, took: Duration, size: u64) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.slowest_commit_us.fetch_max(us, Ordering::Relaxed);
        if took >= SLOW {
            self.slow_commits.fetch_add(1, Ordering::Relaxed);
            self.slow_commit_deliveries
                .fetch_add(size, Ordering::Relaxed);
        }
    }
}

/// The handle callers send deliveries through; the batcher task stops when the last one goes.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts the batcher on the current runtime.
    pub(crate) fn start(pool: PgPool, config: GroupCommitConfig) -> Self {
        let max_batch = config.max_batch.max(1);
        let (queue, rx) = mpsc::channel(max_batch * config.concurrency.max(1) * 4);
        let counters = Arc::new(Counters::default());
        tokio::spawn(batcher(
            pool,
            rx,
            max_batch,
            config.concurrency.max(1),
            counters.clone(),
        ));
        Self { queue, counters }
    }

    pub(crate) fn stats(&self) -> IntakeStats {
        let c = &self.counters;
        IntakeStats {
            commits: c.commits.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            split_batches: c.split_batches.load(Ordering::Relaxed),
            slow_accepts: c.slow_accepts.load(Ordering::Relaxed),
            slow_commits: c.slow_commits.load(Ordering::Relaxed),
            slow_commit_deliveries: c.slow_commit_deliveries.load(Ordering::Relaxed),
            slowest_commit: Duration::from_micros(c.slowest_commit_us.load(Ordering::Relaxed)),
        }
    }

    /// Accepts one delivery; answers once its batch has committed (or failed).
    pub(crate) async fn accept(&self, delivery: Delivery) -> PortResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        let start = Instant::now();
        self.queue
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| PortError::unavailable("PostgreSQL inbox", "the intake has stopped"))?;
        let outcome = answer.await.map_err(|_| {
            PortError::unavailable("PostgreSQL inbox", "the intake stopped before answering")
        })?;
        if start.elapsed() >= SLOW {
            self.counters.slow_accepts.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

async fn batcher(
    pool: PgPool,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    concurrency: usize,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // Wait for a free slot first: deliveries arriving meanwhile gather into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let (pool, counters) = (pool.clone(), counters.clone());
        tokio::spawn(async move {
            commit(&pool, batch, &counters).await;
            drop(slot);
        });
    }
}

async fn commit(pool: &PgPool, batch: Vec<Pending>, counters: &Arc<Counters>) {
    let size = batch.len() as u64;
    counters.deliveries.fetch_add(size, Ordering::Relaxed);
    counters.largest_batch.fetch_max(size, Ordering::Relaxed);
    counters.commits.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    if batch.len() == 1 {
        for p in batch {
            let outcome = accept_one(pool, &p.delivery).await;
            counters.timed(start.elapsed(), size);
            let _ = p.reply.send(outcome);
        }
        return;
    }
    let deliveries: Vec<&Delivery> = batch.iter().map(|p| &p.delivery).collect();
    let outcomes = accept_many(pool, &deliveries).await;
    counters.timed(start.elapsed(), size);
    match outcomes {
        Ok(mut outcomes) => {
            for (i, p) in batch.into_iter().enumerate() {
                let outcome = outcomes[i].take().ok_or_else(|| {
                    PortError::backend("PostgreSQL inbox", "no outcome for a delivery of the batch")
                });
                let _ = p.reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::debug!(error = %ports::Chain(&e), size, "a batch of deliveries failed; accepting them one by one");
            counters.split_batches.fetch_add(1, Ordering::Relaxed);
            counters.commits.fetch_add(size, Ordering::Relaxed);
            for p in batch {
                let (pool, counters) = (pool.clone(), counters.clone());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let outcome = accept_one(&pool, &p.delivery).await;
                    counters.timed(start.elapsed(), 1);
                    let _ = p.reply.send(outcome);
                });
            }
        }
    }
}

/// One delivery, one transaction (migration 0002).
async fn accept_one<'c>(on: impl sqlx::PgExecutor<'c>, d: &Delivery) -> PortResult<Outcome> {
    let job = d.job.as_ref();
    sqlx::query_as(
        "SELECT outcome, job FROM accept_delivery($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&d.tenant)
    .bind(&d.key)
    .bind(d.retention_s)
    .bind(d.inbox)
    .bind(&d.source)
    .bind(d.received)
    .bind(&d.body)
    .bind(&d.quarantine)
    .bind(job.map(|j| j.id))
    .bind(job.map(|j| j.partition.as_str()))
    .bind(job.map(|j| j.entity.as_str()))
    .bind(job.map(|j| Json(&j.payload)))
    .bind(job.map(|j| j.max_attempts))
    .bind(job.map(|j| j.delay_s))
    .fetch_one(on)
    .await
    .map_err(db)
}

/// A batch in one transaction (migration 0003); the outcomes in the batch's order.
async fn accept_many<'c>(
    on: impl sqlx::PgExecutor<'c>,
    batch: &[&Delivery],
) -> PortResult<Vec<Option<Outcome>>> {
    let ds = || batch.iter().copied();
    let jobs = || ds().map(|d| d.job.as_ref());
    let rows: Vec<(i32, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT idx, outcome, job FROM accept_deliveries($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(ds().map(|d| d.tenant.as_str()).collect::<Vec<_>>())
    .bind(ds().map(|d| d.key.as_str()).collect::<Vec<_>>())
    .bind(ds().map(|d| d.retention_s).collect::<Vec<_>>())
    .bind(ds().map(|d| d.inbox).collect::<Vec<_>>())
    .bind(ds().map(|d| d.source.as_str()).collect::<Vec<_>>())
    .bind(ds().map(|d| d.received).collect::<Vec<_>>())
    .bind(ds().map(|d| d.body.as_slice()).collect::<Vec<_>>())
    .bind(ds().map(|d| d.quarantine.as_deref()).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| j.id)).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| j.partition.as_str())).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| j.entity.as_str())).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| Json(&j.payload))).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| j.max_attempts)).collect::<Vec<_>>())
    .bind(jobs().map(|j| j.map(|j| j.delay_s)).collect::<Vec<_>>())
    .fetch_all(on)
    .await
    .map_err(db)?;
    let mut outcomes: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
    for (idx, outcome, job) in rows {
        let slot = usize::try_from(idx)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| outcomes.get_mut(i))
            .ok_or_else(|| {
                PortError::backend(
                    "PostgreSQL inbox",
                    format!("outcome for unknown index {idx}"),
                )
            })?;
        *slot = Some((outcome, job));
    }
    Ok(outcomes)
}

/// Runs the intake's two statements once, in a transaction that is rolled back, so that a new
/// connection has prepared them and its backend has compiled and planned the functions before a
/// delivery waits on it (ADR 0021). Nothing it wrote stays. A failed call only leaves the
/// connection colder; the rollback's own failure is the error.
pub(crate) async fn warm_up(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let delivery = |n: u32| Delivery {
        tenant: "attio-sync-warm-up".into(),
        key: format!("warm-up-{n}"),
        retention_s: 0.0,
        inbox: Uuid::now_v7(),
        source: "attio".into(),
        received: OffsetDateTime::now_utc(),
        body: b"{}".to_vec(),
        quarantine: None,
        job: Some(JobArgs {
            id: Uuid::now_v7(),
            partition: "warm-up".into(),
            entity: format!("warm-up-{n}"),
            payload: JobPayload::from_value(&serde_json::Value::Null),
            max_attempts: 1,
            delay_s: 0.0,
        }),
    };
    let mut tx = conn.begin().await?;
    if let Err(e) = accept_one(&mut *tx, &delivery(1)).await {
        tracing::debug!(error = %ports::Chain(&e), "warming a connection: accept_delivery failed");
    } else if let Err(e) = accept_many(&mut *tx, &[&delivery(2), &delivery(3)]).await {
        tracing::debug!(error = %ports::Chain(&e), "warming a connection: accept_deliveries failed");
    }
    tx.rollback().await
}
