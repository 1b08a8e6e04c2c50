//! The inbox's group commit (ADR 0014): deliveries that arrive while a batch is committing are
//! accepted together, each with its own outcome, in arrival order, and one that PostgreSQL
//! refuses fails alone.
//!
//! Each test first holds the intake's only batch slot: a delivery whose idempotency key another
//! transaction is inserting waits for it, so the deliveries sent meanwhile gather into the next
//! batch, whatever the machine's timing.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use adapter_postgres::{GroupCommitConfig, PgStore};
use domain::idempotency::IdempotencyKey;
use domain::ids::{JobId, SystemId, TenantId};
use domain::job::{JobKey, NewJob};
use ports::error::PortResult;
use ports::queue::{EnqueueOutcome, JobQueue, ReserveFilter};
use ports::stores::{Accepted, InboundDelivery, Inbox};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use crate::{connect_with, database_url, fresh_schema, master_key};

const RETENTION: Duration = Duration::from_secs(3600);

fn delivery(t: &TenantId, key: &str, quarantine: Option<&str>) -> InboundDelivery {
    InboundDelivery {
        tenant: t.clone(),
        source: SystemId::attio(),
        key: IdempotencyKey::from_provider(key).unwrap(),
        body: format!(r#"{{"key":"{key}"}}"#).into_bytes(),
        received_at: OffsetDateTime::now_utc(),
        quarantine: quarantine.map(str::to_owned),
    }
}

fn job(t: &TenantId, entity: &str, payload: Value) -> NewJob {
    NewJob::new(JobKey::new(t.clone(), "people", entity).unwrap(), payload)
}

/// A store with one batch slot, held by a blocker of tenant `acme` (so that what arrives while
/// it is held forms one batch), with its schema and tenant.
async fn blocked_store() -> (String, Arc<PgStore>, TenantId, Blocker) {
    let schema = fresh_schema();
    let s = Arc::new(
        connect_with(&schema, master_key('a'), |c| {
            c.group_commit = GroupCommitConfig {
                max_batch: 64,
                concurrency: 1,
            };
        })
        .await,
    );
    let t = TenantId::parse("acme").unwrap();
    let blocker = Blocker::hold(&schema, &s, &t).await;
    (schema, s, t, blocker)
}

/// Holds the intake's batch slot until [`Blocker::release`]: another transaction inserts the
/// idempotency key of a delivery, which then waits in its batch for that transaction.
struct Blocker {
    admin: PgConnection,
    accepted: tokio::task::JoinHandle<PortResult<Accepted>>,
}

impl Blocker {
    async fn hold(schema: &str, s: &Arc<PgStore>, t: &TenantId) -> Self {
        let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET search_path TO {schema}; BEGIN; \
             INSERT INTO idempotency_keys VALUES ('{t}', 'blocker', now() - interval '1 hour')"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        let (s2, t2) = (s.clone(), t.clone());
        let accepted = tokio::spawn(async move {
            s2.accept(&delivery(&t2, "blocker", None), None, RETENTION)
                .await
        });
        // The blocker's batch is in flight once its statement waits for the lock (seen from a
        // connection of its own: a transaction sees one snapshot of pg_stat_activity).
        let mut watch = PgConnection::connect(&database_url().await).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            )
            .bind(schema)
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the blocking delivery never waited for the held key"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self { admin, accepted }
    }

    /// Rolls the held key back; the blocking delivery is then stored.
    async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.admin)
            .await
            .unwrap();
        let out = self.accepted.await.unwrap().unwrap();
        assert!(
            matches!(out, Accepted::Stored { .. }),
            "the blocking delivery is stored once the key is free: {out:?}"
        );
    }
}

/// Sends every accept of `all` into the intake (one poll), releases the blocker, then waits.
async fn while_blocked<T>(blocker: Blocker, all: impl Future<Output = T>) -> T {
    while_blocked_for(blocker, Duration::ZERO, all).await
}

/// [`while_blocked`], keeping the blocker `hold` longer after the accepts are sent.
async fn while_blocked_for<T>(blocker: Blocker, hold: Duration, all: impl Future<Output = T>) -> T {
    let mut all = pin!(all);
    assert!(
        futures::poll!(all.as_mut()).is_pending(),
        "nothing can be answered while the slot is held"
    );
    tokio::time::sleep(hold).await;
    blocker.release().await;
    all.await
}

/// Every job's payloads, taking the queue's jobs in order.
async fn drain(s: &PgStore) -> Vec<Value> {
    drain_jobs(s)
        .await
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect()
}

