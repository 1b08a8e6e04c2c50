//! The operator's commands: a client of a running service's admin API (`--url`, `--token`, or
//! `ATTIO_SYNC_URL` / `ATTIO_SYNC_ADMIN_TOKEN`). Answers print as tables, or as the API's JSON
//! with `--json`.
//!
//! Exit codes: 0 done; 1 the service refused the request (its reason is printed); 2 the command
//! line or an input file is wrong; 3 the service could not be reached or failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use reqwest::Method;
use serde_json::{Value, json};

/// Where the service is and how to authenticate.
#[derive(Debug, Args)]
pub struct Connection {
    /// The service's base URL.
    #[arg(
        long,
        env = "ATTIO_SYNC_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The admin token (`admin_token` in webhook-api's settings).
    #[arg(
        long,
        env = "ATTIO_SYNC_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Adds a tenant from a JSON file (`-` for standard input): the admin API's tenant body.
    Add { file: PathBuf },
    /// Lists the tenants, a page at a time.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        after: Option<String>,
    },
    /// Shows one tenant (its secrets as `***`).
    Show { id: String },
    /// Removes a tenant: its Attio webhook, then everything kept of it.
    Remove {
        id: String,
        /// Remove it even when Attio cannot be asked to remove its webhook.
        #[arg(long)]
        force: bool,
    },
    /// Registers a new Attio webhook for the tenant and removes the old one; deliveries signed
    /// with the old secret are accepted until it is gone.
    RotateSecret { id: String },
    /// The tenant's API keys for its own app.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Makes a key (shown once; only its digest is kept).
    Add { id: String },
    /// The tenant's keys by fingerprint.
    List { id: String },
    /// Revokes the key with that fingerprint, or with `--all` every key of the tenant.
    Revoke {
        id: String,
        fingerprint: Option<String>,
        #[arg(long, conflicts_with = "fingerprint")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// The tenant's dead letters, newest first.
    List {
        tenant: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One dead letter: its cause, error, attempts and payloads.
    Show { tenant: String, job: String },
    /// Queues a dead letter's job again.
    Replay { tenant: String, job: String },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// The tenant's quarantined deliveries, with the reason.
    List {
        tenant: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One quarantined delivery with its reason and body as received.
    Show { tenant: String, delivery: String },
}

#[derive(Debug, Subcommand)]
pub enum BackfillCmd {
    /// Queues a backfill of one Attio object to one CRM; `--follow` shows its progress.
    Start {
        tenant: String,
        #[arg(long)]
        object: String,
        #[arg(long)]
        system: String,
        #[arg(long)]
        follow: bool,
    },
    /// The tenant's backfills and polling cursors.
    Status { tenant: String },
}

/// A failure, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("the service refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Input(String),
    #[error("cannot reach the service at {url}: {reason} (check --url or ATTIO_SYNC_URL)")]
    Unreachable { url: String, reason: String },
    #[error("the service failed ({status}): {message}")]
    Failed { status: u16, message: String },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { .. } => 1,
            CliError::Input(_) => 2,
            CliError::Unreachable { .. } | CliError::Failed { .. } => 3,
        }
    }
}

