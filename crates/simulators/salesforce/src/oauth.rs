//! The OAuth 2.0 endpoints: `POST /services/oauth2/token` for the client-credentials flow (form
//! fields or HTTP Basic) and the JWT bearer flow (RS256 checked against the connected app's public
//! key; `iss`, `aud`, `sub`, `exp`), `/revoke` and `/introspect`. No refresh token is issued by
//! either flow. Errors are RFC 6749 objects with HTTP 400.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::Sim;

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Client credentials from the form or an `Authorization: Basic` header.
fn client_credentials(
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (f.get("client_id"), f.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    sub: String,
}

/// Checks a JWT bearer assertion; the error description Salesforce would give.
fn check_assertion(sim: &Sim, assertion: &str) -> Result<String, &'static str> {
    let app = &sim.config.app;
    let pem = app
        .jwt_public_key_pem
        .as_deref()
        .ok_or("no certificate is configured for this connected app")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| "the connected app's certificate cannot be read")?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    let audiences = [
        "https://login.salesforce.com".to_owned(),
        "https://test.salesforce.com".to_owned(),
        sim.url(),
    ];
    v.set_audience(&audiences);
    v.set_issuer(&[app.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.leeway = 0;
    let data = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => "expired authorization code",
            K::InvalidAudience => "audience is invalid",
            K::InvalidIssuer => "invalid client credentials",
            _ => "invalid assertion",
        }
    })?;
    let sub = data.claims.sub;
    match &app.jwt_username {
        Some(u) if !u.eq_ignore_ascii_case(&sub) => Err("user hasn't approved this consumer"),
        _ if sub.is_empty() => Err("invalid assertion"),
        _ => Ok(sub),
    }
}

pub(crate) async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let grant = f.get("grant_type").map(String::as_str).unwrap_or_default();
    let jwt = match grant {
        "client_credentials" => {
            let Some((id, secret)) = client_credentials(&headers, &f) else {
                return oauth_error("invalid_client_id", "client identifier invalid");
            };
            if id != sim.config.app.client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if secret != sim.config.app.client_secret {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            false
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let Some(assertion) = f.get("assertion") else {
                return oauth_error("invalid_grant", "invalid assertion");
            };
            if let Err(description) = check_assertion(&sim, assertion) {
                return oauth_error("invalid_grant", description);
            }
            true
        }
        "" => return oauth_error("unsupported_grant_type", "grant type not specified"),
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    };
    let token = sim.issue_token();
    let issued_at = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let url = sim.url();
    let id = format!("{url}/id/{}/{}", sim.config.org_id, sim.config.user_id);
    let mut out = json!({
        "access_token": token,
        "signature": base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes()),
        "instance_url": url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at.to_string(),
    });
    if jwt {
        out["scope"] = json!("api");
    } else {
        out["token_format"] = json!("opaque");
    }
    Json(out).into_response()
}

pub(crate) async fn revoke(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let f = form(&body);
    match f.get("token") {
        Some(t) if sim.tokens().remove(t).is_some() => StatusCode::OK.into_response(),
        _ => oauth_error("invalid_token", "invalid token"),
    }
}

pub(crate) async fn introspect(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    match client_credentials(&headers, &f) {
        Some((id, secret))
            if id == sim.config.app.client_id && secret == sim.config.app.client_secret => {}
        _ => return oauth_error("invalid_client", "invalid client credentials"),
    }
    let now = Instant::now();
    let token = f.get("token").cloned().unwrap_or_default();
    let expires = sim.tokens().get(&token).copied().filter(|e| *e > now);
    match expires {
        Some(e) => {
            let exp = time::OffsetDateTime::now_utc().unix_timestamp()
                + i64::try_from((e - now).as_secs()).unwrap_or(i64::MAX);
            Json(json!({"active": true, "client_id": sim.config.app.client_id, "token_type": "access_token", "exp": exp, "sub": sim.config.user_id}))
                .into_response()
        }
        None => Json(json!({"active": false})).into_response(),
    }
}
