//! What the embedded mode keeps across restarts, and how it keeps credentials.

use std::time::Duration;

use adapter_sqlite::SqliteStore;
use domain::ids::TenantId;
use domain::job::{JobKey, NewJob};
use domain::tenant::{AttioCredentials, Secret, Tenant};
use ports::queue::{JobQueue, ReserveFilter};
use ports::stores::TenantStore;
use serde_json::json;
use time::OffsetDateTime;

use crate::{fresh_path, master_key};

#[tokio::test]
async fn a_reopened_file_still_holds_its_jobs_and_leases() {
    let path = fresh_path();
    let t = TenantId::parse("acme").unwrap();
    {
        let s = SqliteStore::open(&path, &master_key('a')).await.unwrap();
        for n in 0..2 {
            s.enqueue(NewJob::new(
                JobKey::new(t.clone(), "people", &format!("r{n}")).unwrap(),
                json!({ "n": n }),
            ))
            .await
            .unwrap();
        }
        let held = s
            .reserve("w", Duration::from_millis(100), &ReserveFilter::all())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.job.key.entity, "r0");
        s.pool().close().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = SqliteStore::open(&path, &master_key('a')).await.unwrap();
    let mut seen = Vec::new();
    while let Some(r) = s
        .reserve("w2", Duration::from_secs(30), &ReserveFilter::all())
        .await
        .unwrap()
    {
        seen.push((r.job.key.entity.clone(), r.job.attempts));
        s.ack(&r).await.unwrap();
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![("r0".to_owned(), 2), ("r1".to_owned(), 1)],
        "the job held when the process stopped comes back"
    );
}

#[tokio::test]
async fn credentials_in_the_file_are_sealed() {
    let path = fresh_path();
    let token = format!("attio-token-{}", uuid::Uuid::new_v4().simple());
    let s = SqliteStore::open(&path, &master_key('a')).await.unwrap();
    let tenant = Tenant {
        id: TenantId::parse("acme").unwrap(),
        name: "Acme".into(),
        attio: AttioCredentials {
            api_token: Secret::new(token.clone()).unwrap(),
            webhook_secrets: vec![],
        },
        crms: vec![],
        api_keys: Vec::new(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    s.create(&tenant).await.unwrap();
    s.pool().close().await;
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
    for file in [&bytes, &wal] {
        assert!(
            !file.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in the file in clear"
        );
    }
    let wrong = SqliteStore::open(&path, &master_key('b')).await.unwrap();
    assert!(
        wrong.get(&tenant.id).await.is_err(),
        "another master key cannot open the credentials"
    );
    let right = SqliteStore::open(&path, &master_key('a')).await.unwrap();
    assert_eq!(right.get(&tenant.id).await.unwrap(), tenant);
}
