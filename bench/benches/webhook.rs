//! `cargo xtask bench webhook`: webhook-api's intake on PostgreSQL and on Redis, and the delay
//! from an Attio change to the HubSpot write.
//!
//! 1. Criterion: one signed delivery at a time (verified, deduplicated, stored, enqueued,
//!    answered), per backend.
//! 2. Saturation: 32 keep-alive connections sending distinct deliveries, signed before the clock
//!    starts, for 5 s; five rounds per backend, alternating, the median reported with every
//!    round's rate and the CPU time per delivery (this process; Redis from `INFO cpu`).
//! 3. Paced: 1,000 deliveries/s for 15 s per backend, before the saturation rounds (a young
//!    database) and after them (one holding the rounds' deliveries); p50/p99 answer time, the
//!    tail beyond (p99.9, max, answers over 5 ms), and the answers over 5 ms per second of the
//!    phase (a stall shows as one heavy second).
//! 4. Delay: people created in attio-sim one at a time; the time until hubspot-sim holds each,
//!    through attio-sim's signed delivery, webhook-api, the PostgreSQL queue and a sync-worker.
//!
//! The load generator, the API, PostgreSQL and Redis share this 2-core machine.
//!
//! PostgreSQL's WAL is first prepared as a server holds it in service, with recycled segments
//! ready (see [`prepare_wal`], ADR 0018); each paced phase reports how many segments it had to
//! create.
//!
//! Diagnostic settings: `WEBHOOK_BENCH_PG_SLOTS` (the group commit's batch slots),
//! `WEBHOOK_BENCH_SETTLE_S` (a pause before 3b), `WEBHOOK_BENCH_DRAIN` (empty PostgreSQL's jobs
//! table before 3b, as workers would keep it), `WEBHOOK_BENCH_COLD_WAL` (skip the WAL's
//! preparation: the server as it is), `WEBHOOK_BENCH_WARMUP_MS` (run each paced phase's pace
//! unmeasured for that long first), `WEBHOOK_BENCH_PURGE` (a retention pass over the rounds'
//! deliveries while PostgreSQL's phase after them runs, in batches of its value, see
//! [`purge_beside`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use adapter_postgres::{PgConfig, PgStore};
use adapter_redis::{RedisConfig, RedisStore};
use bench::Latencies;
use criterion::{Criterion, Throughput};
use domain::ids::{SystemId, TenantId};
use domain::mapping::ExternalProperty;
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use ports::stores::TenantStore;
use serde_json::json;

/// The allocator of the `webhook-api` binary, whose intake this process hosts.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-webhook-secret-0123456789";

/// A diagnostic setting from the environment, when set to a number.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn delivery(n: u64) -> String {
    json!({
        "webhook_id": "0b9a5b2e-7d3c-4a4e-9f3e-2b6c1d0e9a11",
        "events": [{
            "event_type": "record.updated",
            "id": {
                "workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c",
                "object_id": "97052eb9-e65e-443f-a297-f2d9a4a7f795",
                "record_id": uuid::Uuid::from_u128(u128::from(n) + 1).to_string(),
                "attribute_id": "41252299-f8c7-4b5e-99c9-4ff8321d2f96",
            },
            "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
        }]
    })
    .to_string()
}

/// Where the API listens and its Attio webhook path.
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    path: String,
}

