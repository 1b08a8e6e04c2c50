//! The job loop: reserve with a lease, handle, then ack; retry with exponential backoff and full
//! jitter; dead-letter when attempts run out or the error is permanent; keep the lease alive while
//! a job runs; on shutdown stop reserving, let the jobs in hand finish within a grace period and
//! give back (release) any still running, uncounted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use domain::ids::JobId;
use domain::job::{Job, RetryPolicy};
use domain::trace::TraceParent;
use domain::webhook::WebhookDelivery;
use ports::error::PortError;
use ports::queue::{FailOutcome, JobQueue, Reservation, ReserveFilter};
use tokio::sync::watch;
use tracing::Instrument;

use crate::error::{ServiceError, ServiceResult};
use crate::pipeline::{EventPipeline, Handled};

/// Runs one job's payloads.
/// The trace of the job's first payload that carries one (`"trace": "<traceparent>"`).
pub fn trace_of(job: &Job) -> Option<TraceParent> {
    job.payloads.iter().find_map(|p| {
        p.get("trace")
            .and_then(|t| t.as_str())
            .and_then(|t| TraceParent::parse(t).ok())
    })
}

/// Why a job's provider calls are made, for `provider_requests_total{cause}`: its payload's
/// source (`attio`, `crm`, `backfill`), `other` when it names none this version knows.
pub fn cause_of(job: &Job) -> &'static str {
    match job
        .payloads
        .first()
        .and_then(|p| p.get("source"))
        .and_then(|s| s.as_str())
    {
        Some("attio") => "attio",
        Some("crm") => "crm",
        Some("backfill") => "backfill",
        Some("resolution") => "resolution",
        Some("delete") => "delete",
        Some("reconcile") => "reconcile",
        _ => "other",
    }
}

/// How the audit trail names a job's cause (`attio delivery`, `<system> change`, ...).
fn origin_of(job: &Job, cause: &str) -> String {
    match cause {
        "attio" => "attio delivery".to_owned(),
        "crm" => {
            let system = job.payloads.first().and_then(|p| p["system"].as_str());
            format!("{} change", system.unwrap_or("crm"))
        }
        "resolution" => "conflict resolution".to_owned(),
        "delete" => "delete decision".to_owned(),
        "reconcile" => "reconciliation".to_owned(),
        other => other.to_owned(),
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync {
    /// `Err` with a retryable error to try again later, a permanent one to dead-letter.
    async fn handle(&self, job: &Job) -> ServiceResult<()>;
}

/// Why a payload cannot be processed at all (it will not get better by retrying).
#[derive(Debug, thiserror::Error)]
#[error("unreadable job payload: {0}")]
pub struct BadPayload(pub String);

/// The handler for webhook jobs: Attio deliveries go through the event pipeline, event by event;
/// CRM changes (`{"source": "crm", "system", "changes": [{object, id, deleted}]}`) sync their
/// linked records;
/// backfill jobs (`{"source": "backfill", "object", "system"}`) run the backfill to its end,
/// resuming from its checkpoint when retried; resolution jobs (`{"source": "resolution",
/// "conflict"}`) write a resolved conflict's chosen value.
pub struct PipelineHandler {
    pub pipeline: Arc<EventPipeline>,
    pub backfill: Option<Arc<crate::backfill::Backfill>>,
    pub reconciler: Option<Arc<crate::reconcile::Reconciler>>,
}

impl std::fmt::Debug for PipelineHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandler").finish_non_exhaustive()
    }
}

impl PipelineHandler {
    /// A reconciliation or dry-run job: `{"source": "reconcile", "object", "system",
    /// "dry_run"?, "mappings"?}` (candidate mappings for a dry run).
    async fn reconcile(
        &self,
        tenant: &domain::ids::TenantId,
        payload: &serde_json::Value,
    ) -> ServiceResult<()> {
        let Some(reconciler) = &self.reconciler else {
            return Err(PortError::Invalid(
                BadPayload("reconciliation is not configured".into()).to_string(),
            )
            .into());
        };
        let object =
            domain::ids::ObjectSlug::parse(payload["object"].as_str().unwrap_or_default())?;
        let system = domain::ids::SystemId::parse(payload["system"].as_str().unwrap_or_default())?;
        let pass = if payload["dry_run"].as_bool().unwrap_or(false) {
            let candidate = match payload.get("mappings").filter(|m| !m.is_null()) {
                None => None,
                Some(m) => {
                    let doc: domain::mapping_doc::MappingDocument =
                        serde_json::from_value(m.clone()).map_err(|e| {
                            PortError::Invalid(BadPayload(e.to_string()).to_string())
                        })?;
                    let targets =
                        self.pipeline
                            .outbound()
                            .catalog()
                            .candidate(&doc)
                            .map_err(|p| {
                                PortError::Invalid(format!(
                                    "the candidate mappings have {} problem(s): {}",
                                    p.len(),
                                    p.first().map(ToString::to_string).unwrap_or_default()
                                ))
                            })?;
                    Some(targets)
                }
            };
            crate::reconcile::Pass::DryRun(candidate)
        } else {
            crate::reconcile::Pass::Repair
        };
        reconciler.run(tenant, &object, &system, pass).await?;
        Ok(())
    }
}

