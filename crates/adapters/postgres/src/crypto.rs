//! AES-256-GCM for credentials at rest: `nonce (12 bytes) || ciphertext+tag`, with the tenant id
//! as associated data so a row's ciphertext cannot be moved to another tenant.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// The 32-byte master key. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CryptoError::BadKey);
        }
        let mut key = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| CryptoError::BadKey)?;
            key[i] = u8::from_str_radix(hex, 16).map_err(|_| CryptoError::BadKey)?;
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("ciphertext is too short")]
    Truncated,
    #[error("decryption failed: wrong master key, or the data was altered or moved")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

pub(crate) struct Cipher(Aes256Gcm);

impl Cipher {
    pub(crate) fn new(key: &MasterKey) -> Self {
        Self(Aes256Gcm::new(&key.0.into()))
    }

    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(
                    &nonce,
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .map_err(|_| CryptoError::Encrypt)?,
        );
        Ok(out)
    }

    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 12 + 16 {
            return Err(CryptoError::Truncated);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> MasterKey {
        MasterKey::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_the_associated_data() {
        let c = Cipher::new(&key('a'));
        let sealed = c.seal(b"token", b"tenant-a").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"token"));
        assert_eq!(c.open(&sealed, b"tenant-a").unwrap(), b"token");
        assert_eq!(c.open(&sealed, b"tenant-b"), Err(CryptoError::Decrypt));
        assert_eq!(
            Cipher::new(&key('b')).open(&sealed, b"tenant-a"),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            c.open(&sealed[..10], b"tenant-a"),
            Err(CryptoError::Truncated)
        );
        assert_ne!(
            c.seal(b"token", b"tenant-a").unwrap(),
            sealed,
            "nonces are fresh"
        );
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert_eq!(MasterKey::from_hex("abc").unwrap_err(), CryptoError::BadKey);
        assert!(MasterKey::from_hex(&"g".repeat(64)).is_err());
        assert_eq!(format!("{:?}", key('f')), "MasterKey(***)");
    }
}
