//! Idempotency keys for received deliveries: the provider's key, else a hash of the body.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DomainError;

/// Identifies one delivery across the provider's retries.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key accepted from a provider header.
    pub const MAX_LEN: usize = 255;

    /// A provider's key (`Idempotency-Key` header): 1–255 visible ASCII characters.
    pub fn from_provider(key: &str) -> Result<Self, DomainError> {
        if key.is_empty() {
            return Err(DomainError::InvalidIdempotencyKey("the key is empty"));
        }
        if key.len() > Self::MAX_LEN {
            return Err(DomainError::InvalidIdempotencyKey(
                "the key is longer than 255 bytes",
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::InvalidIdempotencyKey(
                "the key must be visible ASCII without spaces",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// `sha256:<hex>` of the raw body, for providers that send no key.
    pub fn from_body(body: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(body))))
    }

    /// The provider's key when a header was sent, else the body hash. A header that was sent but
    /// is unusable is an error, not a silent fallback.
    pub fn derive(header: Option<&str>, body: &[u8]) -> Result<Self, DomainError> {
        match header {
            Some(h) => Self::from_provider(h.trim()),
            None => Ok(Self::from_body(body)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_provider(&s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> Self {
        k.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_key_wins_and_body_hash_is_stable() {
        let body = br#"{"webhook_id":"x"}"#;
        assert_eq!(
            IdempotencyKey::derive(Some("abc-123"), body)
                .unwrap()
                .as_str(),
            "abc-123"
        );
        let a = IdempotencyKey::derive(None, body).unwrap();
        let b = IdempotencyKey::derive(None, body).unwrap();
        assert_eq!(a, b);
        assert!(a.as_str().starts_with("sha256:"));
        assert_eq!(a.as_str().len(), 7 + 64);
        assert_ne!(a, IdempotencyKey::from_body(b"other"));
    }

    #[test]
    fn unusable_headers_are_errors() {
        let long = "k".repeat(256);
        for bad in ["", "has space", "tab\tkey", "ünïcode", long.as_str()] {
            assert!(IdempotencyKey::derive(Some(bad), b"{}").is_err(), "{bad:?}");
        }
    }
}
