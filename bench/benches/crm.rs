//! `cargo xtask bench crm`: a bulk upsert of 10,000 contacts through each external-CRM adapter
//! against its simulator on loopback.
//!
//! 1. Criterion measures one full batch (100 contacts for HubSpot, 200 for Salesforce) with the
//!    limits out of the way.
//! 2. The bulk run: 10,000 new contacts, batches sent 4 at a time, with every limit out of the
//!    way (the raw rate of this client and simulator on this machine) and with the real limits on both sides: HubSpot Professional's 190 requests per rolling 10 s (and 625,000 a
//!    day), Salesforce Enterprise's 100,000 requests per 24 h with the adapter pausing at 90 %.
//!    The ceiling is the lower of what those limits allow for this job (a job of R requests
//!    needs at least ⌊(R−1)/190⌋ × 10 s on HubSpot; the daily allowance only caps Salesforce's
//!    count) and the raw rate; the report gives the real-limits rate as a share of it, the
//!    requests spent and every failed record. Each run uses a fresh simulator and client; the two
//!    kinds alternate which goes first, four times each, and the medians are reported.
//!    `CRM_BENCH_CONTACTS=N` changes the job size (at 50,000, HubSpot's window binds).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use criterion::{Criterion, Throughput};
use domain::field::FieldValue;
use domain::ids::TenantId;
use domain::limits::Quota;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};

