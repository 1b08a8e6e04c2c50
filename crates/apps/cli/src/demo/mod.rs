//! `attio-sync demo`: the whole service in one process, against its simulators — attio-sim, a
//! simulator per CRM ([`crms`]), webhook-api and a sync-worker on a temporary SQLite file — then
//! the scenes of [`scenes`] (changes made in Attio and in each CRM, a simultaneous edit a rule
//! settles, one a person settles), what arrived where with its delay, and a summary that counts
//! what was lost and what was written once everything had settled.

mod crms;
mod scenes;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_memory::MemoryRateLimiter;
use anyhow::{Result, bail};
use domain::ids::TenantId;
use ports::limiter::RateLimiter;
use serde_json::{Value, json};

use crms::DemoCrm;

fn addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(16))
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect::<String>()[..bytes * 2]
        .to_owned()
}

/// The sum of a counter the service records in this process (`name{…} value` lines of its
/// Prometheus rendering whose labels contain every one of `labels`).
fn counter(name: &str, labels: &[&str]) -> u64 {
    let Some(handle) = webhook_api::telemetry::handle() else {
        return 0;
    };
    handle
        .render()
        .lines()
        .filter(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                && labels.iter().all(|want| l.contains(want))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

/// The writes a simulator answered since its log was last emptied: requests that change
/// something (not reads, queries, searches or token requests).
async fn writes_logged(http: &reqwest::Client, base: &str) -> Result<usize> {
    let log: Vec<Value> = http
        .get(format!("{base}/_sim/requests"))
        .send()
        .await?
        .json()
        .await?;
    let read = |path: &str| {
        ["/query", "/search", "/batch/read", "/oauth2/token"]
            .iter()
            .any(|r| path.contains(r))
    };
    Ok(log
        .iter()
        .filter(|r| {
            let (method, path) = (r["method"].as_str(), r["path"].as_str().unwrap_or(""));
            !matches!(method, Some("GET" | "HEAD")) && !read(path)
        })
        .count())
}

/// What the demo runs against, and how it reaches each part.
pub struct Demo {
    http: reqwest::Client,
    attio_url: String,
    attio_token: String,
    api_url: String,
    admin_token: String,
    tenant: TenantId,
    stores: app_common::Stores,
    crms: Vec<DemoCrm>,
    /// How long a change may take to arrive.
    wait: Duration,
}

/// What the scenes counted.
#[derive(Debug, Default)]
pub struct Tally {
    attio_changes: usize,
    crm_changes: usize,
    delays: Vec<Duration>,
    missing: usize,
    settled_by_rule: usize,
    conflicts: usize,
    resolved: usize,
}

impl Tally {
    /// A table cell for an arrival: what it found and its delay, or MISSING (counted).
    fn cell<T>(
        &mut self,
        arrived: Option<(T, Duration)>,
        what: impl Fn(T, Duration) -> String,
    ) -> String {
        match arrived {
            Some((found, d)) => {
                self.delays.push(d);
                what(found, d)
            }
            None => {
                self.missing += 1;
                "MISSING".to_owned()
            }
        }
    }
}

impl Demo {
    /// A call to Attio (the simulator), as the tenant's app would make it.
    async fn attio(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (url, token) = (&self.attio_url, &self.attio_token);
        self.call("Attio", url, token, method, path, body).await
    }

    /// A call to the service's admin API, as an operator would make it.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (url, token) = (&self.api_url, &self.admin_token);
        self.call("the admin API", url, token, method, path, body)
            .await
    }

    /// One call to `base` with a bearer token; its JSON answer (`null` when empty), or an error
    /// naming `who` and the status.
    async fn call(
        &self,
        who: &str,
        base: &str,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        if !r.status().is_success() {
            bail!("{who} answered {} to {path}", r.status());
        }
        Ok(r.json().await.unwrap_or(Value::Null))
    }

    /// What `check` first found, polling every 25 ms, and how long after `since`; `None` when
    /// it found nothing within the wait.
    async fn arrival<T, F, Fut>(
        &self,
        since: Instant,
        mut check: F,
    ) -> Result<Option<(T, Duration)>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(found) = check().await? {
                return Ok(Some((found, since.elapsed())));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The simulators' base URLs: Attio's, then each CRM's.
    fn simulators(&self) -> Vec<String> {
        std::iter::once(self.attio_url.clone())
            .chain(self.crms.iter().map(DemoCrm::url))
            .collect()
    }

    /// The writes every simulator answered since their logs were last emptied.
    async fn writes(&self) -> Result<usize> {
        let mut n = 0;
        for base in self.simulators() {
            n += writes_logged(&self.http, &base).await?;
        }
        Ok(n)
    }
}

/// Prints a row of the demo's tables: what happened, then one cell per column.
fn row(what: &str, cells: &[String]) {
    let cells: String = cells.iter().map(|c| format!(" {c:<34}")).collect();
    println!("{what:<30}{cells}");
}

/// Runs the demo; `Err` when something did not arrive within the wait, or something was written
/// once everything had settled.
pub async fn run(wait: Duration) -> Result<()> {
    let started = Instant::now();
    let (demo, running) = start(wait).await?;
    let mut tally = Tally::default();
    let people = scenes::attio_to_crms(&demo, &mut tally).await?;
    scenes::crm_edits_come_back(&demo, &mut tally, &people).await?;
    scenes::a_rule_settles_a_simultaneous_edit(&demo, &mut tally, &people).await?;
    scenes::a_conflict_waits_for_a_person(&demo, &mut tally, &people).await?;
    let total_writes = demo.writes().await?;
    let unexpected = scenes::quiet(&demo).await?;
    let dead = demo.stores.queue.depth().await?.dead;
    summary(&tally, total_writes, unexpected, dead, started);
    let dir = running.dir.clone();
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if tally.missing > 0 {
        bail!("{} arrivals are missing", tally.missing);
    }
    if unexpected > 0 {
        bail!("{unexpected} writes were made after everything had settled");
    }
    Ok(())
}

/// The processes the demo started, to stop them.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<services::worker::WorkerStats>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    _attio: attio_sim::RunningSim,
    dir: std::path::PathBuf,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.worker.await;
        self.api.abort();
    }
}

