//! `cargo xtask bench queue`: enqueue and reserve+ack on every queue backend.
//!
//! Criterion drives warm-up and sampling; every timed operation's latency is also recorded, and a
//! table of single-client throughput and p50/p99 latency per backend is printed at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{Latencies, Queue, backends};
use criterion::{Criterion, Throughput};
use domain::ids::TenantId;
use domain::job::{JobKey, NewJob};
use ports::queue::ReserveFilter;
use serde_json::json;

type Recorded = Arc<Mutex<BTreeMap<(String, &'static str), Latencies>>>;

fn job(tenant: &TenantId, n: u64) -> NewJob {
    match JobKey::new(tenant.clone(), "people", &format!("r{n}")) {
        Ok(key) => NewJob::new(key, json!({ "event_type": "record.updated", "n": n })),
        Err(e) => panic!("bench job key: {e}"),
    }
}

async fn drain(q: &dyn Queue) {
    while let Ok(Some(r)) = q
        .reserve("drain", Duration::from_secs(60), &ReserveFilter::all())
        .await
    {
        let _ = q.ack(&r).await;
    }
}

fn record(rec: &Recorded, backend: &str, op: &'static str, d: Duration) {
    if let Ok(mut m) = rec.lock() {
        m.entry((backend.to_owned(), op)).or_default().push(d);
    }
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    let backends = match rt.block_on(backends()) {
        Ok(b) => b,
        Err(e) => panic!("the queue benchmark needs its backends: {e}"),
    };
    let tenant = match TenantId::parse("bench") {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let recorded: Recorded = Arc::default();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(1));
    for (name, q) in &backends {
        let mut counter = 0u64;
        group.bench_function(format!("{name}/enqueue"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        counter += 1;
                        let start = Instant::now();
                        if let Err(e) = q.enqueue(job(&tenant, counter)).await {
                            panic!("{name} enqueue: {e}");
                        }
                        let d = start.elapsed();
                        record(&recorded, name, "enqueue", d);
                        total += d;
                    }
                    drain(q.as_ref()).await;
                    total
                })
            })
        });
        group.bench_function(format!("{name}/reserve+ack"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    for _ in 0..iters {
                        counter += 1;
                        if let Err(e) = q.enqueue(job(&tenant, counter)).await {
                            panic!("{name} enqueue: {e}");
                        }
                    }
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let r = match q
                            .reserve("bench", Duration::from_secs(60), &ReserveFilter::all())
                            .await
                        {
                            Ok(Some(r)) => r,
                            other => panic!("{name} reserve: {other:?}"),
                        };
                        if let Err(e) = q.ack(&r).await {
                            panic!("{name} ack: {e}");
                        }
                        let d = start.elapsed();
                        record(&recorded, name, "reserve+ack", d);
                        total += d;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    c.final_summary();

    let Ok(table) = recorded.lock() else { return };
    println!();
    println!(
        "queue benchmark: one client, back-to-back operations, this machine ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<10} {:<12} {:>10} {:>10} {:>10} {:>9}",
        "backend", "operation", "jobs/s", "p50", "p99", "samples"
    );
    for ((backend, op), l) in table.iter() {
        println!(
            "{:<10} {:<12} {:>10.0} {:>10} {:>10} {:>9}",
            backend,
            op,
            l.per_second(),
            format!("{:.1?}", l.percentile(50.0)),
            format!("{:.1?}", l.percentile(99.0)),
            l.len()
        );
    }
}
