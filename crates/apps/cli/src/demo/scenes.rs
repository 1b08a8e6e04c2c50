//! The demo's scenes, in the order they run; each prints its table rows and counts into the
//! [`Tally`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use domain::field::FieldValue;
use reqwest::Method;
use serde_json::{Value, json};

use super::crms::{DemoCrm, Field, Obj};
use super::{Demo, Tally, row};

/// What a change looks like in a CRM once it arrived.
#[derive(Debug, Clone)]
enum Expect {
    /// The field holds this text.
    Has(Obj, Field, String),
    /// The deal's stage is the CRM's name of this Attio stage.
    Stage(String),
    /// The record is gone (archived or deleted).
    Gone(Obj),
    /// The person's copy has this many notes.
    Notes(usize),
}

/// The table cell once `expect` holds in `crm` (the CRM's id, or what happened); `None` until.
async fn seen(crm: &DemoCrm, record: &str, expect: &Expect) -> Result<Option<String>> {
    let text = |s: &str| FieldValue::text(s);
    Ok(match expect {
        Expect::Has(o, f, want) => match crm.read(*o, record, *f).await? {
            Some((id, v)) if v == text(want) => Some(id),
            _ => None,
        },
        Expect::Stage(attio) => match crm.read(Obj::Deal, record, Field::Stage).await? {
            Some((id, v)) if v == text(crm.stage(attio)) => Some(format!("{id} {}", shown(&v))),
            _ => None,
        },
        Expect::Gone(o) => match crm.read(*o, record, Field::Name).await? {
            None => Some("removed".into()),
            Some(_) => None,
        },
        Expect::Notes(n) => (crm.notes_on(record).await? == *n).then(|| format!("{n} note(s)")),
    })
}

/// Creates an Attio record; its id.
async fn create(demo: &Demo, object: &str, values: Value) -> Result<String> {
    let r = demo
        .attio(
            Method::POST,
            &format!("/v2/objects/{object}/records"),
            Some(json!({"data": {"values": values}})),
        )
        .await?;
    Ok(r["data"]["id"]["record_id"]
        .as_str()
        .context("Attio answered no record id")?
        .to_owned())
}

async fn update(demo: &Demo, object: &str, record: &str, values: Value) -> Result<()> {
    demo.attio(
        Method::PATCH,
        &format!("/v2/objects/{object}/records/{record}"),
        Some(json!({"data": {"values": values}})),
    )
    .await?;
    Ok(())
}

/// People, a company, a deal and a note made in Attio reach both CRMs. Returns the people's
/// ids (Ada, Grace, Alan).
pub async fn attio_to_crms(demo: &Demo, tally: &mut Tally) -> Result<Vec<String>> {
    let mut changes: Vec<(String, String, Expect, Instant)> = Vec::new();
    let mut people = Vec::new();
    for (first, last, title) in [
        ("Ada", "Lovelace", "Analyst"),
        ("Grace", "Hopper", "Rear Admiral"),
        ("Alan", "Turing", "Mathematician"),
    ] {
        let at = Instant::now();
        let id = create(demo, "people", json!({
            "email_addresses": [format!("{}@example.com", first.to_lowercase())],
            "name": [{"first_name": first, "last_name": last, "full_name": format!("{first} {last}")}],
            "job_title": title,
        }))
        .await?;
        let expect = Expect::Has(Obj::Person, Field::Title, title.into());
        changes.push((format!("created {first} {last}"), id.clone(), expect, at));
        people.push(id);
    }
    let at = Instant::now();
    update(
        demo,
        "people",
        &people[0],
        json!({"job_title": "Countess of Lovelace"}),
    )
    .await?;
    let expect = Expect::Has(Obj::Person, Field::Title, "Countess of Lovelace".into());
    changes.push((
        "updated Ada's job title".into(),
        people[0].clone(),
        expect,
        at,
    ));
    let at = Instant::now();
    demo.attio(
        Method::DELETE,
        &format!("/v2/objects/people/records/{}", people[2]),
        None,
    )
    .await?;
    changes.push((
        "deleted Alan Turing".into(),
        people[2].clone(),
        Expect::Gone(Obj::Person),
        at,
    ));

    let at = Instant::now();
    let company = create(
        demo,
        "companies",
        json!({"name": "Globex", "domains": ["globex.example"]}),
    )
    .await?;
    let expect = Expect::Has(Obj::Company, Field::Name, "Globex".into());
    changes.push(("created company Globex".into(), company, expect, at));
    let at = Instant::now();
    let deal = create(
        demo,
        "deals",
        json!({"name": "Globex renewal", "stage": "Lead", "value": 5000}),
    )
    .await?;
    changes.push((
        "created deal Globex renewal".into(),
        deal.clone(),
        Expect::Stage("Lead".into()),
        at,
    ));
    let at = Instant::now();
    update(demo, "deals", &deal, json!({"stage": "Won 🎉"})).await?;
    changes.push((
        "moved the deal to Won 🎉".into(),
        deal,
        Expect::Stage("Won 🎉".into()),
        at,
    ));
    let at = Instant::now();
    demo.attio(
        Method::POST,
        "/v2/notes",
        Some(json!({"data": {"parent_object": "people", "parent_record_id": people[1],
            "title": "Call notes", "format": "plaintext", "content": "Wants the enterprise plan."}})),
    )
    .await?;
    changes.push((
        "a note on Grace".into(),
        people[1].clone(),
        Expect::Notes(1),
        at,
    ));
    tally.attio_changes += changes.len();

    // A later change supersedes an earlier one of the same record: only the last is checked.
    let names: Vec<String> = demo.crms.iter().map(|c| c.name().to_owned()).collect();
    row("change in Attio", &names);
    for (i, (what, record, expect, at)) in changes.iter().enumerate() {
        let later = changes[i + 1..]
            .iter()
            .any(|(_, r, e, _)| r == record && !matches!(e, Expect::Notes(_)))
            && !matches!(expect, Expect::Notes(_));
        if later {
            row(what, &["(superseded by a later change)".into()]);
            continue;
        }
        let mut cells = Vec::new();
        for crm in &demo.crms {
            let arrived = demo.arrival(*at, || seen(crm, record, expect)).await?;
            cells.push(tally.cell(arrived, |cell, d| {
                format!("{cell} after {} ms", d.as_millis())
            }));
        }
        row(what, &cells);
    }
    Ok(people)
}