/// Each job with its payloads, taking the queue's jobs in order.
async fn drain_jobs(s: &PgStore) -> Vec<(JobId, Vec<Value>)> {
    let mut jobs = Vec::new();
    while let Some(r) = s
        .reserve("t", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
    {
        jobs.push((r.job.id, r.job.payloads.clone()));
        s.ack(&r).await.unwrap();
    }
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_share_a_commit_and_each_gets_its_own_outcome() {
    let (schema, s, t, blocker) = blocked_store().await;
    let before = s.intake_stats();

    // 150 keys of two tenants, the first 50 sent twice; ten entities, so that jobs fold as well.
    let u = TenantId::parse("globex").unwrap();
    let tenant_of = |k: u32| if k.is_multiple_of(2) { &t } else { &u };
    let sent: Vec<(u32, String, Value)> = (0..200u32)
        .map(|i| {
            let k = if i < 150 { i } else { i - 150 };
            (k, format!("k{k}"), json!({ "i": i }))
        })
        .collect();
    let outcomes = while_blocked(
        blocker,
        futures::future::join_all(sent.iter().map(|(k, key, payload)| {
            let s = s.clone();
            let d = delivery(tenant_of(*k), key, None);
            let j = job(tenant_of(*k), &format!("r{}", k % 10), payload.clone());
            async move { s.accept(&d, Some(j), RETENTION).await }
        })),
    )
    .await;

    let mut stored: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for ((_, key, payload), out) in sent.iter().zip(&outcomes) {
        match out {
            Ok(Accepted::Stored { job: Some(_), .. }) => {
                stored.entry(key).or_default().push(payload)
            }
            Ok(Accepted::Duplicate) => {}
            other => panic!("unexpected outcome for {key}: {other:?}"),
        }
    }
    assert_eq!(stored.len(), 150, "every key is stored");
    assert!(
        stored.values().all(|v| v.len() == 1),
        "each key exactly once: {stored:?}"
    );
    let stats = s.intake_stats();
    assert_eq!(stats.deliveries - before.deliveries, 200);
    assert_eq!(
        stats.commits - before.commits,
        4,
        "the 200 waiting deliveries in batches of 64, 64, 64 and 8: {stats:?}"
    );
    assert_eq!(stats.largest_batch, 64);
    assert_eq!(
        stats.split_batches, before.split_batches,
        "no batch failed (each row is written under its own tenant's policy)"
    );

    // The queue holds exactly the stored deliveries' payloads.
    let queued: BTreeSet<String> = drain(&s).await.iter().map(Value::to_string).collect();
    let expected: BTreeSet<String> = stored
        .values()
        .flat_map(|v| v.iter().map(|p| p.to_string()))
        .collect();
    assert_eq!(queued, expected);
    let inbox_rows: i64 = {
        let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.inbox"
        )))
        .fetch_one(&mut admin)
        .await
        .unwrap()
    };
    assert_eq!(
        inbox_rows, 151,
        "each stored delivery and the blocker, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entitys_deliveries_in_a_batch_enqueue_in_arrival_order() {
    let (_, s, t, blocker) = blocked_store().await;
    // Interleaved with another entity's, whose job sorts differently by lock hash.
    let outcomes = while_blocked(
        blocker,
        futures::future::join_all((0..24u32).map(|i| {
            let s = s.clone();
            let d = delivery(&t, &format!("o{i}"), None);
            let j = job(
                &t,
                if i.is_multiple_of(2) { "even" } else { "odd" },
                json!(i),
            );
            async move { s.accept(&d, Some(j), RETENTION).await }
        })),
    )
    .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Accepted::Stored { .. })))
    );
    let payloads = drain(&s).await;
    let of = |parity: u64| -> Vec<u64> {
        payloads
            .iter()
            .filter_map(Value::as_u64)
            .filter(|n| n % 2 == parity)
            .collect()
    };
    assert_eq!(of(0), (0..24).step_by(2).collect::<Vec<u64>>());
    assert_eq!(of(1), (1..24).step_by(2).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_postgresql_refuses_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let (_, s, t, blocker) = blocked_store().await;
    let before = s.intake_stats();
    // PostgreSQL's text cannot hold NUL: this quarantine reason fails the whole statement.
    let outcomes = while_blocked(
        blocker,
        futures::future::join_all((0..11u32).map(|i| {
            let s = s.clone();
            let d = delivery(&t, &format!("b{i}"), (i == 5).then_some("bad\0reason"));
            let j = (i != 5).then(|| job(&t, &format!("r{i}"), json!(i)));
            async move { s.accept(&d, j, RETENTION).await }
        })),
    )
    .await;
    for (i, out) in outcomes.iter().enumerate() {
        if i == 5 {
            assert!(out.is_err(), "the refused delivery gets its error: {out:?}");
        } else {
            assert!(
                matches!(out, Ok(Accepted::Stored { job: Some(_), .. })),
                "delivery {i}: {out:?}"
            );
        }
    }
    let stats = s.intake_stats();
    assert_eq!(stats.split_batches - before.split_batches, 1);
    assert_eq!(stats.largest_batch, 11);
    let mut queued: Vec<u64> = drain(&s).await.iter().filter_map(Value::as_u64).collect();
    queued.sort_unstable();
    assert_eq!(queued, vec![0, 1, 2, 3, 4, 6, 7, 8, 9, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_folds_into_the_pending_job_and_queues_one_new_job_per_entity_in_arrival_order() {
    let (_, s, t, blocker) = blocked_store().await;
    // `old` has a pending job before the batch (enqueued directly, not through the intake).
    let first = s
        .enqueue(job(&t, "old", json!("old-0")))
        .await
        .unwrap()
        .job_id();
    let sent: Vec<(&str, Value)> = vec![
        ("new", json!("new-1")),
        ("old", json!("old-1")),
        ("new", json!("new-2")),
        ("old", json!("old-2")),
        ("new", json!("new-3")),
        ("later", json!("later-1")),
    ];
    let outcomes = while_blocked(
        blocker,
        futures::future::join_all(sent.iter().enumerate().map(|(i, (entity, payload))| {
            let s = s.clone();
            let d = delivery(&t, &format!("f{i}"), None);
            let j = job(&t, entity, payload.clone());
            async move { s.accept(&d, Some(j), RETENTION).await }
        })),
    )
    .await;
    let jobs: Vec<EnqueueOutcome> = outcomes
        .into_iter()
        .map(|o| match o {
            Ok(Accepted::Stored { job: Some(j), .. }) => j,
            other => panic!("unexpected outcome: {other:?}"),
        })
        .collect();
    // The first delivery of `new` makes its job; the later ones fold into it.
    let made = match jobs[0] {
        EnqueueOutcome::Enqueued(id) => id,
        other => panic!("the first delivery of a new entity enqueues: {other:?}"),
    };
    assert_ne!(made, first);
    assert_eq!(jobs[2], EnqueueOutcome::Coalesced(made));
    assert_eq!(jobs[4], EnqueueOutcome::Coalesced(made));
    // `old`'s deliveries fold into the job that was pending before the batch.
    assert_eq!(jobs[1], EnqueueOutcome::Coalesced(first));
    assert_eq!(jobs[3], EnqueueOutcome::Coalesced(first));
    let later = match jobs[5] {
        EnqueueOutcome::Enqueued(id) => id,
        other => panic!("a second new entity enqueues a job of its own: {other:?}"),
    };
    // Three jobs, each with its payloads in arrival order, and queued in arrival order: `old`'s
    // first, then `new`'s before `later`'s, although `later` comes first by name and by lock hash.
    assert_eq!(
        drain_jobs(&s).await,
        vec![
            (first, vec![json!("old-0"), json!("old-1"), json!("old-2")]),
            (made, vec![json!("new-1"), json!("new-2"), json!("new-3")]),
            (later, vec![json!("later-1")]),
        ]
    );
}

/// `bench/sql/accept_timing.sql` (ADR 0014's measurement) still runs against the migrations, and
/// its batches store what they send.
#[tokio::test]
async fn the_accept_timing_script_runs_on_the_current_schema() {
    let schema = fresh_schema();
    let _store = connect_with(&schema, master_key('a'), |_| {}).await;
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path TO {schema}; {}",
        include_str!("../../../../../bench/sql/accept_timing.sql")
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    for (function, n) in [("single", 3), ("accept_deliveries", 4)] {
        let micros: f64 = sqlx::query_scalar("SELECT accept_timing($1, $2, 2)::float8")
            .bind(function)
            .bind(n)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(micros > 0.0, "{function}: {micros} µs per delivery");
    }
    let (keys, jobs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM idempotency_keys), (SELECT count(*) FROM jobs)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        (keys, jobs),
        (14, 14),
        "2 rounds of 3 singles and of 4 in a batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_up_transaction_and_the_deliveries_waiting_behind_it_are_counted_as_slow() {
    let (_, s, t, blocker) = blocked_store().await;
    let before = s.intake_stats();
    let hold = Duration::from_millis(50);
    // Sent at once, answered only after the blocker's transaction, held `hold` longer.
    let outcomes = while_blocked_for(
        blocker,
        hold,
        futures::future::join_all((0..3u32).map(|i| {
            let s = s.clone();
            let d = delivery(&t, &format!("w{i}"), None);
            let j = job(&t, &format!("r{i}"), json!(i));
            async move { s.accept(&d, Some(j), RETENTION).await }
        })),
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let stats = s.intake_stats();
    assert!(
        stats.slow_commits > before.slow_commits,
        "the blocker's transaction waited for the held key: {stats:?}"
    );
    assert!(stats.slow_commit_deliveries > before.slow_commit_deliveries);
    assert!(
        stats.slowest_commit >= hold,
        "the blocker's transaction took at least {hold:?}: {stats:?}"
    );
    assert!(
        stats.slow_accepts - before.slow_accepts >= 4,
        "the blocker and the three deliveries queued behind it: {stats:?}"
    );
}
