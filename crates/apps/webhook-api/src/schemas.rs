//! The JSON Schemas of the bodies the admin and contact APIs take and give, for `/openapi.json`.
//! They follow the request types (`deny_unknown_fields` is `additionalProperties: false`); the
//! tests post an example of each and check it is accepted.

use app_common::registry::Registry;
use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn map_of_strings() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// A CRM connection: its plugin's system (one of the registry's), settings and secrets.
fn crm(registry: &Registry) -> Value {
    let systems: Vec<String> = registry.iter().map(|p| p.id().to_owned()).collect();
    json!({
        "type": "object",
        "required": ["system"],
        "additionalProperties": false,
        "properties": {
            "system": {"type": "string", "enum": systems, "description": "a CRM plugin of this build"},
            "settings": map_of_strings(),
            "secrets": map_of_strings(),
        },
    })
}

/// `POST /v1/admin/tenants`.
pub fn new_tenant(registry: &Registry) -> Value {
    json!({
        "type": "object",
        "required": ["id", "name", "attio"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "attio": {
                "type": "object",
                "required": ["api_token"],
                "additionalProperties": false,
                "properties": {
                    "api_token": string(),
                    "webhook_secrets": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 16}},
                },
            },
            "crms": {"type": "array", "maxItems": 8, "items": crm(registry)},
            "register_webhook": {"type": "boolean", "default": false},
        },
    })
}

/// A tenant as the admin API shows it (secrets as `***`).
pub fn tenant() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": string(),
            "name": string(),
            "created_at": {"type": "string", "format": "date-time"},
            "attio": {"type": "object"},
            "api_keys": {"type": "integer"},
            "crms": {"type": "array", "items": {"type": "object"}},
        },
    })
}

/// `POST /v1/admin/tenants/{id}/backfills`.
pub fn backfill() -> Value {
    json!({
        "type": "object",
        "required": ["object", "system"],
        "additionalProperties": false,
        "properties": {"object": string(), "system": string()},
    })
}

/// A value as the control plane shows and takes it.
fn plain_value() -> Value {
    json!({"type": ["null", "boolean", "number", "string", "array"], "items": string()})
}

/// `POST /v1/admin/tenants/{id}/conflicts/{conflict}/resolve`, and with `ids` the bulk form.
pub fn resolution(bulk: bool) -> Value {
    let mut s = json!({
        "type": "object",
        "required": ["keep"],
        "additionalProperties": false,
        "properties": {
            "keep": {"enum": ["attio", "external", "value"]},
            "value": plain_value(),
        },
    });
    if bulk {
        s["required"] = json!(["keep", "ids"]);
        s["properties"]["ids"] = json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1, "maxItems": 1000});
    }
    s
}

/// A mappings document (`targets`, as in the worker's file) in a change.
pub fn mappings_change(put: bool) -> Value {
    let field = json!({
        "type": "object",
        "required": ["attio", "external", "rule"],
        "properties": {
            "attio": {"type": "object", "required": ["attribute"], "properties": {
                "attribute": string(), "part": string(), "all_values": {"type": "boolean"},
            }},
            "external": string(),
            "rule": {"enum": ["latest_wins", "prefer_attio", "prefer_external", "prefer_attio_unless_blank", "prefer_external_unless_blank", "attio_to_external", "external_to_attio", "manual"]},
            "transform": {"type": "object"},
        },
    });
    let target = json!({
        "type": "object",
        "required": ["attio_object", "system", "external_object", "id_property", "fields"],
        "additionalProperties": false,
        "properties": {
            "attio_object": string(), "system": string(), "external_object": string(),
            "id_property": string(),
            "fields": {"type": "array", "items": field},
            "on_delete": {"enum": ["archive", "keep", "hold"]},
            "on_crm_delete": {"enum": ["archive", "keep", "hold"]},
            "match_on": string(),
        },
    });
    let mut s = json!({
        "type": "object",
        "required": ["mappings"],
        "additionalProperties": false,
        "properties": {
            "mappings": {"type": "object", "required": ["targets"], "additionalProperties": false,
                         "properties": {"targets": {"type": "array", "items": target}}},
        },
    });
    if put {
        s["required"] = json!(["mappings", "changed_by"]);
        s["properties"]["expected_version"] = json!({"type": ["integer", "null"], "minimum": 1});
        s["properties"]["changed_by"] = json!({"type": "string", "minLength": 1, "maxLength": 200});
    }
    s
}

