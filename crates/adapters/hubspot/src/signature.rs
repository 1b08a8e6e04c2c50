//! HubSpot's v3 webhook signature: `X-HubSpot-Signature-v3` =
//! base64(HMAC-SHA256(client secret, method + URI + body + timestamp)), with
//! `X-HubSpot-Request-Timestamp` in Unix milliseconds, rejected when older than five minutes.

use base64::Engine;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request timestamp is not a number of milliseconds")]
    BadTimestamp,
    #[error("the request is older than five minutes")]
    Stale,
    #[error("the request is dated more than five minutes ahead of this server's clock")]
    FromTheFuture,
    #[error("the signature is not base64")]
    NotBase64,
    #[error("the signature does not match")]
    Mismatch,
}

/// The window HubSpot allows between signing and checking, applied both ways: a timestamp more
/// than this far ahead of the receiver's clock is refused too (a replay window is no window if
/// the signer may date a request a year ahead).
pub const MAX_AGE_MS: i64 = 300_000;

/// HubSpot decodes these escapes in the URI before signing.
fn decode_uri(uri: &str) -> String {
    let pairs = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_owned();
    for (from, to) in pairs {
        out = out.replace(from, to).replace(&from.to_lowercase(), to);
    }
    out
}

fn mac(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> Vec<u8> {
    let Ok(mut m) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    m.update(method.as_bytes());
    m.update(decode_uri(uri).as_bytes());
    m.update(body);
    m.update(timestamp.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The v3 signature of a request, as HubSpot computes it.
pub fn sign_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp_ms: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(
        secret,
        method,
        uri,
        body,
        &timestamp_ms.to_string(),
    ))
}

/// Checks a v3 signature in constant time. `uri` is the full public URL HubSpot called, query
/// string included; `now_ms` is the receiver's clock.
pub fn verify_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
    signature: &str,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now_ms.saturating_sub(ts) > MAX_AGE_MS {
        return Err(SignatureError::Stale);
    }
    if ts.saturating_sub(now_ms) > MAX_AGE_MS {
        return Err(SignatureError::FromTheFuture);
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::NotBase64)?;
    let expected = mac(secret, method, uri, body, timestamp.trim());
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://hooks.example.com/v1/webhooks/hubspot/acme?x=1";
    const BODY: &[u8] = br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]"#;

    #[test]
    fn accepts_its_own_signature_and_refuses_changes() {
        let now = 1_700_000_000_000;
        let sig = sign_v3("secret", "POST", URL, BODY, now);
        assert_eq!(
            verify_v3(
                "secret",
                "POST",
                URL,
                BODY,
                &now.to_string(),
                &sig,
                now + 1_000
            ),
            Ok(())
        );
        assert_eq!(
            verify_v3("other", "POST", URL, BODY, &now.to_string(), &sig, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3("secret", "POST", URL, b"[]", &now.to_string(), &sig, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3("secret", "PUT", URL, BODY, &now.to_string(), &sig, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3(
                "secret",
                "POST",
                URL,
                BODY,
                &(now + 1).to_string(),
                &sig,
                now
            ),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            verify_v3(
                "secret",
                "POST",
                URL,
                BODY,
                &now.to_string(),
                &sig,
                now + MAX_AGE_MS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_v3("secret", "POST", URL, BODY, "yesterday", &sig, now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify_v3("secret", "POST", URL, BODY, &now.to_string(), "***", now),
            Err(SignatureError::NotBase64)
        );
    }

    #[test]
    fn the_window_holds_both_ways() {
        let now = 1_700_000_000_000;
        for (ts, expect) in [
            (now - MAX_AGE_MS, Ok(())),
            (now - MAX_AGE_MS - 1, Err(SignatureError::Stale)),
            (now + MAX_AGE_MS, Ok(())),
            (now + MAX_AGE_MS + 1, Err(SignatureError::FromTheFuture)),
            (now + 365 * 86_400_000, Err(SignatureError::FromTheFuture)),
            (i64::MIN, Err(SignatureError::Stale)),
            (i64::MAX, Err(SignatureError::FromTheFuture)),
        ] {
            let sig = sign_v3("secret", "POST", URL, BODY, ts);
            assert_eq!(
                verify_v3("secret", "POST", URL, BODY, &ts.to_string(), &sig, now),
                expect,
                "{ts}"
            );
        }
    }

    #[test]
    fn escaped_uris_sign_like_decoded_ones() {
        let now = 1_700_000_000_000;
        let sig = sign_v3("s", "POST", "https://h.example.com/a%3Ab?q=%40", BODY, now);
        assert_eq!(
            verify_v3(
                "s",
                "POST",
                "https://h.example.com/a:b?q=@",
                BODY,
                &now.to_string(),
                &sig,
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn matches_an_independent_computation() {
        // HMAC-SHA256("secret", "POST" + url + body + "1700000000000"), base64, computed with
        // Python's hmac module: the format HubSpot's official clients use.
        let sig = sign_v3(
            "secret",
            "POST",
            "https://example.com/webhook",
            b"[]",
            1_700_000_000_000,
        );
        assert_eq!(sig, "sineGDI+yJDc+ABzh1oL1EgDtQJDZLNLAwfDPBU2WO4=");
    }
}
