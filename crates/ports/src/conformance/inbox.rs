//! The inbox contract: dedupe, store and enqueue together; quarantine; tenant isolation.
//!
//! The factory returns the inbox and the queue it enqueues into.

use std::sync::Arc;
use std::time::Duration;

use domain::idempotency::IdempotencyKey;
use domain::ids::{SystemId, TenantId};
use domain::job::{JobKey, NewJob};
use serde_json::json;
use time::OffsetDateTime;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::queue::{EnqueueOutcome, JobQueue, ReserveFilter};
use crate::stores::{Accepted, Erased, InboundDelivery, Inbox, TenantEraser};

const DAYS: Duration = Duration::from_secs(4 * 24 * 3600);

fn delivery(t: &TenantId, key: &str, quarantine: Option<&str>) -> InboundDelivery {
    InboundDelivery {
        tenant: t.clone(),
        source: SystemId::attio(),
        key: ok(IdempotencyKey::from_provider(key), "key"),
        body: format!(r#"{{"webhook_id":"w","key":"{key}"}}"#).into_bytes(),
        received_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        quarantine: quarantine.map(str::to_owned),
    }
}

fn job(t: &TenantId, n: u64) -> NewJob {
    NewJob::new(
        ok(JobKey::new(t.clone(), "people", &format!("r{n}")), "key"),
        json!({ "n": n }),
    )
}

pub async fn accepts_once_and_enqueues_with_the_delivery<I: Inbox, Q: JobQueue>(
    (inbox, queue): (Arc<I>, Arc<Q>),
) {
    let t = fresh_tenant("in");
    let d = delivery(&t, "k1", None);
    let first = ok(inbox.accept(&d, Some(job(&t, 1)), DAYS).await, "accept");
    let Accepted::Stored { id, job: Some(_) } = first else {
        panic!("a new delivery must be stored with its job: {first:?}");
    };
    assert_eq!(
        ok(inbox.get(&t, id).await, "get").delivery,
        d,
        "the delivery round-trips byte for byte"
    );
    assert_eq!(
        ok(inbox.accept(&d, Some(job(&t, 2)), DAYS).await, "accept"),
        Accepted::Duplicate
    );
    let r = ok(
        queue
            .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
            .await,
        "reserve",
    )
    .unwrap_or_else(|| panic!("the accepted delivery's job must be in the queue"));
    assert_eq!(r.job.payloads, vec![json!({"n": 1})]);
    ok(queue.ack(&r).await, "ack");
    assert!(
        ok(
            queue
                .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
                .await,
            "reserve"
        )
        .is_none(),
        "a duplicate must not enqueue"
    );
}

pub async fn deliveries_for_one_entity_fold_into_its_pending_job<I: Inbox, Q: JobQueue>(
    (inbox, queue): (Arc<I>, Arc<Q>),
) {
    let t = fresh_tenant("in");
    let same = |n| {
        NewJob::new(
            ok(JobKey::new(t.clone(), "people", "r"), "key"),
            json!({ "n": n }),
        )
    };
    let first = ok(
        inbox
            .accept(&delivery(&t, "a", None), Some(same(1)), DAYS)
            .await,
        "accept",
    );
    let second = ok(
        inbox
            .accept(&delivery(&t, "b", None), Some(same(2)), DAYS)
            .await,
        "accept",
    );
    let (
        Accepted::Stored {
            job: Some(EnqueueOutcome::Enqueued(id)),
            ..
        },
        Accepted::Stored {
            job: Some(EnqueueOutcome::Coalesced(folded)),
            ..
        },
    ) = (first, second)
    else {
        panic!("the second delivery must fold into the first's job: {first:?}, {second:?}");
    };
    assert_eq!(id, folded);
    let r = ok(
        queue
            .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
            .await,
        "reserve",
    )
    .unwrap_or_else(|| panic!("the job must be deliverable"));
    assert_eq!(r.job.id, id);
    assert_eq!(r.job.payloads, vec![json!({"n": 1}), json!({"n": 2})]);
}

/// Deliveries arriving at once: each key is stored once, and every accepted delivery's payload is
/// in the queue exactly once.
pub async fn concurrent_deliveries_are_each_taken_once<
    I: Inbox + 'static,
    Q: JobQueue + 'static,
>(
    (inbox, queue): (Arc<I>, Arc<Q>),
) {
    let t = fresh_tenant("in");
    let mut tasks = Vec::new();
    for n in 0..60u64 {
        // 20 keys, each sent three times; all about one entity.
        let (inbox, t) = (inbox.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let d = delivery(&t, &format!("k{}", n % 20), None);
            let j = NewJob::new(
                ok(JobKey::new(t.clone(), "people", "r"), "key"),
                json!({ "n": n % 20 }),
            );
            ok(inbox.accept(&d, Some(j), DAYS).await, "accept")
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if matches!(ok(task.await, "task"), Accepted::Stored { .. }) {
            stored += 1;
        }
    }
    assert_eq!(stored, 20, "each of the 20 keys is stored once");
    let mut seen = Vec::new();
    while let Some(r) = ok(
        queue
            .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
            .await,
        "reserve",
    ) {
        seen.extend(r.job.payloads.iter().filter_map(|p| p["n"].as_u64()));
        ok(queue.ack(&r).await, "ack");
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..20).collect::<Vec<u64>>(),
        "every accepted payload once"
    );
}

pub async fn quarantine_is_stored_without_a_job<I: Inbox, Q: JobQueue>(
    (inbox, queue): (Arc<I>, Arc<Q>),
) {
    let t = fresh_tenant("in");
    let mut d = delivery(&t, "bad", Some("body is not JSON"));
    // A quarantined body may be anything; it is kept byte for byte.
    d.body = vec![0xff, 0x00, 0xfe, b'{'];
    assert!(matches!(
        ok(inbox.accept(&d, None, DAYS).await, "accept"),
        Accepted::Stored { job: None, .. }
    ));
    let q = ok(inbox.quarantined(&t, 10).await, "quarantined");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].delivery, d);
    assert!(
        ok(
            queue
                .reserve("c", Duration::from_secs(30), &ReserveFilter::all())
                .await,
            "reserve"
        )
        .is_none()
    );
    ok(
        inbox
            .accept(&delivery(&t, "good", None), Some(job(&t, 3)), DAYS)
            .await,
        "accept",
    );
    assert_eq!(
        ok(inbox.quarantined(&t, 10).await, "quarantined").len(),
        1,
        "only quarantined deliveries are listed"
    );
}

