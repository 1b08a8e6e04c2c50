//! `docs/configuration.md` lists every setting of both binaries, and only those: the keys are
//! read from the configuration types themselves (their defaults, and a sample of each section
//! kind), so a setting added, renamed or removed without the document fails here.

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// Every dotted key of a JSON value (`store.kind`, `targets[].fields`).
fn keys(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                // A section is documented by its settings; a transform, and a map of property
                // names to values (`create_with`), is one setting.
                let records = v
                    .as_array()
                    .is_some_and(|a| a.first().is_some_and(Value::is_object));
                let one = ["transform", "create_with"].contains(&k.as_str());
                if (v.is_object() && !one) || records {
                    keys(&name, v, out);
                } else {
                    out.insert(name);
                }
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first().filter(|f| f.is_object()) {
                let mut inner = BTreeSet::new();
                keys("", first, &mut inner);
                out.extend(inner.into_iter().map(|k| format!("{prefix}[].{k}")));
            }
        }
        _ => {}
    }
}

/// The settings of one binary: its defaults, plus every kind of the sections that have kinds.
fn settings<T: serde::Serialize>(defaults: &T, samples: &[(&str, Value)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    keys("", &serde_json::to_value(defaults).unwrap(), &mut out);
    for (prefix, sample) in samples {
        keys(prefix, sample, &mut out);
    }
    // A `[crm.<system>]` section is named by its system; the document writes `<system>`.
    // A list of records (`targets`) is documented by its records' settings.
    let lists: BTreeSet<String> = out
        .iter()
        .filter_map(|k| k.split_once("[].").map(|(list, _)| list.to_owned()))
        .collect();
    out.into_iter()
        .filter(|k| !lists.contains(k))
        .map(|k| k.replace("crm.salesforce", "crm.<system>"))
        .collect()
}

/// The settings a section of the document lists: the first cell of each table row, in backticks.
fn documented(doc: &str, section: &str) -> BTreeSet<String> {
    let start = doc
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("docs/configuration.md has no section `## {section}`"));
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map(|e| e + 3).unwrap_or(body.len());
    body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn store_samples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "store",
            json!({"kind": "sqlite", "path": "/var/lib/attio-sync.db"}),
        ),
        (
            "store",
            json!({"kind": "postgres", "url": "postgres://", "schema": "s", "max_connections": 10, "intake_batch": 64, "intake_slots": 2}),
        ),
        (
            "queue",
            json!({"kind": "redis", "url": "redis://", "namespace": "attio-sync"}),
        ),
    ]
}

fn compare(section: &str, actual: BTreeSet<String>) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let written = documented(&doc, section);
    let missing: Vec<_> = actual.difference(&written).collect();
    let stale: Vec<_> = written.difference(&actual).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{section}: settings the document lacks: {missing:?}; settings it lists that do not exist: {stale:?}"
    );
}

#[test]
fn the_document_lists_every_setting_of_webhook_api() {
    compare(
        "webhook-api",
        settings(&webhook_api::RawConfig::default(), &store_samples()),
    );
}

#[test]
fn the_document_lists_every_setting_of_sync_worker() {
    let mut samples = store_samples();
    samples.push((
        "crm",
        json!({"salesforce": {"poll_interval_s": 60, "poll_window_s": 120}}),
    ));
    samples.push((
        "",
        json!({
            "targets": [{"attio_object": "people", "system": "hubspot", "external_object": "contacts", "id_property": "attio_record_id", "fields": [], "on_delete": "hold", "on_crm_delete": "keep", "match_on": "email_addresses", "create_with": {"CloseDate": "2027-03-31"}}],
            "stages": [{"list": "sales", "attribute": "stage", "system": "hubspot", "property": "dealstage", "transform": {"type": "identity"}}],
        }),
    ));
    compare(
        "sync-worker",
        settings(&sync_worker::RawConfig::default(), &samples),
    );
}

#[test]
fn a_missing_setting_is_caught() {
    let doc = "\n## x\n\n| setting | default |\n|---|---|\n| `a` | 1 |\n";
    assert_eq!(documented(doc, "x"), BTreeSet::from(["a".to_owned()]));
    let mut actual = BTreeSet::new();
    keys("", &json!({"a": 1, "b": {"c": 2}}), &mut actual);
    assert_eq!(actual, BTreeSet::from(["a".into(), "b.c".into()]));
}
