//! The intake's functions keep to their indexes after the jobs table has been emptied
//! (migration 0005, ADR 0017).
//!
//! PL/pgSQL caches a generic plan per connection; emptying `jobs` (a drained queue, vacuumed or
//! truncated) made the pooled connections re-plan against a table believed empty, and every
//! later batch read the whole queue. The test truncates: a vacuum leaves no pages only when no
//! other transaction in the database still sees the deleted rows, and the tests running beside
//! this one often do. The test counts the rows PostgreSQL read from `jobs`
//! (`seq_tup_read + idx_tup_fetch`), so it does not depend on the machine's speed: deliveries of
//! new entities need to read none.

use sqlx::{Connection, PgConnection, Row};

use crate::{connect, database_url, fresh_schema, master_key};

/// `n` deliveries in one call of `accept_deliveries`, received at the SQL expression `received`
/// with claims of `retention_s`: quarantined for `quarantine` (stored, no job), else each with a
/// job of a new entity.
fn batch(n: usize, quarantine: Option<&str>, received: &str, retention_s: u32) -> String {
    let each = |v: &str| vec![v; n].join(",");
    let (reason, job, text) = match quarantine {
        Some(r) => (format!("'{r}'"), "NULL", "NULL"),
        None => (
            "NULL".to_owned(),
            "gen_random_uuid()",
            "gen_random_uuid()::text",
        ),
    };
    format!(
        "SELECT count(*) FROM accept_deliveries(ARRAY[{}], ARRAY[{}], ARRAY[{}]::float8[], \
         ARRAY[{}], ARRAY[{}], ARRAY[{}]::timestamptz[], ARRAY[{}], ARRAY[{}]::text[], \
         ARRAY[{}]::uuid[], ARRAY[{}]::text[], ARRAY[{}]::text[], ARRAY[{}]::jsonb[], \
         ARRAY[{}]::integer[], ARRAY[{}]::float8[])",
        each("'acme'"),
        each("gen_random_uuid()::text"),
        each(&retention_s.to_string()),
        each("gen_random_uuid()"),
        each("'attio'"),
        each(received),
        each("'\\x7b7d'::bytea"),
        each(&reason),
        each(job),
        each(if quarantine.is_some() {
            "NULL"
        } else {
            "'people'"
        }),
        each(text),
        each(if quarantine.is_some() { "NULL" } else { "'{}'" }),
        each(if quarantine.is_some() { "NULL" } else { "3" }),
        each(if quarantine.is_some() { "NULL" } else { "0" }),
    )
}

/// A batch of `n` deliveries of new entities through `accept_deliveries`, or one through
/// `accept_delivery` when `n` is 1, as SQL text (every key, id and entity new).
fn accept(n: usize) -> String {
    if n == 1 {
        return "SELECT count(*) FROM accept_delivery('acme', gen_random_uuid()::text, 3600, \
                gen_random_uuid(), 'attio', now(), '\\x7b7d'::bytea, NULL, gen_random_uuid(), \
                'people', gen_random_uuid()::text, '{}'::jsonb, 3, 0)"
            .to_owned();
    }
    batch(n, None, "now()", 3600)
}

/// Rows read from `jobs` so far, by sequential and index scans, once every backend's counts are
/// in (each connection flushes its own when told to).
async fn rows_read(admin: &mut PgConnection, schema: &str) -> i64 {
    rows_read_from(admin, schema, "jobs").await
}

/// Rows read from `table` so far, as `rows_read`.
async fn rows_read_from(admin: &mut PgConnection, schema: &str, table: &str) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int8 \
         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(&mut *admin)
    .await
    .unwrap()
    .get(0)
}

async fn flush_stats(conn: &mut PgConnection) {
    // The flush happens when the backend goes idle after the forcing statement; the next
    // statement's answer comes after it.
    for sql in ["SELECT pg_stat_force_next_flush()", "SELECT 1"] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
}

