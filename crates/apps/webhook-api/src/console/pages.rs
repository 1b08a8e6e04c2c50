//! The console's pages, rendered from the admin API's answers.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::{Failed, Session, TenantView};

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin-left:auto}
main{padding:1em 1.5em;max-width:1400px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.8em 1em;margin:1em 0}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{border-bottom:1px solid #e6e9ee;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
tr.alert td{background:#fdecea}
.red{color:#b3261e;font-weight:600}
.ok{color:#1e7b34;font-weight:600}
.note{background:#fff8d6;border:1px solid #e8d77a;padding:.5em .8em;border-radius:4px}
.muted{color:#6b7280}
code{font-size:12px}
button{cursor:pointer}
";

/// Refreshes every `data-refresh` element from its URL every 5 s (the pages work without it).
const SCRIPT: &str = "
setInterval(async () => {
  for (const el of document.querySelectorAll('[data-refresh]')) {
    try {
      const r = await fetch(el.dataset.refresh, {credentials: 'same-origin'});
      if (r.ok && !r.redirected) { el.innerHTML = await r.text(); }
    } catch (e) {}
  }
}, 5000);
";

fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · attio-sync console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/console" { "attio-sync console" }
                    @if let Some(s) = session {
                        a href="/console" { "Tenants" }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                @if session.is_some() {
                    script { (PreEscaped(SCRIPT)) }
                }
            }
        }
    }
}

/// Text for a JSON value: strings bare, `null` empty.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn failed(what: &str, e: &Failed) -> Markup {
    html! { p.red { (what) " could not be read: " (e.to_string()) } }
}

pub(crate) fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            section {
                h1 { "Sign in" }
                @if let Some(e) = error { p.red id="login-error" { (e) } }
                form method="post" action="/console/login" {
                    label { "Admin token " input type="password" name="token" id="token" autocomplete="off" required; }
                    " "
                    button type="submit" id="sign-in" { "Sign in" }
                }
                p.muted { "The token is webhook-api's admin_token (ATTIO_SYNC_ADMIN_TOKEN)." }
            }
        },
    )
}

pub(crate) fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! { section { h1 { (title) } p { (text) } p { a href="/console" { "Back to the console" } } } },
    )
}

/// Whether a tenant's status needs a person: dead letters, open conflicts or held deletes.
fn needs_person(status: &Value) -> bool {
    num(&status["dead_letters"]) > 0
        || num(&status["conflicts_open"]) > 0
        || num(&status["deletes_held"]) > 0
        || !status["error"].is_null()
}

pub(crate) fn tenants(session: &Session, rows: &Result<Vec<(Value, Value)>, Failed>) -> Markup {
    layout(
        "Tenants",
        Some(session),
        html! {
            h1 { "Tenants" }
            div id="tenants" data-refresh="/console/fragments/tenants" { (tenants_table(rows)) }
        },
    )
}

