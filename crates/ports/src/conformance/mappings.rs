//! The mapping-store contract: versions in order, optimistic concurrency, per tenant.

use std::sync::Arc;

use domain::mapping_doc::{MappingDocument, TargetDoc};
use time::{Duration, OffsetDateTime};

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::MappingStore;

/// A document mapping `people` to `crm-a`'s `contacts` on `email`, with `n` in its key.
pub fn document(n: usize) -> MappingDocument {
    let fields = ok(
        serde_json::from_value(serde_json::json!([
            {"attio": {"attribute": "email_addresses"}, "external": "email", "rule": "latest_wins"}
        ])),
        "fields",
    );
    MappingDocument {
        targets: vec![TargetDoc {
            attio_object: "people".into(),
            system: "crm-a".into(),
            external_object: "contacts".into(),
            id_property: format!("attio_id_{n}"),
            fields,
            on_delete: None,
            on_crm_delete: Some("hold".into()),
            match_on: None,
            create_with: Default::default(),
        }],
    }
}

pub async fn versions_are_kept_in_order_and_a_stale_change_is_refused<S: MappingStore>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("m"), fresh_tenant("m"));
    let at = OffsetDateTime::UNIX_EPOCH + Duration::days(500);
    assert_eq!(ok(s.current(&t).await, "current"), None);
    let v1 = ok(s.put(&t, &document(1), None, "ops@acme", at).await, "first");
    assert_eq!((v1.version, v1.changed_by.as_str()), (1, "ops@acme"));
    assert!(
        matches!(
            s.put(&t, &document(9), None, "late", at).await,
            Err(PortError::Stale(_))
        ),
        "a first version exists"
    );
    let v2 = ok(
        s.put(&t, &document(2), Some(1), "ada", at + Duration::minutes(1))
            .await,
        "second",
    );
    assert_eq!(v2.version, 2);
    for expected in [Some(1), Some(5)] {
        assert!(
            matches!(
                s.put(&t, &document(9), expected, "late", at).await,
                Err(PortError::Stale(_))
            ),
            "expected {expected:?} is not the newest"
        );
    }
    let Some(current) = ok(s.current(&t).await, "current") else {
        panic!("conformance: a stored version must be current");
    };
    assert_eq!(current.document, document(2), "the document round-trips");
    assert_eq!(current.changed_at, at + Duration::minutes(1));
    let all = ok(s.versions(&t, 10).await, "versions");
    assert_eq!(
        all.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    assert_eq!(ok(s.versions(&t, 1).await, "versions").len(), 1);
    assert_eq!(ok(s.current(&other).await, "other"), None, "per tenant");
    assert!(ok(s.versions(&other, 10).await, "other").is_empty());
}

#[macro_export]
macro_rules! mapping_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            mappings,
            $factory,
            [versions_are_kept_in_order_and_a_stale_change_is_refused]
        );
    };
}
