//! The durable job queue: at-least-once delivery with leases, retries with backoff,
//! dead-lettering and replay, per-key ordering and coalescing.
//!
//! Contract (checked by [`crate::conformance::queue`]):
//! - `enqueue` folds a job into a pending (not yet delivered, not retrying) job of the same key;
//!   otherwise it adds a new job.
//! - `reserve` hands out the oldest ready job whose key has no job in flight and no older job
//!   waiting; the job is invisible to others until the lease expires or is settled.
//! - A job whose lease expired is handed out again; the old holder's `ack` fails with `LeaseLost`.
//! - `fail` reschedules with the given delay, or dead-letters once `max_attempts` deliveries
//!   have failed. Replaying a dead letter enqueues it again with a fresh attempt count.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use domain::ids::{JobId, TenantId};
use domain::job::{DeadLetter, Job, NewJob};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::PortResult;

/// Identifies one delivery of a job (a new token for every reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub Uuid);

/// A job handed to a consumer, with the lease that lets it settle the job.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub job: Job,
    pub lease: LeaseToken,
    pub lease_expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new job.
    Enqueued(JobId),
    /// Folded into this pending job of the same key.
    Coalesced(JobId),
}

impl EnqueueOutcome {
    pub fn job_id(self) -> JobId {
        match self {
            Self::Enqueued(id) | Self::Coalesced(id) => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Will be delivered again at (or after) this time.
    Retrying { at: OffsetDateTime },
    /// Attempts exhausted: moved to the dead-letter queue.
    DeadLettered,
}

/// Which jobs a consumer takes. Empty sets mean "all".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReserveFilter {
    pub tenants: BTreeSet<TenantId>,
    pub partitions: BTreeSet<String>,
}

impl ReserveFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn matches(&self, job: &Job) -> bool {
        (self.tenants.is_empty() || self.tenants.contains(&job.key.tenant))
            && (self.partitions.is_empty() || self.partitions.contains(&job.key.partition))
    }
}

/// Counts for dashboards and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for a debounce or retry delay.
    pub delayed: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// One partition's unfinished jobs for a tenant ([`JobQueue::backlog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBacklog {
    pub partition: String,
    pub jobs: u64,
    /// When the oldest of them was enqueued (a replayed job counts from its replay).
    pub oldest_enqueued_at: Option<OffsetDateTime>,
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds or folds a job. `Unavailable` when the backend cannot be reached; then nothing was
    /// stored.
    async fn enqueue(&self, job: NewJob) -> PortResult<EnqueueOutcome>;
    /// Takes the next deliverable job matching `filter` for `lease`, counting a delivery attempt.
    /// `Ok(None)` when there is none. `Unavailable` as above.
    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        filter: &ReserveFilter,
    ) -> PortResult<Option<Reservation>>;
    /// Settles a job as done. `LeaseLost` when the lease expired and the job was handed out again
    /// (or already settled).
    async fn ack(&self, reservation: &Reservation) -> PortResult<()>;
    /// Extends a lease from now. `LeaseLost` as for `ack`.
    async fn extend(&self, reservation: &Reservation, lease: Duration) -> PortResult<()>;
    /// Records a failed attempt: retry after `retry_after`, or dead-letter when this was the last
    /// attempt. `LeaseLost` as for `ack`.
    async fn fail(
        &self,
        reservation: &Reservation,
        error: &str,
        retry_after: Duration,
    ) -> PortResult<FailOutcome>;
    /// Dead-letters at once (a permanent error). `LeaseLost` as for `ack`.
    async fn dead_letter(
        &self,
        reservation: &Reservation,
        error: &str,
        needs_reconciliation: bool,
    ) -> PortResult<()>;
    /// Gives a job back undone (shutdown), without counting the attempt. `LeaseLost` as for `ack`.
    async fn release(&self, reservation: &Reservation) -> PortResult<()>;
    /// Current counts. `Unavailable` as above.
    async fn depth(&self) -> PortResult<QueueDepth>;
    /// One tenant's unfinished jobs (ready, delayed or in flight; not dead) per partition, with
    /// the oldest one's enqueue time, partitions in name order. A backend that cannot count the
    /// jobs waiting behind another job of their key says so in its docs. `Unavailable` as above.
    async fn backlog(&self, tenant: &TenantId) -> PortResult<Vec<PartitionBacklog>>;
    /// Returns when a job may have become deliverable, or after `max_wait`. Never fails; an
    /// adapter without notifications simply sleeps.
    async fn wait_for_work(&self, max_wait: Duration);
}

/// The dead-letter side of the queue, per tenant.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// The tenant's dead letters, newest first, at most `limit`.
    async fn list_dead(&self, tenant: &TenantId, limit: usize) -> PortResult<Vec<DeadLetter>>;
    /// One dead letter. `NotFound` when the tenant has no such dead letter.
    async fn dead_letter_of(&self, tenant: &TenantId, id: JobId) -> PortResult<DeadLetter>;
    /// Enqueues a dead letter again with a fresh attempt count and removes it from the dead
    /// letters. `NotFound` when the tenant has no such dead letter.
    async fn replay(&self, tenant: &TenantId, id: JobId) -> PortResult<JobId>;
    /// Drops a dead letter. `NotFound` when the tenant has no such dead letter.
    async fn purge(&self, tenant: &TenantId, id: JobId) -> PortResult<()>;
}
