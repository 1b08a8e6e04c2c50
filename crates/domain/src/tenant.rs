//! Tenants (customer workspaces) and their credentials. Secrets cannot be printed.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{SystemId, TenantId};

/// A credential. `Debug` and `Display` print `***`; the value is read only through
/// [`Secret::expose`], which makes every use greppable.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a non-empty secret.
    pub fn new(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        if value.trim().is_empty() {
            return Err(DomainError::InvalidSecret("must not be empty"));
        }
        Ok(Self(SecretString::from(value)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Attio credentials of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttioCredentials {
    pub api_token: Secret,
    /// Current webhook secret first; a second one is accepted during rotation.
    pub webhook_secrets: Vec<Secret>,
}

/// Credentials and settings of one external CRM of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmConnection {
    pub system: SystemId,
    /// Non-secret settings (instance URL, portal id, ...).
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
}

/// At most this many CRM connections per tenant.
pub const MAX_CRMS: usize = 8;
/// At most this many settings, and as many secrets, per connection.
pub const MAX_SETTINGS: usize = 32;
/// The longest setting value, in bytes.
pub const MAX_SETTING_BYTES: usize = 2048;
/// The longest secret, in bytes (a PEM private key fits).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

impl CrmConnection {
    /// Sizes and characters: keys are 1–64 of `a-z`, `0-9`, `_`; settings at most
    /// [`MAX_SETTING_BYTES`] without control characters; secrets at most [`MAX_SECRET_BYTES`]
    /// without NUL. The error names the setting.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |what: &str, key: &str, reason: String| {
            Err(DomainError::InvalidValue {
                target: format!("{} {what} {key:?}", self.system),
                reason,
            })
        };
        for (what, n) in [
            ("settings", self.settings.len()),
            ("secrets", self.secrets.len()),
        ] {
            if n > MAX_SETTINGS {
                return bad(
                    what,
                    "",
                    format!("at most {MAX_SETTINGS} are allowed, got {n}"),
                );
            }
        }
        let keys = self
            .settings
            .keys()
            .map(|k| ("setting", k))
            .chain(self.secrets.keys().map(|k| ("secret", k)));
        for (what, key) in keys {
            let ok = (1..=64).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return bad(what, key, "use 1 to 64 of a-z, 0-9 and '_'".into());
            }
        }
        for (key, value) in &self.settings {
            if value.len() > MAX_SETTING_BYTES {
                return bad(
                    "setting",
                    key,
                    format!("longer than {MAX_SETTING_BYTES} bytes"),
                );
            }
            if value.chars().any(char::is_control) {
                return bad("setting", key, "must not contain control characters".into());
            }
        }
        for (key, value) in &self.secrets {
            if value.expose().len() > MAX_SECRET_BYTES {
                return bad(
                    "secret",
                    key,
                    format!("longer than {MAX_SECRET_BYTES} bytes"),
                );
            }
            if value.expose().contains('\0') {
                return bad("secret", key, "must not contain NUL".into());
            }
        }
        Ok(())
    }
}

/// The SHA-256 (hex) of an API key of the tenant's own app. Only digests are kept; a key is shown
/// once, when it is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(String);

impl ApiKeyDigest {
    /// The digest of a presented key.
    pub fn of(key: &str) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(key.as_bytes())))
    }

    /// A stored digest: 64 hex characters.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(DomainError::InvalidValue {
                target: "API key digest".into(),
                reason: "must be 64 hex characters".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest's first 12 hex characters: names a key in listings and revocations without
    /// revealing anything that helps guess it.
    pub fn fingerprint(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

/// A customer workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub attio: AttioCredentials,
    pub crms: Vec<CrmConnection>,
    /// Digests of the API keys the tenant's app authenticates with.
    pub api_keys: Vec<ApiKeyDigest>,
    pub created_at: OffsetDateTime,
}

impl Tenant {
    /// Checks what a store needs to hold: a name, at most two webhook secrets, one connection per
    /// system.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |target: String, reason: &str| {
            Err(DomainError::InvalidValue {
                target,
                reason: reason.into(),
            })
        };
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return bad("tenant name".into(), "must be 1 to 200 bytes");
        }
        if self.name.chars().any(char::is_control) {
            return bad(
                "tenant name".into(),
                "must not contain control characters (NUL, line breaks, ...)",
            );
        }
        if self.crms.len() > MAX_CRMS {
            return bad(
                "CRM connections".into(),
                &format!("at most {MAX_CRMS} are allowed, got {}", self.crms.len()),
            );
        }
        for c in &self.crms {
            c.validate()?;
        }
        if self.attio.webhook_secrets.len() > 2 {
            return Err(DomainError::InvalidValue {
                target: "webhook secrets".into(),
                reason: "at most two (current and previous) are kept".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.crms {
            if !seen.insert(&c.system) {
                return Err(DomainError::InvalidValue {
                    target: "CRM connections".into(),
                    reason: format!("{} is connected twice", c.system),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_kept_as_digests() {
        let d = ApiKeyDigest::of("ask_0123");
        assert_eq!(d.as_str().len(), 64);
        assert_eq!(ApiKeyDigest::parse(d.as_str()).unwrap(), d);
        assert!(ApiKeyDigest::parse("zz").is_err());
        assert_ne!(ApiKeyDigest::of("ask_0124"), d);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk_live_very_secret").unwrap();
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let creds = AttioCredentials {
            api_token: s.clone(),
            webhook_secrets: vec![Secret::new("whsec_other").unwrap()],
        };
        let dbg = format!("{creds:?} {creds:#?}");
        assert!(
            !dbg.contains("very_secret") && !dbg.contains("whsec_other"),
            "{dbg}"
        );
        assert_eq!(s.expose(), "sk_live_very_secret");
        assert!(Secret::new("  ").is_err());
    }
}
