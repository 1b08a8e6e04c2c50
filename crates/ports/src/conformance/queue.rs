//! The job queue contract: leases and their expiry, retries with backoff, dead-lettering and
//! replay, per-key ordering, coalescing, filters, and concurrent consumers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::ids::TenantId;
use domain::job::{JobKey, NewJob};
use serde_json::json;
use tokio::sync::Mutex;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::queue::{DeadLetterQueue, EnqueueOutcome, FailOutcome, JobQueue, ReserveFilter};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(100);
const PAST_SHORT: Duration = Duration::from_millis(400);

fn key(tenant: &TenantId, partition: &str, entity: &str) -> JobKey {
    ok(
        JobKey::new(tenant.clone(), partition, entity),
        "building a job key",
    )
}

fn job(key: &JobKey, seq: u64) -> NewJob {
    NewJob::new(key.clone(), json!({ "seq": seq }))
}

async fn reserve<Q: JobQueue + ?Sized>(
    q: &Q,
    lease: Duration,
) -> Option<crate::queue::Reservation> {
    ok(
        q.reserve("c1", lease, &ReserveFilter::all()).await,
        "reserve",
    )
}

pub async fn enqueue_reserve_ack<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "an empty queue must hand out nothing"
    );
    let k = key(&t, "people", "r1");
    let out = ok(q.enqueue(job(&k, 1)).await, "enqueue");
    assert!(
        matches!(out, EnqueueOutcome::Enqueued(_)),
        "first enqueue must add a job: {out:?}"
    );
    let depth = ok(q.depth().await, "depth");
    assert_eq!(
        (depth.ready, depth.in_flight),
        (1, 0),
        "depth after enqueue: {depth:?}"
    );
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("the job must be handed out"));
    assert_eq!(r.job.id, out.job_id());
    assert_eq!(r.job.key, k);
    assert_eq!(r.job.payloads, vec![json!({"seq": 1})]);
    assert_eq!(r.job.attempts, 1, "the first delivery is attempt 1");
    assert_eq!(ok(q.depth().await, "depth").in_flight, 1);
    ok(q.ack(&r).await, "ack");
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "an acked job must not come back"
    );
    assert!(
        matches!(q.ack(&r).await, Err(PortError::LeaseLost(_))),
        "a second ack must fail with LeaseLost"
    );
    let depth = ok(q.depth().await, "depth");
    assert_eq!(
        depth,
        Default::default(),
        "nothing left after ack: {depth:?}"
    );
}

pub async fn lease_hides_a_job_until_it_expires<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let _held = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("first reserve must get the job"));
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "a leased job must be invisible to other consumers"
    );
}

pub async fn expired_lease_is_handed_out_again<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let first = reserve(&*q, SHORT)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    tokio::time::sleep(PAST_SHORT).await;
    let second = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("a job whose lease expired must be handed out again"));
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(
        second.job.attempts, 2,
        "an expired lease counts as an attempt"
    );
    assert_ne!(
        second.lease, first.lease,
        "every delivery gets a new lease token"
    );
    assert!(
        matches!(q.ack(&first).await, Err(PortError::LeaseLost(_))),
        "the old holder must not be able to ack"
    );
    ok(q.ack(&second).await, "ack by the new holder");
}

pub async fn extend_keeps_the_lease<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let r = reserve(&*q, Duration::from_secs(2))
        .await
        .unwrap_or_else(|| panic!("reserve"));
    ok(q.extend(&r, LONG).await, "extend");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "an extended lease must still hide the job"
    );
    ok(q.ack(&r).await, "ack after extend");
}

pub async fn fail_retries_after_the_delay<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(
        q.enqueue(job(&key(&t, "people", "slow"), 1)).await,
        "enqueue",
    );
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    match ok(q.fail(&r, "CRM 503", LONG).await, "fail") {
        FailOutcome::Retrying { .. } => {}
        other => panic!("attempt 1 of 3 must be retried, got {other:?}"),
    }
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "a job must not be retried before its delay"
    );
    assert_eq!(
        ok(q.depth().await, "depth").delayed,
        1,
        "a retrying job counts as delayed"
    );

    ok(
        q.enqueue(job(&key(&t, "people", "fast"), 2)).await,
        "enqueue",
    );
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    ok(
        q.fail(&r, "timeout", Duration::from_millis(50)).await,
        "fail",
    );
    tokio::time::sleep(PAST_SHORT).await;
    let again = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("a job must be retried after its delay"));
    assert_eq!(again.job.id, r.job.id);
    assert_eq!(again.job.attempts, 2);
    assert_eq!(
        again.job.last_error.as_deref(),
        Some("timeout"),
        "the last error must be kept"
    );
    assert!(
        matches!(q.ack(&r).await, Err(PortError::LeaseLost(_))),
        "a failed reservation is settled"
    );
    ok(q.ack(&again).await, "ack");
}