/// Contacts per bulk run: 10,000 unless `CRM_BENCH_CONTACTS` says otherwise (a larger run makes
/// HubSpot's 10-second window bind).
fn contacts_per_run() -> usize {
    std::env::var("CRM_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}
const IN_FLIGHT: usize = 4;

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn prop(p: &str) -> ExternalProperty {
    or_die(ExternalProperty::parse(p), "property")
}

/// Contacts `from..from+n` in the CRM's field names.
fn contacts(hubspot: bool, run: &str, from: usize, n: usize) -> Vec<ExternalUpsert> {
    (from..from + n)
        .map(|i| {
            let (email, first, last) = if hubspot {
                ("email", "firstname", "lastname")
            } else {
                ("Email", "FirstName", "LastName")
            };
            ExternalUpsert {
                key: format!("{run}-{i}"),
                properties: BTreeMap::from([
                    (
                        prop(email),
                        FieldValue::text(format!("{run}.{i}@bench.example")),
                    ),
                    (prop(first), FieldValue::text(format!("First{i}"))),
                    (prop(last), FieldValue::text(format!("Last{i}"))),
                ]),
            }
        })
        .collect()
}

fn hubspot_client(url: &str, per_ten_seconds: u32) -> HubSpotClient {
    let mut cfg = or_die(
        HubSpotConfig::new(
            url,
            or_die(Secret::new("pat-na1-bench"), "token"),
            or_die(TenantId::parse("bench"), "tenant"),
        ),
        "config",
    );
    cfg.burst_quota = or_die(
        Quota::new(per_ten_seconds, Duration::from_secs(10)),
        "quota",
    );
    or_die(
        HubSpotClient::new(cfg, Arc::new(MemoryRateLimiter::default())),
        "client",
    )
}

fn salesforce_client(url: &str) -> SalesforceClient {
    let sim = salesforce_sim::SalesforceConfig::default();
    let auth = SalesforceAuth::ClientCredentials {
        client_id: sim.app.client_id,
        client_secret: or_die(Secret::new(sim.app.client_secret), "secret"),
    };
    let mut cfg = or_die(
        SalesforceConfig::new(url, auth, or_die(TenantId::parse("bench"), "tenant")),
        "config",
    );
    cfg.pause_at = 0.9;
    or_die(SalesforceClient::new(cfg), "client")
}

/// What a bulk run achieved.
struct Bulk {
    elapsed: Duration,
    requests: usize,
    failed: Vec<String>,
}

/// Upserts `n_contacts` new contacts in batches of the CRM's maximum, `IN_FLIGHT` at a time.
async fn bulk(crm: Arc<dyn ExternalCrm>, hubspot: bool, run: &str, n_contacts: usize) -> Bulk {
    let object = if hubspot { "contacts" } else { "Contact" };
    let by = prop(if hubspot {
        "attio_record_id"
    } else {
        "Attio_Id__c"
    });
    let size = crm.max_batch();
    let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for from in (0..n_contacts).step_by(size) {
        let batch = contacts(hubspot, run, from, size.min(n_contacts - from));
        let (crm, by, gate) = (crm.clone(), by.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            match crm.upsert_batch(object, &by, &batch).await {
                Ok(outcomes) => outcomes
                    .into_iter()
                    .zip(&batch)
                    .filter_map(|(o, r)| match o {
                        RecordOutcome::Failed { reason, .. } => {
                            Some(format!("{}: {reason}", r.key))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                Err(e) => batch.iter().map(|r| format!("{}: {e}", r.key)).collect(),
            }
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        failed.extend(or_die(done, "task"));
    }
    Bulk {
        elapsed: start.elapsed(),
        requests: n_contacts.div_ceil(size),
        failed,
    }
}

fn main() {
    let rt = or_die(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        "runtime",
    );
    let addr = || or_die("127.0.0.1:0".parse(), "addr");
    let unlimited_hs = || hubspot_sim::HubSpotConfig {
        per_ten_seconds: 1_000_000,
        daily_limit: u64::MAX,
        ..Default::default()
    };
    let unlimited_sf = || salesforce_sim::SalesforceConfig {
        daily_limit: u64::MAX / 2,
        ..Default::default()
    };

    // 1. One batch, limits out of the way.
    let (hs_fast, sf_fast) = rt.block_on(async {
        (
            or_die(
                hubspot_sim::start(addr(), unlimited_hs()).await,
                "hubspot-sim",
            ),
            or_die(
                salesforce_sim::start(addr(), unlimited_sf()).await,
                "salesforce-sim",
            ),
        )
    });
    let hs = hubspot_client(&hs_fast.url(), 1_000_000);
    let sf = salesforce_client(&sf_fast.url());
    let mut crit = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = crit.benchmark_group("crm");
    let mut n = 0usize;
    group.throughput(Throughput::Elements(100));
    group.bench_function("hubspot_upsert_batch_100", |b| {
        b.iter(|| {
            n += 1;
            let batch = contacts(true, "crit", (n % 50) * 100, 100);
            let out = rt.block_on(hs.upsert_batch("contacts", &prop("attio_record_id"), &batch));
            assert!(
                or_die(out, "upsert")
                    .iter()
                    .all(|o| !matches!(o, RecordOutcome::Failed { .. }))
            );
        })
    });
    group.throughput(Throughput::Elements(200));
    group.bench_function("salesforce_upsert_batch_200", |b| {
        b.iter(|| {
            n += 1;
            let batch = contacts(false, "crit", (n % 50) * 200, 200);
            let out = rt.block_on(sf.upsert_batch("Contact", &prop("Attio_Id__c"), &batch));
            assert!(
                or_die(out, "upsert")
                    .iter()
                    .all(|o| !matches!(o, RecordOutcome::Failed { .. }))
            );
        })
    });
    group.finish();
    crit.final_summary();
    drop((hs_fast, sf_fast));

    // 2. The bulk runs: raw and real limits alternately, three times each on fresh simulators
    //    and clients; the medians are reported.
    const REPEATS: usize = 4;
    let n_contacts = contacts_per_run();
    let mut rows = Vec::new();
    for hubspot in [true, false] {
        let name = if hubspot { "HubSpot" } else { "Salesforce" };
        let mut raw_rates = Vec::new();
        let mut real_rates = Vec::new();
        let mut failed = Vec::new();
        let mut usage = String::new();
        let mut requests = 0;
        for rep in 0..REPEATS {
            // Alternate which run goes first: the first run after a start-up is slower.
            for raw_run in if rep % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                let b = rt.block_on(async {
                    match (hubspot, raw_run) {
                        (true, true) => {
                            let s = or_die(hubspot_sim::start(addr(), unlimited_hs()).await, "sim");
                            bulk(
                                Arc::new(hubspot_client(&s.url(), 1_000_000)),
                                true,
                                "raw",
                                n_contacts,
                            )
                            .await
                        }
                        (true, false) => {
                            // HubSpot Professional: 190 per rolling 10 s, 625,000 a day; both sides.
                            let s = or_die(
                                hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
                                    .await,
                                "sim",
                            );
                            usage = "190 req / 10 s".into();
                            bulk(
                                Arc::new(hubspot_client(&s.url(), 190)),
                                true,
                                "real",
                                n_contacts,
                            )
                            .await
                        }
                        (false, true) => {
                            let s =
                                or_die(salesforce_sim::start(addr(), unlimited_sf()).await, "sim");
                            bulk(
                                Arc::new(salesforce_client(&s.url())),
                                false,
                                "raw",
                                n_contacts,
                            )
                            .await
                        }
                        (false, false) => {
                            // Salesforce Enterprise (no extra licences): 100,000 per 24 h; pause at 90 %.
                            let s = or_die(
                                salesforce_sim::start(
                                    addr(),
                                    salesforce_sim::SalesforceConfig::default(),
                                )
                                .await,
                                "sim",
                            );
                            let c = salesforce_client(&s.url());
                            let b = bulk(Arc::new(c.clone()), false, "real", n_contacts).await;
                            usage = c
                                .api_usage()
                                .map(|u| format!("{}/{} daily", u.used, u.max))
                                .unwrap_or_default();
                            b
                        }
                    }
                });
                let rate = n_contacts as f64 / b.elapsed.as_secs_f64();
                if raw_run {
                    raw_rates.push(rate);
                } else {
                    real_rates.push(rate);
                    requests = b.requests;
                }
                failed.extend(b.failed);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n.is_multiple_of(2) {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            } else {
                v[n / 2]
            }
        };
        let (raw, real) = (median(&mut raw_rates), median(&mut real_rates));
        let limit_floor = if hubspot {
            Duration::from_secs(10 * ((requests as u64).saturating_sub(1) / 190))
        } else {
            Duration::ZERO
        };
        let limit_rate = if limit_floor.is_zero() {
            f64::INFINITY
        } else {
            n_contacts as f64 / limit_floor.as_secs_f64()
        };
        let ceiling = limit_rate.min(raw);
        for f in failed.iter().take(5) {
            println!("  failed: {f}");
        }
        rows.push((
            name,
            raw,
            limit_rate,
            ceiling,
            real,
            requests,
            failed.len(),
            usage,
        ));
    }
    println!();
    println!(
        "bulk upsert of {n_contacts} contacts, {IN_FLIGHT} batches in flight, median of {REPEATS} runs"
    );
    println!(
        "{:<11} {:>12} {:>14} {:>12} {:>16} {:>9} {:>8} {:>7}  usage",
        "crm",
        "raw rec/s",
        "limits allow",
        "ceiling",
        "real-limit rec/s",
        "share",
        "requests",
        "failed"
    );
    for (name, raw, allow, ceiling, real, requests, failed, usage) in rows {
        let allow = if allow.is_finite() {
            format!("{allow:.0}")
        } else {
            "unbounded".into()
        };
        println!(
            "{name:<11} {raw:>12.0} {allow:>14} {ceiling:>12.0} {real:>16.0} {:>8.1}% {requests:>8} {failed:>7}  {usage}",
            100.0 * real / ceiling
        );
    }
}