#[async_trait]
impl JobHandler for PipelineHandler {
    async fn handle(&self, job: &Job) -> ServiceResult<()> {
        let tenant = &job.key.tenant;
        for payload in &job.payloads {
            match payload["source"].as_str() {
                Some("attio") => {
                    let delivery: WebhookDelivery =
                        serde_json::from_value(payload["delivery"].clone()).map_err(|e| {
                            PortError::Invalid(BadPayload(e.to_string()).to_string())
                        })?;
                    for event in &delivery.events {
                        let outcome = self.pipeline.handle(tenant, event).await?;
                        if let Handled::Ignored { reason } = &outcome {
                            tracing::info!(tenant = %tenant, job = %job.id, reason = %reason, "event acknowledged without effect");
                        }
                    }
                }
                Some("backfill") => {
                    let Some(backfill) = &self.backfill else {
                        return Err(PortError::Invalid(
                            BadPayload("backfills are not configured".into()).to_string(),
                        )
                        .into());
                    };
                    let object = domain::ids::ObjectSlug::parse(
                        payload["object"].as_str().unwrap_or_default(),
                    )?;
                    let system = domain::ids::SystemId::parse(
                        payload["system"].as_str().unwrap_or_default(),
                    )?;
                    let done = backfill.run(tenant, &object, &system, None).await?;
                    tracing::info!(tenant = %tenant, object = %object, system = %system, seen = done.records_seen, written = done.records_written, "backfill finished");
                }
                Some("reconcile") => {
                    self.reconcile(tenant, payload).await?;
                }
                Some("crm") => {
                    // Changes a CRM reported, already in provider-neutral form.
                    let system = domain::ids::SystemId::parse(
                        payload["system"].as_str().unwrap_or_default(),
                    )?;
                    let changes: Vec<ports::provider::CrmChange> =
                        serde_json::from_value(payload["changes"].clone()).map_err(|e| {
                            PortError::Invalid(BadPayload(e.to_string()).to_string())
                        })?;
                    for c in changes {
                        let id = domain::ids::ExternalId::parse(&c.id)?;
                        if !c.merged_from.is_empty() {
                            let merged = c
                                .merged_from
                                .iter()
                                .map(|m| domain::ids::ExternalId::parse(m))
                                .collect::<Result<Vec<_>, _>>()?;
                            for done in self
                                .pipeline
                                .outbound()
                                .follow_merge(tenant, &system, &c.object, &id, &merged)
                                .await?
                            {
                                tracing::info!(tenant = %tenant, job = %job.id, merge = %done, "a CRM merge was followed");
                            }
                        }
                        let outcome = self
                            .pipeline
                            .handle_external(tenant, &system, &c.object, &id, c.deleted)
                            .await?;
                        if let Handled::Ignored { reason } = &outcome {
                            tracing::info!(tenant = %tenant, job = %job.id, reason = %reason, "CRM change acknowledged without effect");
                        }
                    }
                }
                Some("delete") => {
                    // A person's decision on a held delete.
                    let id = domain::ids::DeleteId::parse(
                        payload["delete"].as_str().unwrap_or_default(),
                    )?;
                    self.pipeline.carry_out_delete(tenant, id).await?;
                }
                Some("resolution") => {
                    // A conflict a person resolved: its chosen value written where it differs.
                    let id = domain::ids::ConflictId::parse(
                        payload["conflict"].as_str().unwrap_or_default(),
                    )?;
                    self.pipeline.outbound().settle_stored(tenant, id).await?;
                }
                other => {
                    return Err(PortError::Invalid(
                        BadPayload(format!("unknown source {other:?}")).to_string(),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Names this worker in leases and logs.
    pub consumer: String,
    /// Jobs handled at once.
    pub concurrency: usize,
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// Only these tenants and partitions (empty: all).
    pub filter: ReserveFilter,
    /// How long jobs in hand may run after shutdown is asked for.
    pub grace: Duration,
    /// The longest wait for work before polling again.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            consumer: "sync-worker".into(),
            concurrency: 4,
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            filter: ReserveFilter::all(),
            grace: Duration::from_secs(20),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// What a worker did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub released: u64,
}

/// The job loop over a queue and a handler.
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    handler: Arc<dyn JobHandler>,
    settings: WorkerSettings,
    stats: Arc<Mutex<WorkerStats>>,
    usage: Option<Arc<dyn ports::stores::UsageLog>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn bump(stats: &Mutex<WorkerStats>, f: impl FnOnce(&mut WorkerStats)) {
    f(&mut stats.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Adds a job's provider requests to its tenant's usage of the day; a store that fails is
/// logged (the count is lost, the sync is not).
pub(crate) async fn record_usage(
    usage: &dyn ports::stores::UsageLog,
    tenant: &domain::ids::TenantId,
    tally: ports::trace::RequestTally,
) {
    let counts = tally.take();
    if counts.is_empty() {
        return;
    }
    let day = time::OffsetDateTime::now_utc().date();
    if let Err(e) = usage.add(tenant, day, &counts).await {
        tracing::warn!(tenant = %tenant, error = %ports::Chain(&e), "provider requests could not be added to the tenant's usage");
    }
}

/// The worker's metrics (recorded through the `metrics` facade; the binary installs the
/// Prometheus recorder):
/// - `worker_jobs_total{outcome}`: `acked`, `retried`, `dead_lettered`, `released`;
/// - `worker_job_seconds`: how long handling a job took (histogram summary);
/// - `worker_job_wait_seconds`: how long a job waited from its enqueue (retries included) to this
///   delivery: the sync's lag (histogram summary).
///
/// Describes them and sets the counters to zero, so a scrape shows them before the first job.
pub fn describe_metrics() {
    metrics::describe_counter!("worker_jobs_total", "Jobs settled, by outcome");
    metrics::describe_histogram!(
        "worker_job_seconds",
        metrics::Unit::Seconds,
        "Time spent handling a job"
    );
    metrics::describe_histogram!(
        "worker_job_wait_seconds",
        metrics::Unit::Seconds,
        "Time from a job's enqueue (its debounce and retries included) to its delivery: the sync's lag"
    );
    metrics::describe_counter!(
        "conflicts_recorded_total",
        "Fields queued for a person: changed on both sides under a manual rule or without change times"
    );
    metrics::describe_gauge!(
        "conflicts_open",
        "Conflicts waiting for a person, per tenant (as of the last one queued, closed or settled)"
    );
    metrics::describe_counter!(
        "mapping_problems_found_total",
        "Problems found re-checking the tenants' mappings against the live schemas"
    );
    metrics::describe_counter!(
        "echoes_suppressed_total",
        "CRM notifications that carried nothing the last sync had not seen (the echo of the service's own write, or an unmapped change)"
    );
    for outcome in ["acked", "retried", "dead_lettered", "released"] {
        metrics::counter!("worker_jobs_total", "outcome" => outcome).absolute(0);
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("worker_jobs_total", "outcome" => outcome).increment(1);
}

/// Settles one job after its handler ran.
async fn settle(
    queue: &dyn JobQueue,
    r: &Reservation,
    result: ServiceResult<()>,
    retry: &RetryPolicy,
    stats: &Mutex<WorkerStats>,
) {
    let job = &r.job;
    let settled = match result {
        Ok(()) => queue.ack(r).await.map(|()| {
            count("acked");
            bump(stats, |s| s.acked += 1)
        }),
        Err(e) if e.is_retryable() => {
            let wait = retry.delay(job.attempts, fastrand::f64());
            match queue.fail(r, &e.to_string(), wait).await {
                Ok(FailOutcome::Retrying { at }) => {
                    tracing::warn!(job = %job.id, key = %job.key, attempt = job.attempts, error = %ports::Chain(&e), retry_at = %at, "job failed; will retry");
                    count("retried");
                    bump(stats, |s| s.retried += 1);
                    Ok(())
                }
                Ok(FailOutcome::DeadLettered) => {
                    tracing::error!(job = %job.id, key = %job.key, attempt = job.attempts, error = %ports::Chain(&e), "job failed its last attempt; dead-lettered");
                    count("dead_lettered");
                    bump(stats, |s| s.dead_lettered += 1);
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        Err(e) => {
            // A permanent failure may have left part of the effect applied (one CRM written,
            // another refused): a person should reconcile before replaying.
            let partial = matches!(e, ServiceError::RecordRejected { .. });
            tracing::error!(job = %job.id, key = %job.key, error = %ports::Chain(&e), "job failed permanently; dead-lettered");
            queue
                .dead_letter(r, &e.to_string(), partial)
                .await
                .map(|()| {
                    count("dead_lettered");
                    bump(stats, |s| s.dead_lettered += 1)
                })
        }
    };
    match settled {
        Ok(()) => {}
        Err(PortError::LeaseLost(id)) => {
            tracing::warn!(job = %id, "the lease was lost before settling; another worker has the job")
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %ports::Chain(&e), "cannot settle the job; its lease will expire and it will run again")
        }
    }
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        handler: Arc<dyn JobHandler>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            queue,
            handler,
            settings,
            stats: Arc::default(),
            usage: None,
        }
    }

    /// Adds each job's provider requests to its tenant's usage of the day (the status's budget
    /// used today).
    pub fn with_usage(mut self, usage: Arc<dyn ports::stores::UsageLog>) -> Self {
        self.usage = Some(usage);
        self
    }

    pub fn stats(&self) -> WorkerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs until `shutdown` turns true, then finishes or releases the jobs in hand.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> WorkerStats {
        let s = &self.settings;
        let gate = Arc::new(tokio::sync::Semaphore::new(s.concurrency.max(1)));
        let in_hand: Arc<Mutex<HashMap<JobId, Reservation>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = gate.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => continue,
            };
            while tasks.try_join_next().is_some() {}
            match self.queue.reserve(&s.consumer, s.lease, &s.filter).await {
                Ok(Some(r)) => {
                    let waited = time::OffsetDateTime::now_utc() - r.job.enqueued_at;
                    metrics::histogram!("worker_job_wait_seconds")
                        .record(waited.as_seconds_f64().max(0.0));
                    in_hand
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(r.job.id, r.clone());
                    let (queue, handler, stats, in_hand, usage) = (
                        self.queue.clone(),
                        self.handler.clone(),
                        self.stats.clone(),
                        in_hand.clone(),
                        self.usage.clone(),
                    );
                    let (lease, retry) = (s.lease, s.retry);
                    tasks.spawn(async move {
                        let _permit = permit;
                        // Keep the lease alive while the handler runs. The heartbeat lives in
                        // this task, so it dies with it (abort, panic): a lease never outlives
                        // the work it protects.
                        let heartbeat = async {
                            loop {
                                tokio::time::sleep(lease / 3).await;
                                if queue.extend(&r, lease).await.is_err() {
                                    break;
                                }
                            }
                            std::future::pending::<ServiceResult<()>>().await
                        };
                        // The job runs in the trace its delivery arrived in (a new one when it
                        // carries none), so provider calls carry it on.
                        let trace = trace_of(&r.job).unwrap_or_else(ports::trace::new_root);
                        let span = tracing::info_span!(
                            "job",
                            job = %r.job.id,
                            tenant = %r.job.key.tenant,
                            trace_id = %trace.trace_id(),
                        );
                        ports::trace::adopt(&span, trace);
                        let cause = cause_of(&r.job);
                        let origin: Arc<str> = format!(
                            "{}, job {}, trace {}",
                            origin_of(&r.job, cause),
                            r.job.id,
                            trace.trace_id()
                        )
                        .into();
                        let tally = ports::trace::RequestTally::default();
                        let work = ports::trace::in_trace(
                            trace,
                            ports::trace::with_cause(
                                cause,
                                ports::trace::with_origin(
                                    origin,
                                    ports::trace::counting_requests(
                                        tally.clone(),
                                        handler.handle(&r.job),
                                    ),
                                ),
                            ),
                        )
                        .instrument(span);
                        let started = std::time::Instant::now();
                        let result = tokio::select! {
                            result = work => result,
                            never = heartbeat => never,
                        };
                        metrics::histogram!("worker_job_seconds")
                            .record(started.elapsed().as_secs_f64());
                        settle(queue.as_ref(), &r, result, &retry, &stats).await;
                        if let Some(usage) = usage {
                            record_usage(usage.as_ref(), &r.job.key.tenant, tally).await;
                        }
                        in_hand
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&r.job.id);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        () = self.queue.wait_for_work(s.idle_poll) => {},
                        _ = shutdown.changed() => {},
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %ports::Chain(&e), "cannot reserve a job; waiting");
                    tokio::select! {
                        () = tokio::time::sleep(s.idle_poll) => {},
                        _ = shutdown.changed() => {},
                    }
                }
            }
        }
        // Shutdown: no new jobs; the ones in hand get the grace period.
        let drained = tokio::time::timeout(s.grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let left: Vec<Reservation> = in_hand
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .map(|(_, r)| r)
                .collect();
            for r in left {
                match self.queue.release(&r).await {
                    Ok(()) => {
                        count("released");
                        bump(&self.stats, |st| st.released += 1)
                    }
                    Err(e) => {
                        tracing::warn!(job = %r.job.id, error = %ports::Chain(&e), "cannot release a job; its lease will expire")
                    }
                }
            }
        }
        self.stats()
    }
}
