//! The rate-limiter contract: bursts up to the limit, then a wait that is enough, per key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use domain::ids::{SystemId, TenantId};
use domain::limits::{Access, BudgetKey, Quota};

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::limiter::{RateDecision, RateLimiter};

fn budget(t: &TenantId, access: Access) -> BudgetKey {
    BudgetKey {
        tenant: t.clone(),
        system: SystemId::attio(),
        access,
    }
}

pub async fn bursts_up_to_the_limit_then_waits<L: RateLimiter>(l: Arc<L>) {
    let t = fresh_tenant("r");
    let quota = ok(Quota::per_second(5), "quota");
    let key = budget(&t, Access::Write);
    for i in 0..5 {
        assert_eq!(
            ok(l.try_acquire(&key, quota, 1).await, "acquire"),
            RateDecision::Allowed,
            "request {i} of the burst"
        );
    }
    let wait = match ok(l.try_acquire(&key, quota, 1).await, "acquire") {
        RateDecision::Wait(d) => d,
        RateDecision::Allowed => panic!("the sixth request in a burst of 5/s must wait"),
    };
    assert!(
        wait > Duration::ZERO && wait <= quota.period(),
        "the wait must be positive and at most one period: {wait:?}"
    );
    assert_eq!(
        ok(
            l.try_acquire(&budget(&t, Access::Read), quota, 1).await,
            "acquire"
        ),
        RateDecision::Allowed,
        "another budget is independent"
    );
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(
        ok(l.try_acquire(&key, quota, 1).await, "acquire"),
        RateDecision::Allowed,
        "after the wait the request fits"
    );
}

pub async fn impossible_costs_are_invalid<L: RateLimiter>(l: Arc<L>) {
    let t = fresh_tenant("r");
    let quota = ok(Quota::per_second(5), "quota");
    assert!(matches!(
        l.try_acquire(&budget(&t, Access::Read), quota, 6).await,
        Err(PortError::Invalid(_))
    ));
    assert!(matches!(
        l.try_acquire(&budget(&t, Access::Read), quota, 0).await,
        Err(PortError::Invalid(_))
    ));
}

/// Concurrent callers never get more than the quota allows over the time they ran.
pub async fn concurrent_callers_share_one_budget<L: RateLimiter + 'static>(l: Arc<L>) {
    let t = fresh_tenant("r");
    let quota = ok(Quota::per_second(20), "quota");
    let allowed = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (l, t, allowed) = (l.clone(), t.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                if ok(
                    l.try_acquire(&budget(&t, Access::Write), quota, 1).await,
                    "acquire",
                ) == RateDecision::Allowed
                {
                    allowed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        ok(task.await, "task");
    }
    let elapsed = start.elapsed();
    let refill = (elapsed.as_secs_f64() / quota.interval().as_secs_f64()).ceil() as u32;
    let got = allowed.load(Ordering::SeqCst);
    assert!(got >= 20, "the full burst must be granted, got {got}");
    assert!(
        got <= 20 + refill,
        "granted {got} in {elapsed:?}: more than the budget of 20 + {refill}"
    );
}

#[macro_export]
macro_rules! limiter_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            limiter,
            $factory,
            [
                bursts_up_to_the_limit_then_waits,
                impossible_costs_are_invalid,
                concurrent_callers_share_one_budget,
            ]
        );
    };
}