pub async fn dead_letters_after_the_last_attempt_and_replays<Q: JobQueue + DeadLetterQueue>(
    q: Arc<Q>,
) {
    let t = fresh_tenant("q");
    let k = key(&t, "people", "r1");
    ok(q.enqueue(job(&k, 7).with_max_attempts(2)).await, "enqueue");
    let r1 = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve 1"));
    assert!(matches!(
        ok(q.fail(&r1, "e1", Duration::ZERO).await, "fail 1"),
        FailOutcome::Retrying { .. }
    ));
    let r2 = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("attempt 2 must be handed out"));
    assert!(r2.job.is_last_attempt());
    assert_eq!(
        ok(q.fail(&r2, "e2", Duration::ZERO).await, "fail 2"),
        FailOutcome::DeadLettered,
        "the last attempt must dead-letter"
    );
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "a dead letter must not be handed out"
    );
    let dead = ok(q.list_dead(&t, 10).await, "list_dead");
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    assert_eq!(dead[0].error, "e2");
    assert_eq!(dead[0].job.payloads, vec![json!({"seq": 7})]);
    assert_eq!(ok(q.depth().await, "depth").dead, 1);

    let id = ok(q.replay(&t, dead[0].job.id).await, "replay");
    assert!(
        ok(q.list_dead(&t, 10).await, "list_dead").is_empty(),
        "a replayed letter leaves the DLQ"
    );
    let r3 = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("a replayed job must be handed out"));
    assert_eq!(r3.job.id, id);
    assert_eq!(r3.job.attempts, 1, "a replay starts a fresh attempt count");
    assert_eq!(
        r3.job.payloads,
        vec![json!({"seq": 7})],
        "a replay keeps the payloads"
    );
    ok(q.ack(&r3).await, "ack");
    assert!(
        matches!(
            q.replay(&t, dead[0].job.id).await,
            Err(PortError::NotFound(_))
        ),
        "replaying twice must be NotFound"
    );
}

pub async fn dead_letter_now_keeps_the_reason<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    ok(
        q.dead_letter(&r, "400 invalid email", true).await,
        "dead_letter",
    );
    let dead = ok(q.list_dead(&t, 10).await, "list_dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error, "400 invalid email");
    assert!(
        dead[0].needs_reconciliation,
        "the reconciliation flag must be kept"
    );
    assert!(matches!(q.ack(&r).await, Err(PortError::LeaseLost(_))));
    ok(q.purge(&t, dead[0].job.id).await, "purge");
    assert!(ok(q.list_dead(&t, 10).await, "list_dead").is_empty());
}

pub async fn dead_letters_are_tenant_scoped<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let (a, b) = (fresh_tenant("qa"), fresh_tenant("qb"));
    ok(q.enqueue(job(&key(&a, "people", "r1"), 1)).await, "enqueue");
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    ok(q.dead_letter(&r, "boom", false).await, "dead_letter");
    let id = ok(q.list_dead(&a, 10).await, "list_dead")[0].job.id;
    assert!(
        ok(q.list_dead(&b, 10).await, "list_dead").is_empty(),
        "tenant B must not see A's dead letters"
    );
    assert!(
        matches!(q.replay(&b, id).await, Err(PortError::NotFound(_))),
        "B must not replay A's letter"
    );
    assert!(
        matches!(q.purge(&b, id).await, Err(PortError::NotFound(_))),
        "B must not purge A's letter"
    );
    assert_eq!(ok(q.list_dead(&a, 10).await, "list_dead").len(), 1);
    let letter = ok(q.dead_letter_of(&a, id).await, "dead_letter_of");
    assert_eq!((letter.job.id, letter.error.as_str()), (id, "boom"));
    assert!(
        matches!(q.dead_letter_of(&b, id).await, Err(PortError::NotFound(_))),
        "B must not read A's letter"
    );
    let unknown = domain::ids::JobId::from_uuid(uuid::Uuid::new_v4());
    assert!(matches!(
        q.dead_letter_of(&a, unknown).await,
        Err(PortError::NotFound(_))
    ));
}