/// Delivery `n`, signed, as request bytes.
fn signed(target: &Target, n: u64) -> Vec<u8> {
    let body = delivery(n);
    let sig = adapter_attio_http::sign_attio(SECRET, body.as_bytes());
    let key = format!("bench-{n}");
    bench::raw_post(
        &target.addr.to_string(),
        &target.path,
        &[
            ("attio-signature", &sig),
            ("idempotency-key", &key),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// Sends delivery `n`; whether it was accepted, and the answer time.
async fn post(conn: &mut bench::RawConn, target: &Target, n: u64) -> (bool, Duration) {
    let request = signed(target, n);
    let start = Instant::now();
    let ok = matches!(conn.send(&request).await, Ok(200));
    (ok, start.elapsed())
}

fn tenant(hubspot_url: &str) -> Tenant {
    Tenant {
        id: or_die(TenantId::parse("bench"), "tenant"),
        name: "Bench".into(),
        attio: AttioCredentials {
            api_token: or_die(Secret::new("f".repeat(64)), "token"),
            webhook_secrets: vec![or_die(Secret::new(SECRET), "secret")],
        },
        crms: vec![CrmConnection {
            system: or_die(SystemId::parse("hubspot"), "system"),
            settings: BTreeMap::from([("base_url".to_owned(), hubspot_url.to_owned())]),
            secrets: BTreeMap::from([(
                "token".to_owned(),
                or_die(Secret::new("pat-na1-bench"), "token"),
            )]),
        }],
        api_keys: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
    }
}

const CONNECTIONS: usize = 32;
const WINDOW: Duration = Duration::from_secs(5);
const PACED_RATE: u64 = 1_000;
/// The paced phase's length. A p99 over 5 s (5,000 answers) moved with any single stall of this
/// shared VM (a 30 ms pause holds back 1 % of the sample); 15 s measures the rate's steady
/// state, and the tail beyond it is printed (p99.9, max, answers over 5 ms).
const PACED_WINDOW: Duration = Duration::from_secs(15);
/// Requests signed ahead of each saturation round (more than a round sends here).
const PREPARED: usize = 150_000;
/// Saturation rounds per backend; the median is reported.
const ROUNDS: usize = 5;

/// What one load phase measured.
struct Phase {
    rate: f64,
    p50: Duration,
    p99: Duration,
    refused: u64,
    /// CPU time per accepted delivery: this process (API and load generator), and Redis.
    cpu_here: Duration,
    cpu_redis: Duration,
    /// Paced phase only: p99.9, the slowest answer, and how many took over 5 ms.
    tail: Option<(Duration, Duration, usize)>,
    /// The share of the machine's CPU time the hypervisor gave to other guests meanwhile (a
    /// noisy neighbour shows here, not in the code's numbers).
    stolen: f64,
    /// Paced phase only: when it started (UTC, to match server-side samples), and the answers
    /// over 5 ms per second of the phase in which they were sent (stalls cluster; spread-out
    /// slowness does not).
    slow_by_second: Option<(time::OffsetDateTime, Vec<usize>)>,
    /// PostgreSQL's paced phases only: the disk's floor right after the phase ([`disk_floor`]),
    /// or why it was not measured.
    floor: Option<Result<Latencies, String>>,
}

/// The machine's CPU time so far and the part of it stolen by the hypervisor, in ticks
/// (`/proc/stat`: user nice system idle iowait irq softirq steal …).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    (f.iter().sum(), f.get(7).copied().unwrap_or(0))
}

/// The share of CPU time stolen since `before` (a [`machine_cpu`] reading).
fn stolen_since(before: (u64, u64)) -> f64 {
    let (all, stolen) = machine_cpu();
    stolen.saturating_sub(before.1) as f64 / all.saturating_sub(before.0).max(1) as f64
}

/// This process's CPU time so far (user and system), from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at "state"; utime and stime
    // are the 14th and 15th fields of the line, in clock ticks (100 a second here).
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Redis's CPU time so far (`INFO cpu`), or zero when it cannot be read.
async fn redis_cpu(url: &str) -> Duration {
    let Ok(client) = redis::Client::open(url) else {
        return Duration::ZERO;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Duration::ZERO;
    };
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let secs: f64 = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum();
    Duration::from_secs_f64(secs)
}

/// PostgreSQL's WAL at one moment: its position in bytes, how many segment files lie ready
/// beyond the current one (recycled by a checkpoint, so filling them creates no file), and the
/// segment size. `None` when it cannot be read (it needs a superuser or `pg_monitor`).
async fn wal_state(pg_url: &str) -> Option<(i64, i64, i64)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(pg_url).await.ok()?;
    sqlx::query_as(
        "SELECT (pg_current_wal_lsn() - '0/0')::bigint,
                (SELECT count(*) FROM pg_ls_waldir()
                  WHERE name ~ '^[0-9A-F]{24}$' AND name > pg_walfile_name(pg_current_wal_lsn())),
                pg_size_bytes(current_setting('wal_segment_size'))",
    )
    .fetch_one(&mut conn)
    .await
    .ok()
}

/// What a phase did to the WAL, from [`wal_state`] before and after it. A segment that no
/// checkpoint recycled ahead of time is created by the committing backend, which writes 16 MB
/// of zeros and syncs them while every commit waits: a stall of tens of milliseconds.
fn wal_use(before: Option<(i64, i64, i64)>, after: Option<(i64, i64, i64)>) -> String {
    let (Some((from, ready, size)), Some((to, _, _))) = (before, after) else {
        return "WAL not readable".into();
    };
    let size = size.max(1);
    let entered = (to / size - from / size).max(0);
    format!(
        "WAL {:.0} MB, {entered} segments entered with {ready} recycled ones ready at the start, so {} created while it ran",
        (to - from) as f64 / 1e6,
        (entered - ready).max(0)
    )
}

/// Leaves PostgreSQL holding recycled WAL segments, as a server holds them once it has carried
/// such a load (or with `min_wal_size` set as deploy/README.md says): writes some 650 MB of WAL
/// (messages only, no table pages to write back later) and checkpoints, which recycles those
/// segments for the WAL to come. Without it, a server that was idle makes its committing
/// backends create and zero-fill each new segment in the commit path (ADR 0018). An error says
/// why it could not (both steps need a superuser).
async fn prepare_wal(pg_url: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(pg_url).await?;
    sqlx::query(
        "SELECT count(pg_logical_emit_message(false, 'attio-sync-bench', repeat('w', 1048576)))
           FROM generate_series(1, 640)",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query("CHECKPOINT").execute(&mut conn).await?;
    Ok(())
}

/// Where PostgreSQL keeps its files (`SHOW data_directory`, which needs a superuser or
/// `pg_read_all_settings`): the disk its WAL is synced to, when the server runs on this machine.
async fn pg_data_directory(pg_url: &str) -> Option<std::path::PathBuf> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(pg_url).await.ok()?;
    let dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&mut conn)
        .await
        .ok()?;
    Some(dir.into())
}