#[tokio::test]
async fn accepts_after_the_queue_was_emptied_read_no_other_jobs() {
    let schema = fresh_schema();
    let store = connect(&schema, master_key('a')).await;
    // One of the service's own pooled connections (its role, its search path), kept throughout
    // so that its cached plans are the ones re-planned after the vacuum.
    let mut conn = store.pool().acquire().await.unwrap();
    for n in [1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1, 4] {
        exec(&mut conn, accept(n)).await;
    }
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    // A drained queue is an empty table. A vacuum cuts it to no pages only once no other
    // transaction of the database can still see its rows, which tests running beside this one
    // prevent; `TRUNCATE` empties it at once, and the cached plans are rebuilt the same way.
    exec(&mut admin, format!("TRUNCATE {schema}.jobs")).await;
    let pages: i32 =
        sqlx::query_scalar("SELECT relpages FROM pg_class WHERE oid = to_regclass($1 || '.jobs')")
            .bind(&schema)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(pages, 0, "the jobs table has no pages");
    flush_stats(&mut admin).await;
    let before = rows_read(&mut admin, &schema).await;

    let mut deliveries = 0;
    for i in 0..300 {
        let n = if i % 3 == 0 { 1 } else { 8 };
        exec(&mut conn, accept(n)).await;
        deliveries += n as i64;
    }
    flush_stats(&mut conn).await;
    let read = rows_read(&mut admin, &schema).await - before;
    // Each delivery is of a new entity: its probe finds no row. A scan of the queue per call
    // would read some 300 × 900 rows.
    assert!(
        read < deliveries,
        "{read} rows of jobs read for {deliveries} deliveries of new entities: the intake scans the queue"
    );
}

/// The worker's statements (reserve, then ack) must not read the whole queue (ADR 0019). Under
/// row-level security the planner expected one visible row and scanned and sorted `jobs` on
/// every reserve, emptied or not. The test also empties the queue between warming the pool's two
/// connections and refilling it, so a plan cached for an empty table would show here too.
#[tokio::test]
async fn reserves_and_acks_after_the_queue_was_emptied_read_no_whole_queue() {
    use domain::ids::TenantId;
    use domain::job::{JobKey, NewJob};
    use ports::queue::{JobQueue, ReserveFilter};

    let schema = fresh_schema();
    let store = crate::connect_with(&schema, master_key('a'), |c| c.max_connections = 2).await;
    let t = TenantId::parse("acme").unwrap();
    let job = |n: u64| {
        NewJob::new(
            JobKey::new(t.clone(), "people", &format!("r{n}")).unwrap(),
            serde_json::json!({ "n": n }),
        )
    };
    let lease = std::time::Duration::from_secs(60);
    let cycle = |rounds: usize| {
        let store = &store;
        async move {
            for _ in 0..rounds {
                let r = store
                    .reserve("w", lease, &ReserveFilter::all())
                    .await
                    .unwrap()
                    .expect("a job is ready");
                store.ack(&r).await.unwrap();
            }
        }
    };
    for n in 0..40 {
        store.enqueue(job(n)).await.unwrap();
    }
    cycle(40).await;
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    exec(&mut admin, format!("TRUNCATE {schema}.jobs")).await;
    const QUEUED: u64 = 2_000;
    const TAKEN: usize = 300;
    for n in 1_000..1_000 + QUEUED {
        store.enqueue(job(n)).await.unwrap();
    }
    flush_stats(&mut admin).await;
    let before = rows_read(&mut admin, &schema).await;
    cycle(TAKEN).await;
    // A backend sends its counts when it ends: close the pool and wait until its backends
    // (named after the schema) have gone, so that no count is missing.
    close_and_wait(&store, &mut admin, &schema).await;
    let read = rows_read(&mut admin, &schema).await - before;
    // A reserve that walks the queue from its oldest job reads one row, and an ack one more.
    // Scanning the queue instead reads all of it on each call: some 555,000 rows here.
    assert!(
        read < TAKEN as i64 * 10,
        "{read} rows of jobs read for {TAKEN} reserves and acks of a {QUEUED}-job queue"
    );
}