/// A conflict as the control plane shows it.
pub fn conflict() -> Value {
    let side = json!({"type": "object", "properties": {"value": plain_value(), "changed_at": {"type": ["string", "null"]}}});
    json!({
        "type": "object",
        "required": ["id", "object", "record", "system", "external_id", "field", "attio", "external", "snapshot", "reason", "detected_at", "last_seen"],
        "properties": {
            "id": string(), "object": string(), "record": string(), "system": string(),
            "external_id": string(), "field": string(),
            "attio": side.clone(), "external": side,
            "snapshot": {"type": "object"},
            "reason": {"enum": ["manual_rule", "missing_timestamp", "ambiguous_identity"]},
            "detected_at": string(), "last_seen": string(),
            "resolution": {"type": ["object", "null"]},
        },
    })
}

/// A record's audit trail.
pub fn history() -> Value {
    json!({
        "type": "object",
        "required": ["object", "record", "entries"],
        "properties": {
            "object": string(), "record": string(),
            "entries": {"type": "array", "items": {
                "type": "object",
                "required": ["field", "written_to", "written_record", "source", "old", "new", "rule", "cause", "at"],
                "properties": {
                    "field": string(), "written_to": string(), "written_record": string(),
                    "source": string(), "old": plain_value(), "new": plain_value(),
                    "rule": string(), "cause": string(), "at": string(),
                },
            }},
        },
    })
}

/// `PUT /v1/tenants/{tenant}/people`.
pub fn person_input() -> Value {
    json!({
        "type": "object",
        "required": ["email"],
        "additionalProperties": false,
        "properties": {
            "email": string(),
            "first_name": string(),
            "last_name": string(),
            "job_title": string(),
        },
    })
}

/// `POST /v1/tenants/{tenant}/people/{record}/notes`.
pub fn note() -> Value {
    json!({
        "type": "object",
        "required": ["title", "content"],
        "additionalProperties": false,
        "properties": {"title": string(), "content": string()},
    })
}

/// `POST /v1/tenants/{tenant}/tasks`.
pub fn task() -> Value {
    json!({
        "type": "object",
        "required": ["content"],
        "additionalProperties": false,
        "properties": {
            "content": string(),
            "deadline": {"type": "string", "format": "date-time"},
            "record": {"type": "string", "format": "uuid"},
        },
    })
}

/// `POST /v1/tenants/{tenant}/lists/{list}/entries`.
pub fn entry() -> Value {
    json!({
        "type": "object",
        "required": ["object", "record", "stage"],
        "additionalProperties": false,
        "properties": {"object": string(), "record": {"type": "string", "format": "uuid"}, "stage": string()},
    })
}

/// The request body schema of a documented route, if it takes JSON the document describes.
pub fn request(registry: &Registry, method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/v1/admin/tenants") => new_tenant(registry),
        ("post", "/v1/admin/tenants/{id}/backfills") => backfill(),
        ("post", "/v1/admin/tenants/{id}/conflicts/{conflict}/resolve") => resolution(false),
        ("post", "/v1/admin/tenants/{id}/resolutions") => resolution(true),
        ("put", "/v1/admin/tenants/{id}/mappings") => mappings_change(true),
        ("post", "/v1/admin/tenants/{id}/reconciliations") => {
            let mut s = backfill();
            s["properties"]["dry_run"] = json!({"type": "boolean"});
            s["properties"]["mappings"] = mappings_change(false)["properties"]["mappings"].clone();
            s
        }
        ("post", "/v1/admin/tenants/{id}/mappings/validate") => mappings_change(false),
        ("post", "/v1/admin/tenants/{id}/delete-decisions") => json!({
            "type": "object",
            "required": ["decision"],
            "additionalProperties": false,
            "properties": {
                "decision": {"enum": ["approve", "reject"]},
                "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1, "maxItems": 1000},
                "all": {"type": "boolean"},
            },
        }),
        ("put", "/v1/tenants/{tenant}/people") => person_input(),
        ("post", "/v1/tenants/{tenant}/people/{record}/notes") => note(),
        ("post", "/v1/tenants/{tenant}/tasks") => task(),
        ("post", "/v1/tenants/{tenant}/lists/{list}/entries") => entry(),
        _ => return None,
    })
}

/// The success answer's schema of a documented route, where the document describes it.
pub fn response(method: &str, path: &str) -> Option<(&'static str, Value)> {
    Some(match (method, path) {
        ("post", "/v1/admin/tenants") => ("201", tenant()),
        ("get", "/v1/admin/tenants") => ("200", json!({"type": "array", "items": tenant()})),
        ("get", "/v1/admin/tenants/{id}") => ("200", tenant()),
        ("get", "/v1/admin/tenants/{id}/conflicts") => {
            ("200", json!({"type": "array", "items": conflict()}))
        }
        ("get", "/v1/admin/tenants/{id}/conflicts/{conflict}") => ("200", conflict()),
        ("post", "/v1/admin/tenants/{id}/conflicts/{conflict}/resolve") => ("202", conflict()),
        ("get", "/v1/admin/tenants/{id}/records/{object}/{record}/history") => ("200", history()),
        _ => return None,
    })
}