/// The disk's floor under a durable intake: the answer times of an ideal one, which costs no CPU
/// and group-commits as webhook-api's intake does, paced at `rate` for `window` on the disk of
/// `dir`. Each sync writes 8 kB (a WAL page) to a file in `dir` and `fdatasync`s it; every request
/// that has arrived when a sync starts is answered when it ends. No intake that makes a delivery
/// durable on this disk before answering can answer faster, so a paced phase's p99 is read
/// against this one, measured right after it (`bench/scripts/fsync_probe.py` is the same probe
/// by hand). An error says why the probe could not run (e.g. `dir` is not writable here).
fn disk_floor(dir: &std::path::Path, rate: u64, window: Duration) -> std::io::Result<Latencies> {
    use std::io::{Seek, SeekFrom, Write};
    const SPAN: u64 = 16 << 20;
    let path = dir.join(format!("{}.disk_probe", bench::stamp()));
    let mut file = std::fs::File::create(&path)?;
    let probe = (|| {
        // Written and synced before the clock starts, as PostgreSQL's recycled WAL segments are.
        file.write_all(&vec![0u8; SPAN as usize])?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
        let page = [b'x'; 8192];
        let start = Instant::now();
        bench::ideal_intake(
            rate,
            rate * window.as_secs(),
            || start.elapsed(),
            std::thread::sleep,
            || {
                if file.stream_position()? >= SPAN {
                    file.seek(SeekFrom::Start(0))?;
                }
                file.write_all(&page)?;
                file.sync_data()
            },
        )
    })();
    let _ = std::fs::remove_file(&path);
    probe
}

/// Starts one retention pass (ADR 0020) that forgets every delivery `inbox` received before now,
/// as `webhook-api`'s pass does once they are past their retention: batches of
/// `WEBHOOK_BENCH_PURGE` deliveries when it is a number, else of `webhook-api`'s default
/// `purge_batch`, each followed by a rest as long as it took (ADR 0023). Its clock is set ahead
/// by the retention, so the rounds' deliveries count as old and the phase's own do not. Their
/// keys' claims expire on the database's clock, after the dedupe retention (96 h by default), so
/// they are first made to expire now (in `schema`, as a superuser) and checkpointed: the pass forgets them too, as it would in
/// service, and the update's pages are not written back during the phase. Returns what it
/// forgot, how long it ran and the error that ended it, if one did.
fn purge_beside(
    rt: &tokio::runtime::Runtime,
    inbox: Arc<dyn ports::stores::Inbox>,
    pg_url: &str,
    schema: &str,
) -> tokio::task::JoinHandle<(u64, Duration, Option<String>)> {
    rt.block_on(async {
        use sqlx::Connection;
        let mut admin = or_die(sqlx::PgConnection::connect(pg_url).await, "PostgreSQL");
        for sql in [
            format!("UPDATE {schema}.idempotency_keys SET expires_at = now()"),
            "CHECKPOINT".to_owned(),
        ] {
            or_die(
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await,
                "expire the claims",
            );
        }
    });
    let defaults = webhook_api::RawConfig::default();
    let batch = env_number("WEBHOOK_BENCH_PURGE").unwrap_or(defaults.purge_batch);
    let retention = Duration::from_secs(defaults.dedupe_retention_hours * 3600);
    let ahead = retention + services::retention::CLAIM_GRACE;
    let clock = adapter_memory::ManualClock::new(time::OffsetDateTime::now_utc() + ahead);
    let pass =
        services::retention::Retention::new(Arc::new(clock)).with_inbox(inbox, retention, batch);
    rt.spawn(async move {
        let started = Instant::now();
        match pass.pass().await {
            Ok(p) => (p.deliveries, started.elapsed(), None),
            Err(e) => (0, started.elapsed(), Some(e.to_string())),
        }
    })
}

