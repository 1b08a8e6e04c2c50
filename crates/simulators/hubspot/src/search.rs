//! `POST …/search` (HubSpot's `PublicObjectSearchRequest`): filter groups (OR) of filters (AND),
//! one sort, `limit` up to 200, an integer `after`, `total`, archived records excluded, and the
//! 10,000-result cap.

use std::cmp::Ordering;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::{ObjectStore, Record};
use crate::{HsError, HsResult};

const MAX_GROUPS: usize = 5;
const MAX_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
const MAX_RESULTS: u64 = 10_000;

/// A comparable form of a property value: dates become epoch milliseconds, so filters can use
/// HubSpot's epoch-ms strings against ISO-dated properties.
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().or_else(|| {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as f64)
    })
}

fn cmp(a: &str, b: &str) -> Ordering {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn matches(r: &Record, f: &Value) -> HsResult<bool> {
    let prop = f["propertyName"]
        .as_str()
        .ok_or_else(|| HsError::validation("a filter needs a propertyName"))?;
    let op = f["operator"]
        .as_str()
        .ok_or_else(|| HsError::validation("a filter needs an operator"))?;
    let have = if prop == "hs_object_id" {
        Some(r.id.to_string())
    } else {
        r.properties.get(prop).cloned()
    };
    let value =
        || text(&f["value"]).ok_or_else(|| HsError::validation(format!("{op} needs a value")));
    let values = || -> HsResult<Vec<String>> {
        f["values"]
            .as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .ok_or_else(|| HsError::validation(format!("{op} needs values")))
    };
    let on = |f: &dyn Fn(&str) -> bool| have.as_deref().is_some_and(f);
    Ok(match op {
        "EQ" => {
            let v = value()?;
            on(&|h| cmp(h, &v) == Ordering::Equal)
        }
        "NEQ" => {
            let v = value()?;
            !on(&|h| cmp(h, &v) == Ordering::Equal)
        }
        "LT" => {
            let v = value()?;
            on(&|h| cmp(h, &v) == Ordering::Less)
        }
        "LTE" => {
            let v = value()?;
            on(&|h| cmp(h, &v) != Ordering::Greater)
        }
        "GT" => {
            let v = value()?;
            on(&|h| cmp(h, &v) == Ordering::Greater)
        }
        "GTE" => {
            let v = value()?;
            on(&|h| cmp(h, &v) != Ordering::Less)
        }
        "BETWEEN" => {
            let (lo, hi) = (
                value()?,
                text(&f["highValue"])
                    .ok_or_else(|| HsError::validation("BETWEEN needs a highValue"))?,
            );
            on(&|h| cmp(h, &lo) != Ordering::Less && cmp(h, &hi) != Ordering::Greater)
        }
        "IN" => {
            let vs = values()?;
            on(&|h| vs.iter().any(|v| cmp(h, v) == Ordering::Equal))
        }
        "NOT_IN" => {
            let vs = values()?;
            !on(&|h| vs.iter().any(|v| cmp(h, v) == Ordering::Equal))
        }
        "HAS_PROPERTY" => have.as_deref().is_some_and(|h| !h.is_empty()),
        "NOT_HAS_PROPERTY" => have.as_deref().is_none_or(str::is_empty),
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let token = value()?.to_lowercase().replace('*', "");
            let found = on(&|h| {
                h.to_lowercase()
                    .split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
                    .any(|w| w.contains(&token))
            });
            if op == "CONTAINS_TOKEN" {
                found
            } else {
                !found
            }
        }
        other => return Err(HsError::validation(format!("Unknown operator {other}"))),
    })
}

pub(crate) fn run(store: &ObjectStore, body: &Value) -> HsResult<Value> {
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    let total_filters: usize = groups
        .iter()
        .map(|g| g["filters"].as_array().map_or(0, Vec::len))
        .sum();
    if groups.len() > MAX_GROUPS
        || total_filters > MAX_FILTERS
        || groups
            .iter()
            .any(|g| g["filters"].as_array().map_or(0, Vec::len) > MAX_PER_GROUP)
    {
        return Err(HsError::validation(format!(
            "Search allows at most {MAX_GROUPS} filterGroups with {MAX_PER_GROUP} filters each and {MAX_FILTERS} filters in total"
        )));
    }
    if body["query"].as_str().is_some_and(|q| q.len() > 3000) {
        return Err(HsError::validation(
            "The search query must be at most 3000 characters",
        ));
    }
    let limit = body["limit"].as_u64().unwrap_or(10);
    if limit == 0 || limit > 200 {
        return Err(HsError::validation("limit must be between 1 and 200"));
    }
    let after: u64 = match &body["after"] {
        Value::Null => 0,
        v => text(v)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HsError::validation("after must be an integer"))?,
    };
    if after >= MAX_RESULTS {
        return Err(HsError::validation(
            "Search is limited to 10,000 total results for any given query.",
        ));
    }
    let sorts = body["sorts"].as_array().cloned().unwrap_or_default();
    if sorts.len() > 1 {
        return Err(HsError::validation("Only one sorting rule can be applied"));
    }
    let sort = sorts.first().map(|s| match s {
        Value::String(p) => (p.trim_start_matches('-').to_owned(), p.starts_with('-')),
        other => (
            other["propertyName"]
                .as_str()
                .unwrap_or("createdate")
                .to_owned(),
            other["direction"] == "DESCENDING",
        ),
    });
    let query = body["query"].as_str().map(str::to_lowercase);

    let mut hits: Vec<&Record> = Vec::new();
    for r in store.records.values().filter(|r| !r.archived) {
        let mut ok = groups.is_empty();
        for g in &groups {
            let mut all = true;
            for f in g["filters"].as_array().into_iter().flatten() {
                all &= matches(r, f)?;
            }
            ok |= all;
        }
        if ok
            && query.as_ref().is_none_or(|q| {
                r.properties
                    .values()
                    .any(|v| v.to_lowercase().contains(q.as_str()))
            })
        {
            hits.push(r);
        }
    }
    if let Some((prop, desc)) = &sort {
        hits.sort_by(|a, b| {
            let o = cmp(
                a.properties.get(prop).map_or("", String::as_str),
                b.properties.get(prop).map_or("", String::as_str),
            );
            if *desc { o.reverse() } else { o }
        });
    }
    let total = hits.len();
    let wanted: Vec<String> = body["properties"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let page: Vec<Value> = hits
        .iter()
        .skip(after as usize)
        .take(limit as usize)
        .map(|r| r.json(&store.spec, &wanted, &[]))
        .collect();
    let mut out = json!({ "total": total, "results": page });
    let next = after + limit;
    if (next as usize) < total {
        out["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(out)
}