pub async fn tenants_are_isolated<I: Inbox, Q: JobQueue>((inbox, _queue): (Arc<I>, Arc<Q>)) {
    let (a, b) = (fresh_tenant("ina"), fresh_tenant("inb"));
    let Accepted::Stored { id, .. } = ok(
        inbox
            .accept(&delivery(&a, "k", Some("x")), None, DAYS)
            .await,
        "accept",
    ) else {
        panic!("stored");
    };
    assert!(
        matches!(inbox.get(&b, id).await, Err(PortError::NotFound(_))),
        "B must not read A's delivery"
    );
    assert!(ok(inbox.quarantined(&b, 10).await, "quarantined").is_empty());
    assert!(
        matches!(
            ok(
                inbox.accept(&delivery(&b, "k", None), None, DAYS).await,
                "accept"
            ),
            Accepted::Stored { .. }
        ),
        "keys are per tenant"
    );
}

/// Deliveries received before the cutoff whose claims have expired are forgotten, claims and all;
/// a claim still running keeps rejecting its key, and younger deliveries stay. The deliveries are
/// dated decades before every other test's, so a purge cannot reach theirs.
pub async fn purge_forgets_deliveries_past_their_retention<I: Inbox, Q: JobQueue>(
    (inbox, _queue): (Arc<I>, Arc<Q>),
) {
    let t = fresh_tenant("in");
    let day = |n: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::days(n);
    let at = |n: i64, d: InboundDelivery| InboundDelivery {
        received_at: day(n),
        ..d
    };
    let short = Duration::from_secs(1);
    let mut old = Vec::new();
    for d in [
        at(10_000, delivery(&t, "old-1", None)),
        at(10_000, delivery(&t, "old-2", Some("unreadable"))),
    ] {
        let Accepted::Stored { id, .. } = ok(inbox.accept(&d, None, short).await, "accept") else {
            panic!("a new key must be stored");
        };
        old.push(id);
    }
    // Received before the cutoff too, but its claim runs for days.
    let held = at(10_000, delivery(&t, "held", None));
    ok(inbox.accept(&held, None, DAYS).await, "accept");
    let young = at(10_002, delivery(&t, "young", Some("unreadable")));
    let Accepted::Stored { id: young_id, .. } =
        ok(inbox.accept(&young, None, DAYS).await, "accept")
    else {
        panic!("a new key must be stored");
    };
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut purged = 0;
    loop {
        let n = ok(inbox.purge(day(10_001), 2).await, "purge");
        assert!(n <= 2, "a purge forgets at most its limit, not {n}");
        purged += n;
        if n < 2 {
            break;
        }
    }
    assert!(
        purged <= 3,
        "only the three deliveries before the cutoff may go, not {purged}"
    );
    for id in old {
        assert!(
            matches!(inbox.get(&t, id).await, Err(PortError::NotFound(_))),
            "a delivery past its retention is forgotten"
        );
    }
    assert_eq!(
        ok(inbox.get(&t, young_id).await, "get").delivery,
        young,
        "a delivery after the cutoff stays"
    );
    assert_eq!(
        ok(inbox.quarantined(&t, 10).await, "quarantined")
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![young_id],
        "the quarantine lists what is left"
    );
    assert!(
        matches!(
            ok(
                inbox.accept(&delivery(&t, "old-1", None), None, DAYS).await,
                "accept"
            ),
            Accepted::Stored { .. }
        ),
        "an expired key is accepted again"
    );
    assert_eq!(
        ok(inbox.accept(&held, None, DAYS).await, "accept"),
        Accepted::Duplicate,
        "a claim still running keeps its key"
    );
}