/// A job title edited in each CRM comes back to Attio and goes on to the other CRM (HubSpot by
/// signed webhook or by polling); the echoes of those writes change nothing.
pub async fn crm_edits_come_back(demo: &Demo, tally: &mut Tally, people: &[String]) -> Result<()> {
    let mut header = vec!["Attio".to_owned()];
    header.extend(demo.crms.iter().map(|c| c.name().to_owned()));
    println!();
    row("change in a CRM", &header);
    for (crm, record) in demo.crms.iter().zip([&people[1], &people[0]]) {
        let title = format!("Edited in {}", crm.name());
        let at = Instant::now();
        crm.edit(Obj::Person, record, Field::Title, &title).await?;
        tally.crm_changes += 1;
        let in_attio = demo
            .arrival(at, || attio_title_is(demo, record, &title))
            .await?;
        let mut cells = vec![tally.cell(in_attio, |_, d| format!("after {} ms", d.as_millis()))];
        for other in &demo.crms {
            if std::ptr::eq(other, crm) {
                cells.push("(edited here)".into());
                continue;
            }
            let expect = Expect::Has(Obj::Person, Field::Title, title.clone());
            let arrived = demo.arrival(at, || seen(other, record, &expect)).await?;
            cells.push(tally.cell(arrived, |_, d| format!("after {} ms", d.as_millis())));
        }
        row(&format!("title edited in {}", crm.name()), &cells);
    }
    Ok(())
}

/// `Some` once Attio's copy of `record` has the job title `title`.
async fn attio_title_is(demo: &Demo, record: &str, title: &str) -> Result<Option<()>> {
    let r = demo
        .attio(
            Method::GET,
            &format!("/v2/objects/people/records/{record}"),
            None,
        )
        .await?;
    Ok((r["data"]["values"]["job_title"][0]["value"] == title).then_some(()))
}

/// A job title changed in a CRM that pushes its changes and, a moment later, in Attio: the mapping's `latest_wins`
/// keeps Attio's later value, in Attio and in both CRMs, with no person asked.
pub async fn a_rule_settles_a_simultaneous_edit(
    demo: &Demo,
    tally: &mut Tally,
    people: &[String],
) -> Result<()> {
    let (record, crm) = (&people[0], super::crms::pushing(&demo.crms)?);
    let at = Instant::now();
    crm.edit(Obj::Person, record, Field::Title, "Enchantress of Numbers")
        .await?;
    update(
        demo,
        "people",
        record,
        json!({"job_title": "Lady Lovelace"}),
    )
    .await?;
    tally.crm_changes += 1;
    tally.attio_changes += 1;
    let expect = Expect::Has(Obj::Person, Field::Title, "Lady Lovelace".into());
    let everywhere = demo
        .arrival(at, || async {
            let mut all = attio_title_is(demo, record, "Lady Lovelace")
                .await?
                .is_some();
            for crm in &demo.crms {
                all &= seen(crm, record, &expect).await?.is_some();
            }
            Ok(all.then_some(()))
        })
        .await?;
    let cell = tally.cell(everywhere, |_, d| {
        format!("everywhere after {} ms", d.as_millis())
    });
    if everywhere.is_some() {
        tally.settled_by_rule += 1;
    }
    println!(
        "\njob title changed in {} (\"Enchantress of Numbers\") and just after in Attio (\"Lady Lovelace\"): latest_wins keeps Attio's later value, {cell}",
        crm.name()
    );
    Ok(())
}

