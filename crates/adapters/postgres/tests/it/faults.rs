//! Dropped connections: nothing committed is lost, nothing half-written appears, and the store
//! recovers.

use std::time::Duration;

use domain::ids::TenantId;
use domain::job::{JobKey, NewJob};
use ports::queue::{JobQueue, ReserveFilter};
use serde_json::json;
use sqlx::Connection;

use crate::{connect, database_url, fresh_schema, master_key};

fn job(t: &TenantId, n: u64) -> NewJob {
    NewJob::new(
        JobKey::new(t.clone(), "people", &format!("r{n}")).unwrap(),
        json!({ "n": n }),
    )
}

async fn kill_backends_of(schema: &str) -> u64 {
    let mut admin = sqlx::PgConnection::connect(&database_url().await)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    killed.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_transaction_loses_no_job() {
    let schema = fresh_schema();
    let s = connect(&schema, master_key('a')).await;
    let t = TenantId::parse("acme").unwrap();
    for n in 0..3 {
        s.enqueue(job(&t, n)).await.unwrap();
    }
    // A transaction writes a job and is cut off before it commits.
    let mut tx = s.begin_tenant(&t).await.unwrap();
    sqlx::query(
        "INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before)
         VALUES (gen_random_uuid(), 'acme', 'people', 'half-written', '[]', 3, now(), now())",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    assert!(kill_backends_of(&schema).await >= 1);
    assert!(
        tx.commit().await.is_err(),
        "the cut-off transaction cannot commit"
    );

    // The store recovers on fresh connections; every committed job is there, the cut-off one is not.
    let mut seen = Vec::new();
    for _ in 0..10 {
        match s
            .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
            .await
        {
            Ok(Some(r)) => {
                seen.push(r.job.key.entity.clone());
                s.ack(&r).await.unwrap();
            }
            Ok(None) => break,
            Err(e) => assert!(
                e.is_retryable(),
                "only transient errors while reconnecting: {e:?}"
            ),
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["r0", "r1", "r2"]);
    s.enqueue(job(&t, 9))
        .await
        .expect("the store works after the connections were dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connections_die_mid_job_hands_the_job_on() {
    let schema = fresh_schema();
    let s = connect(&schema, master_key('a')).await;
    let t = TenantId::parse("acme").unwrap();
    s.enqueue(job(&t, 1)).await.unwrap();
    let held = s
        .reserve(
            "worker-1",
            Duration::from_millis(300),
            &ReserveFilter::all(),
        )
        .await
        .unwrap()
        .unwrap();
    kill_backends_of(&schema).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let other = connect(&schema, master_key('a')).await;
    let again = other
        .reserve("worker-2", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
        .expect("the job of a dead worker is handed out again after its lease");
    assert_eq!(again.job.id, held.job.id);
    assert_eq!(again.job.attempts, 2);
    other.ack(&again).await.unwrap();
}