/// Closes the store's pool and waits until its backends (named after the schema) have gone: a
/// backend sends its counts when it ends, so after this none is missing.
async fn close_and_wait(store: &adapter_postgres::PgStore, admin: &mut PgConnection, schema: &str) {
    store.pool().close().await;
    let mut left: i64 = -1;
    for _ in 0..100 {
        left =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(schema)
                .fetch_one(&mut *admin)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the pool's backends ended within 5 s");
}

/// The operator's listings read what they list, not the tenant's whole history (migration 0006).
/// Quarantined deliveries are rare among the stored ones, and the listing walked the index of
/// every delivery of the tenant to find them; dead letters pile up while an outage lasts. Both
/// run as the service's role, under row-level security, where the planner's estimates are off.
#[tokio::test]
async fn the_operators_listings_read_only_what_they_list() {
    use domain::conflict::ConflictFilter;
    use domain::ids::TenantId;
    use ports::queue::DeadLetterQueue;
    use ports::stores::{ConflictStore, Inbox};

    let schema = fresh_schema();
    let store = connect(&schema, master_key('a')).await;
    let mut conn = store.pool().acquire().await.unwrap();
    for _ in 0..5 {
        exec(&mut conn, batch(1, Some("unparseable"), "now()", 3600)).await;
    }
    for _ in 0..100 {
        exec(&mut conn, accept(30)).await;
    }
    drop(conn);
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    for tenant in ["acme", "other"] {
        exec(&mut admin, format!(
            "INSERT INTO {schema}.dead_letters (job_id, tenant_id, partition, entity, payloads, \
             attempts, max_attempts, enqueued_at, error, failed_at, needs_reconciliation) \
             SELECT gen_random_uuid(), '{tenant}', 'people', 'r' || g, '[{{}}]', 3, 3, now(), \
             'refused', now(), true FROM generate_series(1, 1500) g"
        )).await;
    }
    // Conflicts: 1,500 resolved and 10 open for acme, 1,500 open for another tenant, copied
    // from one recorded through the port.
    let t = TenantId::parse("acme").unwrap();
    store
        .record(&ports::conformance::conflicts::conflict(&t, 1))
        .await
        .unwrap();
    exec(
        &mut admin,
        format!(
            "INSERT INTO {schema}.conflicts (conflict_id, tenant_id, object, attio_record, system, \
             external_id, conflict, detected_at, resolution, resolved_at, field, last_seen) \
         SELECT gen_random_uuid(), CASE WHEN g <= 1500 THEN 'acme' ELSE 'other' END, object, \
             gen_random_uuid(), system, external_id, conflict, detected_at + g * interval '1 s', \
             CASE WHEN g <= 1500 THEN '{{}}'::jsonb END, CASE WHEN g <= 1500 THEN now() END, \
             field, last_seen \
         FROM {schema}.conflicts, generate_series(1, 3000) g; \
         INSERT INTO {schema}.conflicts (conflict_id, tenant_id, object, attio_record, system, \
             external_id, conflict, detected_at, field, last_seen) \
         SELECT gen_random_uuid(), tenant_id, object, gen_random_uuid(), system, external_id, \
             conflict, detected_at + g * interval '1 ms', field, last_seen \
         FROM {schema}.conflicts, generate_series(1, 9) g \
         WHERE resolution IS NULL AND tenant_id = 'acme'"
        ),
    )
    .await;
    exec(
        &mut admin,
        format!(
            "ANALYZE {schema}.inbox; ANALYZE {schema}.dead_letters; ANALYZE {schema}.conflicts"
        ),
    )
    .await;
    flush_stats(&mut admin).await;
    let inbox_before = rows_read_from(&mut admin, &schema, "inbox").await;
    let dead_before = rows_read_from(&mut admin, &schema, "dead_letters").await;
    let conflicts_before = rows_read_from(&mut admin, &schema, "conflicts").await;
    const CALLS: usize = 20;
    for _ in 0..CALLS {
        assert_eq!(store.quarantined(&t, 10).await.unwrap().len(), 5);
        assert_eq!(store.list_dead(&t, 10).await.unwrap().len(), 10);
        assert_eq!(
            store
                .open(&t, &ConflictFilter::default(), 10)
                .await
                .unwrap()
                .len(),
            10
        );
    }
    close_and_wait(&store, &mut admin, &schema).await;
    let inbox = rows_read_from(&mut admin, &schema, "inbox").await - inbox_before;
    let dead = rows_read_from(&mut admin, &schema, "dead_letters").await - dead_before;
    let conflicts = rows_read_from(&mut admin, &schema, "conflicts").await - conflicts_before;
    // Reading the rows listed is 5 and 10 a call; walking the tenant's deliveries is 3,005 a
    // call, and scanning the dead letters 3,000.
    assert!(
        inbox <= (CALLS * 10) as i64,
        "{inbox} rows of the inbox read for {CALLS} listings of 5 quarantined deliveries among 3,005"
    );
    assert!(
        dead <= (CALLS * 20) as i64,
        "{dead} dead letters read for {CALLS} listings of 10 among 3,000"
    );
    assert!(
        conflicts <= (CALLS * 20) as i64,
        "{conflicts} conflicts read for {CALLS} listings of 10 open among 3,010"
    );
}

/// The retention purge (ADR 0020) reads the old deliveries it forgets and no young one, and takes
/// their expired claims with them.
#[tokio::test]
async fn the_purge_reads_and_forgets_only_old_deliveries_with_their_claims() {
    use ports::stores::Inbox;

    let schema = fresh_schema();
    let store = connect(&schema, master_key('a')).await;
    let mut conn = store.pool().acquire().await.unwrap();
    // 300 deliveries ten days old whose claims have run out (a retention of 0 s), then 2,000
    // received now whose claims run for an hour.
    for _ in 0..10 {
        let old = batch(30, None, "now() - interval '10 days'", 0);
        exec(&mut conn, old).await;
    }
    for _ in 0..40 {
        exec(&mut conn, accept(50)).await;
    }
    drop(conn);
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    assert_eq!(count(&mut admin, &schema, "inbox").await, 2_300);
    assert_eq!(count(&mut admin, &schema, "idempotency_keys").await, 2_300);
    flush_stats(&mut admin).await;
    let before = rows_read_from(&mut admin, &schema, "inbox").await;
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(5);
    let mut purged = Vec::new();
    loop {
        let n = store.purge(cutoff, 100).await.unwrap();
        purged.push(n);
        if n < 100 {
            break;
        }
    }
    assert_eq!(purged, vec![100, 100, 100, 0]);
    close_and_wait(&store, &mut admin, &schema).await;
    let read = rows_read_from(&mut admin, &schema, "inbox").await - before;
    assert_eq!(count(&mut admin, &schema, "inbox").await, 2_000);
    assert_eq!(
        count(&mut admin, &schema, "idempotency_keys").await,
        2_000,
        "the old deliveries' expired claims went with them, the young ones' stayed"
    );
    // Each forgotten delivery is read once to find it and once to delete it; a scan of the inbox
    // per batch would read 2,300 rows each time.
    assert!(read <= 700, "{read} rows of the inbox read to purge 300");
}

async fn count(admin: &mut PgConnection, schema: &str, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.{table}"
    )))
    .fetch_one(admin)
    .await
    .unwrap()
}

