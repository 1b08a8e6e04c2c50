//! Attio's filter language and sorts for record queries (reference §5): shorthand and verbose
//! conditions, `$eq $in $contains $starts_with $ends_with $lt $lte $gt $gte $not_empty`, `$and`,
//! `$or`, `$not`, and `path` drill-downs through record references. There is no `$ne`.

use std::cmp::Ordering;

use domain::value::{AttributeType, AttributeValue, ValueData};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::world::{AttrDef, ObjectDef, StoredRecord, Workspace};

fn filter_error(detail: impl Into<String>) -> ApiError {
    ApiError::invalid("filter_error", "Error in filter.")
        .with("detail", Value::String(detail.into()))
}

fn unknown_slug(slug: &str) -> ApiError {
    ApiError::invalid(
        "unknown_filter_attribute_slug",
        format!("Unknown attribute slug: {slug}."),
    )
    .with("path", json!([slug]))
}

/// The property a shorthand condition compares.
fn default_property(t: &AttributeType) -> &'static str {
    match t {
        AttributeType::Currency => "currency_value",
        AttributeType::Status => "status",
        AttributeType::Select => "option",
        AttributeType::RecordReference => "target_record_id",
        AttributeType::ActorReference => "referenced_actor_id",
        AttributeType::Location => "locality",
        AttributeType::Domain => "domain",
        AttributeType::EmailAddress => "email_address",
        AttributeType::PhoneNumber => "phone_number",
        AttributeType::PersonalName => "full_name",
        AttributeType::Interaction => "interacted_at",
        _ => "value",
    }
}

/// The values of a property of one value: statuses and options answer to their title and id.
fn property(v: &AttributeValue, prop: &str) -> Vec<Value> {
    match (&v.data, prop) {
        (ValueData::Status(s), "status") => vec![
            json!(s.status.title),
            json!(s.status.id.status_id.to_string()),
        ],
        (ValueData::Select(s), "option") => vec![
            json!(s.option.title),
            json!(s.option.id.option_id.to_string()),
        ],
        _ => match serde_json::to_value(v) {
            Ok(Value::Object(m)) => m.get(prop).cloned().into_iter().collect(),
            _ => Vec::new(),
        },
    }
}

fn case_insensitive(t: &AttributeType) -> bool {
    matches!(t, AttributeType::EmailAddress | AttributeType::Domain)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => {
            let o = x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?)?;
            Some(if matches!(a, Value::String(_)) {
                o
            } else {
                o.reverse()
            })
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
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

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Eq(Value),
    In(Vec<Value>),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Lt(Value),
    Lte(Value),
    Gt(Value),
    Gte(Value),
    NotEmpty(bool),
}

impl Op {
    fn parse(name: &str, arg: &Value) -> ApiResult<Self> {
        let s = || text(arg).ok_or_else(|| filter_error(format!("{name} needs a string")));
        Ok(match name {
            "$eq" => Op::Eq(arg.clone()),
            "$in" => Op::In(
                arg.as_array()
                    .cloned()
                    .ok_or_else(|| filter_error("$in needs an array"))?,
            ),
            "$contains" => Op::Contains(s()?),
            "$starts_with" => Op::StartsWith(s()?),
            "$ends_with" => Op::EndsWith(s()?),
            "$lt" => Op::Lt(arg.clone()),
            "$lte" => Op::Lte(arg.clone()),
            "$gt" => Op::Gt(arg.clone()),
            "$gte" => Op::Gte(arg.clone()),
            "$not_empty" => Op::NotEmpty(
                arg.as_bool()
                    .ok_or_else(|| filter_error("$not_empty needs a boolean"))?,
            ),
            other => return Err(filter_error(format!("unknown operator {other}"))),
        })
    }

