//! AES-256-GCM sealing of credentials at rest, shared by the storage adapters: `nonce (12 bytes) || ciphertext+tag`, with the tenant id
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

/// Seals and opens with one master key.
pub struct Cipher(Aes256Gcm);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self(Aes256Gcm::new(&key.0.into()))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
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

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
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

pub mod tenant {
    //! The at-rest form of a tenant's credentials: one sealed blob (tenant id as associated data)
    //! plus non-secret CRM settings as JSON.

    use std::collections::BTreeMap;

    use domain::ids::{SystemId, TenantId};
    use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
    use serde::{Deserialize, Serialize};

    use super::Cipher;

    /// Why a stored tenant could not be sealed or opened.
    #[derive(Debug, thiserror::Error)]
    pub enum TenantSealError {
        #[error(transparent)]
        Crypto(#[from] super::CryptoError),
        #[error("the sealed credentials do not decode: {0}")]
        Format(String),
        #[error(transparent)]
        Domain(#[from] domain::DomainError),
    }

    /// The plaintext that gets sealed; exists only while sealing or opening.
    #[derive(Serialize, Deserialize)]
    struct Credentials {
        attio_token: String,
        webhook_secrets: Vec<String>,
        /// system → secret name → value
        crm_secrets: BTreeMap<String, BTreeMap<String, String>>,
        /// Digests of the app's API keys (absent in tenants sealed before they existed).
        #[serde(default)]
        api_keys: Vec<String>,
    }

    /// Non-secret CRM settings.
    #[derive(Serialize, Deserialize)]
    struct CrmSettings {
        system: String,
        settings: BTreeMap<String, String>,
    }

    /// A tenant's columns at rest.
    #[derive(Debug)]
    pub struct SealedTenant {
        pub credentials: Vec<u8>,
        pub crm_settings_json: String,
    }

    pub fn seal(cipher: &Cipher, t: &Tenant) -> Result<SealedTenant, TenantSealError> {
        let creds = Credentials {
            attio_token: t.attio.api_token.expose().to_owned(),
            webhook_secrets: t
                .attio
                .webhook_secrets
                .iter()
                .map(|s| s.expose().to_owned())
                .collect(),
            crm_secrets: t
                .crms
                .iter()
                .map(|c| {
                    (
                        c.system.to_string(),
                        c.secrets
                            .iter()
                            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                            .collect(),
                    )
                })
                .collect(),
            api_keys: t.api_keys.iter().map(|d| d.as_str().to_owned()).collect(),
        };
        let plain =
            serde_json::to_vec(&creds).map_err(|e| TenantSealError::Format(e.to_string()))?;
        let settings: Vec<CrmSettings> = t
            .crms
            .iter()
            .map(|c| CrmSettings {
                system: c.system.to_string(),
                settings: c.settings.clone(),
            })
            .collect();
        Ok(SealedTenant {
            credentials: cipher.seal(&plain, t.id.as_str().as_bytes())?,
            crm_settings_json: serde_json::to_string(&settings)
                .map_err(|e| TenantSealError::Format(e.to_string()))?,
        })
    }

    pub fn open(
        cipher: &Cipher,
        id: TenantId,
        name: String,
        created_at: time::OffsetDateTime,
        sealed: &SealedTenant,
    ) -> Result<Tenant, TenantSealError> {
        let plain = cipher.open(&sealed.credentials, id.as_str().as_bytes())?;
        let creds: Credentials =
            serde_json::from_slice(&plain).map_err(|e| TenantSealError::Format(e.to_string()))?;
        let settings: Vec<CrmSettings> = serde_json::from_str(&sealed.crm_settings_json)
            .map_err(|e| TenantSealError::Format(e.to_string()))?;
        let mut crm_secrets = creds.crm_secrets;
        let crms = settings
            .into_iter()
            .map(|c| {
                let secrets = crm_secrets
                    .remove(&c.system)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| Ok((k, Secret::new(v)?)))
                    .collect::<Result<BTreeMap<_, _>, TenantSealError>>()?;
                Ok(CrmConnection {
                    system: SystemId::parse(&c.system)?,
                    settings: c.settings,
                    secrets,
                })
            })
            .collect::<Result<Vec<_>, TenantSealError>>()?;
        Ok(Tenant {
            id,
            name,
            attio: AttioCredentials {
                api_token: Secret::new(creds.attio_token)?,
                webhook_secrets: creds
                    .webhook_secrets
                    .into_iter()
                    .map(Secret::new)
                    .collect::<Result<_, _>>()?,
            },
            crms,
            api_keys: creds
                .api_keys
                .iter()
                .map(|d| domain::tenant::ApiKeyDigest::parse(d))
                .collect::<Result<_, _>>()?,
            created_at,
        })
    }
}
