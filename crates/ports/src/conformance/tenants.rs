//! The tenant-store contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::ids::{SystemId, TenantId};
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use time::OffsetDateTime;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::TenantStore;

fn tenant(id: &TenantId) -> Tenant {
    Tenant {
        id: id.clone(),
        name: "Acme".into(),
        attio: AttioCredentials {
            api_token: ok(Secret::new("a".repeat(64)), "secret"),
            webhook_secrets: vec![ok(Secret::new("whsec-current"), "secret")],
        },
        crms: vec![CrmConnection {
            system: ok(SystemId::parse("crm-a"), "system"),
            settings: BTreeMap::from([("portal_id".to_owned(), "123".to_owned())]),
            secrets: BTreeMap::from([(
                "access_token".to_owned(),
                ok(Secret::new("pat-na1-xyz"), "secret"),
            )]),
        }],
        api_keys: vec![domain::tenant::ApiKeyDigest::of("ask_conformance")],
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

pub async fn create_get_update_delete<S: TenantStore>(s: Arc<S>) {
    let id = fresh_tenant("t");
    assert!(matches!(s.get(&id).await, Err(PortError::NotFound(_))));
    let t = tenant(&id);
    ok(s.create(&t).await, "create");
    assert!(
        matches!(s.create(&t).await, Err(PortError::Conflict(_))),
        "an id is created once"
    );
    assert_eq!(
        ok(s.get(&id).await, "get"),
        t,
        "a tenant, secrets included, round-trips"
    );
    assert!(ok(s.list().await, "list").iter().any(|x| x.id == id));
    let mut rotated = t.clone();
    rotated
        .attio
        .webhook_secrets
        .insert(0, ok(Secret::new("whsec-next"), "secret"));
    ok(s.update(&rotated).await, "update");
    assert_eq!(ok(s.get(&id).await, "get").attio.webhook_secrets.len(), 2);
    ok(s.delete(&id).await, "delete");
    assert!(matches!(s.get(&id).await, Err(PortError::NotFound(_))));
    assert!(matches!(
        s.update(&rotated).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(s.delete(&id).await, Err(PortError::NotFound(_))));
}

pub async fn invalid_tenants_are_refused<S: TenantStore>(s: Arc<S>) {
    let id = fresh_tenant("t");
    let mut t = tenant(&id);
    t.name = " ".into();
    assert!(
        matches!(s.create(&t).await, Err(PortError::Domain(_))),
        "a blank name must be refused"
    );
    assert!(
        matches!(s.get(&id).await, Err(PortError::NotFound(_))),
        "nothing is stored"
    );
}

#[macro_export]
macro_rules! tenant_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            tenants,
            $factory,
            [create_get_update_delete, invalid_tenants_are_refused]
        );
    };
}