    fn test(&self, values: &[Value], ci: bool) -> bool {
        let norm = |s: &str| if ci { s.to_lowercase() } else { s.to_owned() };
        let eq = |a: &Value, b: &Value| match (text(a), text(b)) {
            (Some(x), Some(y)) => norm(&x) == norm(&y),
            _ => a == b,
        };
        let any_text =
            |f: &dyn Fn(&str) -> bool| values.iter().filter_map(text).any(|v| f(&v.to_lowercase()));
        match self {
            Op::Eq(b) => values.iter().any(|a| eq(a, b)),
            Op::In(bs) => values.iter().any(|a| bs.iter().any(|b| eq(a, b))),
            Op::Contains(s) => any_text(&|v| v.contains(&s.to_lowercase())),
            Op::StartsWith(s) => any_text(&|v| v.starts_with(&s.to_lowercase())),
            Op::EndsWith(s) => any_text(&|v| v.ends_with(&s.to_lowercase())),
            Op::Lt(b) => values.iter().any(|a| compare(a, b) == Some(Ordering::Less)),
            Op::Lte(b) => values
                .iter()
                .any(|a| matches!(compare(a, b), Some(Ordering::Less | Ordering::Equal))),
            Op::Gt(b) => values
                .iter()
                .any(|a| compare(a, b) == Some(Ordering::Greater)),
            Op::Gte(b) => values
                .iter()
                .any(|a| matches!(compare(a, b), Some(Ordering::Greater | Ordering::Equal))),
            Op::NotEmpty(want) => values.iter().any(|v| !v.is_null() && v != &json!("")) == *want,
        }
    }
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Cond {
        slug: String,
        prop: String,
        ops: Vec<Op>,
        ci: bool,
    },
    /// Follow the reference attributes of `hops`, then apply `inner` to the records reached.
    Path {
        hops: Vec<(String, String)>,
        inner: Box<Filter>,
    },
}

fn conditions(attr: &AttrDef, spec: &Value) -> ApiResult<Vec<Filter>> {
    let t = &attr.attr.attribute_type;
    let slug = attr.slug().to_owned();
    let ci = case_insensitive(t);
    let cond = |prop: &str, ops: Vec<Op>| Filter::Cond {
        slug: slug.clone(),
        prop: prop.to_owned(),
        ops,
        ci,
    };
    let ops_of = |m: &serde_json::Map<String, Value>| {
        m.iter()
            .map(|(k, v)| Op::parse(k, v))
            .collect::<ApiResult<Vec<_>>>()
    };
    match spec {
        Value::Object(m) if m.keys().all(|k| k.starts_with('$')) => {
            Ok(vec![cond(default_property(t), ops_of(m)?)])
        }
        Value::Object(m) => m
            .iter()
            .map(|(prop, v)| match v {
                Value::Object(inner) if inner.keys().all(|k| k.starts_with('$')) => {
                    Ok(cond(prop, ops_of(inner)?))
                }
                Value::Object(_) => Err(filter_error(format!("{slug}.{prop}: expected operators"))),
                other => Ok(cond(prop, vec![Op::Eq(other.clone())])),
            })
            .collect(),
        other => Ok(vec![cond(default_property(t), vec![Op::Eq(other.clone())])]),
    }
}

impl Filter {
    pub fn compile(ws: &Workspace, object: &ObjectDef, spec: &Value) -> ApiResult<Filter> {
        let Value::Object(m) = spec else {
            return Err(filter_error("a filter is an object"));
        };
        if let (Some(path), Some(constraints)) = (m.get("path"), m.get("constraints")) {
            return Self::compile_path(ws, object, path, constraints);
        }
        let mut parts = Vec::new();
        for (key, value) in m {
            match key.as_str() {
                "$and" | "$or" => {
                    let items = value
                        .as_array()
                        .ok_or_else(|| filter_error(format!("{key} needs an array")))?;
                    let inner = items
                        .iter()
                        .map(|i| Self::compile(ws, object, i))
                        .collect::<ApiResult<Vec<_>>>()?;
                    parts.push(if key == "$and" {
                        Filter::All(inner)
                    } else {
                        Filter::Any(inner)
                    });
                }
                "$not" => parts.push(Filter::Not(Box::new(Self::compile(ws, object, value)?))),
                k if k.starts_with('$') => {
                    return Err(filter_error(format!("unknown operator {k}")));
                }
                slug => {
                    let attr = object.attribute(slug).ok_or_else(|| unknown_slug(slug))?;
                    parts.extend(conditions(attr, value)?);
                }
            }
        }
        Ok(Filter::All(parts))
    }

