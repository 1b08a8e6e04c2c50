//! The job loop on the memory queue with scripted handlers: acks, retries with backoff,
//! dead letters (with the reconciliation flag), partitions, and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_memory::MemoryQueue;
use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::job::{Job, JobKey, NewJob, RetryPolicy};
use ports::error::PortError;
use ports::queue::{DeadLetterQueue, JobQueue, ReserveFilter};
use services::ServiceError;
use services::ServiceResult;
use services::worker::{JobHandler, Worker, WorkerSettings};
use tokio::sync::watch;

/// Panics on each entity's first attempt, then succeeds.
struct PanicsOnce {
    seen: Mutex<HashMap<String, u32>>,
    done: AtomicU32,
}

#[async_trait]
impl JobHandler for PanicsOnce {
    async fn handle(&self, job: &Job) -> ServiceResult<()> {
        let first = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(job.key.entity.clone()).or_default();
            *n += 1;
            *n == 1
        };
        assert!(!first, "a handler bug on the first attempt");
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Fails each entity's first `fail` attempts with `error`, then succeeds; may dawdle.
struct Scripted {
    fail: u32,
    error: fn() -> ServiceError,
    dawdle: Duration,
    seen: Mutex<HashMap<String, u32>>,
    done: AtomicU32,
}

impl Scripted {
    fn new(fail: u32, error: fn() -> ServiceError) -> Self {
        Self {
            fail,
            error,
            dawdle: Duration::ZERO,
            seen: Mutex::default(),
            done: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl JobHandler for Scripted {
    async fn handle(&self, job: &Job) -> ServiceResult<()> {
        tokio::time::sleep(self.dawdle).await;
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(job.key.entity.clone()).or_default();
            *n += 1;
            *n
        };
        if n <= self.fail {
            return Err((self.error)());
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn transient() -> ServiceError {
    ServiceError::Port(PortError::RateLimited { retry_after: None })
}

fn refused() -> ServiceError {
    ServiceError::RecordRejected {
        system: SystemId::parse("salesforce").unwrap(),
        reason: "REQUIRED_FIELD_MISSING".into(),
        retryable: false,
    }
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn enqueue(q: &MemoryQueue, partition: &str, entity: &str) {
    q.enqueue(NewJob::new(
        JobKey::new(tenant(), partition, entity).unwrap(),
        serde_json::json!({"n": entity}),
    ))
    .await
    .unwrap();
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        concurrency: 2,
        lease: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
        grace: Duration::from_secs(2),
        idle_poll: Duration::from_millis(20),
        ..WorkerSettings::default()
    }
}

/// Runs the worker until `until` holds (or 10 s pass), then shuts it down.
async fn run_until<F, Fut>(worker: Arc<Worker>, until: F) -> services::worker::WorkerStats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (tx, rx) = watch::channel(false);
    let w = worker.clone();
    let task = tokio::spawn(async move { w.run(rx).await });
    let mut waited = Duration::ZERO;
    while !until().await && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    tx.send(true).unwrap();
    task.await.unwrap()
}

#[tokio::test]
async fn jobs_are_acked_and_transient_failures_retried_with_backoff() {
    let q = MemoryQueue::default();
    for e in ["a", "b", "c"] {
        enqueue(&q, "people", e).await;
    }
    let h = Arc::new(Scripted::new(2, transient));
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), settings()));
    let stats = run_until(worker, || {
        let h = h.clone();
        async move { h.done.load(Ordering::SeqCst) == 3 }
    })
    .await;
    assert_eq!((stats.acked, stats.retried, stats.dead_lettered), (3, 6, 0));
    let depth = q.depth().await.unwrap();
    assert_eq!(
        (depth.ready, depth.delayed, depth.in_flight, depth.dead),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn exhausted_and_permanent_failures_are_dead_lettered_with_the_error() {
    let q = MemoryQueue::default();
    enqueue(&q, "people", "always").await;
    let h = Arc::new(Scripted::new(u32::MAX, transient));
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h, settings()));
    let stats = run_until(worker, || {
        let q = q.clone();
        async move { q.depth().await.unwrap().dead == 1 }
    })
    .await;
    assert_eq!(
        (stats.retried, stats.dead_lettered),
        (2, 1),
        "three attempts, then the dead-letter queue"
    );
    let dead = q.list_dead(&tenant(), 10).await.unwrap();
    assert!(dead[0].error.contains("rate limited"), "{:?}", dead[0]);
    assert!(!dead[0].needs_reconciliation);

    let q = MemoryQueue::default();
    enqueue(&q, "people", "refused").await;
    let h = Arc::new(Scripted::new(u32::MAX, refused));
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), settings()));
    let stats = run_until(worker, || {
        let q = q.clone();
        async move { q.depth().await.unwrap().dead == 1 }
    })
    .await;
    assert_eq!(
        (stats.retried, stats.dead_lettered),
        (0, 1),
        "permanent errors are not retried"
    );
    let dead = q.list_dead(&tenant(), 10).await.unwrap();
    assert!(
        dead[0].needs_reconciliation,
        "a refused record may have reached another CRM"
    );
    assert_eq!(h.seen.lock().unwrap()["refused"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_take_only_their_partitions() {
    let q = MemoryQueue::default();
    enqueue(&q, "people", "p1").await;
    enqueue(&q, "deals", "d1").await;
    let h = Arc::new(Scripted::new(0, transient));
    let mut s = settings();
    s.filter = ReserveFilter {
        partitions: ["deals".to_owned()].into(),
        ..ReserveFilter::all()
    };
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), s));
    run_until(worker, || {
        let h = h.clone();
        async move { h.done.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert_eq!(
        h.seen.lock().unwrap().keys().collect::<Vec<_>>(),
        vec!["d1"]
    );
    assert_eq!(
        q.depth().await.unwrap().ready,
        1,
        "the people job is left for another worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_short_jobs_and_releases_long_ones_uncounted() {
    let q = MemoryQueue::default();
    enqueue(&q, "people", "slow").await;
    let mut slow = Scripted::new(0, transient);
    slow.dawdle = Duration::from_secs(30);
    let h = Arc::new(slow);
    let mut s = settings();
    s.grace = Duration::from_millis(200);
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), s));
    let qq = q.clone();
    let stats = run_until(worker, move || {
        let qq = qq.clone();
        async move { qq.depth().await.unwrap().in_flight == 1 }
    })
    .await;
    assert_eq!((stats.acked, stats.released), (0, 1));
    let depth = q.depth().await.unwrap();
    assert_eq!(
        (depth.ready, depth.in_flight),
        (1, 0),
        "the job is back, ready for the next worker"
    );
    let r = q
        .reserve("next", Duration::from_secs(5), &ReserveFilter::all())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.job.attempts, 1, "the released attempt was not counted");

    // A job that fits in the grace period is finished, not released.
    let q = MemoryQueue::default();
    enqueue(&q, "people", "quick").await;
    let mut quick = Scripted::new(0, transient);
    quick.dawdle = Duration::from_millis(300);
    let h = Arc::new(quick);
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), settings()));
    let qq = q.clone();
    let stats = run_until(worker, move || {
        let qq = qq.clone();
        async move { qq.depth().await.unwrap().in_flight == 1 }
    })
    .await;
    assert_eq!((stats.acked, stats.released), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_keep_its_job_leased() {
    let q = MemoryQueue::default();
    enqueue(&q, "people", "boom").await;
    let h = Arc::new(PanicsOnce {
        seen: Mutex::default(),
        done: AtomicU32::new(0),
    });
    let mut s = settings();
    s.lease = Duration::from_millis(600);
    let worker = Arc::new(Worker::new(Arc::new(q.clone()), h.clone(), s));
    run_until(worker, || {
        let h = h.clone();
        async move { h.done.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert_eq!(
        h.done.load(Ordering::SeqCst),
        1,
        "the job came back when its lease expired"
    );
    assert_eq!(h.seen.lock().unwrap()["boom"], 2);
}

/// Records the trace each job ran in.
#[derive(Default)]
struct SeesTrace {
    seen: Mutex<Vec<(String, Option<domain::trace::TraceParent>)>>,
}

#[async_trait]
impl JobHandler for SeesTrace {
    async fn handle(&self, job: &Job) -> ServiceResult<()> {
        self.seen
            .lock()
            .unwrap()
            .push((job.key.entity.clone(), ports::trace::current()));
        Ok(())
    }
}

#[tokio::test]
async fn a_job_runs_in_the_trace_its_delivery_arrived_in() {
    let q = MemoryQueue::default();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    q.enqueue(NewJob::new(
        JobKey::new(tenant(), "people", "traced").unwrap(),
        serde_json::json!({"source": "attio", "trace": tp}),
    ))
    .await
    .unwrap();
    enqueue(&q, "people", "untraced").await;
    let handler = Arc::new(SeesTrace::default());
    let worker = Arc::new(Worker::new(
        Arc::new(q.clone()),
        handler.clone(),
        settings(),
    ));
    run_until(worker, || async { handler.seen.lock().unwrap().len() == 2 }).await;
    let seen = handler.seen.lock().unwrap().clone();
    let of = |e: &str| seen.iter().find(|(x, _)| x == e).and_then(|(_, t)| *t);
    assert_eq!(
        of("traced").map(|t| t.to_string()).as_deref(),
        Some(tp),
        "the delivery's trace"
    );
    let fresh = of("untraced").expect("a job without a trace gets a new one");
    assert_ne!(fresh.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(ports::trace::current().is_none(), "no trace outside a job");
}

/// Sends `n` provider requests' worth of counts, as the HTTP kernel does for each request.
struct CallsProviders(u64);

#[async_trait]
impl JobHandler for CallsProviders {
    async fn handle(&self, _job: &Job) -> ServiceResult<()> {
        for _ in 0..self.0 {
            ports::trace::count_request("crm-a");
        }
        ports::trace::count_request("attio");
        Ok(())
    }
}

#[tokio::test]
async fn each_jobs_provider_requests_are_added_to_its_tenants_usage_of_the_day() {
    use ports::stores::UsageLog;
    let q = MemoryQueue::default();
    for e in ["a", "b"] {
        enqueue(&q, "people", e).await;
    }
    let usage = adapter_memory::MemoryUsageLog::default();
    let worker = Arc::new(
        Worker::new(Arc::new(q.clone()), Arc::new(CallsProviders(3)), settings())
            .with_usage(Arc::new(usage.clone())),
    );
    let today = time::OffsetDateTime::now_utc().date();
    let counted = || {
        let usage = usage.clone();
        async move { usage.on_day(&tenant(), today).await.unwrap().len() == 2 }
    };
    run_until(worker, || async {
        counted().await && q.depth().await.unwrap().ready == 0
    })
    .await;
    assert_eq!(
        usage.on_day(&tenant(), today).await.unwrap(),
        vec![("attio".to_owned(), 2), ("crm-a".to_owned(), 6)],
        "two jobs of three CRM requests and one Attio request each"
    );
}
