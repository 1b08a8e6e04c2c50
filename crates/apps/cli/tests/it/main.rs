//! `attio-sync demo` as a user runs it: it exits 0 and reports every change arrived.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod configuration;

#[tokio::test]
async fn the_demo_shows_every_change_arriving_in_both_crms() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["demo", "--wait-s", "60"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // People, a company, a deal and a note made in Attio reach both CRMs (the changes a later one
    // supersedes are not checked); a title edited in each CRM reaches Attio and the other CRM;
    // a simultaneous edit is settled by its rule, another queued for a person.
    assert!(
        stdout.contains("15 changes, 18 arrivals, 0 missing"),
        "{stdout}"
    );
    for shown in [
        "created company Globex",
        "moved the deal to Won 🎉",
        "closedwon",
        "Closed Won",
        "a note on Grace",
        "title edited in HubSpot",
        "title edited in Salesforce",
        "latest_wins keeps Attio's later value, everywhere after",
    ] {
        assert!(stdout.contains(shown), "the demo shows {shown:?}: {stdout}");
    }
    // The conflict is resolved through the admin API and shows in the field's audit trail.
    assert!(
        stdout.contains("resolved by keeping Attio's \"Gracie\"")
            && stdout.contains("operator")
            && stdout.contains("resolution:attio"),
        "{stdout}"
    );
    // The summary's figures: "… N duplicate deliveries ignored; N echoes suppressed; N
    // unexpected writes; …".
    let closing = stdout
        .lines()
        .find(|l| l.contains(" changes, "))
        .unwrap_or_else(|| panic!("no closing line: {stdout}"));
    let figure = |label: &str| -> u64 {
        closing
            .split(label)
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in {closing}"))
    };
    assert!(
        figure(" duplicate deliveries ignored") > 0,
        "half of Attio's deliveries come twice: {closing}"
    );
    assert!(
        figure(" echoes suppressed") > 0,
        "the CRMs' echoes of our writes: {closing}"
    );
    assert_eq!(figure(" unexpected writes"), 0, "{closing}");
    assert!(
        stdout.contains("deleted Alan Turing") && stdout.contains("removed after"),
        "{stdout}"
    );
}

