//! webhook-api against its own `/openapi.json`, fuzzed by schemathesis (pinned in
//! `tests/robustness/requirements.txt`): the admin routes with the operator's token, the contact
//! API with a tenant's key, and the webhook and operations routes without credentials. No answer
//! may be a 5xx, and every answer's status, content type and (where the document gives one)
//! body must be what the document says. The seed is fixed so a run is repeatable.

use tokio::process::Command;

use crate::contract::{run, venv_of};

const TOKEN: &str = "robustness-admin-token-0123456789abcdef01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_own_document_under_generated_requests() {
    let venv = venv_of("robustness-venv", "tests/robustness/requirements.txt").await;
    let attio = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let settings = webhook_api::RawConfig {
        admin_token: Some(TOKEN.into()),
        attio_base_url: attio.url(),
        debounce_ms: 0,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let stores = app_common::open_stores(&settings.store, &settings.queue)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limiter = std::sync::Arc::new(adapter_memory::MemoryRateLimiter::default());
    let state = webhook_api::AppState::serving(&stores, settings, limiter);
    tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));

    // A tenant with a key, so the contact API has someone to answer for.
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{url}/v1/admin/tenants"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"id": "acme", "name": "Acme", "attio": {"api_token": "a".repeat(64)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key: serde_json::Value = http
        .post(format!("{url}/v1/admin/tenants/acme/api-keys"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["api_key"].as_str().unwrap().to_owned();

    for (what, bearer, paths) in [
        ("admin", Some(TOKEN.to_owned()), "^/v1/admin"),
        ("contact", Some(key), "^/v1/tenants/"),
        (
            "open",
            None,
            "^/(v1/webhooks|healthz|readyz|metrics|openapi)",
        ),
    ] {
        let mut cmd = Command::new(venv.join("bin/schemathesis"));
        // Its caches (`.schemathesis`, `.hypothesis`) stay in the venv, out of the tree.
        cmd.current_dir(&venv).args([
            "run",
            &format!("{url}/openapi.json"),
            "--include-path-regex",
            paths,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261207",
            "--no-color",
        ]);
        if let Some(b) = &bearer {
            cmd.args(["-H", &format!("Authorization: Bearer {b}")]);
        }
        let out = run(&mut cmd, &format!("schemathesis on the {what} routes")).await;
        assert!(out.contains(" passed"), "{what}: {out}");
        println!(
            "{what}: {}",
            out.lines()
                .filter(|l| l.contains("generated"))
                .collect::<String>()
        );
    }
}
