//! The control plane's commands over the admin API: conflicts, held deletes, mappings, record
//! history and reconciliation (exit codes as in [`crate::admin`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{Admin, CliError, Connection, print};

#[derive(Debug, Subcommand)]
pub enum ConflictsCmd {
    /// Open conflicts, oldest first.
    List {
        tenant: String,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        field: Option<String>,
        /// Only conflicts first seen at least this many seconds ago.
        #[arg(long)]
        older_than_s: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One conflict: both values, their change times, the snapshot, why it was queued.
    Show { tenant: String, id: String },
    /// Resolves conflicts: `--keep attio`, `--keep external`, or `--keep value --value JSON`
    /// (a JSON value: `"CEO"`, `12`, `null` to clear). Several ids are resolved alike.
    Resolve {
        tenant: String,
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long, value_parser = ["attio", "external", "value"])]
        keep: String,
        #[arg(long)]
        value: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeletesCmd {
    /// Deletes held for approval, oldest first.
    List {
        tenant: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Approves held deletes (the other side's records are removed): ids, or `--all`.
    Approve {
        tenant: String,
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
    },
    /// Rejects held deletes (the other side keeps its records): ids, or `--all`.
    Reject {
        tenant: String,
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingsCmd {
    /// The tenant's mappings in force.
    Show { tenant: String },
    /// Every problem of a mappings file (TOML `[[targets]]` as in the worker's file, or JSON
    /// `{"targets": [...]}`), checked against the live schemas; changes nothing. Exit 1 when
    /// there is any.
    Validate { tenant: String, file: PathBuf },
    /// Puts a mappings file in force as the tenant's next version, after the same checks.
    Apply {
        tenant: String,
        file: PathBuf,
        /// Who makes the change (kept with the version).
        #[arg(long, env = "USER")]
        by: String,
        /// The version the change was made against (the newest when omitted: read first).
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Every version, newest first.
    Versions { tenant: String },
}

/// Reads a mappings file: TOML (`[[targets]]`) by its extension, else JSON.
fn mappings_file(file: &PathBuf) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let doc: domain::mapping_doc::MappingDocument = if file.extension().is_some_and(|e| e == "toml")
    {
        toml::from_str(&text).map_err(|e| {
            CliError::Input(format!("{} is not a mappings file: {e}", file.display()))
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| {
            CliError::Input(format!("{} is not a mappings file: {e}", file.display()))
        })?
    };
    serde_json::to_value(doc).map_err(|e| CliError::Input(e.to_string()))
}

fn problems(v: &Value, json_out: bool) -> bool {
    let found = v["problems"].as_array().cloned().unwrap_or_default();
    if json_out {
        print(v, &[], true);
    } else if found.is_empty() {
        println!("no problems");
    } else {
        print(
            &Value::Array(found.clone()),
            &["target", "field", "kind", "message"],
            false,
        );
    }
    found.is_empty()
}

pub async fn conflicts(c: &Connection, cmd: ConflictsCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        ConflictsCmd::List {
            tenant,
            object,
            system,
            field,
            older_than_s,
            limit,
        } => {
            let mut path = format!("/v1/admin/tenants/{tenant}/conflicts?limit={limit}");
            for (k, v) in [("object", object), ("system", system), ("field", field)] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={v}"));
                }
            }
            if let Some(s) = older_than_s {
                path.push_str(&format!("&older_than_s={s}"));
            }
            let v = admin.call(Method::GET, &path, None).await?;
            let rows: Vec<Value> = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    json!({"id": c["id"], "record": c["record"], "system": c["system"], "field": c["field"],
                           "attio": c["attio"]["value"], "crm": c["external"]["value"], "was": c["snapshot"]["attio"],
                           "detected_at": c["detected_at"]})
                })
                .collect();
            if c.json {
                print(&v, &[], true);
            } else {
                print(
                    &Value::Array(rows),
                    &[
                        "id",
                        "record",
                        "system",
                        "field",
                        "attio",
                        "crm",
                        "was",
                        "detected_at",
                    ],
                    false,
                );
            }
        }
        ConflictsCmd::Show { tenant, id } => {
            let v = admin
                .call(
                    Method::GET,
                    &format!("/v1/admin/tenants/{tenant}/conflicts/{id}"),
                    None,
                )
                .await?;
            print(&v, &[], c.json);
        }
        ConflictsCmd::Resolve {
            tenant,
            ids,
            keep,
            value,
        } => {
            let mut body = json!({"keep": keep});
            match (keep.as_str(), value) {
                ("value", Some(v)) => {
                    body["value"] = serde_json::from_str(&v).map_err(|e| {
                        CliError::Input(format!("--value must be JSON (\"CEO\", 12, null): {e}"))
                    })?;
                }
                ("value", None) => {
                    return Err(CliError::Input("--keep value needs --value".into()));
                }
                (_, Some(_)) => {
                    return Err(CliError::Input(format!("--keep {keep} takes no --value")));
                }
                (_, None) => {}
            }
            let v = if let [one] = ids.as_slice() {
                let path = format!("/v1/admin/tenants/{tenant}/conflicts/{one}/resolve");
                admin.call(Method::POST, &path, Some(body)).await?
            } else {
                body["ids"] = json!(ids);
                let path = format!("/v1/admin/tenants/{tenant}/resolutions");
                admin.call(Method::POST, &path, Some(body)).await?
            };
            match v.get("outcomes") {
                Some(outcomes) if !c.json => print(outcomes, &["id", "outcome", "error"], false),
                _ => print(&v, &[], c.json),
            }
        }
    }
    Ok(())
}

pub async fn deletes(c: &Connection, cmd: DeletesCmd) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    let (tenant, ids, all, decision) = match cmd {
        DeletesCmd::List { tenant, limit } => {
            let path = format!("/v1/admin/tenants/{tenant}/deletes?limit={limit}");
            let v = admin.call(Method::GET, &path, None).await?;
            print(
                &v,
                &[
                    "id",
                    "object",
                    "record",
                    "system",
                    "external_id",
                    "deleted_in",
                    "reason",
                    "at",
                ],
                c.json,
            );
            return Ok(());
        }
        DeletesCmd::Approve { tenant, ids, all } => (tenant, ids, all, "approve"),
        DeletesCmd::Reject { tenant, ids, all } => (tenant, ids, all, "reject"),
    };
    let body = match (ids.is_empty(), all) {
        (true, true) => json!({"decision": decision, "all": true}),
        (false, false) => json!({"decision": decision, "ids": ids}),
        _ => return Err(CliError::Input("give delete ids, or --all".into())),
    };
    let path = format!("/v1/admin/tenants/{tenant}/delete-decisions");
    let v = admin.call(Method::POST, &path, Some(body)).await?;
    match v.get("outcomes") {
        Some(outcomes) if !c.json => print(outcomes, &["id", "outcome", "error"], false),
        _ => print(&v, &[], c.json),
    }
    Ok(())
}