/// `attio-sync migrate` brings a PostgreSQL schema up to date and exits; a bad setting stops it
/// naming the setting.
#[tokio::test]
async fn migrate_brings_the_store_up_to_date_and_names_a_bad_setting() {
    let url = testkit::postgres_url().await;
    let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .arg("migrate")
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env("ATTIO_SYNC_STORE__URL", &url)
        .env("ATTIO_SYNC_STORE__SCHEMA", &schema)
        .env("ATTIO_SYNC_MASTER_KEY", "7".repeat(64))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("up to date"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('tenants', 'jobs', 'inbox')",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 3);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .arg("migrate")
        .env("ATTIO_SYNC_STORE__KIND", "postgres")
        .env("ATTIO_SYNC_STORE__URL", &url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key"));
}

/// `attio-sync run`: the API and a worker in one process on an embedded SQLite file, from one
/// file; it serves, and stops on SIGTERM. A worker section naming a store of its own is refused.
#[tokio::test]
async fn run_serves_the_api_and_a_worker_from_one_file_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = std::env::temp_dir().join(format!("run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = "run-admin-token-0123456789abcdef0123456789";
    let config = dir.join("attio-sync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[api]
listen = "127.0.0.1:0"
admin_token = "{token}"
master_key = "{key}"
store = {{ kind = "sqlite", path = "{db}" }}

[worker]
consumer = "one"

[[worker.targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
fields = [{{ attio = {{ attribute = "email_addresses" }}, external = "email", rule = "latest_wins" }}]
"#,
            key = "5".repeat(64),
            db = dir.join("attio-sync.db").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap_or_default();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let queue = http
        .get(format!("{url}/v1/admin/queue"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        queue.status(),
        200,
        "the admin API answers on the SQLite store"
    );
    let pid = child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("stopped within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.join("attio-sync.db").exists());

    std::fs::write(
        &config,
        "[worker]\nstore = { kind = \"memory\" }\nmaster_key = \"x\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("set store, queue and master_key in [api] only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `attio-sync doctor` names each planted problem: an unregistered webhook, a token Attio
/// refuses, a mapping naming an attribute that does not exist, PostgreSQL's WAL reserve when the
/// server's is small, Redis keeping nothing on disk when it does not, and an unreachable store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_planted_problem() {
    let addr = || "127.0.0.1:0".parse().unwrap();
    let attio = attio_sim::start(addr(), attio_sim::SimConfig::default())
        .await
        .unwrap();
    let hubspot = hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
        .await
        .unwrap();
    let url = testkit::postgres_url().await;
    let redis = testkit::redis_url().await;
    let schema = format!("doctor_{}", uuid::Uuid::new_v4().simple());
    let key = "6".repeat(64);
    let public = "http://127.0.0.1:9";
    let dir = std::env::temp_dir().join(format!("doctor-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("attio-sync.toml");
    let write = |store: &str| {
        std::fs::write(
            &config,
            format!(
                r#"[api]
public_url = "{public}"
attio_base_url = "{attio}"
master_key = "{key}"
store = {store}
queue = {{ kind = "redis", url = "{redis}", namespace = "{schema}" }}

[worker]
[[worker.targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
fields = [
  {{ attio = {{ attribute = "email_addresses" }}, external = "email", rule = "latest_wins" }},
  {{ attio = {{ attribute = "no_such_attribute" }}, external = "jobtitle", rule = "latest_wins" }},
]
"#,
                attio = attio.url(),
            ),
        )
        .unwrap()
    };
    write(&format!(
        r#"{{ kind = "postgres", url = "{url}", schema = "{schema}" }}"#
    ));

    // The tenants: one whose webhook is registered, one without, one Attio refuses.
    let settings = webhook_api::RawConfig {
        store: app_common::RawStore::Postgres {
            url: url.clone(),
            schema: Some(schema.clone()),
            max_connections: None,
            intake_batch: None,
            intake_slots: None,
        },
        master_key: Some(key.clone()),
        queue: app_common::RawQueue::Redis {
            url: redis.clone(),
            namespace: schema.clone(),
        },
        ..Default::default()
    }
    .validate()
    .unwrap();
    let stores = app_common::open_stores(&settings.store, &settings.queue)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for (id, token) in [
        ("good", "g".repeat(64)),
        ("nohook", "n".repeat(64)),
        ("badtoken", "short".to_owned()),
    ] {
        let mut t = tenant_of(id, &token);
        t.crms = vec![domain::tenant::CrmConnection {
            system: domain::ids::SystemId::parse("hubspot").unwrap(),
            settings: std::collections::BTreeMap::from([("base_url".to_owned(), hubspot.url())]),
            secrets: std::collections::BTreeMap::from([(
                "token".to_owned(),
                domain::tenant::Secret::new("pat-doctor").unwrap(),
            )]),
        }];
        stores.tenants.create(&t).await.unwrap();
    }
    let hook = http
        .post(format!("{}/v2/webhooks", attio.url()))
        .bearer_auth("g".repeat(64))
        .json(&serde_json::json!({"data": {"target_url": format!("{public}/v1/webhooks/attio/good"), "subscriptions": [{"event_type": "record.created", "filter": null}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hook.status(),
        200,
        "{}",
        hook.text().await.unwrap_or_default()
    );

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["doctor", "--json", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let find = |what: &str, says: &str| {
        checks.iter().find(|c| {
            c["what"].as_str() == Some(what)
                && c["detail"].as_str().is_some_and(|d| d.contains(says))
        })
    };
    let fine = |what: &str, says: &str| find(what, says).is_some_and(|c| c["ok"] == true);
    let fix = |what: &str, says: &str| find(what, says).is_some_and(|c| c["ok"] == false);
    assert!(fine("store", "opened"), "{checks:#?}");
    assert!(fine("good: Attio", "delivers to"), "{checks:#?}");
    assert!(fine("good: hubspot", "credentials accepted"), "{checks:#?}");
    assert!(
        fix("nohook: Attio", "no Attio webhook delivers"),
        "{checks:#?}"
    );
    assert!(
        fix("badtoken: Attio", "refuses the tenant's token"),
        "{checks:#?}"
    );
    assert!(fix("good: mappings", "no_such_attribute"), "{checks:#?}");
    let persists = stores
        .redis_persists
        .expect("this Redis answers CONFIG GET");
    assert!(
        find("Redis persistence", "").is_some_and(|c| c["ok"] == persists
            && (persists || c["fix"].as_str().is_some_and(|f| f.contains("appendonly")))),
        "{checks:#?}"
    );
    let reserve = stores.min_wal_size.unwrap();
    assert_eq!(
        fix("PostgreSQL min_wal_size", "min_wal_size"),
        reserve < app_common::MIN_WAL_RESERVE,
        "{checks:#?}"
    );

    write(r#"{ kind = "postgres", url = "postgres://postgres@127.0.0.1:1/test" }"#);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("store") && stdout.contains("cannot be opened"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tenant_of(id: &str, token: &str) -> domain::tenant::Tenant {
    domain::tenant::Tenant {
        id: domain::ids::TenantId::parse(id).unwrap(),
        name: id.to_owned(),
        attio: domain::tenant::AttioCredentials {
            api_token: domain::tenant::Secret::new(token).unwrap(),
            webhook_secrets: Vec::new(),
        },
        crms: Vec::new(),
        api_keys: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
    }
}
