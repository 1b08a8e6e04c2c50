//! Deliberately broken adapters. Each breaks one rule; the test asserts that the conformance
//! check for that rule fails, so the suites are known to be able to fail.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_memory::{MemoryCache, MemoryIdempotencyStore, MemoryLinkStore, MemoryQueue};
use async_trait::async_trait;
use domain::cache::{CacheKey, CacheTag};
use domain::idempotency::IdempotencyKey;
use domain::ids::{JobId, ObjectSlug, RecordId, TenantId};
use domain::job::{DeadLetter, NewJob};
use domain::limits::{BudgetKey, Quota};
use domain::link::{IdentityLink, LinkLookup};
use ports::cache::Cache;
use ports::conformance;
use ports::error::{PortError, PortResult};
use ports::limiter::{RateDecision, RateLimiter};
use ports::queue::{
    DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, PartitionBacklog, QueueDepth,
    Reservation, ReserveFilter,
};
use ports::stores::{Claim, IdempotencyStore, LinkStore};

/// Runs a check and asserts that it fails (panics).
async fn must_fail<F: Future<Output = ()> + Send + 'static>(what: &str, check: F) {
    let result = tokio::spawn(check).await;
    match result {
        Err(e) if e.is_panic() => {}
        Err(e) => panic!("{what}: the check did not run: {e}"),
        Ok(()) => panic!("{what}: the conformance check passed a broken adapter"),
    }
}

/// Two independent queues behind one face, alternating each key's enqueues between them: per-key
/// ordering, coalescing and one-job-per-key-in-flight all break.
#[derive(Default)]
struct ShardedQueue {
    shards: [MemoryQueue; 2],
    turn: Mutex<HashMap<String, usize>>,
    owner: Mutex<HashMap<JobId, usize>>,
}

impl ShardedQueue {
    fn shard_of(&self, id: JobId) -> &MemoryQueue {
        let i = self.owner.lock().unwrap().get(&id).copied().unwrap_or(0);
        &self.shards[i]
    }
}

