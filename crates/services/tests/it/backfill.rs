//! The backfill against attio-sim and hubspot-sim: page by page, checkpointed, resumable after a
//! stop or a failure, writing only what differs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::{
    MemoryLinkStore, MemoryRateLimiter, MemorySyncStateStore, MemoryWriteLedger, SystemClock,
};
use domain::ids::{ObjectSlug, SystemId, TenantId};
use domain::sync_state::{BackfillPhase, SyncState};
use domain::tenant::Secret;
use ports::crm::ExternalCrm;
use ports::directory::TenantClients;
use ports::stores::SyncStateStore;
use services::backfill::Backfill;

use crate::outbound::{Directory, targets};

struct World {
    _sims: (attio_sim::RunningSim, hubspot_sim::RunningSim),
    backfill: Backfill,
    states: Arc<MemorySyncStateStore>,
    hubspot: HubSpotClient,
    hubspot_sim: Arc<hubspot_sim::Sim>,
    attio_url: String,
    tenant: TenantId,
}

async fn world(people: usize) -> World {
    let addr = || "127.0.0.1:0".parse().unwrap();
    let a = attio_sim::start(
        addr(),
        attio_sim::SimConfig {
            writes_per_second: 100_000,
            reads_per_second: 100_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let h = hubspot_sim::start(
        addr(),
        hubspot_sim::HubSpotConfig {
            per_ten_seconds: 100_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let limiter = Arc::new(MemoryRateLimiter::default());
    let mut acfg = AttioConfig::new(
        &a.url(),
        Secret::new("e".repeat(64)).unwrap(),
        tenant.clone(),
    )
    .unwrap();
    acfg.write_quota = domain::limits::Quota::per_second(100_000).unwrap();
    acfg.read_quota = domain::limits::Quota::per_second(100_000).unwrap();
    let attio = Arc::new(AttioClient::new(acfg, limiter.clone()).unwrap());
    let mut hcfg = HubSpotConfig::new(
        &h.url(),
        Secret::new("pat-na1-backfill").unwrap(),
        tenant.clone(),
    )
    .unwrap();
    hcfg.burst_quota = domain::limits::Quota::new(100_000, Duration::from_secs(10)).unwrap();
    hcfg.backoff_base = Duration::from_millis(5);
    hcfg.max_retries = 1;
    let hubspot = HubSpotClient::new(hcfg, limiter).unwrap();
    let http = reqwest::Client::new();
    for i in 0..people {
        let r = http
            .post(format!("{}/v2/objects/people/records", a.url()))
            .bearer_auth("e".repeat(64))
            .json(&serde_json::json!({"data": {"values": {
                "email_addresses": [format!("p{i}@example.com")],
                "name": [{"first_name": format!("F{i}"), "last_name": format!("L{i}"), "full_name": format!("F{i} L{i}")}],
                "job_title": "Engineer",
            }}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut crms: BTreeMap<SystemId, Arc<dyn ExternalCrm>> = BTreeMap::new();
    crms.insert(
        SystemId::parse("hubspot").unwrap(),
        Arc::new(hubspot.clone()),
    );
    let clients = TenantClients {
        attio: attio.clone(),
        schema: attio.clone(),
        lists: attio.clone(),
        notes: attio.clone(),
        tasks: attio.clone(),
        members: attio,
        crms,
        activities: BTreeMap::new(),
    };
    let states = Arc::new(MemorySyncStateStore::default());
    let mut backfill = Backfill::new(
        Arc::new(Directory(clients)),
        Arc::new(MemoryLinkStore::default()),
        Arc::new(MemoryWriteLedger::default()),
        states.clone(),
        Arc::new(SystemClock),
        targets(domain::mapping::SyncRule::LatestWins),
    );
    backfill.page_size = 50;
    let hubspot_sim = h.sim.clone();
    let attio_url = a.url();
    World {
        _sims: (a, h),
        backfill,
        states,
        hubspot,
        hubspot_sim,
        attio_url,
        tenant,
    }
}

fn people() -> ObjectSlug {
    ObjectSlug::parse("people").unwrap()
}

fn hubspot() -> SystemId {
    SystemId::parse("hubspot").unwrap()
}

async fn contacts(h: &HubSpotClient) -> usize {
    let (mut after, mut n) = (None, 0);
    loop {
        let page = h.list("contacts", &[], after).await.unwrap();
        n += page.records.len();
        match page.next {
            Some(a) => after = Some(a),
            None => return n,
        }
    }
}

#[tokio::test]
async fn a_stopped_backfill_resumes_at_its_checkpoint_and_a_second_run_writes_only_changes() {
    let w = world(120).await;
    let s = w
        .backfill
        .run(&w.tenant, &people(), &hubspot(), Some(1))
        .await
        .unwrap();
    assert_eq!(
        (s.phase, s.next_offset, s.records_written),
        (BackfillPhase::Running, 50, 50)
    );
    assert_eq!(contacts(&w.hubspot).await, 50);

    let s = w.backfill.run(&w.tenant, &people(), &hubspot(), None).await;
    // A run still marked Running is refused, unless it is stale.
    assert!(s.is_err(), "{s:?}");
    let mut stale = w.backfill;
    stale.stale_after = Duration::ZERO;
    let s = stale
        .run(&w.tenant, &people(), &hubspot(), None)
        .await
        .unwrap();
    assert_eq!(
        (s.phase, s.records_seen, s.pages_done),
        (BackfillPhase::Completed, 120, 3)
    );
    assert_eq!(
        contacts(&w.hubspot).await,
        120,
        "resumed, not restarted: 120 contacts, none twice"
    );

    // Everything in step: a new run writes nothing; one change writes one record.
    let s = stale
        .run(&w.tenant, &people(), &hubspot(), None)
        .await
        .unwrap();
    assert_eq!((s.phase, s.records_written), (BackfillPhase::Completed, 0));
    let http = reqwest::Client::new();
    let listed: serde_json::Value = http
        .post(format!("{}/v2/objects/people/records/query", w.attio_url))
        .bearer_auth("e".repeat(64))
        .json(&serde_json::json!({"limit": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["data"][0]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    http.patch(format!("{}/v2/objects/people/records/{id}", w.attio_url))
        .bearer_auth("e".repeat(64))
        .json(&serde_json::json!({"data": {"values": {"job_title": "Manager"}}}))
        .send()
        .await
        .unwrap();
    let s = stale
        .run(&w.tenant, &people(), &hubspot(), None)
        .await
        .unwrap();
    assert_eq!(s.records_written, 1);
}

#[tokio::test]
async fn a_failing_page_keeps_the_checkpoint_and_the_next_run_resumes() {
    let w = world(80).await;
    let s = w
        .backfill
        .run(&w.tenant, &people(), &hubspot(), Some(1))
        .await
        .unwrap();
    assert_eq!(s.next_offset, 50);
    // Let the run be resumable (not Running), then break HubSpot.
    let mut saved = w
        .states
        .get(&w.tenant, &people(), &hubspot())
        .await
        .unwrap()
        .unwrap();
    saved.fail("stopped for the test", time::OffsetDateTime::now_utc());
    w.states.save(&saved).await.unwrap();
    w.hubspot_sim.set_faults(hubspot_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let failed = w.backfill.run(&w.tenant, &people(), &hubspot(), None).await;
    assert!(failed.is_err());
    let s: SyncState = w
        .states
        .get(&w.tenant, &people(), &hubspot())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.phase, s.next_offset),
        (BackfillPhase::Failed, 50),
        "the checkpoint survives the failure"
    );
    assert!(s.last_error.is_some());
    w.hubspot_sim.set_faults(hubspot_sim::Faults::default());
    let s = w
        .backfill
        .run(&w.tenant, &people(), &hubspot(), None)
        .await
        .unwrap();
    assert_eq!((s.phase, s.records_seen), (BackfillPhase::Completed, 80));
    assert_eq!(contacts(&w.hubspot).await, 80);
}

#[tokio::test]
async fn an_unmapped_pair_is_refused() {
    let w = world(0).await;
    let r = w
        .backfill
        .run(
            &w.tenant,
            &ObjectSlug::parse("deals").unwrap(),
            &hubspot(),
            None,
        )
        .await;
    assert!(
        matches!(
            r,
            Err(services::ServiceError::Port(
                ports::error::PortError::Invalid(_)
            ))
        ),
        "{r:?}"
    );
}