/// Serves webhook-api over `stores` on a free port.
async fn intake(stores: &app_common::Stores) -> Target {
    let listener = or_die(
        tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await,
        "bind",
    );
    let addr = or_die(listener.local_addr(), "addr");
    let settings = or_die(
        webhook_api::RawConfig {
            debounce_ms: 0,
            ..Default::default()
        }
        .validate(),
        "settings",
    );
    let state = webhook_api::AppState::new(stores, settings);
    tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));
    Target {
        addr,
        path: "/v1/webhooks/attio/bench".into(),
    }
}

/// `CONNECTIONS` clients sending distinct signed deliveries back to back for `WINDOW`.
async fn saturate(target: &Target, counter: &Arc<AtomicU64>, redis_url: &str) -> Phase {
    // Requests are signed before the clock starts, as a prepared load (wrk-style) would be, so
    // the generator's share of the two cores is sending and reading only.
    let first = counter.fetch_add(PREPARED as u64, Ordering::Relaxed);
    let prepared: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..PREPARED as u64)
            .map(|i| signed(target, first + i))
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (here0, redis0) = (process_cpu(), redis_cpu(redis_url).await);
    let machine0 = machine_cpu();
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        conns.push(or_die(
            bench::RawConn::connect(target.addr).await,
            "connect",
        ));
    }
    let deadline = Instant::now() + WINDOW;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (target, counter, prepared, next) = (
            target.clone(),
            counter.clone(),
            prepared.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let (mut ok, mut bad, mut lat) = (0u64, 0u64, Latencies::default());
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (good, d) = match prepared.get(i) {
                    Some(request) => {
                        let start = Instant::now();
                        let good = matches!(conn.send(request).await, Ok(200));
                        (good, start.elapsed())
                    }
                    // Ran past the prepared ones: sign on the fly.
                    None => post(&mut conn, &target, counter.fetch_add(1, Ordering::Relaxed)).await,
                };
                if good {
                    ok += 1
                } else {
                    bad += 1
                }
                lat.push(d);
            }
            (ok, bad, lat)
        });
    }
    let (mut ok, mut bad, mut all) = (0, 0, Latencies::default());
    while let Some(r) = tasks.join_next().await {
        let (o, b, l) = or_die(r, "task");
        ok += o;
        bad += b;
        all.extend(l);
    }
    let per = |d: Duration| d / u32::try_from(ok.max(1)).unwrap_or(u32::MAX);
    Phase {
        rate: ok as f64 / WINDOW.as_secs_f64(),
        p50: all.percentile(50.0),
        p99: all.percentile(99.0),
        refused: bad,
        cpu_here: per(process_cpu().saturating_sub(here0)),
        cpu_redis: per(redis_cpu(redis_url).await.saturating_sub(redis0)),
        tail: None,
        stolen: stolen_since(machine0),
        slow_by_second: None,
        floor: None,
    }
}

/// `rate` deliveries a second for `WINDOW`, each on its own task (an open loop).
/// Connections kept between requests, made when none is free, as a client's would be.
type ConnPool = Arc<std::sync::Mutex<Vec<bench::RawConn>>>;

/// Sends `count` distinct signed deliveries at `rate` per second, each on a pooled connection.
/// Each task answers whether the delivery was accepted, its answer time, and when it was sent
/// (since `start`).
async fn send_paced(
    target: &Target,
    counter: &Arc<AtomicU64>,
    rate: u64,
    count: u64,
    pool: &ConnPool,
    start: Instant,
) -> tokio::task::JoinSet<(bool, Duration, Duration)> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        tick.tick().await;
        let (target, pool, n) = (
            target.clone(),
            pool.clone(),
            counter.fetch_add(1, Ordering::Relaxed),
        );
        tasks.spawn(async move {
            let request = signed(&target, n);
            let sent = start.elapsed();
            let start = Instant::now();
            let held = pool.lock().map(|mut p| p.pop()).unwrap_or(None);
            let mut conn = match held {
                Some(c) => c,
                None => or_die(bench::RawConn::connect(target.addr).await, "connect"),
            };
            let ok = matches!(conn.send(&request).await, Ok(200));
            let took = start.elapsed();
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            (ok, took, sent)
        });
    }
    tasks
}