#[async_trait]
impl JobQueue for ShardedQueue {
    async fn enqueue(&self, job: NewJob) -> PortResult<EnqueueOutcome> {
        let i = {
            let mut turns = self.turn.lock().unwrap();
            let t = turns.entry(job.key.to_string()).or_default();
            *t = (*t + 1) % 2;
            *t
        };
        let out = self.shards[i].enqueue(job).await?;
        self.owner.lock().unwrap().insert(out.job_id(), i);
        Ok(out)
    }
    async fn reserve(
        &self,
        c: &str,
        lease: Duration,
        f: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        match self.shards[0].reserve(c, lease, f).await? {
            Some(r) => Ok(Some(r)),
            None => self.shards[1].reserve(c, lease, f).await,
        }
    }
    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        self.shard_of(r.job.id).ack(r).await
    }
    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        self.shard_of(r.job.id).extend(r, lease).await
    }
    async fn fail(&self, r: &Reservation, e: &str, after: Duration) -> PortResult<FailOutcome> {
        self.shard_of(r.job.id).fail(r, e, after).await
    }
    async fn dead_letter(&self, r: &Reservation, e: &str, n: bool) -> PortResult<()> {
        self.shard_of(r.job.id).dead_letter(r, e, n).await
    }
    async fn release(&self, r: &Reservation) -> PortResult<()> {
        self.shard_of(r.job.id).release(r).await
    }
    async fn depth(&self) -> PortResult<QueueDepth> {
        let (a, b) = (self.shards[0].depth().await?, self.shards[1].depth().await?);
        Ok(QueueDepth {
            ready: a.ready + b.ready,
            delayed: a.delayed + b.delayed,
            in_flight: a.in_flight + b.in_flight,
            dead: a.dead + b.dead,
        })
    }
    async fn backlog(&self, t: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        let mut all = self.shards[0].backlog(t).await?;
        all.extend(self.shards[1].backlog(t).await?);
        Ok(all)
    }
    async fn wait_for_work(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

#[async_trait]
impl DeadLetterQueue for ShardedQueue {
    async fn list_dead(&self, t: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        let mut all = self.shards[0].list_dead(t, limit).await?;
        all.extend(self.shards[1].list_dead(t, limit).await?);
        Ok(all)
    }
    async fn dead_letter_of(&self, t: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        self.shard_of(id).dead_letter_of(t, id).await
    }
    async fn replay(&self, t: &TenantId, id: JobId) -> PortResult<JobId> {
        self.shard_of(id).replay(t, id).await
    }
    async fn purge(&self, t: &TenantId, id: JobId) -> PortResult<()> {
        self.shard_of(id).purge(t, id).await
    }
}

/// Acks whatever it is given, even a reservation whose lease was taken over.
#[derive(Default)]
struct CarelessAckQueue(MemoryQueue);

#[async_trait]
impl JobQueue for CarelessAckQueue {
    async fn enqueue(&self, job: NewJob) -> PortResult<EnqueueOutcome> {
        self.0.enqueue(job).await
    }
    async fn reserve(
        &self,
        c: &str,
        lease: Duration,
        f: &ReserveFilter,
    ) -> PortResult<Option<Reservation>> {
        self.0.reserve(c, lease, f).await
    }
    async fn ack(&self, r: &Reservation) -> PortResult<()> {
        match self.0.ack(r).await {
            Err(PortError::LeaseLost(_)) => Ok(()),
            other => other,
        }
    }
    async fn extend(&self, r: &Reservation, lease: Duration) -> PortResult<()> {
        self.0.extend(r, lease).await
    }
    async fn fail(&self, r: &Reservation, e: &str, after: Duration) -> PortResult<FailOutcome> {
        self.0.fail(r, e, after).await
    }
    async fn dead_letter(&self, r: &Reservation, e: &str, n: bool) -> PortResult<()> {
        self.0.dead_letter(r, e, n).await
    }
    async fn release(&self, r: &Reservation) -> PortResult<()> {
        self.0.release(r).await
    }
    async fn depth(&self) -> PortResult<QueueDepth> {
        self.0.depth().await
    }
    async fn backlog(&self, t: &TenantId) -> PortResult<Vec<PartitionBacklog>> {
        self.0.backlog(t).await
    }
    async fn wait_for_work(&self, d: Duration) {
        self.0.wait_for_work(d).await
    }
}

#[async_trait]
impl DeadLetterQueue for CarelessAckQueue {
    async fn list_dead(&self, t: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>> {
        self.0.list_dead(t, limit).await
    }
    async fn dead_letter_of(&self, t: &TenantId, id: JobId) -> PortResult<DeadLetter> {
        self.0.dead_letter_of(t, id).await
    }
    async fn replay(&self, t: &TenantId, id: JobId) -> PortResult<JobId> {
        self.0.replay(t, id).await
    }
    async fn purge(&self, t: &TenantId, id: JobId) -> PortResult<()> {
        self.0.purge(t, id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_suite_catches_broken_ordering_and_coalescing() {
    must_fail(
        "ordering",
        conformance::queue::jobs_of_one_key_run_in_order(Arc::new(ShardedQueue::default())),
    )
    .await;
    must_fail(
        "coalescing",
        conformance::queue::pending_jobs_of_one_key_coalesce(Arc::new(ShardedQueue::default())),
    )
    .await;
    must_fail(
        "concurrency",
        conformance::queue::concurrent_consumers_process_everything_once_in_order(Arc::new(
            ShardedQueue::default(),
        )),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_suite_catches_a_wait_that_ignores_new_work() {
    // ShardedQueue's wait sleeps its whole budget (20 s in the check) whatever happens.
    must_fail(
        "wake-up",
        conformance::queue::an_enqueue_wakes_a_waiting_consumer(Arc::new(ShardedQueue::default())),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_suite_catches_acks_of_lost_leases() {
    must_fail(
        "stale ack",
        conformance::queue::expired_lease_is_handed_out_again(
            Arc::new(CarelessAckQueue::default()),
        ),
    )
    .await;
    must_fail(
        "double ack",
        conformance::queue::enqueue_reserve_ack(Arc::new(CarelessAckQueue::default())),
    )
    .await;
}

/// Ignores the tenant and never expires anything.
#[derive(Default)]
struct NaiveCache(Mutex<HashMap<String, Vec<u8>>>);

#[async_trait]
impl Cache for NaiveCache {
    async fn get(&self, key: &CacheKey) -> PortResult<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(key.name()).cloned())
    }
    async fn put(
        &self,
        key: &CacheKey,
        value: Vec<u8>,
        _ttl: Duration,
        _tags: &[CacheTag],
    ) -> PortResult<()> {
        self.0.lock().unwrap().insert(key.name().to_owned(), value);
        Ok(())
    }
    async fn delete(&self, key: &CacheKey) -> PortResult<()> {
        self.0.lock().unwrap().remove(key.name());
        Ok(())
    }
    async fn invalidate_tag(&self, _tag: &CacheTag) -> PortResult<u64> {
        Ok(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_suite_catches_leaks_between_tenants_and_stale_entries() {
    must_fail(
        "tenant isolation",
        conformance::cache::tenants_are_isolated(Arc::new(NaiveCache::default())),
    )
    .await;
    must_fail(
        "ttl",
        conformance::cache::entries_expire_after_their_ttl(Arc::new(NaiveCache::default())),
    )
    .await;
    must_fail(
        "tags",
        conformance::cache::tags_flush_exactly_their_keys(Arc::new(NaiveCache::default())),
    )
    .await;
    // The real adapter passes the same checks (so the failures above are the breakage's).
    conformance::cache::tenants_are_isolated(Arc::new(MemoryCache::default())).await;
}

/// Check-then-set with a gap: concurrent claims can both win.
#[derive(Default)]
struct RacyIdempotency {
    seen: Mutex<std::collections::HashSet<(TenantId, IdempotencyKey)>>,
}

#[async_trait]
impl IdempotencyStore for RacyIdempotency {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        _retention: Duration,
    ) -> PortResult<Claim> {
        let k = (tenant.clone(), key.clone());
        let known = self.seen.lock().unwrap().contains(&k);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if known {
            return Ok(Claim::Duplicate);
        }
        self.seen.lock().unwrap().insert(k);
        Ok(Claim::New)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_suite_catches_racy_claims() {
    must_fail(
        "race",
        conformance::idempotency::concurrent_claims_have_one_winner(Arc::new(
            RacyIdempotency::default(),
        )),
    )
    .await;
    conformance::idempotency::concurrent_claims_have_one_winner(Arc::new(
        MemoryIdempotencyStore::default(),
    ))
    .await;
}

/// Overwrites whatever is stored, ignoring the version the caller read.
#[derive(Default)]
struct LastWriteWinsLinks(MemoryLinkStore);

#[async_trait]
impl LinkStore for LastWriteWinsLinks {
    async fn find(&self, t: &TenantId, l: &LinkLookup) -> PortResult<Option<IdentityLink>> {
        self.0.find(t, l).await
    }
    async fn links_of(
        &self,
        t: &TenantId,
        o: &ObjectSlug,
        r: RecordId,
    ) -> PortResult<Vec<IdentityLink>> {
        self.0.links_of(t, o, r).await
    }
    async fn save(&self, link: &IdentityLink) -> PortResult<IdentityLink> {
        let lookup = LinkLookup::Attio {
            object: link.object.clone(),
            record: link.attio_record,
            system: link.system.clone(),
        };
        let current = self
            .0
            .find(&link.tenant, &lookup)
            .await?
            .map(|l| l.version)
            .unwrap_or(0);
        self.0
            .save(&IdentityLink {
                version: current,
                ..link.clone()
            })
            .await
    }
    async fn repoint(
        &self,
        t: &TenantId,
        o: &ObjectSlug,
        from: RecordId,
        to: RecordId,
    ) -> PortResult<u64> {
        self.0.repoint(t, o, from, to).await
    }
    async fn delete(&self, t: &TenantId, l: &LinkLookup) -> PortResult<()> {
        self.0.delete(t, l).await
    }
    async fn count(&self, t: &TenantId) -> PortResult<u64> {
        self.0.count(t).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_suite_catches_lost_updates() {
    must_fail(
        "versions",
        conformance::links::stale_versions_are_stale_and_duplicates_conflict(Arc::new(
            LastWriteWinsLinks::default(),
        )),
    )
    .await;
}

/// Never limits.
struct Unlimited;

#[async_trait]
impl RateLimiter for Unlimited {
    async fn try_acquire(&self, _k: &BudgetKey, _q: Quota, _cost: u32) -> PortResult<RateDecision> {
        Ok(RateDecision::Allowed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_suite_catches_a_limiter_that_never_limits() {
    must_fail(
        "burst",
        conformance::limiter::bursts_up_to_the_limit_then_waits(Arc::new(Unlimited)),
    )
    .await;
    must_fail(
        "shared budget",
        conformance::limiter::concurrent_callers_share_one_budget(Arc::new(Unlimited)),
    )
    .await;
}

/// An inbox whose purge forgets nothing, or every delivery whatever its age.
struct PurgeBroken {
    inner: adapter_memory::MemoryInbox,
    everything: bool,
}

#[async_trait]
impl ports::stores::Inbox for PurgeBroken {
    async fn accept(
        &self,
        d: &ports::stores::InboundDelivery,
        job: Option<NewJob>,
        retention: Duration,
    ) -> PortResult<ports::stores::Accepted> {
        self.inner.accept(d, job, retention).await
    }
    async fn get(
        &self,
        t: &TenantId,
        id: domain::ids::InboxId,
    ) -> PortResult<ports::stores::StoredDelivery> {
        self.inner.get(t, id).await
    }
    async fn quarantined(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> PortResult<Vec<ports::stores::StoredDelivery>> {
        self.inner.quarantined(t, limit).await
    }
    async fn purge(&self, before: time::OffsetDateTime, limit: usize) -> PortResult<u64> {
        if self.everything {
            let later = time::OffsetDateTime::now_utc() + time::Duration::days(1);
            self.inner.purge(later.max(before), limit).await
        } else {
            Ok(0)
        }
    }
}

#[tokio::test]
async fn inbox_suite_catches_a_purge_that_forgets_too_little_or_too_much() {
    for everything in [false, true] {
        let queue = MemoryQueue::default();
        let inbox = PurgeBroken {
            inner: adapter_memory::MemoryInbox::new(
                queue.clone(),
                MemoryIdempotencyStore::default(),
            ),
            everything,
        };
        must_fail(
            if everything {
                "a purge of young deliveries"
            } else {
                "a purge that forgets nothing"
            },
            conformance::inbox::purge_forgets_deliveries_past_their_retention((
                Arc::new(inbox),
                Arc::new(queue),
            )),
        )
        .await;
    }
}
