//! The operator's commands against a running service (webhook-api on the embedded SQLite store,
//! port 0; a sync-worker beside it and the simulators where a command needs them): every
//! subcommand, its table and its `--json`, and the exit codes of bad input.

use serde_json::Value;

const TOKEN: &str = "cli-admin-token-0123456789abcdef0123456789";

/// Serves webhook-api with the admin API on a free port; its URL.
async fn service() -> String {
    service_with_stores().await.0
}

/// The same, with the stores it serves.
async fn service_with_stores() -> (String, app_common::Stores) {
    let dir = std::env::temp_dir().join(format!("cli-db-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = webhook_api::RawConfig {
        admin_token: Some(TOKEN.into()),
        debounce_ms: 0,
        store: app_common::RawStore::Sqlite {
            path: dir.join("attio-sync.db"),
        },
        master_key: Some("4".repeat(64)),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let stores = app_common::open_stores(&settings.store, &settings.queue)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = webhook_api::AppState::new(&stores, settings);
    tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));
    (url, stores)
}

/// Runs the CLI; (exit code, stdout, stderr).
async fn cli(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"));
    cmd.args(args)
        .env("ATTIO_SYNC_URL", url)
        .env_remove("ATTIO_SYNC_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("ATTIO_SYNC_ADMIN_TOKEN", t);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_tables_and_json_with_documented_exit_codes() {
    let url = service().await;
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        async move { cli(&url, Some(TOKEN), args).await }
    };
    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tenant.json");
    std::fs::write(
        &file,
        r#"{"id": "acme", "name": "Acme", "attio": {"api_token": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
            "crms": [{"system": "hubspot", "secrets": {"token": "pat-secret-value"}}]}"#,
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();

    let (code, out, err) = cli(&url, Some(TOKEN), &["tenant", "add", &file]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acme") && !out.contains("pat-secret-value"),
        "{out}"
    );

    let (code, out, _) = run(&["tenant", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("acme") && out.contains("created_at"),
        "a table: {out}"
    );
    let (_, out, _) = run(&["--json", "tenant", "list"]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(1));
    let (_, out, _) = run(&["tenant", "show", "acme", "--json"]).await;
    assert_eq!(json(&out)["id"], "acme");

    let (code, _, err) = run(&["tenant", "rotate-secret", "acme"]).await;
    assert_eq!(code, 1, "this service registers no webhooks: {err}");
    assert!(err.contains("registration is not configured"), "{err}");

    let (code, out, _) = run(&["tenant", "keys", "add", "acme", "--json"]).await;
    assert_eq!(code, 0);
    assert!(
        json(&out)["api_key"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    let fingerprint = json(&out)["fingerprint"].as_str().unwrap().to_owned();
    run(&["tenant", "keys", "add", "acme"]).await;
    let (code, out, _) = run(&["tenant", "keys", "list", "acme"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&fingerprint), "a table of fingerprints: {out}");
    let (code, _, err) = run(&["tenant", "keys", "revoke", "acme"]).await;
    assert_eq!(code, 2, "a fingerprint or --all");
    assert!(err.contains("--all"), "{err}");
    let (code, _, _) = cli(
        &url,
        Some(TOKEN),
        &["tenant", "keys", "revoke", "acme", &fingerprint],
    )
    .await;
    assert_eq!(code, 0);
    let (_, out, _) = run(&["tenant", "keys", "list", "acme", "--json"]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(1), "one key left");
    let (code, _, err) = cli(
        &url,
        Some(TOKEN),
        &["tenant", "keys", "revoke", "acme", &fingerprint],
    )
    .await;
    assert_eq!(code, 1, "a revoked key is gone: {err}");
    assert_eq!(
        run(&["tenant", "keys", "revoke", "acme", "--all"]).await.0,
        0
    );
    let (_, out, _) = run(&["tenant", "keys", "list", "acme", "--json"]).await;
    assert_eq!(json(&out), Value::Array(Vec::new()));

    let (code, out, _) = run(&["dlq", "list", "acme", "--json"]).await;
    assert_eq!((code, json(&out)), (0, Value::Array(Vec::new())));
    let (code, _, err) = run(&[
        "dlq",
        "replay",
        "acme",
        "bf071e1f-6035-429d-b874-d83ea64ea13b",
    ])
    .await;
    assert_eq!(
        code, 1,
        "a dead letter that does not exist is refused: {err}"
    );
    assert_eq!(run(&["quarantine", "list", "acme"]).await.0, 0);

    let (code, out, err) = run(&[
        "backfill", "start", "acme", "--object", "people", "--system", "hubspot",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run(&["backfill", "status", "acme"]).await.0, 0);
    let (code, _, err) = run(&[
        "backfill",
        "start",
        "acme",
        "--object",
        "people",
        "--system",
        "pipedrive",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown CRM system"), "{err}");

    let (code, out, _) = run(&["status", "--json"]).await;
    assert_eq!(code, 0);
    assert!(json(&out)["ready"].as_u64().is_some(), "{out}");

    let (code, out, _) = run(&["tenant", "remove", "acme", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["deleted"], "acme");
    assert_eq!(run(&["tenant", "show", "acme"]).await.0, 1);

    // Bad input, each with its exit code and a message naming the cause.
    let (code, _, err) = cli(&url, Some("wrong-token"), &["tenant", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("admin token is wrong"), "{err}");
    let (code, _, err) = cli(&url, None, &["tenant", "list"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("ATTIO_SYNC_ADMIN_TOKEN"), "{err}");
    let (code, _, err) = cli(&url, Some(TOKEN), &["tenant", "add", "/no/such/file.json"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /no/such/file.json"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = cli(
        &format!("http://127.0.0.1:{port}"),
        Some(TOKEN),
        &["status"],
    )
    .await;
    assert_eq!(code, 3);
    assert!(err.contains("cannot reach the service"), "{err}");
    let (code, _, _) = cli(&url, Some(TOKEN), &["tenant", "frobnicate"]).await;
    assert_eq!(code, 2, "a command line clap refuses");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The control plane's commands: conflicts, held deletes, mappings, history, reconciliation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_commands_list_decide_and_validate_with_documented_exit_codes() {
    use domain::deletes::DeleteStatus;
    let (url, stores) = service_with_stores().await;
    let t = domain::ids::TenantId::parse("acme").unwrap();
    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tenant = dir.join("tenant.json");
    std::fs::write(&tenant, r#"{"id": "acme", "name": "Acme", "attio": {"api_token": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#).unwrap();
    let run = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&url, Some(TOKEN), &args).await
        }
    };
    let a = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        run(a(&["tenant", "add", tenant.to_str().unwrap()])).await.0,
        0
    );
    let mut conflicts = Vec::new();
    for n in 1..=3 {
        let mut c = ports::conformance::conflicts::conflict(&t, n);
        c.attio_record = domain::ids::RecordId::from_uuid(uuid::Uuid::from_u128(50 + n));
        stores.conflicts.record(&c).await.unwrap();
        conflicts.push(c.id.to_string());
    }
    let (code, out, _) = run(a(&["conflicts", "list", "acme"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("job_title") && out.contains("Founder"),
        "a table: {out}"
    );
    let (_, out, _) = run(a(&["conflicts", "list", "acme", "--json"])).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(3));
    let (_, out, _) = run(a(&["conflicts", "show", "acme", &conflicts[0], "--json"])).await;
    assert_eq!(json(&out)["snapshot"]["attio"], "CTO");
    let (code, _, err) = run(a(&[
        "conflicts",
        "resolve",
        "acme",
        &conflicts[0],
        "--keep",
        "value",
    ]))
    .await;
    assert_eq!(code, 2, "--keep value needs --value: {err}");
    let (code, _, err) = run(a(&[
        "conflicts",
        "resolve",
        "acme",
        &conflicts[0],
        "--keep",
        "value",
        "--value",
        "not json",
    ]))
    .await;
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = run(a(&[
        "conflicts",
        "resolve",
        "acme",
        &conflicts[0],
        "--keep",
        "value",
        "--value",
        "\"Chief\"",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["resolution"]["value"], "Chief");
    let (code, _, err) = run(a(&[
        "conflicts",
        "resolve",
        "acme",
        &conflicts[0],
        "--keep",
        "attio",
    ]))
    .await;
    assert_eq!(code, 1, "resolved already: {err}");
    let (code, out, _) = run(a(&[
        "conflicts",
        "resolve",
        "acme",
        &conflicts[1],
        &conflicts[2],
        "--keep",
        "external",
    ]))
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.matches("queued").count(), 2, "{out}");

    for n in 1..=3 {
        stores
            .deletes
            .record(&ports::conformance::deletes::delete(
                &t,
                n,
                DeleteStatus::Held,
            ))
            .await
            .unwrap();
    }
    let (code, out, _) = run(a(&["deletes", "list", "acme"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("deleted in attio"), "{out}");
    let third = ports::conformance::deletes::delete(&t, 3, DeleteStatus::Held).id;
    let (code, out, err) = run(a(&[
        "deletes",
        "reject",
        "acme",
        &third.to_string(),
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = run(a(&["deletes", "list", "acme", "--json"])).await;
    assert_eq!(
        json(&out).as_array().map(Vec::len),
        Some(2),
        "the rejected one is no longer held"
    );
    assert_eq!(
        run(a(&["deletes", "approve", "acme"])).await.0,
        2,
        "ids or --all"
    );
    let (code, out, _) = run(a(&["deletes", "approve", "acme", "--all", "--json"])).await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["decided"], 2);
    let (code, out, _) = run(a(&["status", "acme", "--json"])).await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["deletes_held"], 0);
    let (code, out, _) = run(a(&["status", "acme"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("conflicts_open"), "{out}");

    let good = dir.join("good.toml");
    std::fs::write(&good, "[[targets]]\nattio_object = \"people\"\nsystem = \"hubspot\"\nexternal_object = \"contacts\"\nid_property = \"attio_record_id\"\nfields = [{ attio = { attribute = \"email_addresses\" }, external = \"email\", rule = \"latest_wins\" }]\n").unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"targets": [{"attio_object": "people", "system": "pipedrive", "external_object": "persons", "id_property": "id", "fields": []}]}"#).unwrap();
    let (code, out, _) = run(a(&["mappings", "validate", "acme", bad.to_str().unwrap()])).await;
    assert_eq!(code, 1, "problems exit 1: {out}");
    assert!(out.contains("pipedrive"), "{out}");
    assert_eq!(
        run(a(&["mappings", "validate", "acme", good.to_str().unwrap()]))
            .await
            .0,
        0
    );
    let (code, out, err) = run(a(&[
        "mappings",
        "apply",
        "acme",
        good.to_str().unwrap(),
        "--by",
        "ops",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["version"], 1);
    let (code, out, _) = run(a(&[
        "mappings",
        "apply",
        "acme",
        bad.to_str().unwrap(),
        "--by",
        "ops",
    ]))
    .await;
    assert_eq!(code, 1, "refused with every problem: {out}");
    assert!(out.contains("pipedrive"), "{out}");
    let (_, out, _) = run(a(&["mappings", "versions", "acme", "--json"])).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(1));
    let (code, out, _) = run(a(&["mappings", "show", "acme", "--json"])).await;
    assert_eq!(code, 0);
    let shown = json(&out);
    assert_eq!(shown["version"], 1, "{shown}");
    assert!(shown.to_string().contains("attio_record_id"), "{shown}");
    let (code, out, _) = run(a(&["mappings", "show", "acme"])).await;
    assert_eq!(code, 0);
    assert!(out.contains("contacts"), "{out}");
    assert_eq!(
        run(a(&["mappings", "validate", "acme", "/no/such/file.toml"]))
            .await
            .0,
        2
    );

    let record = domain::ids::RecordId::from_uuid(uuid::Uuid::from_u128(7));
    stores
        .audit
        .append(&[ports::conformance::audit::entry(&t, 7, 1)])
        .await
        .unwrap();
    let (code, out, _) = run(a(&["history", "acme", "people", &record.to_string()])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("attio delivery, job 1") && out.contains("prefer_attio"),
        "{out}"
    );
    let (code, out, _) = run(a(&[
        "reconcile",
        "acme",
        "--object",
        "people",
        "--system",
        "hubspot",
        "--dry-run",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["queued"], true);
    let (code, _, err) = run(a(&[
        "reconcile",
        "acme",
        "--object",
        "people",
        "--system",
        "pipedrive",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
}

/// `status TENANT` shows what waits, what was written where, the requests made today and the
/// dead letters by cause; `dlq show` and `quarantine show` open one of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_dlq_show_and_quarantine_show_report_what_the_stores_hold() {
    use ports::queue::ReserveFilter;
    let (url, stores) = service_with_stores().await;
    let t = domain::ids::TenantId::parse("acme").unwrap();
    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tenant = dir.join("tenant.json");
    std::fs::write(&tenant, r#"{"id": "acme", "name": "Acme", "attio": {"api_token": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#).unwrap();
    let run = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&url, Some(TOKEN), &args).await
        }
    };
    let a = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        run(a(&["tenant", "add", tenant.to_str().unwrap()])).await.0,
        0
    );

    // Two jobs dead-lettered for one cause, one for another, one still waiting.
    let job = |p: &str, e: &str| {
        domain::job::NewJob::new(
            domain::job::JobKey::new(t.clone(), p, e).unwrap(),
            serde_json::json!({"source": "attio", "n": e}),
        )
    };
    for (entity, error) in [
        (
            "r1",
            "crm-b rejected the request (400 INVALID_EMAIL): Email x is invalid",
        ),
        (
            "r2",
            "crm-b rejected the request (400 INVALID_EMAIL): Email y is invalid",
        ),
        ("r3", "attio is unavailable"),
    ] {
        stores.queue.enqueue(job("people", entity)).await.unwrap();
        let r = stores
            .queue
            .reserve(
                "t",
                std::time::Duration::from_secs(30),
                &ReserveFilter::all(),
            )
            .await
            .unwrap()
            .unwrap();
        stores.queue.dead_letter(&r, error, false).await.unwrap();
    }
    stores.queue.enqueue(job("companies", "c1")).await.unwrap();
    let mut write = ports::conformance::audit::entry(&t, 7, 0);
    write.at = time::OffsetDateTime::now_utc();
    stores.audit.append(&[write]).await.unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    stores
        .usage
        .add(&t, today, &[("crm-a".into(), 12), ("attio".into(), 3)])
        .await
        .unwrap();

    let (code, out, _) = run(a(&["status", "acme", "--json"])).await;
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["queue_jobs"], 1, "{v}");
    assert_eq!(v["queue"][0]["partition"], "companies");
    assert!(v["queue"][0]["oldest_age_s"].as_i64().is_some(), "{v}");
    assert_eq!(v["last_writes"][0]["object"], "people");
    assert_eq!(v["last_writes"][0]["system"], "crm-a");
    assert_eq!(
        v["requests_today"],
        serde_json::json!([{"provider": "attio", "requests": 3}, {"provider": "crm-a", "requests": 12}])
    );
    assert_eq!(v["dead_letters"], 3);
    assert_eq!(v["errors"][0]["cause"], "attio is unavailable");
    assert_eq!(
        v["errors"][1]["cause"],
        "crm-b rejected the request (400 INVALID_EMAIL)"
    );
    assert_eq!(v["errors"][1]["dead_letters"], 2);
    let (code, out, _) = run(a(&["status", "acme"])).await;
    assert_eq!(code, 0);
    for shown in [
        "queue:",
        "last_writes:",
        "requests_today:",
        "errors:",
        "INVALID_EMAIL",
        "companies",
    ] {
        assert!(out.contains(shown), "the table shows {shown}: {out}");
    }

    let example = v["errors"][1]["example_job"].as_str().unwrap().to_owned();
    let (code, out, _) = run(a(&["dlq", "show", "acme", &example, "--json"])).await;
    assert_eq!(code, 0);
    let letter = json(&out);
    assert_eq!(
        letter["cause"],
        "crm-b rejected the request (400 INVALID_EMAIL)"
    );
    assert_eq!(letter["payloads"][0]["source"], "attio");
    assert!(
        letter["failed_at"]
            .as_str()
            .is_some_and(|t| time::OffsetDateTime::parse(
                t,
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()),
        "{letter}"
    );
    let (code, out, _) = run(a(&["dlq", "show", "acme", &example])).await;
    assert_eq!(code, 0);
    assert!(out.contains("INVALID_EMAIL"), "{out}");
    let (code, _, err) = run(a(&[
        "dlq",
        "show",
        "acme",
        "bf071e1f-6035-429d-b874-d83ea64ea13b",
    ]))
    .await;
    assert_eq!(code, 1, "an unknown dead letter: {err}");

    let body = br#"{"events": "not a list"}"#.to_vec();
    let delivery = ports::stores::InboundDelivery {
        tenant: t.clone(),
        source: domain::ids::SystemId::parse("attio").unwrap(),
        key: domain::idempotency::IdempotencyKey::from_body(&body),
        body,
        received_at: time::OffsetDateTime::now_utc(),
        quarantine: Some("the payload's events are not a list".into()),
    };
    stores
        .inbox
        .accept(&delivery, None, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let (code, out, _) = run(a(&["quarantine", "list", "acme", "--json"])).await;
    assert_eq!(code, 0);
    let id = json(&out)[0]["id"].as_str().unwrap().to_owned();
    let (code, out, _) = run(a(&["quarantine", "show", "acme", &id])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("events are not a list") && out.contains(r#""events": "not a list""#),
        "{out}"
    );
    let (code, _, _) = run(a(&["quarantine", "show", "acme", "not-an-id"])).await;
    assert_eq!(code, 1, "an id that is not one is not found");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `backfill start --follow` follows a worker's run to its end: three people in Attio reach
/// HubSpot, and the command exits 0 once the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_follow_watches_a_worker_run_it_to_the_end() {
    let (url, stores) = service_with_stores().await;
    let addr = || "127.0.0.1:0".parse().unwrap();
    let attio = attio_sim::start(addr(), attio_sim::SimConfig::default())
        .await
        .unwrap();
    let hubspot = hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
        .await
        .unwrap();
    let token = "b".repeat(64);
    let http = reqwest::Client::new();
    for first in ["Ada", "Grace", "Alan"] {
        let made = http
            .post(format!("{}/v2/objects/people/records", attio.url()))
            .bearer_auth(&token)
            .json(&serde_json::json!({"data": {"values": {
                "email_addresses": [format!("{}@example.com", first.to_lowercase())],
                "name": [{"first_name": first, "last_name": "X", "full_name": format!("{first} X")}],
            }}}))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success());
    }
    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tenant = dir.join("tenant.json");
    std::fs::write(
        &tenant,
        serde_json::json!({"id": "acme", "name": "Acme", "attio": {"api_token": token},
            "crms": [{"system": "hubspot", "settings": {"base_url": hubspot.url()}, "secrets": {"token": "pat-na1-cli"}}]})
        .to_string(),
    )
    .unwrap();
    assert_eq!(
        cli(
            &url,
            Some(TOKEN),
            &["tenant", "add", tenant.to_str().unwrap()]
        )
        .await
        .0,
        0
    );
    let worker_toml = dir.join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            "attio_base_url = \"{}\"\nconsumer = \"cli-test\"\n\n[[targets]]\nattio_object = \"people\"\nsystem = \"hubspot\"\nexternal_object = \"contacts\"\nid_property = \"attio_record_id\"\nfields = [{{ attio = {{ attribute = \"email_addresses\" }}, external = \"email\", rule = \"latest_wins\" }}]\n",
            attio.url()
        ),
    )
    .unwrap();
    let settings = sync_worker::RawConfig::load(Some(&worker_toml))
        .unwrap()
        .validate()
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(async move {
        let limiter = std::sync::Arc::new(adapter_memory::MemoryRateLimiter::default());
        sync_worker::run(&settings, stores, limiter, stopped).await
    });

    let follow = cli(
        &url,
        Some(TOKEN),
        &[
            "backfill", "start", "acme", "--object", "people", "--system", "hubspot", "--follow",
        ],
    );
    let (code, out, err) = tokio::time::timeout(std::time::Duration::from_secs(60), follow)
        .await
        .expect("the run ends within a minute");
    assert_eq!(code, 0, "{out}{err}");
    let contacts: serde_json::Value = http
        .get(format!(
            "{}/crm/v3/objects/contacts?limit=100",
            hubspot.url()
        ))
        .bearer_auth("pat-na1-cli")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        contacts["results"].as_array().map(Vec::len),
        Some(3),
        "{contacts}"
    );
    let (_, out, _) = cli(&url, Some(TOKEN), &["backfill", "status", "acme", "--json"]).await;
    let state = json(&out);
    let run = state
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["object"] == "people" && s["system"] == "hubspot")
        .unwrap_or_else(|| panic!("{state}"));
    assert_eq!(run["phase"], "completed", "{run}");
    assert_eq!(run["records_written"], 3, "{run}");
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = std::fs::remove_dir_all(&dir);
}