pub async fn backlog_counts_a_tenants_unfinished_jobs_per_partition<
    Q: JobQueue + DeadLetterQueue,
>(
    q: Arc<Q>,
) {
    let (t, other) = (fresh_tenant("qa"), fresh_tenant("qb"));
    let before = time::OffsetDateTime::now_utc() - Duration::from_secs(2);
    assert!(ok(q.backlog(&t).await, "backlog").is_empty());
    for (p, e) in [("people", "r1"), ("people", "r2"), ("companies", "c1")] {
        ok(q.enqueue(job(&key(&t, p, e), 1)).await, "enqueue");
    }
    ok(
        q.enqueue(job(&key(&t, "deals", "d1"), 1).with_delay(LONG))
            .await,
        "enqueue delayed",
    );
    ok(
        q.enqueue(job(&key(&other, "people", "x"), 1)).await,
        "enqueue",
    );
    let after = time::OffsetDateTime::now_utc() + Duration::from_secs(2);
    let counts = |b: Vec<crate::queue::PartitionBacklog>| {
        b.iter()
            .map(|p| (p.partition.clone(), p.jobs))
            .collect::<Vec<_>>()
    };
    let backlog = ok(q.backlog(&t).await, "backlog");
    for p in &backlog {
        let at = p
            .oldest_enqueued_at
            .unwrap_or_else(|| panic!("{p:?} has jobs, so an oldest"));
        assert!(
            before <= at && at <= after,
            "{p:?} outside {before}..{after}"
        );
    }
    let s = |p: &str, n: u64| (p.to_owned(), n);
    assert_eq!(
        counts(backlog),
        vec![s("companies", 1), s("deals", 1), s("people", 2)],
        "ready and delayed jobs count, another tenant's do not"
    );
    let only_people = ReserveFilter {
        tenants: [t.clone()].into(),
        partitions: ["people".to_owned()].into(),
    };
    let r = ok(q.reserve("c", LONG, &only_people).await, "reserve")
        .unwrap_or_else(|| panic!("a people job"));
    assert_eq!(
        counts(ok(q.backlog(&t).await, "backlog")),
        vec![s("companies", 1), s("deals", 1), s("people", 2)],
        "a job in flight is unfinished"
    );
    ok(q.dead_letter(&r, "boom", false).await, "dead_letter");
    let r = ok(q.reserve("c", LONG, &only_people).await, "reserve")
        .unwrap_or_else(|| panic!("the other people job"));
    ok(q.ack(&r).await, "ack");
    assert_eq!(
        counts(ok(q.backlog(&t).await, "backlog")),
        vec![s("companies", 1), s("deals", 1)],
        "dead and finished jobs do not count"
    );
}

pub async fn jobs_of_one_key_run_in_order<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    let (k, other) = (key(&t, "people", "r1"), key(&t, "people", "r2"));
    ok(q.enqueue(job(&k, 1)).await, "enqueue");
    let first = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    // A second job for the same key arrives while the first is in flight.
    let second = ok(q.enqueue(job(&k, 2)).await, "enqueue");
    assert!(
        matches!(second, EnqueueOutcome::Enqueued(_)),
        "a job in flight must not absorb new payloads"
    );
    ok(q.enqueue(job(&other, 3)).await, "enqueue");
    let next = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("another key's job must be deliverable"));
    assert_eq!(
        next.job.key, other,
        "a key with a job in flight must be skipped"
    );
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "the key's second job must wait for the first"
    );
    ok(q.ack(&first).await, "ack");
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("the second job must follow the ack"));
    assert_eq!(r.job.payloads, vec![json!({"seq": 2})]);
    ok(q.ack(&r).await, "ack");
    ok(q.ack(&next).await, "ack");
}

pub async fn pending_jobs_of_one_key_coalesce<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    let k = key(&t, "people", "r1");
    let a = ok(q.enqueue(job(&k, 1)).await, "enqueue");
    let b = ok(q.enqueue(job(&k, 2)).await, "enqueue");
    let c = ok(q.enqueue(job(&k, 3)).await, "enqueue");
    assert_eq!(b, EnqueueOutcome::Coalesced(a.job_id()));
    assert_eq!(c, EnqueueOutcome::Coalesced(a.job_id()));
    assert_eq!(
        ok(q.depth().await, "depth").ready,
        1,
        "coalesced payloads make one job"
    );
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    assert_eq!(
        r.job.payloads,
        vec![json!({"seq": 1}), json!({"seq": 2}), json!({"seq": 3})],
        "payloads in order"
    );
    ok(q.ack(&r).await, "ack");
    // Another tenant's job with the same partition and entity is a different key.
    let other = ok(
        q.enqueue(job(&key(&fresh_tenant("q"), "people", "r1"), 4))
            .await,
        "enqueue",
    );
    assert!(
        matches!(other, EnqueueOutcome::Enqueued(_)),
        "keys are per tenant"
    );
}

