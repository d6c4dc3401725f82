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

use openssl::sha::Sha256;

use keyshare_policy::trust::Principal;

use super::CiError;
use crate::store::CiOwner;

/// A 32-byte HMAC-SHA256 key, held as the two SHA-256 states HMAC starts
/// from (the key XORed with the inner and the outer pad, each hashed once
/// when the key is made), so a MAC costs two SHA-256 continuations and no
/// key object, algorithm lookup or OpenSSL context per call. `Debug` does
/// not show it.
#[derive(Clone)]
pub struct SecretKey {
    inner: Sha256,
    outer: Sha256,
}

impl SecretKey {
    /// The key `bytes` (RFC 2104: shorter than SHA-256's 64-byte block, so
    /// padded with zeros).
    pub fn new(bytes: [u8; 32]) -> Self {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(bytes) {
            *i ^= k;
            *o ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(&ipad);
        let mut outer = Sha256::new();
        outer.update(&opad);
        Self { inner, outer }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// HMAC-SHA256 of `data` under `key` (RFC 2104), with OpenSSL's SHA-256.
pub fn hmac_sha256(key: &SecretKey, data: &[u8]) -> Result<[u8; 32], CiError> {
    let mut inner = key.inner.clone();
    inner.update(data);
    let inner = inner.finish();
    let mut outer = key.outer.clone();
    outer.update(&inner);
    Ok(outer.finish())
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
        let master = SecretKey::new(master);
        Ok(Self {
            nonce: SecretKey::new(hmac_sha256(&master, b"keyshare-ci-nonce-key-v1")?),
            principal: SecretKey::new(hmac_sha256(&master, b"keyshare-ci-principal-key-v1")?),
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
        let mac = hmac_sha256(&SecretKey::new(key), b"what do ya want for nothing?").unwrap();
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_cases_1_and_3_and_openssl() {
        // Case 1: a 20-byte key of 0x0b; case 3: 20 bytes of 0xaa over 50
        // bytes of 0xdd (keys zero-padded to 32 bytes, as HMAC pads them).
        let mut k1 = [0u8; 32];
        k1[..20].fill(0x0b);
        assert_eq!(
            hex::encode(hmac_sha256(&SecretKey::new(k1), b"Hi There").unwrap()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let mut k3 = [0u8; 32];
        k3[..20].fill(0xaa);
        assert_eq!(
            hex::encode(hmac_sha256(&SecretKey::new(k3), &[0xdd; 50]).unwrap()),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        );
        // A full 32-byte key and long input, against OpenSSL's own HMAC;
        // one key used twice gives the same MAC (its states are copied, not
        // used up).
        let key = [0x5a; 32];
        let data = vec![7u8; 1000];
        let pkey = openssl::pkey::PKey::hmac(&key).unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        let expected = signer.sign_oneshot_to_vec(&data).unwrap();
        let k = SecretKey::new(key);
        assert_eq!(hmac_sha256(&k, &data).unwrap().to_vec(), expected);
        assert_eq!(hmac_sha256(&k, &data).unwrap().to_vec(), expected);
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