/// The pool opens its eight warm connections at start-up, and each new connection runs the intake's
/// statements once in a transaction it rolls back (ADR 0021): the functions are compiled and
/// planned before a delivery waits on them, and nothing of the warm-up stays.
#[tokio::test]
async fn new_connections_are_warmed_and_keep_nothing() {
    let schema = fresh_schema();
    let store = crate::connect_with(&schema, master_key('a'), |c| c.max_connections = 10).await;
    let opened = store.pool().size();
    assert!(
        opened >= 8,
        "{opened} connections open at start-up, not the 8 kept warm (two per intake slot, four more)"
    );
    let mut admin = PgConnection::connect(&database_url().await).await.unwrap();
    close_and_wait(&store, &mut admin, &schema).await;
    for table in ["inbox", "jobs", "idempotency_keys"] {
        assert_eq!(
            count(&mut admin, &schema, table).await,
            0,
            "{table} keeps nothing"
        );
    }
    let inserted: i64 = sqlx::query_scalar(
        "SELECT n_tup_ins FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'inbox'",
    )
    .bind(&schema)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    // Three deliveries per connection: one alone, two in a batch.
    assert!(
        inserted >= 3 * i64::from(opened),
        "{inserted} inbox rows written by the warm-up of {opened} connections"
    );
}

/// Runs SQL text (one statement or several) on `conn`; the test fails on an error.
async fn exec(conn: &mut PgConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .unwrap();
}
