//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, built with utoipa from the table
//! below (one row per route: method, path, tag, summary, answers) and one webhook row per CRM
//! plugin of the registry that takes webhooks. A test checks that every row is served.

use app_common::registry::Registry;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Required,
    ResponseBuilder, SecurityRequirement,
};

/// One documented route.
pub struct Route {
    pub method: HttpMethod,
    pub path: String,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Answers (status, meaning).
    pub answers: &'static [(&'static str, &'static str)],
    /// Who may call it: `None`, `Some("admin")` or `Some("api_key")`.
    pub auth: Option<&'static str>,
    /// Whether it takes a JSON (or raw) body.
    pub body: bool,
}

impl Route {
    /// The method in lower case, as OpenAPI keys operations.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
            HttpMethod::Delete => "delete",
            HttpMethod::Patch => "patch",
            HttpMethod::Head => "head",
            HttpMethod::Options => "options",
            HttpMethod::Trace => "trace",
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method_name(), self.path)
    }
}

fn r(
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    answers: &'static [(&'static str, &'static str)],
    auth: Option<&'static str>,
    body: bool,
) -> Route {
    Route {
        method,
        path: path.to_owned(),
        tag,
        summary,
        answers,
        auth,
        body,
    }
}

const INTAKE: &[(&str, &str)] = &[
    (
        "200",
        "stored and enqueued (or a duplicate), after it is durable",
    ),
    ("202", "signed but unreadable: quarantined with the reason"),
    ("401", "bad or missing signature; nothing stored"),
    ("404", "unknown tenant"),
    ("413", "body over the limit"),
    ("503", "the store is unavailable; retry"),
];
const DECIDE: &[(&str, &str)] = &[
    ("202", "decided; carrying it out is queued"),
    ("400", "not a delete id"),
    ("401", "no or wrong operator token"),
    ("404", "no such delete"),
    ("409", "not held"),
];
const ADMIN: &[(&str, &str)] = &[
    ("200", "done"),
    ("401", "no or wrong operator token"),
    ("404", "not found"),
];

/// Every route of the service, with the webhook route of each plugin that takes webhooks.
pub fn routes(registry: &Registry) -> Vec<Route> {
    use HttpMethod::*;
    let mut routes = fixed();
    let crm_webhooks = registry.iter().filter_map(|p| {
        let feed = p.feed().webhooks?;
        Some(Route {
            method: Post,
            path: format!("/v1/webhooks/{}/{{tenant}}", p.id()),
            tag: "webhooks",
            summary: feed.summary(),
            answers: INTAKE,
            auth: None,
            body: true,
        })
    });
    routes.splice(1..1, crm_webhooks);
    routes
}

