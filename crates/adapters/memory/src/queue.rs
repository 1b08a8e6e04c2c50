use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::ids::{JobId, TenantId};
use domain::job::{DeadLetter, Job, JobKey, NewJob};
use ports::clock::Clock;
use ports::error::{PortError, PortResult};
use ports::queue::{
    DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, LeaseToken, PartitionBacklog,
    QueueDepth, Reservation, ReserveFilter,
};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{SystemClock, lock};

#[derive(Debug, Clone)]
enum State {
    /// Waiting. `fresh` jobs were never delivered and may absorb new payloads of their key.
    Pending {
        not_before: OffsetDateTime,
        fresh: bool,
    },
    InFlight {
        lease: LeaseToken,
        expires_at: OffsetDateTime,
    },
}

#[derive(Debug)]
struct Entry {
    job: Job,
    seq: u64,
    state: State,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<JobId, Entry>,
    /// Per key, its jobs in enqueue order; the head gates the key.
    keys: HashMap<JobKey, Vec<JobId>>,
    dead: BTreeMap<(TenantId, JobId), (u64, DeadLetter)>,
    next_seq: u64,
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Turns expired leases back into pending jobs.
    fn expire(&mut self, now: OffsetDateTime) {
        for e in self.jobs.values_mut() {
            if let State::InFlight { expires_at, .. } = e.state
                && expires_at <= now
            {
                e.state = State::Pending {
                    not_before: now,
                    fresh: false,
                };
            }
        }
    }

    fn push(&mut self, job: Job, not_before: OffsetDateTime, fresh: bool) {
        let seq = self.seq();
        self.keys.entry(job.key.clone()).or_default().push(job.id);
        self.jobs.insert(
            job.id,
            Entry {
                job,
                seq,
                state: State::Pending { not_before, fresh },
            },
        );
    }

    fn remove(&mut self, id: JobId) -> Option<Entry> {
        let e = self.jobs.remove(&id)?;
        if let Some(ids) = self.keys.get_mut(&e.job.key) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.keys.remove(&e.job.key);
            }
        }
        Some(e)
    }

    /// The entry a reservation refers to, if its lease is still the current one.
    fn held(&mut self, r: &Reservation) -> PortResult<&mut Entry> {
        match self.jobs.get_mut(&r.job.id) {
            Some(e) if matches!(e.state, State::InFlight { lease, .. } if lease == r.lease) => {
                Ok(e)
            }
            _ => Err(PortError::LeaseLost(r.job.id)),
        }
    }

    fn bury(&mut self, id: JobId, error: &str, needs_reconciliation: bool, now: OffsetDateTime) {
        if let Some(mut e) = self.remove(id) {
            e.job.last_error = Some(error.to_owned());
            let seq = self.seq();
            let letter = DeadLetter {
                job: e.job,
                error: error.to_owned(),
                failed_at: now,
                needs_reconciliation,
            };
            self.dead
                .insert((letter.job.key.tenant.clone(), id), (seq, letter));
        }
    }
}