pub async fn delayed_jobs_wait<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(
        q.enqueue(job(&key(&t, "people", "r1"), 1).with_delay(LONG))
            .await,
        "enqueue",
    );
    assert!(
        reserve(&*q, LONG).await.is_none(),
        "a delayed job must wait"
    );
    let d = ok(q.depth().await, "depth");
    assert_eq!((d.ready, d.delayed), (0, 1), "{d:?}");
    ok(
        q.enqueue(job(&key(&t, "people", "r2"), 2).with_delay(Duration::from_millis(50)))
            .await,
        "enqueue",
    );
    tokio::time::sleep(PAST_SHORT).await;
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("a job past its delay must be deliverable"));
    assert_eq!(r.job.payloads, vec![json!({"seq": 2})]);
}

pub async fn filters_select_tenants_and_partitions<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let (a, b) = (fresh_tenant("qa"), fresh_tenant("qb"));
    ok(q.enqueue(job(&key(&a, "people", "1"), 1)).await, "enqueue");
    ok(
        q.enqueue(job(&key(&a, "companies", "2"), 2)).await,
        "enqueue",
    );
    ok(q.enqueue(job(&key(&b, "people", "3"), 3)).await, "enqueue");
    let only = |tenants: &[&TenantId], partitions: &[&str]| ReserveFilter {
        tenants: tenants.iter().map(|t| (*t).clone()).collect(),
        partitions: partitions.iter().map(|p| (*p).to_owned()).collect(),
    };
    let r = ok(q.reserve("c", LONG, &only(&[&b], &[])).await, "reserve")
        .unwrap_or_else(|| panic!("B's job"));
    assert_eq!(r.job.key.tenant, b);
    let r = ok(
        q.reserve("c", LONG, &only(&[], &["companies"])).await,
        "reserve",
    )
    .unwrap_or_else(|| panic!("the companies job"));
    assert_eq!(r.job.key.partition, "companies");
    assert!(
        ok(
            q.reserve("c", LONG, &only(&[&b], &["people"])).await,
            "reserve"
        )
        .is_none(),
        "nothing else matches"
    );
    let r = ok(
        q.reserve("c", LONG, &only(&[&a], &["people"])).await,
        "reserve",
    )
    .unwrap_or_else(|| panic!("A's people job"));
    assert_eq!(r.job.payloads, vec![json!({"seq": 1})]);
}

pub async fn release_gives_a_job_back_without_an_attempt<Q: JobQueue + DeadLetterQueue>(q: Arc<Q>) {
    let t = fresh_tenant("q");
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let r = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("reserve"));
    ok(q.release(&r).await, "release");
    let again = reserve(&*q, LONG)
        .await
        .unwrap_or_else(|| panic!("a released job must be deliverable at once"));
    assert_eq!(again.job.id, r.job.id);
    assert_eq!(
        again.job.attempts, 1,
        "a release must not count as an attempt"
    );
    assert!(matches!(q.ack(&r).await, Err(PortError::LeaseLost(_))));
    ok(q.ack(&again).await, "ack");
}

/// An idle consumer waiting for work is woken by an enqueue well before its wait runs out.
pub async fn an_enqueue_wakes_a_waiting_consumer<Q: JobQueue + DeadLetterQueue + 'static>(
    q: Arc<Q>,
) {
    let t = fresh_tenant("q");
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            // A consumer's loop: wait, look, wait again, for at most 20 s.
            while start.elapsed() < Duration::from_secs(20) {
                q.wait_for_work(Duration::from_secs(20)).await;
                if let Some(r) = ok(
                    q.reserve("idle", LONG, &ReserveFilter::all()).await,
                    "reserve",
                ) {
                    return Some((start.elapsed(), r));
                }
            }
            None
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok(q.enqueue(job(&key(&t, "people", "r1"), 1)).await, "enqueue");
    let (waited, r) = ok(waiter.await, "waiter")
        .unwrap_or_else(|| panic!("the waiting consumer never got the job"));
    assert!(
        waited < Duration::from_secs(10),
        "the consumer waited {waited:?}: the enqueue did not wake it"
    );
    ok(q.ack(&r).await, "ack");
}