/// Erasing a tenant (through every store of the pair; one store erasing twice finds nothing the
/// second time) forgets its deliveries, their claims and its jobs, and nothing of another tenant.
pub async fn erasing_a_tenant_forgets_its_deliveries_claims_and_jobs<
    I: Inbox + TenantEraser,
    Q: JobQueue + TenantEraser,
>(
    (inbox, queue): (Arc<I>, Arc<Q>),
) {
    let (a, b) = (fresh_tenant("era"), fresh_tenant("erb"));
    let mut ids = Vec::new();
    for (t, key, n) in [(&a, "k1", 1), (&a, "k2", 2), (&b, "k1", 3)] {
        let Accepted::Stored { id, .. } = ok(
            inbox
                .accept(&delivery(t, key, None), Some(job(t, n)), DAYS)
                .await,
            "accept",
        ) else {
            panic!("stored");
        };
        ids.push(id);
    }
    let mut erased = Erased::new();
    for part in [
        ok(inbox.erase_tenant(&a).await, "erase"),
        ok(queue.erase_tenant(&a).await, "erase"),
    ] {
        for (what, n) in part {
            *erased.entry(what).or_default() += n;
        }
    }
    assert_eq!(
        (erased.get("deliveries"), erased.get("jobs")),
        (Some(&2), Some(&2)),
        "{erased:?}"
    );
    assert!(matches!(
        inbox.get(&a, ids[0]).await,
        Err(PortError::NotFound(_))
    ));
    let only = |t: &TenantId| {
        let mut f = ReserveFilter::all();
        f.tenants.insert(t.clone());
        f
    };
    let lease = Duration::from_secs(30);
    assert!(ok(queue.reserve("c", lease, &only(&a)).await, "reserve").is_none());
    assert!(ok(inbox.get(&b, ids[2]).await, "get").delivery.tenant == b);
    assert!(
        ok(queue.reserve("c", lease, &only(&b)).await, "reserve").is_some(),
        "another tenant keeps its job"
    );
    assert!(
        matches!(
            ok(
                inbox.accept(&delivery(&a, "k1", None), None, DAYS).await,
                "accept"
            ),
            Accepted::Stored { .. }
        ),
        "the erased tenant's keys are free again"
    );
}

#[macro_export]
macro_rules! inbox_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            inbox,
            $factory,
            [
                accepts_once_and_enqueues_with_the_delivery,
                deliveries_for_one_entity_fold_into_its_pending_job,
                concurrent_deliveries_are_each_taken_once,
                quarantine_is_stored_without_a_job,
                tenants_are_isolated,
                purge_forgets_deliveries_past_their_retention,
                erasing_a_tenant_forgets_its_deliveries_claims_and_jobs,
            ]
        );
    };
}
