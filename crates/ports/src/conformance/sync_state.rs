//! The sync-state contract: checkpoints round-trip, versions are optimistic, tenants isolated.

use std::sync::Arc;

use domain::ids::{ObjectSlug, SystemId};
use domain::sync_state::SyncState;
use time::OffsetDateTime;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::SyncStateStore;

pub async fn checkpoints_round_trip_with_versions<S: SyncStateStore>(s: Arc<S>) {
    let t = fresh_tenant("s");
    let (people, crm) = (
        ok(ObjectSlug::parse("people"), "slug"),
        ok(SystemId::parse("crm-a"), "system"),
    );
    assert!(ok(s.get(&t, &people, &crm).await, "get").is_none());
    let now = OffsetDateTime::UNIX_EPOCH;
    let mut state = SyncState::new(t.clone(), people.clone(), crm.clone(), now);
    ok(state.start(now), "start");
    let mut saved = ok(s.save(&state).await, "save");
    assert_eq!(saved.version, 1);
    ok(saved.page_done(500, 12, now), "page");
    let saved = ok(s.save(&saved).await, "save checkpoint");
    assert_eq!(saved.version, 2);
    let read = ok(s.get(&t, &people, &crm).await, "get").unwrap_or_else(|| panic!("saved state"));
    assert_eq!(read, saved, "the checkpoint round-trips");
    assert!(
        matches!(s.save(&state).await, Err(PortError::Stale(_))),
        "a stale version is a lost race"
    );
    assert_eq!(ok(s.list(&t).await, "list").len(), 1);
    let other = fresh_tenant("s");
    assert!(
        ok(s.get(&other, &people, &crm).await, "get").is_none(),
        "tenants are isolated"
    );
    assert!(ok(s.list(&other).await, "list").is_empty());
}

#[macro_export]
macro_rules! sync_state_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(sync_state, $factory, [checkpoints_round_trip_with_versions]);
    };
}
