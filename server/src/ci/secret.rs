//! The CI secret and what is derived from it.
//!
//! One secret of 32 random bytes lives in the data directory
//! (`keys/ci-secret`, mode 0600, see [`crate::keys::ci_secret`]): made by
//! `init`, or on the first start of a data directory made before. It is
//! never logged, never stored in the database and never sent. Two keys are
//! derived from it with HMAC-SHA256 (OpenSSL), each for one purpose:
//!
//! * the nonce key MACs nonces ([`super::state::Nonces`]), so nonces need
//!   no table until they are used;
//! * the principal key makes the opaque principal id of a CI identity
//!   ([`CiSecret::principal`]): `ci:` and the hex HMAC of the exact
//!   identity, the same for every delegation of one identity, and not
//!   computable from a guessed repository name without the secret.

use std::fmt;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use keyshare_policy::trust::Principal;

use super::CiError;
use crate::store::CiOwner;

/// A 32-byte key. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &SecretKey, data: &[u8]) -> Result<[u8; 32], CiError> {
    let mac = (|| {
        let pkey = PKey::hmac(&key.0)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
        signer.sign_oneshot_to_vec(data)
    })()
    .map_err(|_| CiError::Internal("HMAC-SHA256 failed".into()))?;
    let _ = openssl::error::ErrorStack::get();
    <[u8; 32]>::try_from(mac.as_slice())
        .map_err(|_| CiError::Internal("HMAC-SHA256 gave no 32 bytes".into()))
}

/// `parts`, each preceded by its length (8 bytes, big-endian): no two
/// lists of parts encode the same.
pub fn encode(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        out.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The keys derived from the CI secret.
#[derive(Clone, Debug)]
pub struct CiSecret {
    nonce: SecretKey,
    principal: SecretKey,
}

impl CiSecret {
    /// Derives the keys from the 32 bytes of `keys/ci-secret`.
    pub fn derive(master: [u8; 32]) -> Result<Self, CiError> {
        let master = SecretKey(master);
        Ok(Self {
            nonce: SecretKey(hmac_sha256(&master, b"keyshare-ci-nonce-key-v1")?),
            principal: SecretKey(hmac_sha256(&master, b"keyshare-ci-principal-key-v1")?),
        })
    }

    /// The key that MACs nonces.
    pub fn nonce_key(&self) -> &SecretKey {
        &self.nonce
    }

    /// The principal id of `owner`: `ci:` and 64 hex digits, the HMAC of
    /// an unambiguous encoding of the exact identity (issuer and subject,
    /// or CI token id).
    pub fn principal(&self, owner: &CiOwner) -> Result<Principal, CiError> {
        let encoded = match owner {
            CiOwner::Oidc { issuer, subject } => {
                encode(&[b"oidc", issuer.as_bytes(), subject.as_bytes()])
            }
            CiOwner::Token { id } => encode(&[b"ci-token", id.as_bytes()]),
        };
        let mac = hmac_sha256(&self.principal, &encoded)?;
        Principal::parse(&format!("ci:{}", hex::encode(mac))).map_err(CiError::Internal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn oidc(issuer: &str, subject: &str) -> CiOwner {
        CiOwner::Oidc {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // Key "Jefe" (padded with zeros to 32 bytes changes nothing: HMAC
        // pads short keys with zeros).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&SecretKey(key), b"what do ya want for nothing?").unwrap();
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn one_identity_one_principal_and_the_encoding_is_unambiguous() {
        let s = CiSecret::derive([7; 32]).unwrap();
        let p = |o: &CiOwner| s.principal(o).unwrap().to_string();
        let a = p(&oidc("https://i", "repo:a"));
        assert_eq!(a, p(&oidc("https://i", "repo:a")));
        assert!(a.starts_with("ci:") && a.len() == 67, "{a}");
        // Moving bytes between issuer and subject is another identity.
        assert_ne!(a, p(&oidc("https://irepo:", "a")));
        assert_ne!(p(&oidc("x", "\n")), p(&oidc("x", "\r")));
        assert_ne!(
            p(&CiOwner::Token { id: "tok-1".into() }),
            p(&oidc("tok-1", ""))
        );
        // Another secret, other principals.
        let other = CiSecret::derive([8; 32]).unwrap();
        assert_ne!(
            a,
            other
                .principal(&oidc("https://i", "repo:a"))
                .unwrap()
                .to_string()
        );
    }

    #[test]
    fn debug_does_not_show_the_keys() {
        let s = CiSecret::derive([0xab; 32]).unwrap();
        let text = format!("{s:?}");
        assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
        assert!(text.contains("redacted"));
    }
}