    fn compile_path(
        ws: &Workspace,
        object: &ObjectDef,
        path: &Value,
        constraints: &Value,
    ) -> ApiResult<Filter> {
        let steps = path
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| filter_error("path needs [[object, attribute], …]"))?;
        let mut hops = Vec::new();
        let mut current = object;
        for (i, step) in steps.iter().enumerate() {
            let pair = step
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| filter_error("each path step is [object, attribute]"))?;
            let (obj, attr) = (
                pair[0].as_str().unwrap_or_default(),
                pair[1].as_str().unwrap_or_default(),
            );
            let here = ws
                .object(obj)
                .ok_or_else(|| filter_error(format!("unknown object {obj} in path")))?;
            if here.slug() != current.slug() {
                return Err(filter_error(format!(
                    "path step {i} is on {obj}, expected {}",
                    current.slug()
                )));
            }
            let a = here.attribute(attr).ok_or_else(|| unknown_slug(attr))?;
            if i + 1 == steps.len() {
                let inner = Filter::All(conditions(a, constraints)?);
                return Ok(Filter::Path {
                    hops,
                    inner: Box::new(inner),
                });
            }
            let target = a
                .target_object
                .as_deref()
                .ok_or_else(|| filter_error(format!("{attr} is not a record reference")))?;
            hops.push((here.slug().to_owned(), attr.to_owned()));
            current = ws
                .object(target)
                .ok_or_else(|| filter_error(format!("unknown object {target}")))?;
        }
        Err(filter_error("empty path"))
    }

    pub fn matches(&self, ws: &Workspace, object: &ObjectDef, rec: &StoredRecord) -> bool {
        match self {
            Filter::All(fs) => fs.iter().all(|f| f.matches(ws, object, rec)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(ws, object, rec)),
            Filter::Not(f) => !f.matches(ws, object, rec),
            Filter::Cond {
                slug,
                prop,
                ops,
                ci,
            } => {
                let values: Vec<Value> = rec.active(slug).flat_map(|v| property(v, prop)).collect();
                ops.iter().all(|op| op.test(&values, *ci))
            }
            Filter::Path { hops, inner } => {
                let mut frontier: Vec<(&ObjectDef, &StoredRecord)> = vec![(object, rec)];
                for (_, attr) in hops {
                    let mut next = Vec::new();
                    for (o, r) in frontier {
                        for v in r.active(attr) {
                            if let ValueData::RecordReference(rr) = &v.data
                                && let Some(to) = ws.object(&rr.target_object)
                                && let Some(target) = to.record(rr.target_record_id)
                            {
                                next.push((to, target));
                            }
                        }
                        let _ = o;
                    }
                    frontier = next;
                }
                frontier.into_iter().any(|(o, r)| inner.matches(ws, o, r))
            }
        }
    }
}

/// A compiled sort.
#[derive(Debug, Clone)]
pub struct Sort {
    slug: String,
    prop: String,
    descending: bool,
}

impl Sort {
    pub fn compile(object: &ObjectDef, spec: &Value) -> ApiResult<Sort> {
        let descending = match spec["direction"].as_str() {
            Some("asc") => false,
            Some("desc") => true,
            _ => {
                return Err(ApiError::invalid(
                    "validation_type",
                    "Sort direction must be \"asc\" or \"desc\".",
                ));
            }
        };
        if spec.get("path").is_some() {
            return Err(ApiError::invalid(
                "validation_type",
                "attio-sim does not support sorting by path yet.",
            ));
        }
        let slug = spec["attribute"]
            .as_str()
            .ok_or_else(|| ApiError::invalid("validation_type", "A sort needs an attribute."))?;
        let attr = object.attribute(slug).ok_or_else(|| unknown_slug(slug))?;
        let prop = spec["field"]
            .as_str()
            .unwrap_or(default_property(&attr.attr.attribute_type))
            .to_owned();
        Ok(Sort {
            slug: attr.slug().to_owned(),
            prop,
            descending,
        })
    }

    fn key(&self, rec: &StoredRecord) -> Option<Value> {
        rec.active(&self.slug)
            .next()
            .and_then(|v| property(v, &self.prop).into_iter().next())
    }

    /// Orders by the sorts in turn; records without a value come last.
    pub fn order(sorts: &[Sort], a: &StoredRecord, b: &StoredRecord) -> Ordering {
        for s in sorts {
            let o = match (s.key(a), s.key(b)) {
                (Some(x), Some(y)) => {
                    let o = compare(&x, &y).unwrap_or(Ordering::Equal);
                    if s.descending { o.reverse() } else { o }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}