pub(crate) fn tenants_table(rows: &Result<Vec<(Value, Value)>, Failed>) -> Markup {
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return failed("The tenants", e),
    };
    html! {
        @if rows.is_empty() { p { "No tenants yet: add one with " code { "attio-sync tenant add FILE" } "." } }
        table {
            tr {
                th { "Tenant" } th { "State" } th { "Jobs waiting (oldest)" } th { "Dead letters" }
                th { "Conflicts" } th { "Held deletes" } th { "Requests today" }
                th { "Last write" } th { "Attio webhook" } th { "Errors" }
            }
            @for (t, s) in rows {
                @let id = text(&t["id"]);
                @let red = needs_person(s);
                tr.alert[red] data-tenant=(id) {
                    td { a href={ "/console/tenants/" (id) } { (id) } br; span.muted { (text(&t["name"])) } }
                    td { @if red { span.red.state { "needs a person" } } @else { span.ok.state { "healthy" } } }
                    td { (num(&s["queue_jobs"])) @if let Some(a) = s["queue_oldest_age_s"].as_i64() { " (" (a) " s)" } }
                    td { (num(&s["dead_letters"])) }
                    td { (num(&s["conflicts_open"])) }
                    td { (num(&s["deletes_held"])) }
                    td {
                        @for r in s["requests_today"].as_array().into_iter().flatten() {
                            (text(&r["provider"])) ": " (num(&r["requests"])) br;
                        }
                    }
                    td {
                        @if let Some(w) = s["last_writes"].as_array().and_then(|w| w.iter().min_by_key(|w| w["age_s"].as_i64().unwrap_or(i64::MAX))) {
                            (text(&w["object"])) " → " (text(&w["system"])) ", " (num(&w["age_s"])) " s ago"
                        }
                    }
                    td { @if t["attio"]["webhook_secrets"].as_array().is_some_and(|s| !s.is_empty()) { "registered" } @else { span.red { "none" } } }
                    td.errors {
                        @for e in s["errors"].as_array().into_iter().flatten() {
                            span.red { (text(&e["cause"])) ": " (num(&e["dead_letters"])) " record(s)" } br;
                        }
                        @if !s["error"].is_null() { span.red { (text(&s["error"])) } }
                    }
                }
            }
        }
    }
}

/// What to do about a cause of dead letters.
fn suggestion(cause: &str) -> &'static str {
    let c = cause.to_ascii_lowercase();
    if c.contains("unauthorized") || c.contains(" 401") || c.contains(" 403") {
        "The provider refuses the tenant's credentials: put new ones in the tenant (remove and add it, or rotate the token), then replay."
    } else if c.contains("rate limited") || c.contains("429") || c.contains("allowance") {
        "The provider's allowance ran out: replay once it resets (the status shows today's requests)."
    } else if c.contains("not ready") {
        "A record this one refers to is not linked yet: replay after it has synced."
    } else if c.contains("unavailable") || c.contains(" 5") || c.contains("failed") {
        "The provider or the store was down: replay now that it answers."
    } else if c.contains("rejected") || c.contains("refused") || c.contains(" 400") {
        "The provider refused a value: fix it in Attio or the mapping (a transform or value map), then replay."
    } else {
        "Read the provider's message, fix the cause, then replay."
    }
}

pub(crate) fn figures(status: &Result<Value, Failed>) -> Markup {
    let s = match status {
        Ok(s) => s,
        Err(e) => return failed("The status", e),
    };
    html! {
        p {
            "Jobs waiting: " strong { (num(&s["queue_jobs"])) }
            @if let Some(a) = s["queue_oldest_age_s"].as_i64() { " (oldest " (a) " s)" }
            " · dead letters: " strong.red[num(&s["dead_letters"]) > 0] { (num(&s["dead_letters"])) }
            " · open conflicts: " strong.red[num(&s["conflicts_open"]) > 0] { (num(&s["conflicts_open"])) }
            " · held deletes: " strong.red[num(&s["deletes_held"]) > 0] { (num(&s["deletes_held"])) }
            " · mappings: "
            @if s["mappings_version"].is_null() { "the workers' file" } @else { "version " (text(&s["mappings_version"])) }
        }
        table {
            tr { th { "Partition" } th { "Jobs waiting" } th { "Oldest (s)" } }
            @for p in s["queue"].as_array().into_iter().flatten() {
                tr { td { (text(&p["partition"])) } td { (num(&p["jobs"])) } td { (text(&p["oldest_age_s"])) } }
            }
        }
        table {
            tr { th { "Object" } th { "Written to" } th { "Last write" } th { "Ago (s)" } }
            @for w in s["last_writes"].as_array().into_iter().flatten() {
                tr { td { (text(&w["object"])) } td { (text(&w["system"])) } td { (text(&w["at"])) } td { (text(&w["age_s"])) } }
            }
        }
        table {
            tr { th { "Provider" } th { "Requests today (UTC)" } }
            @for r in s["requests_today"].as_array().into_iter().flatten() {
                tr { td { (text(&r["provider"])) } td { (num(&r["requests"])) } }
            }
        }
    }
}

fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub(crate) fn tenant(session: &Session, view: &TenantView, note: Option<&str>) -> Markup {
    let id = &view.id;
    let name = view
        .tenant
        .as_ref()
        .map(|t| text(&t["name"]))
        .unwrap_or_default();
    layout(
        id,
        Some(session),
        html! {
            h1 { "Tenant " (id) " " span.muted { (name) } }
            @if let Some(n) = note { p.note id="note" { (n) } }
            section id="figures-section" {
                h2 { "Health" }
                div id="figures" data-refresh={ "/console/tenants/" (id) "/figures" } { (figures(&view.status)) }
            }
            (errors(session, view))
            (conflicts(session, view))
            (deletes(session, view))
            (mappings(session, view))
            section id="records" {
                h2 { "Record history" }
                (search_form(id, "people", ""))
            }
        },
    )
}

fn errors(session: &Session, view: &TenantView) -> Markup {
    let id = &view.id;
    let groups: Vec<Value> = view
        .status
        .as_ref()
        .ok()
        .and_then(|s| s["errors"].as_array().cloned())
        .unwrap_or_default();
    html! {
        section id="errors" {
            h2 { "Errors by cause" }
            @if let Err(e) = &view.dead { (failed("The dead letters", e)) }
            @if groups.is_empty() { p.ok { "No dead letters." } }
            @for g in &groups {
                @let cause = text(&g["cause"]);
                div.group data-cause=(cause) {
                    h3.red { (cause) ": " (num(&g["dead_letters"])) " record(s)" }
                    p { "Suggested fix: " (suggestion(&cause)) }
                    form method="post" action={ "/console/tenants/" (id) "/replays" } {
                        (csrf(session))
                        input type="hidden" name="cause" value=(cause);
                        button type="submit" { "Replay all " (num(&g["dead_letters"])) }
                    }
                    table {
                        tr { th { "Job" } th { "Record" } th { "Attempts" } th { "Failed at" } th { "Provider's message" } th {} }
                        @for d in view.dead.as_ref().ok().and_then(Value::as_array).into_iter().flatten().filter(|d| d["cause"] == g["cause"]) {
                            tr {
                                td { code { (text(&d["job_id"])) } }
                                td { code { (text(&d["key"])) } }
                                td { (num(&d["attempts"])) }
                                td { (text(&d["failed_at"])) }
                                td { (text(&d["error"])) }
                                td {
                                    form method="post" action={ "/console/tenants/" (id) "/replays" } {
                                        (csrf(session))
                                        input type="hidden" name="job" value=(text(&d["job_id"]));
                                        button type="submit" class="replay" { "Replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn side(v: &Value) -> Markup {
    html! {
        strong { (text(&v["value"])) }
        @if !v["changed_at"].is_null() { br; span.muted { "changed " (text(&v["changed_at"])) } }
    }
}

fn conflicts(session: &Session, view: &TenantView) -> Markup {
    let id = &view.id;
    let open: Vec<Value> = match &view.conflicts {
        Ok(c) => c.as_array().cloned().unwrap_or_default(),
        Err(e) => {
            return html! { section id="conflicts" { h2 { "Conflicts" } (failed("The conflicts", e)) } };
        }
    };
    html! {
        section id="conflicts" {
            h2 { "Conflicts waiting for a person (" (open.len()) ")" }
            @if open.is_empty() { p.ok { "None." } } @else {
                form method="post" action={ "/console/tenants/" (id) "/resolutions" } {
                    (csrf(session))
                    table {
                        tr { th {} th { "Field" } th { "Record" } th { "Attio's value" } th { "The CRM's value" } th { "Was" } th { "Why" } th { "Resolve" } }
                        @for c in &open {
                            @let cid = text(&c["id"]);
                            tr data-conflict=(cid) {
                                td { input type="checkbox" name="ids" value=(cid); }
                                td { (text(&c["field"])) }
                                td { (text(&c["object"])) " " code { (text(&c["record"])) } }
                                td { (side(&c["attio"])) }
                                td { (text(&c["system"])) " " code { (text(&c["external_id"])) } br; (side(&c["external"])) }
                                td { (text(&c["snapshot"]["attio"])) }
                                td { (text(&c["reason"])) }
                                td {
                                    button type="submit" name="one" value={ (cid) ":attio" } class="keep-attio" { "Keep Attio's" }
                                    " "
                                    button type="submit" name="one" value={ (cid) ":external" } class="keep-external" { "Keep the CRM's" }
                                }
                            }
                        }
                    }
                    p {
                        "Ticked: "
                        button type="submit" name="keep" value="attio" { "Keep Attio's" } " "
                        button type="submit" name="keep" value="external" { "Keep the CRM's" } " or "
                        input type="text" name="value" placeholder="a value of your own";
                        " "
                        button type="submit" name="keep" value="value" { "Use this value" }
                    }
                }
            }
        }
    }
}

fn deletes(session: &Session, view: &TenantView) -> Markup {
    let id = &view.id;
    let held: Vec<Value> = match &view.deletes {
        Ok(d) => d.as_array().cloned().unwrap_or_default(),
        Err(e) => {
            return html! { section id="deletes" { h2 { "Held deletes" } (failed("The held deletes", e)) } };
        }
    };
    html! {
        section id="deletes" {
            h2 { "Deletes held for approval (" (held.len()) ")" }
            @if held.is_empty() { p.ok { "None." } } @else {
                form method="post" action={ "/console/tenants/" (id) "/delete-decisions" } {
                    (csrf(session))
                    table {
                        tr { th {} th { "Record" } th { "Would delete in" } th { "Deleted in" } th { "Why held" } th { "At" } th { "Decide" } }
                        @for d in &held {
                            @let did = text(&d["id"]);
                            tr data-delete=(did) {
                                td { input type="checkbox" name="ids" value=(did); }
                                td { (text(&d["object"])) " " code { (text(&d["record"])) } }
                                td { (text(&d["system"])) " " (text(&d["external_object"])) " " code { (text(&d["external_id"])) } }
                                td { (text(&d["deleted_in"])) }
                                td { (text(&d["reason"])) }
                                td { (text(&d["at"])) }
                                td {
                                    button type="submit" name="one" value={ (did) ":approve" } class="approve" { "Approve" } " "
                                    button type="submit" name="one" value={ (did) ":reject" } class="reject" { "Reject" }
                                }
                            }
                        }
                    }
                    p {
                        "Ticked: "
                        button type="submit" name="decision" value="approve" { "Approve" } " "
                        button type="submit" name="decision" value="reject" { "Reject" }
                        " · all: "
                        button type="submit" name="all" value="approve" id="approve-all" { "Approve all" } " "
                        button type="submit" name="all" value="reject" { "Reject all" }
                    }
                }
            }
        }
    }
}

fn mappings(session: &Session, view: &TenantView) -> Markup {
    let id = &view.id;
    html! {
        section id="mappings" {
            h2 { "Mappings" }
            @match &view.mappings {
                Err(e) => { (failed("The mappings", e)) }
                Ok(m) if m["mappings"].is_null() => { p { (text(&m["note"])) } }
                Ok(m) => {
                    p { "Version " (text(&m["version"])) ", changed by " (text(&m["changed_by"])) " at " (text(&m["changed_at"])) "." }
                    @match &view.problems {
                        Some(Ok(p)) if p["valid"] == true => { p.ok id="mappings-valid" { "Valid against the live schemas of Attio and each CRM." } }
                        Some(Ok(p)) => {
                            p.red { "Problems against the live schemas:" }
                            ul { @for pr in p["problems"].as_array().into_iter().flatten() {
                                li { "targets[" (text(&pr["target"])) "] " (text(&pr["field"])) ": " (text(&pr["message"])) }
                            } }
                        }
                        Some(Err(e)) => { (failed("The validation", e)) }
                        None => {}
                    }
                    table {
                        tr { th { "Attio object" } th { "CRM" } th { "CRM object" } th { "Fields" } th { "Dry run" } }
                        @for t in m["mappings"]["targets"].as_array().into_iter().flatten() {
                            tr {
                                td { (text(&t["attio_object"])) }
                                td { (text(&t["system"])) }
                                td { (text(&t["external_object"])) }
                                td {
                                    @for f in t["fields"].as_array().into_iter().flatten() {
                                        (text(&f["attio"]["attribute"]))
                                        @if !f["attio"]["part"].is_null() { "." (text(&f["attio"]["part"])) }
                                        " ↔ " (text(&f["external"])) " (" (text(&f["rule"])) ")" br;
                                    }
                                }
                                td {
                                    form method="post" action={ "/console/tenants/" (id) "/dry-runs" } {
                                        (csrf(session))
                                        input type="hidden" name="object" value=(text(&t["attio_object"]));
                                        input type="hidden" name="system" value=(text(&t["system"]));
                                        button type="submit" { "Dry run" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Ok(passes) = &view.passes {
                @let dry: Vec<&Value> = passes.as_array().into_iter().flatten().filter(|p| p["dry_run"] == true).collect();
                @if !dry.is_empty() {
                    h3 { "Dry runs" }
                    table {
                        tr { th { "Object" } th { "CRM" } th { "Phase" } th { "Updated" } th { "Report" } }
                        @for p in dry {
                            tr { td { (text(&p["object"])) } td { (text(&p["system"])) } td { (text(&p["phase"])) } td { (text(&p["updated_at"])) } td { code { (text(&p["report"])) } } }
                        }
                    }
                }
            }
        }
    }
}

fn search_form(id: &str, object: &str, q: &str) -> Markup {
    html! {
        form method="get" action={ "/console/tenants/" (id) "/records" } {
            select name="object" {
                @for o in ["people", "companies", "deals"] {
                    option value=(o) selected[o == object] { (o) }
                }
            }
            " "
            input type="search" name="q" id="record-q" value=(q) placeholder="e-mail, domain, name or record id" size="40";
            " "
            button type="submit" id="find" { "Find" }
        }
    }
}

pub(crate) fn records(
    session: &Session,
    id: &str,
    object: &str,
    q: &str,
    found: Option<&Result<Value, Failed>>,
) -> Markup {
    layout(
        "Record history",
        Some(session),
        html! {
            h1 { "Record history · " a href={ "/console/tenants/" (id) } { (id) } }
            section { (search_form(id, object, q)) }
            @match found {
                None => {}
                Some(Err(e)) => { (failed("The search", e)) }
                Some(Ok(v)) if v.as_array().is_none_or(Vec::is_empty) => { p id="no-record" { "No " (object) " record matches " strong { (q) } "." } }
                Some(Ok(v)) => {
                    @for r in v.as_array().into_iter().flatten() {
                        section.record data-record=(text(&r["record"])) {
                            h2 { (object) " " code { (text(&r["record"])) } }
                            table {
                                tr { th { "System" } th { "Object" } th { "Id there" } th { "Linked" } }
                                tr { td { "attio" } td { (object) } td { code { (text(&r["record"])) } } td {} }
                                @for l in r["links"].as_array().into_iter().flatten() {
                                    tr { td { (text(&l["system"])) } td { (text(&l["external_object"])) } td { code { (text(&l["external_id"])) } } td { (text(&l["updated_at"])) } }
                                }
                            }
                            h3 { "Audit trail, newest first" }
                            table.history {
                                tr { th { "At" } th { "Field" } th { "Written to" } th { "From" } th { "Old → new" } th { "Rule" } th { "Cause" } }
                                @for e in r["history"].as_array().into_iter().flatten() {
                                    tr {
                                        td { (text(&e["at"])) } td { (text(&e["field"])) } td { (text(&e["written_to"])) }
                                        td { (text(&e["source"])) } td { (text(&e["old"])) " → " (text(&e["new"])) }
                                        td { (text(&e["rule"])) } td.muted { (text(&e["cause"])) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