async fn pace(target: &Target, counter: &Arc<AtomicU64>, rate: u64) -> Phase {
    let pool = ConnPool::default();
    // Optionally, the same pace unmeasured first (diagnostic: how much of the first second's
    // tail is the phase starting).
    if let Some(ms) = env_number::<u64>("WEBHOOK_BENCH_WARMUP_MS") {
        let count = rate * ms / 1000;
        let mut warming = send_paced(target, counter, rate, count, &pool, Instant::now()).await;
        while warming.join_next().await.is_some() {}
    }
    let start = Instant::now();
    let started = time::OffsetDateTime::now_utc();
    let machine0 = machine_cpu();
    let count = rate * PACED_WINDOW.as_secs();
    let mut tasks = send_paced(target, counter, rate, count, &pool, start).await;
    let (mut lat, mut ok, mut bad) = (Latencies::default(), 0u64, 0u64);
    let mut slow_by_second = vec![0; PACED_WINDOW.as_secs() as usize + 1];
    while let Some(r) = tasks.join_next().await {
        let (good, d, sent) = or_die(r, "task");
        if good {
            ok += 1
        } else {
            bad += 1
        }
        if d > Duration::from_millis(5) {
            let second = (sent.as_secs() as usize).min(slow_by_second.len() - 1);
            slow_by_second[second] += 1;
        }
        lat.push(d);
    }
    Phase {
        rate: ok as f64 / start.elapsed().as_secs_f64(),
        p50: lat.percentile(50.0),
        p99: lat.percentile(99.0),
        refused: bad,
        cpu_here: Duration::ZERO,
        cpu_redis: Duration::ZERO,
        tail: Some((
            lat.percentile(99.9),
            lat.percentile(100.0),
            lat.count_over(Duration::from_millis(5)),
        )),
        stolen: stolen_since(machine0),
        slow_by_second: Some((started, slow_by_second)),
        floor: None,
    }
}

/// A paced phase of `backend`, `when` the saturation rounds run. For PostgreSQL it also prints
/// the pool's size around the phase, and returns what the phase did to the WAL.
fn paced_phase(
    rt: &tokio::runtime::Runtime,
    backend: &str,
    target: &Target,
    counter: &Arc<AtomicU64>,
    pg: &PgStore,
    pg_url: &str,
    when: &str,
) -> (Phase, Option<String>) {
    if backend != "PostgreSQL" {
        return (rt.block_on(pace(target, counter, PACED_RATE)), None);
    }
    let before = rt.block_on(wal_state(pg_url));
    let (size, idle) = (pg.pool().size(), pg.pool().num_idle());
    let mut phase = rt.block_on(pace(target, counter, PACED_RATE));
    println!(
        "PostgreSQL pool: {size} connections ({idle} idle) when the paced phase {when} sat. began, {} at its end",
        pg.pool().size()
    );
    let wal = wal_use(before, rt.block_on(wal_state(pg_url)));
    phase.floor = Some(match rt.block_on(pg_data_directory(pg_url)) {
        None => Err("PostgreSQL's data directory is not readable (needs a superuser)".into()),
        Some(data) => {
            // Beside the data directory, not in it: the same disk, and nothing of ours in
            // PostgreSQL's own files.
            let dir = data
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or(data);
            disk_floor(&dir, PACED_RATE, PACED_WINDOW)
                .map_err(|e| format!("no disk probe in {}: {e}", dir.display()))
        }
    });
    (phase, Some(wal))
}

