//! The idempotency-store contract: first claim wins, once, per tenant, until retention ends.

use std::sync::Arc;
use std::time::Duration;

use domain::idempotency::IdempotencyKey;

use super::{fresh_tenant, ok};
use crate::stores::{Claim, IdempotencyStore};

const DAYS: Duration = Duration::from_secs(4 * 24 * 3600);

fn key(s: &str) -> IdempotencyKey {
    ok(IdempotencyKey::from_provider(s), "idempotency key")
}

pub async fn first_claim_wins<S: IdempotencyStore>(s: Arc<S>) {
    let t = fresh_tenant("i");
    assert_eq!(ok(s.claim(&t, &key("d1"), DAYS).await, "claim"), Claim::New);
    assert_eq!(
        ok(s.claim(&t, &key("d1"), DAYS).await, "claim"),
        Claim::Duplicate
    );
    assert_eq!(ok(s.claim(&t, &key("d2"), DAYS).await, "claim"), Claim::New);
    assert_eq!(
        ok(s.claim(&fresh_tenant("i"), &key("d1"), DAYS).await, "claim"),
        Claim::New,
        "keys are per tenant"
    );
}

pub async fn claims_expire_after_retention<S: IdempotencyStore>(s: Arc<S>) {
    let t = fresh_tenant("i");
    assert_eq!(
        ok(
            s.claim(&t, &key("d1"), Duration::from_millis(100)).await,
            "claim"
        ),
        Claim::New
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        ok(s.claim(&t, &key("d1"), DAYS).await, "claim"),
        Claim::New,
        "an expired claim is forgotten"
    );
}

pub async fn concurrent_claims_have_one_winner<S: IdempotencyStore + 'static>(s: Arc<S>) {
    let t = fresh_tenant("i");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, t) = (s.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            ok(s.claim(&t, &key("same"), DAYS).await, "claim")
        }));
    }
    let mut wins = 0;
    for task in tasks {
        if ok(task.await, "task") == Claim::New {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent claim may win");
}

#[macro_export]
macro_rules! idempotency_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            idempotency,
            $factory,
            [
                first_claim_wins,
                claims_expire_after_retention,
                concurrent_claims_have_one_winner,
            ]
        );
    };
}
