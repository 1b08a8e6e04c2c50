//! Row-level security and encryption at rest.

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::ids::{ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use domain::tenant::{AttioCredentials, Secret, Tenant};
use ports::error::PortError;
use ports::stores::{LinkStore, TenantStore};
use sqlx::Row;
use time::OffsetDateTime;

use crate::{connect, fresh_schema, master_key, store};

fn link(tenant: &str, ext: &str) -> IdentityLink {
    IdentityLink {
        tenant: TenantId::parse(tenant).unwrap(),
        object: ObjectSlug::parse("people").unwrap(),
        attio_record: RecordId::from_uuid(uuid::Uuid::new_v4()),
        system: SystemId::parse("hubspot").unwrap(),
        external_object: "contacts".into(),
        external_id: ExternalId::parse(ext).unwrap(),
        snapshot: Default::default(),
        updated_at: OffsetDateTime::UNIX_EPOCH,
        version: 0,
    }
}

#[tokio::test]
async fn the_service_role_cannot_bypass_row_level_security() {
    let s = store().await;
    let mut tx = s
        .begin_tenant(&TenantId::parse("a").unwrap())
        .await
        .unwrap();
    let row = sqlx::query("SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "attio_sync_app");
    assert!(
        !row.get::<bool, _>(1),
        "the service role must not be a superuser"
    );
    assert!(
        !row.get::<bool, _>(2),
        "the service role must not have BYPASSRLS"
    );
    // Every table of the schema, but the migrations' own, is under a policy.
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations'
           AND NOT (c.relrowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert!(
        unprotected.is_empty(),
        "tables without row-level security: {unprotected:?}"
    );
}

#[tokio::test]
async fn code_acting_for_one_tenant_cannot_touch_another_tenants_rows_whatever_its_where_clause() {
    let s = store().await;
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    s.save(&link("tenant-a", "1")).await.unwrap();
    let b_link = s.save(&link("tenant-b", "2")).await.unwrap();

    let mut tx = s.begin_tenant(&a).await.unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM links")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(all, 1, "an unfiltered SELECT sees only the tenant's rows");
    let theirs: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE tenant_id = 'tenant-b'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(theirs, 0, "asking for another tenant's rows finds none");
    let updated = sqlx::query("UPDATE links SET version = 99")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        updated.rows_affected(),
        1,
        "an unfiltered UPDATE touches only the tenant's rows"
    );
    let deleted = sqlx::query("DELETE FROM links WHERE tenant_id = 'tenant-b'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        deleted.rows_affected(),
        0,
        "a DELETE aimed at another tenant deletes nothing"
    );
    tx.commit().await.unwrap();

    let mut tx = s.begin_tenant(&a).await.unwrap();
    let forged = sqlx::query(
        "INSERT INTO links (tenant_id, object, attio_record, system, external_object, external_id, snapshot, updated_at, version)
         VALUES ('tenant-b', 'people', gen_random_uuid(), 'hubspot', 'contacts', 'forged', '{}', now(), 1)",
    )
    .execute(&mut *tx)
    .await;
    let err = forged.expect_err("writing a row for another tenant must be refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    let mut tx = s.pool().begin().await.unwrap();
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM links")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(none, 0, "a transaction that names no tenant sees nothing");
    drop(tx);

    let lookup = LinkLookup::Attio {
        object: b_link.object.clone(),
        record: b_link.attio_record,
        system: b_link.system.clone(),
    };
    let still = s
        .find(&b, &lookup)
        .await
        .unwrap()
        .expect("B's link survives");
    assert_eq!(still.version, 1, "B's link was not updated by A");
}

fn tenant(id: &str, token: &str) -> Tenant {
    Tenant {
        id: TenantId::parse(id).unwrap(),
        name: "Acme".into(),
        attio: AttioCredentials {
            api_token: Secret::new(token).unwrap(),
            webhook_secrets: vec![Secret::new("whsec-visible-nowhere").unwrap()],
        },
        crms: vec![],
        api_keys: Vec::new(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest_and_need_the_master_key() {
    let schema = fresh_schema();
    let s = connect(&schema, master_key('a')).await;
    let token = format!("attio-token-{}", uuid::Uuid::new_v4().simple());
    s.create(&tenant("acme", &token)).await.unwrap();

    let mut tx = s
        .begin_tenant(&TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    let row = sqlx::query("SELECT credentials, crm_settings::text FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    let settings: String = row.get(1);
    drop(tx);
    for needle in [token.as_bytes(), b"whsec-visible-nowhere".as_slice()] {
        assert!(
            !sealed.windows(needle.len()).any(|w| w == needle),
            "a secret is stored in clear"
        );
        assert!(
            !settings
                .as_bytes()
                .windows(needle.len())
                .any(|w| w == needle)
        );
    }
    assert_eq!(
        s.get(&TenantId::parse("acme").unwrap())
            .await
            .unwrap()
            .attio
            .api_token
            .expose(),
        token
    );

    let wrong_key = connect(&schema, master_key('b')).await;
    let err = wrong_key
        .get(&TenantId::parse("acme").unwrap())
        .await
        .expect_err("a wrong master key must not decrypt");
    assert!(matches!(err, PortError::Backend { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains(&token));
}

#[tokio::test]
async fn a_bad_configuration_is_a_clear_error() {
    let mut config = adapter_postgres::PgConfig::new(
        Secret::new("postgres://u:hunter2@127.0.0.1:1/x").unwrap(),
        master_key('a'),
    );
    config.schema = Some("Bad-Schema".into());
    let err = adapter_postgres::PgStore::connect(&config)
        .await
        .expect_err("an invalid schema name is refused");
    assert!(err.to_string().contains("schema"), "{err}");
    config.schema = None;
    config.acquire_timeout = std::time::Duration::from_secs(1);
    let err = adapter_postgres::PgStore::connect(&config)
        .await
        .expect_err("an unreachable server is an error");
    assert!(
        !format!("{err} {err:?}").contains("hunter2"),
        "the password must not leak: {err:?}"
    );
    let _ = BTreeMap::<String, FieldValue>::new();
}