/// Runs a mappings command; `Ok(false)` when a validation found problems (exit 1).
pub async fn mappings(c: &Connection, cmd: MappingsCmd) -> Result<bool, CliError> {
    let admin = Admin::new(c)?;
    match cmd {
        MappingsCmd::Show { tenant } => {
            let v = admin
                .call(
                    Method::GET,
                    &format!("/v1/admin/tenants/{tenant}/mappings"),
                    None,
                )
                .await?;
            if c.json {
                print(&v, &[], true);
            } else {
                let mut head = v.clone();
                if let Some(m) = head.as_object_mut() {
                    m.remove("mappings");
                }
                print(&head, &[], false);
                let targets: Vec<Value> = v["mappings"]["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let mut row = t.clone();
                        row["fields"] = json!(t["fields"].as_array().map_or(0, Vec::len));
                        row
                    })
                    .collect();
                let columns = ["attio_object", "system", "external_object", "id_property"];
                let more = ["fields", "match_on", "on_delete", "on_crm_delete"];
                print(
                    &Value::Array(targets),
                    &[&columns[..], &more[..]].concat(),
                    false,
                );
            }
        }
        MappingsCmd::Validate { tenant, file } => {
            let body = json!({"mappings": mappings_file(&file)?});
            let path = format!("/v1/admin/tenants/{tenant}/mappings/validate");
            let v = admin.call(Method::POST, &path, Some(body)).await?;
            return Ok(problems(&v, c.json));
        }
        MappingsCmd::Apply {
            tenant,
            file,
            by,
            expected_version,
        } => {
            let mappings = mappings_file(&file)?;
            let path = format!("/v1/admin/tenants/{tenant}/mappings");
            let expected = match expected_version {
                Some(v) => json!(v),
                None => admin.call(Method::GET, &path, None).await?["version"].clone(),
            };
            let body =
                json!({"mappings": mappings, "expected_version": expected, "changed_by": by});
            match admin.call(Method::PUT, &path, Some(body)).await {
                Ok(v) => print(
                    &json!({"version": v["version"], "changed_by": v["changed_by"], "changed_at": v["changed_at"]}),
                    &[],
                    c.json,
                ),
                Err(CliError::Refused { status: 422, .. }) => {
                    // Show every problem, not only the summary.
                    let body = json!({"mappings": mappings_file(&file)?});
                    let v = admin
                        .call(Method::POST, &format!("{path}/validate"), Some(body))
                        .await?;
                    problems(&v, c.json);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        MappingsCmd::Versions { tenant } => {
            let path = format!("/v1/admin/tenants/{tenant}/mappings/versions");
            let v = admin.call(Method::GET, &path, None).await?;
            print(&v, &["version", "changed_by", "changed_at"], c.json);
        }
    }
    Ok(true)
}

/// A record's audit trail.
pub async fn history(
    c: &Connection,
    tenant: &str,
    object: &str,
    record: &str,
    limit: usize,
) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    let path =
        format!("/v1/admin/tenants/{tenant}/records/{object}/{record}/history?limit={limit}");
    let v = admin.call(Method::GET, &path, None).await?;
    if c.json {
        print(&v, &[], true);
    } else {
        print(
            &v["entries"],
            &[
                "at",
                "field",
                "written_to",
                "source",
                "old",
                "new",
                "rule",
                "cause",
            ],
            false,
        );
    }
    Ok(())
}

/// Queues a reconciliation (or a dry run) and, with `follow`, waits for its report.
pub async fn reconcile(
    c: &Connection,
    tenant: &str,
    object: &str,
    system: &str,
    dry_run: bool,
    mappings: Option<PathBuf>,
    follow: bool,
) -> Result<(), CliError> {
    let admin = Admin::new(c)?;
    let mut body = json!({"object": object, "system": system, "dry_run": dry_run});
    if let Some(file) = &mappings {
        body["mappings"] = mappings_file(file)?;
    }
    let path = format!("/v1/admin/tenants/{tenant}/reconciliations");
    let queued = admin.call(Method::POST, &path, Some(body)).await?;
    if !follow {
        print(&queued, &[], c.json);
        return Ok(());
    }
    let started = std::time::Instant::now();
    // A pass finished before this one was queued shows its old report: wait for a change.
    let before = admin.call(Method::GET, &path, None).await?;
    let find = |all: &Value| {
        all.as_array()
            .and_then(|a| {
                a.iter().find(|p| {
                    p["object"] == object && p["system"] == system && p["dry_run"] == dry_run
                })
            })
            .cloned()
    };
    let old = find(&before);
    loop {
        let now = find(&admin.call(Method::GET, &path, None).await?);
        if let Some(p) = &now
            && now != old
            && (p["phase"] == "completed" || p["phase"] == "failed")
        {
            if c.json {
                print(p, &[], true);
            } else {
                print(&p["report"], &[], false);
                if let Some(e) = p["last_error"].as_str() {
                    println!("the pass failed: {e}");
                }
            }
            return if p["phase"] == "failed" {
                Err(CliError::Failed {
                    status: 0,
                    message: p["last_error"].as_str().unwrap_or("failed").to_owned(),
                })
            } else {
                Ok(())
            };
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(CliError::Failed {
                status: 0,
                message: "no report within an hour; see `attio-sync reconcile --json` later".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