/// Starts the simulators, the API and a worker on a temporary SQLite file, and adds the tenant
/// (its Attio webhook registered on the way).
async fn start(wait: Duration) -> Result<(Demo, Running)> {
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
    let demo = Demo {
        http: reqwest::Client::new(),
        attio_url: attio_sim.url(),
        attio_token: random_hex(32),
        api_url,
        admin_token,
        tenant,
        stores,
        crms,
        wait,
    };
    demo.admin(
        reqwest::Method::POST,
        "/v1/admin/tenants",
        Some(json!({
            "id": "acme", "name": "Acme",
            "attio": {"api_token": demo.attio_token},
            "register_webhook": true,
            "crms": demo.crms.iter().map(DemoCrm::connection).collect::<Vec<_>>(),
        })),
    )
    .await?;
    println!(
        "tenant acme added; Attio will deliver to {}/v1/webhooks/attio/acme\n",
        demo.api_url
    );
    let running = Running {
        stop,
        worker,
        api,
        _attio: attio_sim,
        dir,
    };
    Ok((demo, running))
}

/// The closing table and line.
fn summary(t: &Tally, writes: usize, unexpected: usize, dead: u64, started: Instant) {
    let mut delays = t.delays.clone();
    delays.sort();
    let p50 = delays.get(delays.len() / 2).copied().unwrap_or_default();
    let max = delays.last().copied().unwrap_or_default();
    let duplicates = counter("webhook_deliveries_total", &["outcome=\"duplicate\""]);
    let echoes = counter("echoes_suppressed_total", &[]);
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["summary", ""]);
    for (k, v) in [
        ("changes made in Attio", t.attio_changes.to_string()),
        ("changes made in a CRM", t.crm_changes.to_string()),
        ("arrivals", delays.len().to_string()),
        ("missing", t.missing.to_string()),
        ("duplicate deliveries ignored", duplicates.to_string()),
        ("echoes of our own writes suppressed", echoes.to_string()),
        (
            "simultaneous edits settled by a rule",
            t.settled_by_rule.to_string(),
        ),
        ("conflicts for a person", t.conflicts.to_string()),
        ("conflicts resolved", t.resolved.to_string()),
        ("dead letters", dead.to_string()),
        ("writes the simulators answered", writes.to_string()),
        ("writes once everything settled", unexpected.to_string()),
        (
            "delay p50 / max",
            format!("{} ms / {} ms", p50.as_millis(), max.as_millis()),
        ),
    ] {
        table.add_row(vec![k.to_owned(), v]);
    }
    println!("\n{table}");
    println!(
        "{} changes, {} arrivals, {} missing; {duplicates} duplicate deliveries ignored; {echoes} echoes suppressed; {unexpected} unexpected writes; {} conflict(s) for a person; delays include the 200 ms debounce and the 1 s poll; {:.1} s in all",
        t.attio_changes + t.crm_changes,
        delays.len(),
        t.missing,
        t.conflicts,
        started.elapsed().as_secs_f64()
    );
}