/// Four consumers, eight keys, twelve events per key arriving while they work; every fifth
/// event's first delivery fails once. Every event must be processed exactly once, never two jobs
/// of one key at a time, and in order per key.
pub async fn concurrent_consumers_process_everything_once_in_order<
    Q: JobQueue + DeadLetterQueue + 'static,
>(
    q: Arc<Q>,
) {
    const KEYS: u64 = 8;
    const PER_KEY: u64 = 12;
    const CONSUMERS: usize = 4;
    let t = fresh_tenant("qc");
    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));

    let producer = {
        let q = q.clone();
        let t = t.clone();
        tokio::spawn(async move {
            for seq in 0..PER_KEY {
                for k in 0..KEYS {
                    let key = key(&t, "people", &format!("r{k}"));
                    ok(
                        q.enqueue(NewJob::new(key, json!({ "seq": seq, "k": k })))
                            .await,
                        "enqueue",
                    );
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let (q, seen, in_flight, violations, done) = (
            q.clone(),
            seen.clone(),
            in_flight.clone(),
            violations.clone(),
            done.clone(),
        );
        consumers.push(tokio::spawn(async move {
            let name = format!("consumer-{c}");
            while done.load(Ordering::SeqCst) < (KEYS * PER_KEY) as usize {
                let Some(r) = ok(
                    q.reserve(&name, LONG, &ReserveFilter::all()).await,
                    "reserve",
                ) else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                let k = r.job.key.entity.clone();
                if !in_flight.lock().await.insert(k.clone()) {
                    violations
                        .lock()
                        .await
                        .push(format!("two jobs of {k} in flight at once"));
                }
                let first_seq = r
                    .job
                    .payloads
                    .first()
                    .and_then(|p| p["seq"].as_u64())
                    .unwrap_or_default();
                if first_seq % 5 == 0 && r.job.attempts == 1 {
                    in_flight.lock().await.remove(&k);
                    ok(
                        q.fail(&r, "injected", Duration::from_millis(5)).await,
                        "fail",
                    );
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                let seqs: Vec<u64> = r
                    .job
                    .payloads
                    .iter()
                    .filter_map(|p| p["seq"].as_u64())
                    .collect();
                // Recorded while the lease is held: once acked, the key's next job may be
                // taken, processed and recorded by another consumer before this one resumes.
                let n = seqs.len();
                seen.lock().await.entry(k.clone()).or_default().extend(seqs);
                in_flight.lock().await.remove(&k);
                ok(q.ack(&r).await, "ack");
                done.fetch_add(n, Ordering::SeqCst);
            }
        }));
    }

    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        ok(producer.await, "producer");
        for c in consumers {
            ok(c.await, "consumer");
        }
    })
    .await;
    assert!(
        finished.is_ok(),
        "consumers did not finish: processed {} of {}",
        done.load(Ordering::SeqCst),
        KEYS * PER_KEY
    );
    let violations = violations.lock().await;
    assert!(violations.is_empty(), "{violations:?}");
    let seen = seen.lock().await;
    assert_eq!(seen.len(), KEYS as usize, "every key must be processed");
    for (k, seqs) in seen.iter() {
        assert_eq!(
            seqs,
            &(0..PER_KEY).collect::<Vec<_>>(),
            "key {k}: every event once, in order"
        );
    }
    assert!(reserve(&*q, LONG).await.is_none(), "nothing may be left");
}

/// One test per check, for an adapter factory `async fn() -> Arc<impl JobQueue + DeadLetterQueue>`.
#[macro_export]
macro_rules! queue_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            queue,
            $factory,
            [
                enqueue_reserve_ack,
                lease_hides_a_job_until_it_expires,
                expired_lease_is_handed_out_again,
                extend_keeps_the_lease,
                fail_retries_after_the_delay,
                dead_letters_after_the_last_attempt_and_replays,
                dead_letter_now_keeps_the_reason,
                dead_letters_are_tenant_scoped,
                backlog_counts_a_tenants_unfinished_jobs_per_partition,
                jobs_of_one_key_run_in_order,
                pending_jobs_of_one_key_coalesce,
                delayed_jobs_wait,
                filters_select_tenants_and_partitions,
                release_gives_a_job_back_without_an_attempt,
                an_enqueue_wakes_a_waiting_consumer,
                concurrent_consumers_process_everything_once_in_order,
            ]
        );
    };
}