/// The routes that do not depend on the plugins.
fn fixed() -> Vec<Route> {
    use HttpMethod::*;
    vec![
        r(
            Post,
            "/v1/webhooks/attio/{tenant}",
            "webhooks",
            "An Attio webhook delivery (Attio-Signature)",
            INTAKE,
            None,
            true,
        ),
        r(
            Get,
            "/healthz",
            "operations",
            "The process answers",
            &[("200", "alive")],
            None,
            false,
        ),
        r(
            Get,
            "/readyz",
            "operations",
            "The queue answers",
            &[("200", "ready"), ("503", "not ready")],
            None,
            false,
        ),
        r(
            Get,
            "/metrics",
            "operations",
            "Prometheus metrics",
            &[("200", "text exposition format")],
            None,
            false,
        ),
        r(
            Get,
            "/openapi.json",
            "operations",
            "This document",
            &[("200", "OpenAPI 3.1")],
            None,
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants",
            "admin",
            "Add a tenant (optionally registering its Attio webhook)",
            &[
                ("201", "added; secrets shown as ***"),
                ("400", "invalid"),
                ("401", "no operator token"),
                ("409", "exists"),
                ("422", "Attio refuses the tenant's token"),
                ("502", "Attio did not answer the registration"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Get,
            "/v1/admin/tenants",
            "admin",
            "List tenants",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}",
            "admin",
            "Show a tenant (secrets as ***)",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Delete,
            "/v1/admin/tenants/{id}",
            "admin",
            "Remove a tenant: its Attio webhook, the tenant, and everything every store keeps of it",
            &[
                ("200", "removed; what went, counted"),
                ("401", "no operator token"),
                ("404", "not found"),
                (
                    "502",
                    "Attio could not be asked to remove the webhook (retry, or ?force=true)",
                ),
                (
                    "503",
                    "the tenant is deleted but its data not yet erased (delete again)",
                ),
            ],
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/api-keys",
            "admin",
            "Make an API key for the tenant's app (shown once)",
            &[
                ("201", "the key"),
                ("401", "no operator token"),
                ("404", "not found"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/api-keys",
            "admin",
            "The tenant's API keys by fingerprint",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Delete,
            "/v1/admin/tenants/{id}/api-keys/{fingerprint}",
            "admin",
            "Revoke one API key of the tenant",
            &[
                ("204", "revoked"),
                ("401", "no operator token"),
                ("404", "no such tenant or key"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/dead-letters/{job}",
            "admin",
            "One dead letter with its payloads and cause",
            &[
                ("200", "the dead letter"),
                ("401", "no operator token"),
                ("404", "no such dead letter"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/quarantine/{delivery}",
            "admin",
            "One stored delivery with its quarantine reason and body",
            &[
                ("200", "the delivery"),
                ("401", "no operator token"),
                ("404", "no such delivery"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Delete,
            "/v1/admin/tenants/{id}/api-keys",
            "admin",
            "Revoke every API key of the tenant",
            &[
                ("204", "revoked"),
                ("401", "no operator token"),
                ("404", "not found"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/dead-letters",
            "admin",
            "The tenant's dead letters",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/quarantine",
            "admin",
            "The tenant's quarantined deliveries (signed but unusable), with the reason and body",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/dead-letters/{job}/replay",
            "admin",
            "Replay a dead letter",
            &[
                ("202", "queued again"),
                ("401", "no operator token"),
                ("404", "no such dead letter"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/backfills",
            "admin",
            "Queue a backfill of an object to a system",
            &[
                ("202", "queued"),
                ("400", "invalid"),
                ("401", "no operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/rotate-webhook",
            "admin",
            "Register a new Attio webhook, keep the old secret as the previous, remove the old webhook",
            &[
                ("200", "rotated"),
                ("400", "registration is not configured"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
                ("422", "Attio refuses the tenant's token"),
                ("502", "Attio did not answer"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/sync-state",
            "admin",
            "Backfill progress",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/conflicts",
            "control",
            "Open conflicts, oldest first (?object=&system=&field=&record=&older_than_s=&limit=)",
            &[
                ("200", "the conflicts"),
                ("400", "a filter does not parse"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/conflicts/{conflict}",
            "control",
            "One conflict: both values, their change times, the snapshot, why it was queued",
            &[
                ("200", "the conflict"),
                ("400", "not a conflict id"),
                ("401", "no or wrong operator token"),
                ("404", "no such conflict"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/conflicts/{conflict}/resolve",
            "control",
            "Resolve a conflict (keep attio, external or a value); the value is written to every side that differs",
            &[
                ("202", "resolved; the writes are queued"),
                ("400", "not a resolution"),
                ("401", "no or wrong operator token"),
                ("404", "no such conflict"),
                ("409", "already resolved"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/resolutions",
            "control",
            "Resolve many conflicts the same way; each id's outcome",
            &[
                ("200", "the outcomes"),
                ("400", "not a resolution"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/records/{object}/{record}/history",
            "control",
            "A synced record's per-field audit trail, newest first (?limit=)",
            &[
                ("200", "the entries"),
                ("400", "not an object slug or record id"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/deletes",
            "control",
            "Deletes held for approval, oldest first (?limit=)",
            &[
                ("200", "the held deletes"),
                ("400", "a bad limit"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/deletes/{delete}/approve",
            "control",
            "Approve a held delete: the other side's record is removed",
            DECIDE,
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/deletes/{delete}/reject",
            "control",
            "Reject a held delete: the other side keeps its record",
            DECIDE,
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/delete-decisions",
            "control",
            "Approve or reject many held deletes (ids, or all); each one's outcome",
            &[
                ("200", "the outcomes"),
                ("400", "not a decision"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/mappings",
            "control",
            "The tenant's mappings in force (version null: the workers' file)",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Put,
            "/v1/admin/tenants/{id}/mappings",
            "control",
            "Replace the tenant's mappings after checking them against the live schemas",
            &[
                ("200", "stored as the next version"),
                ("400", "not a mappings change"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
                ("409", "expected_version is not the newest"),
                ("422", "the mappings have problems: every one is listed"),
                ("502", "a provider could not be asked for its schema"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/mappings/validate",
            "control",
            "Every problem of a mapping document, against the live schemas; changes nothing",
            &[
                ("200", "valid, or the problems"),
                ("400", "not a mappings document"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
                ("502", "a provider could not be asked for its schema"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/mappings/versions",
            "control",
            "Every version of the tenant's mappings, newest first, with who changed them when",
            &[
                ("200", "the versions"),
                ("400", "a bad limit"),
                ("401", "no or wrong operator token"),
                ("404", "unknown tenant"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Post,
            "/v1/admin/tenants/{id}/reconciliations",
            "control",
            "Queue a reconciliation pass (or a dry run, optionally of candidate mappings) of an object for a system",
            &[
                ("202", "queued"),
                ("400", "invalid"),
                ("401", "no operator token"),
                ("404", "unknown tenant"),
                ("422", "the candidate mappings have problems"),
            ],
            Some("admin"),
            true,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/reconciliations",
            "control",
            "Reconciliation passes and dry runs with their drift reports",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/records/{object}",
            "control",
            "Find synced records by Attio record id, or by e-mail (people), domain (companies) or name (`q`), each with its links",
            &[
                ("200", "the records found, with their links"),
                ("400", "no q, or a bad object"),
                ("401", "no operator token"),
                ("404", "no such tenant"),
            ],
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/tenants/{id}/status",
            "control",
            "A tenant at a glance: jobs waiting per partition and their age, last writes per object and system, provider requests today, dead letters by cause, open conflicts, held deletes, mappings version, last reconciliations",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/admin/queue",
            "admin",
            "Queue depth",
            ADMIN,
            Some("admin"),
            false,
        ),
        r(
            Get,
            "/v1/tenants/{tenant}/people",
            "contacts",
            "Find a person by e-mail (?email=)",
            &[
                ("200", "the person"),
                ("400", "not an e-mail address"),
                ("401", "not this tenant's key"),
                ("404", "no such person"),
            ],
            Some("api_key"),
            false,
        ),
        r(
            Put,
            "/v1/tenants/{tenant}/people",
            "contacts",
            "Create or update a person by e-mail",
            &[
                ("200", "the person"),
                ("400", "invalid"),
                ("401", "not this tenant's key"),
            ],
            Some("api_key"),
            true,
        ),
        r(
            Post,
            "/v1/tenants/{tenant}/people/{record}/notes",
            "contacts",
            "Add a note to a person",
            &[
                ("201", "the note id"),
                ("400", "invalid"),
                ("401", "not this tenant's key"),
            ],
            Some("api_key"),
            true,
        ),
        r(
            Post,
            "/v1/tenants/{tenant}/tasks",
            "contacts",
            "Create a task",
            &[
                ("201", "the task id"),
                ("400", "invalid"),
                ("401", "not this tenant's key"),
            ],
            Some("api_key"),
            true,
        ),
        r(
            Post,
            "/v1/tenants/{tenant}/lists/{list}/entries",
            "contacts",
            "Put a record in a list at a stage",
            &[
                ("201", "the entry id"),
                ("400", "invalid"),
                ("401", "not this tenant's key"),
                ("422", "Attio refused"),
            ],
            Some("api_key"),
            true,
        ),
    ]
}

fn params(path: &str) -> Vec<utoipa::openapi::path::Parameter> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .build()
        })
        .collect()
}

/// The document as JSON, with the bodies' schemas ([`crate::schemas`]) on the routes that take
/// or give JSON the document describes.
pub fn document(registry: &Registry) -> serde_json::Value {
    let mut doc = serde_json::to_value(skeleton(registry)).unwrap_or_default();
    for route in routes(registry) {
        let method = route.method_name();
        let op = &mut doc["paths"][route.path.as_str()][method];
        // Every path parameter is a string (tenant ids, system ids, record and job ids).
        for p in op["parameters"].as_array_mut().into_iter().flatten() {
            p["schema"] = serde_json::json!({"type": "string"});
        }
        if let Some(schema) = crate::schemas::request(registry, method, &route.path) {
            op["requestBody"]["content"]["application/json"]["schema"] = schema;
        }
        if let Some((status, schema)) = crate::schemas::response(method, &route.path) {
            op["responses"][status]["content"]["application/json"]["schema"] = schema;
        }
    }
    doc
}

/// The document from the route table, without body schemas.
fn skeleton(registry: &Registry) -> OpenApi {
    let mut paths = Paths::new();
    for route in routes(registry) {
        let mut op = OperationBuilder::new()
            .summary(Some(route.summary))
            .tag(route.tag)
            .parameters(Some(params(&route.path)));
        for (status, meaning) in route.answers {
            op = op.response(
                *status,
                ResponseBuilder::new().description(*meaning).build(),
            );
        }
        if route.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().build())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        if let Some(scheme) = route.auth {
            op = op.securities(Some([SecurityRequirement::new::<&str, [&str; 0], &str>(
                scheme,
                [],
            )]));
        }
        paths.add_path_operation(&route.path, vec![route.method], op.build());
    }
    let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("attio-sync")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Webhook intake, the operator's admin API and the contact API of attio-sync.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme("admin", bearer())
                .security_scheme("api_key", bearer())
                .build(),
        ))
        .build()
}
