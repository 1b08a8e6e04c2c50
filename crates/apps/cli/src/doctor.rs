//! `attio-sync doctor --config FILE`: checks a deployment from its configuration (the `run` file:
//! `[api]` and `[worker]`) and says what to fix: the store and its PostgreSQL settings, Redis,
//! then per tenant its Attio token and webhook registration, each CRM connection's credentials,
//! and the worker's mappings against Attio's attributes. Exit 0 when nothing needs fixing, 1 when
//! something does, 2 when the configuration itself is invalid.

use std::path::Path;
use std::sync::Arc;

use adapter_attio_http::{AttioClient, AttioConfig};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use domain::ids::ObjectSlug;
use domain::tenant::Tenant;
use ports::attio::AttioWebhooks;
use ports::directory::ClientDirectory;
use ports::error::PortError;
use ports::limiter::RateLimiter;
use serde::Serialize;

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
    /// What to do, when something is wrong.
    pub fix: String,
}

fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        ok: true,
        what: what.into(),
        detail: detail.into(),
        fix: String::new(),
    }
}

fn problem(what: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        ok: false,
        what: what.into(),
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Every check; `Err` only for a configuration that does not validate.
pub async fn checks(file: Option<&Path>) -> anyhow::Result<Vec<Check>> {
    let (api, worker) = crate::run::settings(file)?;
    let mut out = Vec::new();
    let stores = match app_common::open_stores(&api.store, &api.queue).await {
        Ok(s) => {
            out.push(ok("store", "opened and migrated"));
            s
        }
        Err(e) => {
            out.push(problem(
                "store",
                format!("cannot be opened: {}", ports::Chain(&e)),
                "check [api] store (kind, url or path) and that the server answers; with Redis, queue.url",
            ));
            return Ok(out);
        }
    };
    if let Some(bytes) = stores.min_wal_size {
        out.push(match app_common::wal_reserve_warning(bytes) {
            None => ok("PostgreSQL min_wal_size", format!("{} MB", bytes >> 20)),
            Some(w) => problem(
                "PostgreSQL min_wal_size",
                w,
                "set min_wal_size = 1GB in postgresql.conf and reload",
            ),
        });
    }
    if let Some(persists) = stores.redis_persists {
        out.push(if persists {
            ok("Redis persistence", "AOF or RDB snapshots on")
        } else {
            problem(
                "Redis persistence",
                "Redis keeps the inbox and the queue but nothing on disk: accepted deliveries are lost if it restarts",
                "set appendonly yes (and appendfsync everysec or always) in redis.conf, or CONFIG SET appendonly yes",
            )
        });
    }
    let limiter: Arc<dyn RateLimiter> = Arc::new(adapter_memory::MemoryRateLimiter::default());
    let tenants = match stores.tenants.list().await {
        Ok(t) => t,
        Err(e) => {
            out.push(problem(
                "tenants",
                format!("cannot be read: {}", ports::Chain(&e)),
                "check the store and master_key",
            ));
            return Ok(out);
        }
    };
    if tenants.is_empty() {
        out.push(problem(
            "tenants",
            "none",
            "add one with `attio-sync tenant add FILE`",
        ));
    }
    let directory = Arc::new(app_common::directory::TenantDirectory::new(
        stores.tenants.clone(),
        limiter.clone(),
        &api.attio_base_url,
    ));
    for t in &tenants {
        out.extend(attio(&api, t, limiter.clone()).await);
        out.extend(crms(&worker, t, directory.as_ref()).await);
        out.extend(mappings(&stores, &worker, t, directory.clone()).await);
    }
    Ok(out)
}

/// The tenant's Attio token, and a webhook delivering to this service.
async fn attio(
    api: &webhook_api::Settings,
    t: &Tenant,
    limiter: Arc<dyn RateLimiter>,
) -> Vec<Check> {
    let what = format!("{}: Attio", t.id);
    let client = AttioConfig::new(&api.attio_base_url, t.attio.api_token.clone(), t.id.clone())
        .map_err(|e| e.to_string())
        .and_then(|c| AttioClient::new(c, limiter).map_err(|e| e.to_string()));
    let client = match client {
        Ok(c) => c,
        Err(e) => return vec![problem(what, e, "check attio_base_url")],
    };
    let target = format!("{}/v1/webhooks/attio/{}", api.public_url, t.id);
    match client.list_webhooks().await {
        Err(PortError::Unauthorized(m)) => vec![problem(
            what,
            format!("Attio refuses the tenant's token: {m}"),
            "store a valid token (scopes: records, lists, notes, tasks, webhooks)",
        )],
        Err(e) => vec![problem(
            what,
            format!(
                "Attio at {} did not answer: {}",
                api.attio_base_url,
                ports::Chain(&e)
            ),
            "check attio_base_url and the network",
        )],
        Ok(hooks) => {
            let mut found = hooks.iter().filter(|h| h.target_url == target);
            match found.next() {
                Some(h) => vec![ok(
                    what,
                    format!(
                        "token accepted; webhook {} delivers to {target}",
                        h.status.as_str()
                    ),
                )],
                None => vec![problem(
                    what,
                    format!("no Attio webhook delivers to {target}"),
                    "register one (create the tenant with register_webhook), or check public_url",
                )],
            }
        }
    }
}

/// Each CRM connection builds a client and its credentials are accepted.
async fn crms(
    worker: &sync_worker::Settings,
    t: &Tenant,
    directory: &dyn ClientDirectory,
) -> Vec<Check> {
    let registry = app_common::registry::Registry::builtin();
    let clients = directory.clients(&t.id).await;
    let mut out = Vec::new();
    for c in &t.crms {
        let what = format!("{}: {}", t.id, c.system);
        if let Err(e) = registry.check(c) {
            out.push(problem(
                what,
                e.to_string(),
                "fix the connection's settings and secrets",
            ));
            continue;
        }
        let Some(crm) = clients.as_ref().ok().and_then(|cl| cl.crms.get(&c.system)) else {
            out.push(problem(
                what,
                "no client could be built",
                "see the log line naming the cause",
            ));
            continue;
        };
        let Some(object) = worker
            .targets
            .iter()
            .find(|tg| tg.mapping.system == c.system)
            .map(|tg| tg.mapping.external_object.clone())
        else {
            out.push(ok(
                what,
                "connected; no mapping uses it, so its credentials were not tried",
            ));
            continue;
        };
        let now = time::OffsetDateTime::now_utc();
        out.push(match crm.changed_since(&object, now, &[], None).await {
            Ok(_) => ok(what, format!("credentials accepted (read {object})")),
            Err(PortError::Unauthorized(m)) => problem(
                what,
                format!("refuses the credentials: {m}"),
                "store valid credentials for the connection",
            ),
            Err(e) => problem(
                what,
                format!("did not answer: {}", ports::Chain(&e)),
                "check the connection's URL and the network",
            ),
        });
    }
    out
}

/// The worker's mappings against the tenant's Attio attributes.
async fn mappings(
    stores: &app_common::Stores,
    worker: &sync_worker::Settings,
    t: &Tenant,
    directory: Arc<app_common::directory::TenantDirectory>,
) -> Vec<Check> {
    let what = format!("{}: mappings", t.id);
    if worker.targets.is_empty() {
        return vec![problem(
            what,
            "no [[worker.targets]]: nothing is synced",
            "add mappings to [worker]",
        )];
    }
    let clients = match directory.clients(&t.id).await {
        Ok(c) => c,
        Err(e) => {
            return vec![problem(
                what,
                ports::Chain(&e).to_string(),
                "fix the tenant's connections",
            )];
        }
    };
    let sync = services::outbound::OutboundSync::new(
        directory,
        stores.links.clone(),
        stores.ledger.clone(),
        stores.conflicts.clone(),
        Arc::new(adapter_memory::SystemClock),
        worker.targets.clone(),
    );
    let objects: std::collections::BTreeSet<&ObjectSlug> = worker
        .targets
        .iter()
        .map(|tg| &tg.mapping.attio_object)
        .collect();
    let mut problems = Vec::new();
    for object in objects {
        match sync.schema_changed(&t.id, object, &clients).await {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(format!("{object}: {e}")),
        }
    }
    if problems.is_empty() {
        vec![ok(what, "every mapped attribute exists and is usable")]
    } else {
        problems
            .into_iter()
            .map(|p| {
                problem(
                    what.clone(),
                    p,
                    "fix [[worker.targets]] or the Attio attribute",
                )
            })
            .collect()
    }
}

/// Prints the findings; whether all passed.
pub fn report(checks: &[Check], json: bool) -> bool {
    let passed = checks.iter().all(|c| c.ok);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(checks).unwrap_or_default()
        );
        return passed;
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["", "check", "found", "fix"]);
    for c in checks {
        table.add_row(vec![
            if c.ok { "ok" } else { "FIX" },
            &c.what,
            &c.detail,
            &c.fix,
        ]);
    }
    println!("{table}");
    let n = checks.iter().filter(|c| !c.ok).count();
    println!(
        "{}",
        if passed {
            "nothing to fix".to_owned()
        } else {
            format!("{n} to fix")
        }
    );
    passed
}