/// The queue in memory: the embedded mode's queue and the services' test queue.
#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue").finish_non_exhaustive()
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryQueue {
    /// Wakes every waiting consumer, and leaves a permit for one between an empty `reserve` and
    /// its wait, which would otherwise sleep through the new job.
    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::default(),
            notify: Arc::new(Notify::new()),
            clock,
        }
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, new: NewJob) -> PortResult<EnqueueOutcome> {
        let now = self.clock.now();
        let payload = new
            .payload
            .to_value()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        let outcome = {
            let mut inner = lock(&self.inner);
            let fresh = inner.keys.get(&new.key).and_then(|ids| {
                ids.iter().rev().copied().find(|id| {
                    matches!(
                        inner.jobs.get(id),
                        Some(Entry {
                            state: State::Pending { fresh: true, .. },
                            ..
                        })
                    )
                })
            });
            match fresh.and_then(|id| inner.jobs.get_mut(&id)) {
                Some(e) => {
                    e.job.payloads.push(payload);
                    EnqueueOutcome::Coalesced(e.job.id)
                }
                None => {
                    let job = Job {
                        id: JobId::from_uuid(Uuid::new_v4()),
                        key: new.key,
                        payloads: vec![payload],
                        attempts: 0,
                        max_attempts: new.max_attempts.max(1),
                        enqueued_at: now,
                        last_error: None,
                    };
                    let id = job.id;
                    inner.push(job, now + new.delay, true);
                    EnqueueOutcome::Enqueued(id)
                }
            }
        };
        self.wake();
        Ok(outcome)
    }

    async fn reserve(
        &self,
        _consumer: &str,
        lease: Duration,
        filter: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        inner.expire(now);
        let next = inner
            .keys
            .values()
            .filter_map(|ids| ids.first())
            .filter_map(|id| inner.jobs.get(id))
            .filter(|e| matches!(e.state, State::Pending { not_before, .. } if not_before <= now))
            .filter(|e| filter.matches(&e.job))
            .min_by_key(|e| e.seq)
            .map(|e| e.job.id);
        let Some(id) = next else { return Ok(None) };
        let Some(e) = inner.jobs.get_mut(&id) else {
            return Ok(None);
        };
        let token = LeaseToken(Uuid::new_v4());
        let expires_at = now + lease;
        e.job.attempts += 1;
        e.state = State::InFlight {
            lease: token,
            expires_at,
        };
        Ok(Some(Reservation {
            job: e.job.clone(),
            lease: token,
            lease_expires_at: expires_at,
        }))
    }

    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        inner.held(r)?;
        inner.remove(r.job.id);
        drop(inner);
        self.wake();
        Ok(())
    }

    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let e = inner.held(r)?;
        e.state = State::InFlight {
            lease: r.lease,
            expires_at: now + lease,
        };
        Ok(())
    }

    async fn fail(
        &self,
        r: &Reservation,
        error: &str,
        retry_after: Duration,
    ) -> PortResult<FailOutcome> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let last = {
            let e = inner.held(r)?;
            e.job.last_error = Some(error.to_owned());
            e.job.is_last_attempt()
        };
        let outcome = if last {
            inner.bury(r.job.id, error, false, now);
            FailOutcome::DeadLettered
        } else {
            let at = now + retry_after;
            inner.held(r)?.state = State::Pending {
                not_before: at,
                fresh: false,
            };
            FailOutcome::Retrying { at }
        };
        drop(inner);
        self.wake();
        Ok(outcome)
    }

    async fn dead_letter(
        &self,
        r: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        inner.held(r)?;
        inner.bury(r.job.id, error, needs_reconciliation, now);
        drop(inner);
        self.wake();
        Ok(())
    }

    async fn release(&self, r: &Reservation) -> PortResult<()> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let e = inner.held(r)?;
        e.job.attempts = e.job.attempts.saturating_sub(1);
        e.state = State::Pending {
            not_before: now,
            fresh: false,
        };
        drop(inner);
        self.wake();
        Ok(())
    }

    async fn depth(&self) -> PortResult<QueueDepth> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        inner.expire(now);
        let mut d = QueueDepth {
            dead: inner.dead.len() as u64,
            ..QueueDepth::default()
        };
        for e in inner.jobs.values() {
            match e.state {
                State::Pending { not_before, .. } if not_before <= now => d.ready += 1,
                State::Pending { .. } => d.delayed += 1,
                State::InFlight { .. } => d.in_flight += 1,
            }
        }
        Ok(d)
    }

    async fn backlog(&self, tenant: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        let inner = lock(&self.inner);
        let mut by: BTreeMap<&str, PartitionBacklog> = BTreeMap::new();
        for e in inner.jobs.values().filter(|e| &e.job.key.tenant == tenant) {
            let p = by
                .entry(e.job.key.partition.as_str())
                .or_insert_with(|| PartitionBacklog {
                    partition: e.job.key.partition.clone(),
                    jobs: 0,
                    oldest_enqueued_at: None,
                });
            p.jobs += 1;
            p.oldest_enqueued_at = Some(
                p.oldest_enqueued_at
                    .map_or(e.job.enqueued_at, |o| o.min(e.job.enqueued_at)),
            );
        }
        Ok(by.into_values().collect())
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.notify.notified()).await;
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryQueue {
    async fn list_dead(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let inner = lock(&self.inner);
        let mut letters: Vec<&(u64, DeadLetter)> = inner
            .dead
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, v)| v)
            .collect();
        letters.sort_by_key(|l| std::cmp::Reverse(l.0));
        Ok(letters
            .into_iter()
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect())
    }

    async fn dead_letter_of(&self, tenant: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        lock(&self.inner)
            .dead
            .get(&(tenant.clone(), id))
            .map(|(_, l)| l.clone())
            .ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))
    }

    async fn replay(&self, tenant: &TenantId, id: JobId) -> PortResult<JobId> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let (_, letter) = inner
            .dead
            .remove(&(tenant.clone(), id))
            .ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))?;
        let job = Job {
            id: JobId::from_uuid(Uuid::new_v4()),
            attempts: 0,
            enqueued_at: now,
            last_error: None,
            ..letter.job
        };
        let new_id = job.id;
        inner.push(job, now, false);
        drop(inner);
        self.wake();
        Ok(new_id)
    }

    async fn purge(&self, tenant: &TenantId, id: JobId) -> PortResult<()> {
        lock(&self.inner)
            .dead
            .remove(&(tenant.clone(), id))
            .map(|_| ())
            .ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))
    }
}

#[async_trait]
impl ports::stores::TenantEraser for MemoryQueue {
    async fn erase_tenant(&self, tenant: &TenantId) -> PortResult<ports::stores::Erased> {
        let mut inner = lock(&self.inner);
        let before = inner.jobs.len();
        inner.jobs.retain(|_, e| &e.job.key.tenant != tenant);
        let jobs = (before - inner.jobs.len()) as u64;
        inner.keys.retain(|k, _| &k.tenant != tenant);
        let before = inner.dead.len();
        inner.dead.retain(|(t, _), _| t != tenant);
        let dead = (before - inner.dead.len()) as u64;
        Ok(ports::stores::Erased::from([
            ("jobs", jobs),
            ("dead_letters", dead),
        ]))
    }
}