/// The admin API of one service.
#[derive(Debug)]
pub struct Admin {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Admin {
    pub fn new(c: &Connection) -> Result<Self, CliError> {
        let token = c.token.clone().ok_or_else(|| {
            CliError::Input("no admin token: pass --token or set ATTIO_SYNC_ADMIN_TOKEN".into())
        })?;
        Ok(Self {
            http: reqwest::Client::new(),
            url: c.url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// One call; the answer's JSON (`null` for an empty one).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| CliError::Unreachable {
            url: self.url.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let message = || {
            value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string())
        };
        match status {
            200..=299 => Ok(value),
            401 => Err(CliError::Refused {
                status,
                message: "the admin token is wrong (--token or ATTIO_SYNC_ADMIN_TOKEN)".into(),
            }),
            400..=499 => Err(CliError::Refused {
                status,
                message: message(),
            }),
            _ => Err(CliError::Failed {
                status,
                message: message(),
            }),
        }
    }
}

/// Prints `value` as JSON, or as a table of the given columns (an array) or of key and value (an
/// object).
pub fn print(value: &Value, columns: &[&str], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        return;
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match value {
        Value::Array(rows) => {
            table.set_header(columns.to_vec());
            for r in rows {
                table.add_row(columns.iter().map(|c| cell(&r[*c])).collect::<Vec<_>>());
            }
        }
        Value::Object(m) => {
            table.set_header(vec!["field", "value"]);
            for (k, v) in m {
                table.add_row(vec![k.clone(), cell(v)]);
            }
        }
        other => {
            println!("{}", cell(other));
            return;
        }
    }
    println!("{table}");
}

fn read_json(file: &PathBuf) -> Result<Value, CliError> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Input(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::Input(format!("{} is not JSON: {e}", file.display())))
}

pub async fn tenant(c: &Connection, cmd: TenantCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        TenantCmd::Add { file } => {
            let body = read_json(&file)?;
            let v = admin
                .call(Method::POST, "/v1/admin/tenants", Some(body))
                .await?;
            print(&v, &[], c.json);
        }
        TenantCmd::List { limit, after } => {
            let mut path = format!("/v1/admin/tenants?limit={limit}");
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &["id", "name", "created_at", "api_keys"], c.json);
        }
        TenantCmd::Show { id } => {
            let v = admin
                .call(Method::GET, &format!("/v1/admin/tenants/{id}"), None)
                .await?;
            print(&v, &[], c.json);
        }
        TenantCmd::Remove { id, force } => {
            let path = format!("/v1/admin/tenants/{id}?force={force}");
            let v = admin.call(Method::DELETE, &path, None).await?;
            print(&v, &[], c.json);
        }
        TenantCmd::RotateSecret { id } => {
            let path = format!("/v1/admin/tenants/{id}/rotate-webhook");
            let v = admin.call(Method::POST, &path, None).await?;
            print(&v, &[], c.json);
        }
        TenantCmd::Keys(KeysCmd::Add { id }) => {
            let path = format!("/v1/admin/tenants/{id}/api-keys");
            let v = admin.call(Method::POST, &path, None).await?;
            print(&v, &[], c.json);
        }
        TenantCmd::Keys(KeysCmd::List { id }) => {
            let path = format!("/v1/admin/tenants/{id}/api-keys");
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &["fingerprint"], c.json);
        }
        TenantCmd::Keys(KeysCmd::Revoke {
            id,
            fingerprint,
            all,
        }) => {
            let path = match (&fingerprint, all) {
                (Some(f), _) => format!("/v1/admin/tenants/{id}/api-keys/{f}"),
                (None, true) => format!("/v1/admin/tenants/{id}/api-keys"),
                (None, false) => {
                    return Err(CliError::Input(
                        "name the key's fingerprint (tenant keys list) or pass --all".into(),
                    ));
                }
            };
            admin.call(Method::DELETE, &path, None).await?;
            let revoked = fingerprint.unwrap_or_else(|| "all".into());
            print(&json!({"revoked": revoked, "tenant": id}), &[], c.json);
        }
    }
    Ok(())
}

pub async fn dlq(c: &Connection, cmd: DlqCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        DlqCmd::List { tenant, limit } => {
            let path = format!("/v1/admin/tenants/{tenant}/dead-letters?limit={limit}");
            let v = admin.call(Method::GET, &path, None).await?;
            print(
                &v,
                &["job_id", "key", "attempts", "failed_at", "error"],
                c.json,
            );
        }
        DlqCmd::Show { tenant, job } => {
            let path = format!("/v1/admin/tenants/{tenant}/dead-letters/{job}");
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &[], c.json);
        }
        DlqCmd::Replay { tenant, job } => {
            let path = format!("/v1/admin/tenants/{tenant}/dead-letters/{job}/replay");
            let v = admin.call(Method::POST, &path, None).await?;
            print(&v, &[], c.json);
        }
    }
    Ok(())
}

