//! Validation against Attio's OpenAPI document (`attio-openapi.json`).
//!
//! The document is Attio's and carries no licence, so it is not vendored: it is read from
//! `ATTIO_OPENAPI`, else from `shared/specs/attio-openapi.json` in the nearest ancestor folder of the
//! repository (this project's CI keeps `shared/` beside the clone). Download it from `https://api.attio.com/openapi/api` to run these tests
//! elsewhere. Before validating, OpenAPI 3.0-style `nullable: true` becomes a `null` type, and an
//! `enum` whose `type` admits `null` gains `null` (the document omits it in a few places).

use std::path::PathBuf;

use jsonschema::{Draft, Registry};
use serde_json::{Value, json};

const ID: &str = "urn:attio:openapi";

/// The loaded document.
#[derive(Debug)]
pub struct OpenApi {
    doc: Value,
}

fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("nullable") == Some(&Value::Bool(true)) {
                match m.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = t.clone();
                        m.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(ts)) if !ts.contains(&json!("null")) => {
                        ts.push(json!("null"))
                    }
                    _ => {}
                }
                if let Some(Value::Array(e)) = m.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            // A type that admits null with an enum that does not list it: the enum is incomplete.
            let null_type =
                matches!(m.get("type"), Some(Value::Array(ts)) if ts.contains(&json!("null")));
            if null_type
                && let Some(Value::Array(e)) = m.get_mut("enum")
                && !e.contains(&Value::Null)
            {
                e.push(Value::Null);
            }
            m.values_mut().for_each(normalise);
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

impl OpenApi {
    /// Loads the document; panics with where to get it when it cannot be found.
    pub fn load() -> Self {
        let path = std::env::var("ATTIO_OPENAPI")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../../shared/specs/attio-openapi.json")
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "Attio's OpenAPI document is needed at {} ({e}); set ATTIO_OPENAPI to a copy of https://api.attio.com/openapi/api",
                path.display()
            )
        });
        let mut doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        normalise(&mut doc);
        Self { doc }
    }

    /// The path template (`/v2/objects/{object}/records/{record_id}`) an actual path matches.
    pub fn template(&self, path: &str) -> Option<String> {
        let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        // Prefer templates with more literal segments (`/v2/objects/records/search` over `/v2/objects/{object}`).
        let mut best: Option<(usize, &String)> = None;
        for t in paths.keys() {
            let segs: Vec<&str> = t.split('/').collect();
            if segs.len() != actual.len() {
                continue;
            }
            let fits = segs
                .iter()
                .zip(&actual)
                .all(|(s, a)| s.starts_with('{') || s == a);
            let literal = segs.iter().filter(|s| !s.starts_with('{')).count();
            if fits && best.is_none_or(|(l, _)| literal > l) {
                best = Some((literal, t));
            }
        }
        best.map(|(_, t)| t.clone())
    }

    fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
        let mut doc = self.doc.clone();
        doc["$id"] = json!(ID);
        let registry = Registry::new()
            .add(ID, doc)
            .and_then(|r| r.prepare())
            .map_err(|e| format!("cannot register the document: {e}"))?;
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(false)
            .with_registry(&registry)
            .build(&json!({ "$ref": format!("{ID}#{pointer}") }))
            .map_err(|e| format!("no schema at {pointer}: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Validates a response body against the document's schema for it.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let t = self
            .template(path)
            .ok_or_else(|| format!("{path} is not in the document"))?;
        let op = format!("/paths/{}/{}", pointer_segment(&t), method.to_lowercase());
        if self
            .doc
            .pointer(&format!(
                "/paths/{}/{}",
                t.replace('~', "~0").replace('/', "~1"),
                method.to_lowercase()
            ))
            .is_none()
        {
            return Err(format!("{method} {t} is not in the document"));
        }
        self.validate(
            &format!("{op}/responses/{status}/content/application~1json/schema"),
            body,
        )
    }

    /// Validates a request body against the document's schema for it.
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let t = self
            .template(path)
            .ok_or_else(|| format!("{path} is not in the document"))?;
        let op = format!("/paths/{}/{}", pointer_segment(&t), method.to_lowercase());
        self.validate(
            &format!("{op}/requestBody/content/application~1json/schema"),
            body,
        )
    }
}