/// At the same moment, Grace's first name changes in Attio and in a CRM whose mapping leaves
/// that field to a person (`manual`): a conflict, queued with both values. The operator keeps
/// Attio's through the admin API; the record's history says who and why.
pub async fn a_conflict_waits_for_a_person(
    demo: &Demo,
    tally: &mut Tally,
    people: &[String],
) -> Result<()> {
    let (grace, crm) = (&people[1], super::crms::pushing(&demo.crms)?);
    update(demo, "people", grace, json!({"name": [{"first_name": "Gracie", "last_name": "Hopper", "full_name": "Gracie Hopper"}]})).await?;
    crm.edit(Obj::Person, grace, Field::FirstName, "Amazing Grace")
        .await?;
    tally.attio_changes += 1;
    tally.crm_changes += 1;
    let queued = demo
        .arrival(Instant::now(), || async {
            let open = demo
                .stores
                .conflicts
                .open(&demo.tenant, &Default::default(), 10)
                .await?;
            Ok((!open.is_empty()).then_some(open))
        })
        .await?;
    let open = queued.map(|(open, _)| open).unwrap_or_default();
    let Some(c) = open.first() else {
        tally.missing += 1;
        println!("\nMISSING: the conflict over Grace's first name was not queued");
        return Ok(());
    };
    tally.conflicts += open.len();
    println!(
        "\nfirst name changed in Attio and in {}: a conflict for a person ({} in Attio, {} there, was {})",
        crm.name(),
        shown(&c.conflict.attio.value),
        shown(&c.conflict.external.value),
        shown(&c.conflict.snapshot.attio),
    );
    let at = Instant::now();
    demo.admin(
        Method::POST,
        &format!("/v1/admin/tenants/acme/conflicts/{}/resolve", c.id),
        Some(json!({"keep": "attio"})),
    )
    .await?;
    let kept = c.conflict.attio.value.clone();
    let arrived = demo
        .arrival(at, || async {
            let now = crm.read(Obj::Person, grace, Field::FirstName).await?;
            Ok(now.filter(|(_, v)| v.same_as(&kept)))
        })
        .await?;
    let resolved = arrived.is_some();
    let cell = tally.cell(arrived, |_, d| {
        format!("written to {} after {} ms", crm.name(), d.as_millis())
    });
    if resolved {
        tally.resolved += 1;
    }
    println!("resolved by keeping Attio's {}: {cell}", shown(&kept));
    history(demo, grace).await
}

/// A field's value as a person reads it.
fn shown(v: &FieldValue) -> String {
    match v {
        FieldValue::Text(t) => format!("{t:?}"),
        other => format!("{other:?}"),
    }
}

/// The first name's audit trail of `record`, newest first.
async fn history(demo: &Demo, record: &str) -> Result<()> {
    let history = demo
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/acme/records/people/{record}/history?limit=50"),
            None,
        )
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
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let entries = history["entries"].as_array().cloned().unwrap_or_default();
    for e in entries
        .iter()
        .filter(|e| e["field"] == "name.first_name")
        .take(4)
    {
        table.add_row(vec![
            text(&e["at"]).get(11..23).unwrap_or_default().to_owned(),
            text(&e["written_to"]),
            text(&e["source"]),
            format!("{} → {}", text(&e["old"]), text(&e["new"])),
            text(&e["rule"]),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Once everything has arrived, nothing more is written anywhere: the simulators' logs are
/// emptied, and after two poll intervals and the debounce the writes they answered are counted
/// (a loop, or an echo taken for a change, would write here). Returns that count.
pub async fn quiet(demo: &Demo) -> Result<usize> {
    for base in demo.simulators() {
        demo.http
            .delete(format!("{base}/_sim/requests"))
            .send()
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    demo.writes().await
}
