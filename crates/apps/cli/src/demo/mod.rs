//! `attio-sync demo`: the whole service in one process, against its simulators — attio-sim, a
//! simulator per CRM ([`crms`]), webhook-api and a sync-worker on a temporary SQLite file — then
//! a few changes in Attio, and what arrived where, with delays.

mod crms;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_memory::MemoryRateLimiter;
use anyhow::{Context, Result, bail};
use domain::ids::TenantId;
use ports::limiter::RateLimiter;
use serde_json::{Value, json};

fn addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(16))
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect::<String>()[..bytes * 2]
        .to_owned()
}

/// A field's value as a person reads it.
fn shown(v: &domain::field::FieldValue) -> String {
    match v {
        domain::field::FieldValue::Text(t) => format!("{t:?}"),
        other => format!("{other:?}"),
    }
}

/// Attio deliveries the intake answered as duplicates, from its metrics.
fn duplicate_deliveries() -> u64 {
    let Some(handle) = webhook_api::telemetry::handle() else {
        return 0;
    };
    handle
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("webhook_deliveries_total{")
                && l.contains("outcome=\"duplicate\"")
                && l.contains("source=\"attio\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

/// What a change should look like on the other side, once it arrived.
#[derive(Debug, Clone)]
enum Expect {
    Title(String),
    Gone,
}

/// Runs the demo; `Err` when something did not arrive within the wait.
pub async fn run(wait: Duration) -> Result<()> {
    let started = Instant::now();
    // Attio's simulator sends half of its deliveries twice: each is stored once.
    let mut attio_config = attio_sim::SimConfig::default();
    attio_config.faults.duplicate_rate = 0.5;
    let attio_sim = attio_sim::start(addr(), attio_config).await?;
    let tenant = TenantId::parse("acme")?;
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let listener = tokio::net::TcpListener::bind(addr()).await?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let crms = crms::start(&tenant, limiter.clone(), &api_url).await?;
    let mappings: String = crms.iter().map(|c| c.mappings()).collect();

    let dir =
        std::env::temp_dir().join(format!("attio-sync-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("attio-sync.db");
    let store =
        app_common::RawStore::Sqlite { path: db.clone() }.validate(Some(&random_hex(32)))?;
    let stores = app_common::open_stores(&store, &app_common::QueueSettings::Store).await?;

    // The API, registering webhooks with the Attio simulator.
    let admin_token = random_hex(24);
    let api_settings = webhook_api::RawConfig {
        debounce_ms: 200,
        public_url: api_url.clone(),
        admin_token: Some(admin_token.clone()),
        attio_base_url: attio_sim.url(),
        ..Default::default()
    }
    .validate()?;
    let state = webhook_api::AppState::new(&stores, api_settings).with_registrar(Some(
        webhook_api::AttioRegistrar {
            base_url: attio_sim.url(),
            limiter: limiter.clone(),
        },
    ));
    let api = tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));

    // The worker.
    let worker_toml = dir.join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            "attio_base_url = \"{}\"\nconsumer = \"demo-worker\"\nlease_s = 10\nretry_base_ms = 200\n{mappings}",
            attio_sim.url()
        ),
    )?;
    let worker_settings = sync_worker::RawConfig::load(Some(&worker_toml))?.validate()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn({
        let (stores, limiter) = (stores.clone(), limiter.clone());
        async move { sync_worker::run(&worker_settings, stores, limiter, stopped).await }
    });

    let sims: Vec<String> = crms
        .iter()
        .map(|c| format!("{} at {}", c.name(), c.url()))
        .collect();
    println!(
        "attio-sync demo: attio-sim {}, simulated {}",
        attio_sim.url(),
        sims.join(", ")
    );
    println!(
        "                 webhook-api {api_url}, one sync-worker, SQLite at {}",
        db.display()
    );

    // The operator adds a tenant; its Attio webhook is registered on the way.
    let http = reqwest::Client::new();
    let attio_token = random_hex(32);
    let added = http
        .post(format!("{api_url}/v1/admin/tenants"))
        .bearer_auth(&admin_token)
        .json(&json!({
            "id": "acme", "name": "Acme",
            "attio": {"api_token": attio_token},
            "register_webhook": true,
            "crms": crms.iter().map(|c| c.connection()).collect::<Vec<_>>(),
        }))
        .send()
        .await?;
    if added.status() != 201 {
        bail!(
            "adding the tenant failed: {} {}",
            added.status(),
            added.text().await.unwrap_or_default()
        );
    }
    println!("tenant acme added; Attio will deliver to {api_url}/v1/webhooks/attio/acme\n");

    let attio = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (http, url, token) = (http.clone(), attio_sim.url(), attio_token.clone());
        async move {
            let mut req = http
                .request(method, format!("{url}{path}"))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await?;
            if !r.status().is_success() {
                bail!("Attio answered {} to {path}", r.status());
            }
            Ok::<Value, anyhow::Error>(r.json().await.unwrap_or(Value::Null))
        }
    };

    // The changes.
    let people = [
        ("Ada", "Lovelace", "Analyst"),
        ("Grace", "Hopper", "Rear Admiral"),
        ("Alan", "Turing", "Mathematician"),
    ];
    let mut changes: Vec<(String, String, Expect, Instant)> = Vec::new();
    let mut ids = Vec::new();
    for (first, last, title) in people {
        let at = Instant::now();
        let r = attio(
            reqwest::Method::POST,
            "/v2/objects/people/records".into(),
            Some(json!({"data": {"values": {
                "email_addresses": [format!("{}@example.com", first.to_lowercase())],
                "name": [{"first_name": first, "last_name": last, "full_name": format!("{first} {last}")}],
                "job_title": title,
            }}})),
        )
        .await?;
        let id = r["data"]["id"]["record_id"]
            .as_str()
            .context("no record id")?
            .to_owned();
        ids.push(id.clone());
        changes.push((
            format!("created {first} {last}"),
            id,
            Expect::Title(title.into()),
            at,
        ));
    }
    let at = Instant::now();
    attio(
        reqwest::Method::PATCH,
        format!("/v2/objects/people/records/{}", ids[0]),
        Some(json!({"data": {"values": {"job_title": "Countess of Lovelace"}}})),
    )
    .await?;
    changes.push((
        "updated Ada's job title".into(),
        ids[0].clone(),
        Expect::Title("Countess of Lovelace".into()),
        at,
    ));
    let at = Instant::now();
    attio(
        reqwest::Method::DELETE,
        format!("/v2/objects/people/records/{}", ids[2]),
        None,
    )
    .await?;
    changes.push((
        "deleted Alan Turing".into(),
        ids[2].clone(),
        Expect::Gone,
        at,
    ));

    // Where they arrived. A later change supersedes an earlier one for the same record, so each
    // change is checked as the final state of its record would show it only if it is the last.
    let header: String = crms.iter().map(|c| format!(" {:<34}", c.name())).collect();
    println!("{:<28}{header}", "change in Attio");
    let deadline = Instant::now() + wait;
    let mut delays = Vec::new();
    let mut missing = 0;
    for (i, (what, record, expect, at)) in changes.iter().enumerate() {
        let superseded = changes[i + 1..].iter().any(|(_, r, _, _)| r == record);
        if superseded {
            println!("{what:<28} (superseded by a later change)");
            continue;
        }
        let mut cols = Vec::new();
        for crm in &crms {
            let arrived = loop {
                let found = crm.find(record, expect).await?;
                if let Some(id) = found {
                    break Some((id, at.elapsed()));
                }
                if Instant::now() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            };
            cols.push(match arrived {
                Some((id, d)) => {
                    delays.push(d);
                    format!("{id} after {} ms", d.as_millis())
                }
                None => {
                    missing += 1;
                    "MISSING".to_owned()
                }
            });
        }
        let cols: String = cols.iter().map(|c| format!(" {c:<34}")).collect();
        println!("{what:<28}{cols}");
    }
    // Both ways: a title edited in each CRM comes back to Attio and goes on to the other CRM
    // (HubSpot by its signed webhook, Salesforce by polling), and the echoes change nothing.
    println!(
        "\n{:<28} {:<34}{}",
        "change in a CRM",
        "Attio",
        crms.iter()
            .map(|c| format!(" {:<34}", c.name()))
            .collect::<String>()
    );
    let mut made_in_crms = 0;
    for (crm, person) in crms.iter().zip([1usize, 0]) {
        let record = &ids[person];
        let title = format!("Edited in {}", crm.name());
        let at = Instant::now();
        crm.edit_title(record, &title).await?;
        made_in_crms += 1;
        let deadline = Instant::now() + wait;
        let mut cols = Vec::new();
        let in_attio = loop {
            let r = attio(
                reqwest::Method::GET,
                format!("/v2/objects/people/records/{record}"),
                None,
            )
            .await?;
            if r["data"]["values"]["job_title"][0]["value"] == title.as_str() {
                break Some(at.elapsed());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        cols.push(in_attio);
        for other in &crms {
            if std::ptr::eq(other, crm) {
                cols.push(Some(Duration::ZERO));
                continue;
            }
            let expect = Expect::Title(title.clone());
            let arrived = loop {
                if other.find(record, &expect).await?.is_some() {
                    break Some(at.elapsed());
                }
                if Instant::now() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            };
            cols.push(arrived);
        }
        let mut row = String::new();
        for (i, c) in cols.iter().enumerate() {
            let own = i > 0 && std::ptr::eq(&crms[i - 1], crm);
            let cell = match c {
                _ if own => "(edited here)".to_owned(),
                Some(d) => {
                    delays.push(*d);
                    format!("after {} ms", d.as_millis())
                }
                None => {
                    missing += 1;
                    "MISSING".to_owned()
                }
            };
            row.push_str(&format!(" {cell:<34}"));
        }
        println!("{:<28}{row}", format!("title edited in {}", crm.name()));
    }
    // At the same moment, Grace's first name changes in Attio and in a CRM whose mapping leaves
    // that field to a person (`manual`): a conflict, queued with both values.
    let grace = &ids[1];
    attio(
        reqwest::Method::PATCH,
        format!("/v2/objects/people/records/{grace}"),
        Some(json!({"data": {"values": {"name": [{"first_name": "Gracie", "last_name": "Hopper", "full_name": "Gracie Hopper"}]}}})),
    )
    .await?;
    let mut edited_in = None;
    for crm in &crms {
        if crm.edit_first_name(grace, "Amazing Grace").await? {
            edited_in = Some(crm.name());
        }
    }
    let deadline = Instant::now() + wait;
    let conflicts = loop {
        let open = stores
            .conflicts
            .open(&tenant, &Default::default(), 10)
            .await?;
        if !open.is_empty() || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    for c in &conflicts {
        println!(
            "\nfirst name changed in Attio and in {}: a conflict for a person ({} in Attio, {} there, was {})",
            edited_in.unwrap_or("a CRM"),
            shown(&c.conflict.attio.value),
            shown(&c.conflict.external.value),
            shown(&c.conflict.snapshot.attio),
        );
    }
    if conflicts.is_empty() {
        missing += 1;
        println!("\nMISSING: the conflict over Grace's first name was not queued");
    }
    // The operator settles it through the admin API, keeping Attio's value: a worker writes it
    // where it differs (no echo comes back), and the record's history says who and why.
    let mut settled = 0;
    for c in &conflicts {
        let at = Instant::now();
        let r = http
            .post(format!(
                "{api_url}/v1/admin/tenants/acme/conflicts/{}/resolve",
                c.id
            ))
            .bearer_auth(&admin_token)
            .json(&json!({"keep": "attio"}))
            .send()
            .await?;
        if r.status() != 202 {
            bail!("resolving the conflict failed: {}", r.status());
        }
        let kept = c.conflict.attio.value.clone();
        let deadline = Instant::now() + wait;
        let arrived = loop {
            let mut everywhere = true;
            for crm in &crms {
                if let Some(v) = crm.first_name(grace).await?
                    && !v.same_as(&kept)
                {
                    everywhere = false;
                }
            }
            if everywhere {
                break Some(at.elapsed());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        match arrived {
            Some(d) => {
                settled += 1;
                println!(
                    "resolved by keeping Attio's {}: written to {} after {} ms",
                    shown(&kept),
                    edited_in.unwrap_or("the CRM"),
                    d.as_millis()
                );
            }
            None => {
                missing += 1;
                println!("MISSING: the resolution did not reach the CRM");
            }
        }
    }
    if settled > 0 {
        let history: serde_json::Value = http
            .get(format!(
                "{api_url}/v1/admin/tenants/acme/records/people/{grace}/history?limit=50"
            ))
            .bearer_auth(&admin_token)
            .send()
            .await?
            .json()
            .await?;
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header(vec![
                "Grace's first name",
                "written to",
                "from",
                "old → new",
                "rule",
            ]);
        let entries = history["entries"].as_array().cloned().unwrap_or_default();
        for e in entries
            .iter()
            .filter(|e| e["field"] == "name.first_name")
            .take(4)
        {
            let text = |v: &serde_json::Value| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            };
            table.add_row(vec![
                e["at"]
                    .as_str()
                    .unwrap_or_default()
                    .get(11..23)
                    .unwrap_or_default()
                    .to_owned(),
                text(&e["written_to"]),
                text(&e["source"]),
                format!("{} → {}", text(&e["old"]), text(&e["new"])),
                text(&e["rule"]),
            ]);
        }
        println!("{table}");
    }
    delays.sort();
    let p50 = delays.get(delays.len() / 2).copied().unwrap_or_default();
    let max = delays.last().copied().unwrap_or_default();
    let depth = stores.queue.depth().await?;
    let duplicates = duplicate_deliveries();
    let mut summary = comfy_table::Table::new();
    summary
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["summary", ""]);
    for (k, v) in [
        ("changes made in Attio", changes.len().to_string()),
        ("changes made in a CRM", made_in_crms.to_string()),
        ("arrivals", delays.len().to_string()),
        ("missing", missing.to_string()),
        ("duplicate deliveries ignored", duplicates.to_string()),
        ("conflicts for a person", conflicts.len().to_string()),
        ("conflicts resolved", settled.to_string()),
        ("dead letters", depth.dead.to_string()),
        (
            "delay p50 / max",
            format!("{} ms / {} ms", p50.as_millis(), max.as_millis()),
        ),
    ] {
        summary.add_row(vec![k.to_owned(), v]);
    }
    println!("\n{summary}");
    println!(
        "{} changes, {} arrivals, {missing} missing; {duplicates} duplicate deliveries ignored; {} conflict(s) for a person; delays include the 200 ms debounce and the 1 s poll; queue: {} ready, {} dead; {:.1} s in all",
        changes.len() + made_in_crms,
        delays.len(),
        conflicts.len(),
        depth.ready,
        depth.dead,
        started.elapsed().as_secs_f64()
    );
    let _ = stop.send(true);
    let _ = worker.await;
    api.abort();
    drop((attio_sim, crms));
    let _ = std::fs::remove_dir_all(&dir);
    if missing > 0 {
        bail!("{missing} arrivals are missing");
    }
    Ok(())
}
