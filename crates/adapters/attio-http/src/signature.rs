//! Attio's webhook signature: `Attio-Signature` (and its duplicate `X-Attio-Signature`) = hex of
//! HMAC-SHA256 over the raw body, keyed with the webhook secret's bytes. No timestamp is signed.

use hmac::{KeyInit, Mac};

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttioSignatureError {
    #[error("the delivery carries no Attio-Signature header")]
    Missing,
    #[error("the signature is not hex")]
    NotHex,
    #[error("the signature matches none of the webhook's secrets")]
    Mismatch,
}

fn mac(secret: &str) -> hmac::Hmac<sha2::Sha256> {
    let Ok(m) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    m
}

/// The signature Attio sends for `body` under `secret`.
pub fn sign_attio(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Checks a delivery against every accepted secret (the current one and, during rotation, the
/// previous one), in constant time per secret.
pub fn verify_attio(
    secrets: &[&str],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), AttioSignatureError> {
    let sig = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AttioSignatureError::Missing)?;
    let sig = hex::decode(sig).map_err(|_| AttioSignatureError::NotHex)?;
    let ok = secrets.iter().any(|secret| {
        let mut m = mac(secret);
        m.update(body);
        m.verify_slice(&sig).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(AttioSignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_vector_and_rotation() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style.
        assert_eq!(
            sign_attio("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let body = br#"{"webhook_id":"w","events":[]}"#;
        let sig = sign_attio("old", body);
        assert_eq!(verify_attio(&["new", "old"], body, Some(&sig)), Ok(()));
        assert_eq!(
            verify_attio(&["new"], body, Some(&sig)),
            Err(AttioSignatureError::Mismatch)
        );
        assert_eq!(
            verify_attio(&["old"], b"tampered", Some(&sig)),
            Err(AttioSignatureError::Mismatch)
        );
        assert_eq!(
            verify_attio(&["old"], body, None),
            Err(AttioSignatureError::Missing)
        );
        assert_eq!(
            verify_attio(&["old"], body, Some("zz")),
            Err(AttioSignatureError::NotHex)
        );
        assert_eq!(
            verify_attio(&[], body, Some(&sig)),
            Err(AttioSignatureError::Mismatch)
        );
    }
}