pub async fn quarantine(c: &Connection, cmd: QuarantineCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        QuarantineCmd::List { tenant, limit } => {
            let path = format!("/v1/admin/tenants/{tenant}/quarantine?limit={limit}");
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &["id", "source", "received_at", "reason"], c.json);
        }
        QuarantineCmd::Show { tenant, delivery } => {
            let path = format!("/v1/admin/tenants/{tenant}/quarantine/{delivery}");
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &[], c.json);
        }
    }
    Ok(())
}

pub async fn backfill(c: &Connection, cmd: BackfillCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        BackfillCmd::Start {
            tenant,
            object,
            system,
            follow,
        } => {
            let path = format!("/v1/admin/tenants/{tenant}/backfills");
            let body = json!({"object": object, "system": system});
            let v = admin.call(Method::POST, &path, Some(body)).await?;
            if follow {
                follow_backfill(&admin, &tenant, &object, &system).await?;
            } else {
                print(&v, &[], c.json);
            }
        }
        BackfillCmd::Status { tenant } => {
            let path = format!("/v1/admin/tenants/{tenant}/sync-state");
            let v = admin.call(Method::GET, &path, None).await?;
            print(
                &v,
                &[
                    "object",
                    "system",
                    "phase",
                    "records_seen",
                    "records_written",
                    "last_error",
                    "updated_at",
                ],
                c.json,
            );
        }
    }
    Ok(())
}

/// Shows a backfill's progress until it completes or fails.
async fn follow_backfill(
    admin: &Admin,
    tenant: &str,
    object: &str,
    system: &str,
) -> Result<(), CliError> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let path = format!("/v1/admin/tenants/{tenant}/sync-state");
    loop {
        let states = admin.call(Method::GET, &path, None).await?;
        let state = states
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["object"] == object && s["system"] == system);
        if let Some(s) = state {
            bar.set_message(format!(
                "{object} → {system}: {} seen, {} written, {}",
                s["records_seen"], s["records_written"], s["phase"]
            ));
            match s["phase"].as_str() {
                Some("completed") => {
                    bar.finish();
                    return Ok(());
                }
                Some("failed") => {
                    bar.abandon();
                    return Err(CliError::Failed {
                        status: 200,
                        message: format!("the backfill failed: {}", s["last_error"]),
                    });
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The queue's depth, or with a tenant its control-plane health.
pub async fn status(c: &Connection, tenant: Option<&str>) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    let Some(tenant) = tenant else {
        let queue = admin.call(Method::GET, "/v1/admin/queue", None).await?;
        print(&queue, &[], c.json);
        return Ok(());
    };
    let v = admin
        .call(
            Method::GET,
            &format!("/v1/admin/tenants/{tenant}/status"),
            None,
        )
        .await?;
    if c.json {
        print(&v, &[], true);
        return Ok(());
    }
    let tables: [(&str, &[&str]); 5] = [
        ("queue", &["partition", "jobs", "oldest_age_s"]),
        ("last_writes", &["object", "system", "at", "age_s"]),
        ("requests_today", &["provider", "requests"]),
        ("errors", &["cause", "dead_letters", "example_job"]),
        (
            "reconciliations",
            &[
                "object",
                "system",
                "phase",
                "updated_at",
                "repaired",
                "failed",
            ],
        ),
    ];
    let mut summary = v.clone();
    if let Some(m) = summary.as_object_mut() {
        for (name, _) in &tables {
            m.remove(*name);
        }
    }
    print(&summary, &[], false);
    for (name, columns) in tables {
        if v[name].as_array().is_some_and(|rows| !rows.is_empty()) {
            println!("{name}:");
            print(&v[name], columns, false);
        }
    }
    Ok(())
}
