//! The OAuth 2.0 flows Salesforce offers servers: client credentials (the secret in the form)
//! and JWT bearer (an RS256 assertion, `exp` three minutes ahead). Neither issues a refresh
//! token: a new session is a new login.

use domain::tenant::Secret;
use ports::error::{PortError, PortResult};
use serde::Deserialize;
use serde_json::json;

use crate::wire::SfError;
use crate::{SalesforceAuth, SalesforceConfig, Session};

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

/// Logs in; `Unauthorized` when Salesforce refuses the credentials, `Unavailable` when it cannot
/// be reached.
pub(crate) async fn login(
    http: &reqwest::Client,
    config: &SalesforceConfig,
) -> PortResult<Session> {
    let url = format!("{}/services/oauth2/token", config.login_url);
    let form: Vec<(&str, String)> = match &config.auth {
        SalesforceAuth::ClientCredentials {
            client_id,
            client_secret,
        } => vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose().to_owned()),
        ],
        SalesforceAuth::JwtBearer {
            client_id,
            username,
            private_key_pem,
            audience,
        } => {
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                .map_err(|_| {
                    PortError::Invalid("the JWT private key is not an RSA PEM key".into())
                })?;
            let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 180;
            let claims = json!({"iss": client_id, "sub": username, "aud": audience, "exp": exp});
            let assertion = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                &claims,
                &key,
            )
            .map_err(|e| PortError::Invalid(format!("cannot sign the JWT assertion: {e}")))?;
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion", assertion),
            ]
        }
    };
    let resp = http
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| PortError::unavailable("Salesforce login", e.without_url()))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != 200 {
        let body = serde_json::from_str(&text).unwrap_or_default();
        let why = SfError::decode(&body)
            .map(|e| e.to_string())
            .unwrap_or_else(|| format!("the token endpoint answered {status}"));
        return Err(if status >= 500 {
            PortError::unavailable("Salesforce login", why)
        } else {
            PortError::Unauthorized(format!("Salesforce login refused: {why}"))
        });
    }
    let t: TokenResponse =
        serde_json::from_str(&text).map_err(|e| PortError::backend("Salesforce login", e))?;
    Ok(Session {
        token: Secret::new(t.access_token)?,
        instance_url: t.instance_url.trim_end_matches('/').to_owned(),
    })
}