fn main() {
    let rt = or_die(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        "runtime",
    );
    let pg_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    rt.block_on(bench::remove_leftovers(&pg_url, &redis_url));
    let addr = || std::net::SocketAddr::from(([127, 0, 0, 1], 0));

    // The simulators (used by the delay phase), the store and the API.
    let (attio_sim, hubspot_sim) = rt.block_on(async {
        (
            or_die(
                attio_sim::start(
                    addr(),
                    attio_sim::SimConfig {
                        writes_per_second: 1_000_000,
                        reads_per_second: 1_000_000,
                        ..Default::default()
                    },
                )
                .await,
                "attio-sim",
            ),
            // The delay phase polls HubSpot every 2 ms with the worker's token; HubSpot's own
            // 190-per-10-s limit is not what it measures.
            or_die(
                hubspot_sim::start(
                    addr(),
                    hubspot_sim::HubSpotConfig {
                        per_ten_seconds: 1_000_000,
                        ..Default::default()
                    },
                )
                .await,
                "hubspot-sim",
            ),
        )
    });
    let mut pg_cfg = PgConfig::new(
        or_die(Secret::new(pg_url.clone()), "url"),
        or_die(bench::key(), "key"),
    );
    pg_cfg.schema = Some(bench::stamp());
    pg_cfg.max_connections = 32;
    // The group commit's batch slots (ADR 0014), to compare settings; the adapter's default else.
    if let Some(n) = env_number("WEBHOOK_BENCH_PG_SLOTS") {
        pg_cfg.group_commit.concurrency = n;
    }
    let pg = Arc::new(rt.block_on(async { or_die(PgStore::connect(&pg_cfg).await, "PostgreSQL") }));
    let wal_prepared = if std::env::var_os("WEBHOOK_BENCH_COLD_WAL").is_some() {
        "not prepared (WEBHOOK_BENCH_COLD_WAL)".to_owned()
    } else {
        match rt.block_on(prepare_wal(&pg_url)) {
            Ok(()) => {
                "prepared first: 650 MB written and checkpointed, so its segments were recycled"
                    .to_owned()
            }
            Err(e) => format!("could not be prepared ({e})"),
        }
    };
    rt.block_on(async { or_die(pg.create(&tenant(&hubspot_sim.url())).await, "tenant") });
    let on_pg = app_common::Stores::from_one(pg.clone());
    // The same tenants, with the inbox, queue and dead letters in Redis.
    let redis = Arc::new(rt.block_on(async {
        or_die(
            RedisStore::connect(&RedisConfig {
                url: or_die(Secret::new(redis_url.clone()), "url"),
                namespace: bench::stamp(),
            })
            .await,
            "Redis",
        )
    }));
    let mut on_redis = on_pg.clone();
    on_redis.inbox = redis.clone();
    on_redis.queue = redis.clone();
    on_redis.dead = redis;
    let counter = Arc::new(AtomicU64::new(0));
    let mut crit = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut targets = Vec::new();
    for (backend, stores) in [("PostgreSQL", &on_pg), ("Redis", &on_redis)] {
        let target = rt.block_on(intake(stores));
        let mut one =
            rt.block_on(async { or_die(bench::RawConn::connect(target.addr).await, "connect") });
        // 1. One delivery at a time.
        let mut group = crit.benchmark_group("webhook");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("accept_one_{}", backend.to_lowercase()), |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (ok, _) = rt.block_on(post(&mut one, &target, n));
                assert!(ok, "a delivery was refused");
            })
        });
        group.finish();
        targets.push((backend, target));
    }
    // 3a. Paced, before the saturation rounds, on a young database; 3b runs after them, on one
    //     holding the rounds' deliveries.
    let grouped_start = pg.intake_stats();
    let mut fresh = Vec::new();
    let mut wal_fresh = String::new();
    for (backend, target) in &targets {
        let (phase, wal) = paced_phase(&rt, backend, target, &counter, &pg, &pg_url, "before");
        fresh.push(phase);
        wal_fresh = wal.unwrap_or(wal_fresh);
    }
    // 2. Saturation: rounds alternating between the backends (this machine is shared and its
    //    speed drifts), each backend's median round reported. 3b. Paced again, once each.
    let mut rounds: Vec<Vec<Phase>> = targets.iter().map(|_| Vec::new()).collect();
    let grouped_before = pg.intake_stats();
    for _ in 0..ROUNDS {
        for ((_, target), runs) in targets.iter().zip(rounds.iter_mut()) {
            runs.push(rt.block_on(saturate(target, &counter, &redis_url)));
        }
    }
    let grouped_saturated = pg.intake_stats();
    let mut results = Vec::new();
    let mut wal_after = String::new();
    for (((backend, target), mut runs), fresh) in targets.iter().zip(rounds).zip(fresh) {
        runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let all: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{:.0} (CPU per delivery: here {:.0?}, Redis {:.0?}; {:.1} % stolen)",
                    r.rate,
                    r.cpu_here,
                    r.cpu_redis,
                    r.stolen * 100.0
                )
            })
            .collect();
        let median = runs.swap_remove(runs.len() / 2);
        // An optional pause before 3b, to see how much of its tail is the rounds' writes still
        // reaching the disk.
        if let Some(s) = env_number("WEBHOOK_BENCH_SETTLE_S") {
            std::thread::sleep(Duration::from_secs(s));
        }
        // Optionally empty the jobs table first, as workers would keep it (diagnostic: how much
        // of 3b's tail is the undrained queue's size).
        if *backend == "PostgreSQL" && std::env::var_os("WEBHOOK_BENCH_DRAIN").is_some() {
            rt.block_on(async {
                use sqlx::Connection;
                let mut admin = or_die(sqlx::PgConnection::connect(&pg_url).await, "PostgreSQL");
                let schema = pg_cfg.schema.clone().unwrap_or_default();
                or_die(
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("TRUNCATE {schema}.jobs")))
                        .execute(&mut admin)
                        .await,
                    "truncate",
                );
            });
        }
        let purge = (*backend == "PostgreSQL" && std::env::var_os("WEBHOOK_BENCH_PURGE").is_some())
            .then(|| {
                let schema = pg_cfg.schema.clone().unwrap_or_default();
                purge_beside(&rt, on_pg.inbox.clone(), &pg_url, &schema)
            });
        let (paced, wal) = paced_phase(&rt, backend, target, &counter, &pg, &pg_url, "after");
        if let Some(purge) = purge {
            let (n, took, failed) = or_die(rt.block_on(purge), "purge");
            println!(
                "PostgreSQL retention pass beside the paced phase after sat.: {n} deliveries forgotten in {took:.1?}{}",
                failed
                    .map(|e| format!(", then it failed: {e}"))
                    .unwrap_or_default()
            );
        }
        wal_after = wal.unwrap_or(wal_after);
        results.push((*backend, median, all.join(", "), fresh, paced));
    }
    let grouped_paced = pg.intake_stats();
    crit.final_summary();

    // 4. Change → HubSpot: attio-sim delivers to the API, a worker writes to hubspot-sim.
    let delays = rt.block_on(async {
        // The benchmark's deliveries are still queued: start from an empty queue.
        let empty = or_die(PgStore::connect(&{ let mut c = pg_cfg.clone(); c.schema = Some(bench::stamp()); c }).await, "PostgreSQL");
        let stores = app_common::Stores::from_one(Arc::new(empty));
        let listener = or_die(tokio::net::TcpListener::bind(addr()).await, "bind");
        let api_url = format!("http://{}", or_die(listener.local_addr(), "addr"));
        let http = reqwest::Client::new();
        let hook: serde_json::Value = or_die(
            or_die(http.post(format!("{}/v2/webhooks", attio_sim.url())).bearer_auth("f".repeat(64))
                .json(&json!({"data": {"target_url": format!("{api_url}/v1/webhooks/attio/bench"), "subscriptions": [{"event_type": "record.created", "filter": null}]}}))
                .send().await, "webhook").json().await, "webhook body");
        let mut t = tenant(&hubspot_sim.url());
        t.attio.webhook_secrets = vec![or_die(Secret::new(hook["data"]["secret"].as_str().unwrap_or_default()), "secret")];
        or_die(stores.tenants.create(&t).await, "tenant");
        let settings = or_die(webhook_api::RawConfig { debounce_ms: 0, ..Default::default() }.validate(), "settings");
        let state = webhook_api::AppState::new(&stores, settings);
        let api = tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));
        let dir = std::env::temp_dir().join(bench::stamp());
        or_die(std::fs::create_dir_all(&dir), "dir");
        let toml = dir.join("worker.toml");
        or_die(std::fs::write(&toml, format!(r#"attio_base_url = "{}"
[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
fields = [{{ attio = {{ attribute = "email_addresses" }}, external = "email", rule = "latest_wins" }}]
"#, attio_sim.url())), "worker.toml");
        let worker_settings = or_die(or_die(sync_worker::RawConfig::load(Some(&toml)), "load").validate(), "validate");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let limiter: Arc<dyn ports::limiter::RateLimiter> = Arc::new(MemoryRateLimiter::default());
        let worker = tokio::spawn({ let stores = stores.clone(); async move { sync_worker::run(&worker_settings, stores, limiter, stopped).await } });
        let hubspot = or_die(HubSpotClient::new(or_die(HubSpotConfig::new(&hubspot_sim.url(), or_die(Secret::new("pat-na1-bench"), "t"), t.id.clone()), "cfg"), Arc::new(MemoryRateLimiter::default())), "client");
        let key = or_die(ExternalProperty::parse("attio_record_id"), "prop");
        let mut delays = Latencies::default();
        for i in 0..100 {
            let start = Instant::now();
            let made: serde_json::Value = or_die(or_die(http.post(format!("{}/v2/objects/people/records", attio_sim.url())).bearer_auth("f".repeat(64))
                .json(&json!({"data": {"values": {"email_addresses": [format!("p{i}@bench.example")]}}})).send().await, "create").json().await, "create body");
            let id = made["data"]["id"]["record_id"].as_str().unwrap_or_default().to_owned();
            loop {
                if hubspot.get_by("contacts", &key, &id, &[]).await.is_ok() {
                    delays.push(start.elapsed());
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(30), "person {i} never reached HubSpot");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let _ = stop.send(true);
        let _ = worker.await;
        api.abort();
        let _ = std::fs::remove_dir_all(dir);
        delays
    });

    println!();
    println!("webhook-api (load generator on the same 2 cores)");
    println!(
        "{:<54} {:>12} {:>10} {:>10} {:>8}",
        "phase", "deliveries/s", "p50", "p99", "refused"
    );
    for (backend, sat, all, fresh, paced) in &results {
        println!(
            "{:<54} {:>12.0} {:>10.2?} {:>10.2?} {:>8}",
            format!(
                "{backend}: saturation, {CONNECTIONS} conn., {ROUNDS}x{}s",
                WINDOW.as_secs()
            ),
            sat.rate,
            sat.p50,
            sat.p99,
            sat.refused
        );
        for (when, paced) in [("before", fresh), ("after", paced)] {
            println!(
                "{:<54} {:>12.0} {:>10.2?} {:>10.2?} {:>8}",
                format!(
                    "{backend}: paced at {PACED_RATE}/s, {}s, {when} sat.",
                    PACED_WINDOW.as_secs()
                ),
                paced.rate,
                paced.p50,
                paced.p99,
                paced.refused
            );
            if let Some((p999, max, slow)) = paced.tail {
                println!(
                    "  {backend} paced tail ({when}): p99.9 {p999:.2?}, max {max:.2?}, {slow} of {} answers over 5 ms; {:.1} % of the CPU stolen by the host",
                    PACED_RATE * PACED_WINDOW.as_secs(),
                    paced.stolen * 100.0
                );
            }
            match &paced.floor {
                Some(Ok(floor)) => println!(
                    "  {backend}'s disk floor ({when}; an ideal group-committing intake syncing 8 kB per wake-up at {PACED_RATE}/s for {}s, right after): p50 {:.2?}, p99 {:.2?}, max {:.2?}, {} answers over 5 ms",
                    PACED_WINDOW.as_secs(),
                    floor.percentile(50.0),
                    floor.percentile(99.0),
                    floor.percentile(100.0),
                    floor.count_over(Duration::from_millis(5))
                ),
                Some(Err(why)) => {
                    println!("  {backend}'s disk floor ({when}): not measured: {why}")
                }
                None => {}
            }
            if let Some((started, per_second)) = &paced.slow_by_second {
                let (h, m, s) = started.to_hms();
                println!(
                    "  {backend} answers over 5 ms per second of the phase ({when}; it started {h:02}:{m:02}:{s:02} UTC): {per_second:?}"
                );
            }
        }
        println!("  {backend} saturation rounds, deliveries/s: {all}");
    }
    let grouping = |a: adapter_postgres::IntakeStats, b: adapter_postgres::IntakeStats| {
        let (n, c) = (b.deliveries - a.deliveries, b.commits - a.commits);
        format!(
            "{n} deliveries in {c} transactions ({:.1} per transaction; {} batches split after failing; {} deliveries spent over {:?} in the intake, {} transactions took over {:?} in PostgreSQL, holding {} deliveries)",
            n as f64 / c.max(1) as f64,
            b.split_batches - a.split_batches,
            b.slow_accepts - a.slow_accepts,
            adapter_postgres::SLOW,
            b.slow_commits - a.slow_commits,
            adapter_postgres::SLOW,
            b.slow_commit_deliveries - a.slow_commit_deliveries,
        )
    };
    println!(
        "  PostgreSQL group commit (ADR 0014): paced before {}; saturation {}; paced after {}; largest batch {}, slowest transaction {:.1?}",
        grouping(grouped_start, grouped_before),
        grouping(grouped_before, grouped_saturated),
        grouping(grouped_saturated, grouped_paced),
        grouped_paced.largest_batch,
        grouped_paced.slowest_commit
    );
    println!(
        "  PostgreSQL's WAL ({wal_prepared}) while paced: before sat. {wal_fresh}; after sat. {wal_after}"
    );
    println!(
        "Attio change → HubSpot write, 100 people one at a time: p50 {:.1?}, p99 {:.1?} (debounce 0; the worker's idle poll is 500 ms)",
        delays.percentile(50.0),
        delays.percentile(99.0)
    );
    // What this run stored (a queue of some 100,000 jobs in Redis among them) goes now.
    rt.block_on(bench::remove_leftovers(&pg_url, &redis_url));
}
