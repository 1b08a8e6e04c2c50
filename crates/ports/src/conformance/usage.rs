//! The usage contract: counts add up per tenant, provider and day, and stay with their tenant.

use std::sync::Arc;

use time::macros::date;

use super::{fresh_tenant, ok};
use crate::stores::UsageLog;

pub async fn counts_add_up_per_tenant_provider_and_day<S: UsageLog>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("u"), fresh_tenant("u"));
    let (day, next) = (date!(2026 - 12 - 07), date!(2026 - 12 - 08));
    let n = |p: &str, c: u64| (p.to_owned(), c);
    assert!(ok(s.on_day(&t, day).await, "on_day").is_empty());
    ok(s.add(&t, day, &[n("crm-b", 2), n("attio", 1)]).await, "add");
    ok(s.add(&t, day, &[n("crm-b", 3)]).await, "add again");
    ok(s.add(&t, day, &[]).await, "add nothing");
    ok(s.add(&t, next, &[n("crm-b", 7)]).await, "add next day");
    ok(s.add(&other, day, &[n("crm-b", 11)]).await, "add other");
    assert_eq!(
        ok(s.on_day(&t, day).await, "on_day"),
        vec![n("attio", 1), n("crm-b", 5)],
        "one day's totals by provider, without the next day's or another tenant's"
    );
    assert_eq!(ok(s.on_day(&t, next).await, "on_day"), vec![n("crm-b", 7)]);
}

pub async fn concurrent_adds_are_all_counted<S: UsageLog + 'static>(s: Arc<S>) {
    let t = fresh_tenant("u");
    let day = date!(2026 - 12 - 07);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (s, t) = (s.clone(), t.clone());
        tasks.spawn(async move { s.add(&t, day, &[("crm-a".to_owned(), 1)]).await });
    }
    while let Some(r) = tasks.join_next().await {
        ok(ok(r, "join"), "add");
    }
    assert_eq!(
        ok(s.on_day(&t, day).await, "on_day"),
        vec![("crm-a".to_owned(), 20)]
    );
}

#[macro_export]
macro_rules! usage_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            usage,
            $factory,
            [
                counts_add_up_per_tenant_provider_and_day,
                concurrent_adds_are_all_counted
            ]
        );
    };
}
