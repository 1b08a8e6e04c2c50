//! `cargo xtask bench attio`: the Attio adapter against attio-sim on loopback.
//!
//! 1. Criterion measures single-client `get_record` and `assert_record` with budgets out of the
//!    way; every timed call's latency is kept for p50/p99.
//! 2. A burst of 1,000 asserts with Attio's real write limit on both sides (the adapter's budget
//!    and the simulator's, 25/s) reports the share of the budget achieved and any failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_memory::MemoryRateLimiter;
use attio_sim::SimConfig;
use bench::Latencies;
use criterion::{Criterion, Throughput};
use domain::ids::{AttributeSlug, ObjectRef, TenantId};
use domain::limits::Quota;
use domain::tenant::Secret;
use domain::value::AttributeType;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::AttioRecords;
use serde_json::json;

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn client(url: &str, write_per_second: u32, read_per_second: u32) -> AttioClient {
    let mut cfg = or_die(
        AttioConfig::new(
            url,
            or_die(Secret::new("b".repeat(64)), "token"),
            or_die(TenantId::parse("bench"), "tenant"),
        ),
        "config",
    );
    cfg.write_quota = or_die(Quota::per_second(write_per_second), "quota");
    cfg.read_quota = or_die(Quota::per_second(read_per_second), "quota");
    or_die(
        AttioClient::new(cfg, Arc::new(MemoryRateLimiter::default())),
        "client",
    )
}

fn assert_write(n: u64) -> RecordWrite {
    let email = or_die(
        WriteValue::from_json(
            &AttributeType::EmailAddress,
            &json!(format!("p{n}@bench.example")),
        ),
        "email",
    );
    RecordWrite::new()
        .set(
            or_die(AttributeSlug::parse("email_addresses"), "slug"),
            vec![email],
        )
        .set(
            or_die(AttributeSlug::parse("job_title"), "slug"),
            vec![WriteValue::Text(format!("title {n}"))],
        )
}

fn main() {
    let rt = or_die(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        "runtime",
    );
    let people = or_die(ObjectRef::parse("people"), "object");
    let matching = or_die(AttributeSlug::parse("email_addresses"), "slug");

    // 1. Latency and throughput with the budgets out of the way.
    let fast = rt.block_on(async {
        or_die(
            attio_sim::start(
                or_die("127.0.0.1:0".parse(), "addr"),
                SimConfig {
                    reads_per_second: 1_000_000,
                    writes_per_second: 1_000_000,
                    ..SimConfig::default()
                },
            )
            .await,
            "sim",
        )
    });
    let c = client(&fast.url(), 1_000_000, 1_000_000);
    let seeded =
        rt.block_on(async { or_die(c.create_record(&people, &assert_write(0)).await, "seed") });
    let mut crit = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = crit.benchmark_group("attio");
    group.throughput(Throughput::Elements(1));
    let mut gets = Latencies::default();
    group.bench_function("get_record", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    or_die(
                        c.get_record(&people, seeded.id.record_id).await,
                        "get_record",
                    );
                    let d = start.elapsed();
                    gets.push(d);
                    total += d;
                }
                total
            })
        })
    });
    let mut asserts = Latencies::default();
    let mut n = 1u64;
    group.bench_function("assert_record", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let w = assert_write(n % 500);
                    let start = Instant::now();
                    or_die(
                        c.assert_record(&people, &matching, &w).await,
                        "assert_record",
                    );
                    let d = start.elapsed();
                    asserts.push(d);
                    total += d;
                }
                total
            })
        })
    });
    group.finish();
    crit.final_summary();
    let latencies = [("get_record", gets), ("assert_record", asserts)];

    // 2. A burst of 1,000 asserts under Attio's real write limit, enforced on both sides.
    const BURST: u64 = 1_000;
    const LIMIT: u32 = 25;
    let real = rt.block_on(async {
        or_die(
            attio_sim::start(or_die("127.0.0.1:0".parse(), "addr"), SimConfig::default()).await,
            "sim",
        )
    });
    let limited = client(&real.url(), LIMIT, 100);
    let (elapsed, failures) = rt.block_on(async {
        let start = Instant::now();
        let mut failures = 0u64;
        let mut tasks = Vec::new();
        // Four concurrent writers share the one budget, as a worker pool would.
        for w in 0..4u64 {
            let c = limited.clone();
            let (people, matching) = (people.clone(), matching.clone());
            tasks.push(tokio::spawn(async move {
                let mut failed = 0u64;
                for i in (w..BURST).step_by(4) {
                    if c.assert_record(&people, &matching, &assert_write(i))
                        .await
                        .is_err()
                    {
                        failed += 1;
                    }
                }
                failed
            }));
        }
        for t in tasks {
            failures += t.await.unwrap_or(BURST);
        }
        (start.elapsed(), failures)
    });
    let achieved = BURST as f64 / elapsed.as_secs_f64();

    println!();
    println!(
        "attio benchmark: adapter + attio-sim on loopback, this machine ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>9}",
        "operation", "req/s", "p50", "p99", "samples"
    );
    for (op, lat) in &latencies {
        println!(
            "{:<16} {:>10.0} {:>10} {:>10} {:>9}",
            op,
            lat.per_second(),
            format!("{:.1?}", lat.percentile(50.0)),
            format!("{:.1?}", lat.percentile(99.0)),
            lat.len()
        );
    }
    println!(
        "burst of {BURST} asserts at Attio's {LIMIT}/s write limit: {:.1?}, {achieved:.2} writes/s = {:.1}% of the budget, {failures} failed",
        elapsed,
        100.0 * achieved / f64::from(LIMIT)
    );
    drop((fast, real));
}
