//! Signing: the [`Signer`] trait every key backend implements, and an
//! in-memory key for tests and the embedded default.
//!
//! The `keyshare-hsm` crate implements [`Signer`] for key files and PKCS#11
//! tokens; everything that signs metadata takes `&dyn Signer`.

use std::fmt;
use std::sync::Arc;

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::RsaPssSaltlen;

use crate::cjson::to_canonical;
use crate::error::{Error, Result};
use crate::keys::{Key, Scheme};
use crate::metadata::{KeyId, Role, Signature, Signed, Unrecognized};

/// A failed signing operation. The message never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// Something that can sign TUF metadata with one key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The id the key has in metadata.
    fn key_id(&self) -> &KeyId;
    /// The public key entry for metadata.
    fn public_key(&self) -> &Key;
    /// Signs `message`, returning the raw signature bytes in the encoding of
    /// the key's TUF scheme (DER for ECDSA).
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignError>;
}

/// A private key held in process memory (OpenSSL).
pub struct InMemorySigner {
    scheme: Scheme,
    private: PKey<Private>,
    /// An Ed25519 key, also as ed25519-dalek's signing key (zeroed when
    /// dropped): Ed25519 signatures are deterministic, so it makes the
    /// very bytes OpenSSL would, without OpenSSL 3's per-signature
    /// context set-up and algorithm fetch.
    ed25519: Option<Arc<ed25519_dalek::SigningKey>>,
    key: Key,
    key_id: KeyId,
}

impl fmt::Debug for InMemorySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemorySigner")
            .field("scheme", &self.scheme)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl InMemorySigner {
    /// Generates a new key (RSA keys are 3072 bits).
    pub fn generate(scheme: Scheme) -> Result<Self> {
        let private = match scheme {
            Scheme::Ed25519 => PKey::generate_ed25519(),
            Scheme::EcdsaP256Sha256 => EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
                .and_then(|g| EcKey::generate(&g))
                .and_then(PKey::from_ec_key),
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                Rsa::generate(3072).and_then(PKey::from_rsa)
            }
        }
        .map_err(|e| Error::Sign(format!("key generation failed: {e}")))?;
        Self::from_private(scheme, private)
    }

    /// Wraps an existing OpenSSL private key.
    pub fn from_private(scheme: Scheme, private: PKey<Private>) -> Result<Self> {
        let public_der = private
            .public_key_to_der()
            .map_err(|e| Error::Sign(format!("cannot derive public key: {e}")))?;
        let public: PKey<Public> = PKey::public_key_from_der(&public_der)
            .map_err(|e| Error::Sign(format!("cannot derive public key: {e}")))?;
        let key = Key::from_public(scheme, &public)?;
        let key_id = key.key_id()?;
        let ed25519 = match (scheme, private.id()) {
            (Scheme::Ed25519, Id::ED25519) => {
                let raw = zeroize::Zeroizing::new(
                    private
                        .raw_private_key()
                        .map_err(|e| Error::Sign(format!("cannot read the Ed25519 key: {e}")))?,
                );
                let seed: &[u8; 32] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Sign("an Ed25519 private key is 32 bytes".into()))?;
                Some(Arc::new(ed25519_dalek::SigningKey::from_bytes(seed)))
            }
            _ => None,
        };
        Ok(Self {
            scheme,
            private,
            ed25519,
            key,
            key_id,
        })
    }

    /// Reads a PKCS#8 PEM private key, choosing the scheme from the key type.
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self> {
        let private = PKey::private_key_from_pem(pem)
            .map_err(|_| Error::Sign("not a PEM private key".into()))?;
        let scheme = match private.id() {
            Id::ED25519 => Scheme::Ed25519,
            Id::EC => Scheme::EcdsaP256Sha256,
            Id::RSA => Scheme::RsaPssSha256,
            _ => return Err(Error::Sign("unsupported private key type".into())),
        };
        Self::from_private(scheme, private)
    }

    /// The private key as PKCS#8 PEM (for writing a key file).
    pub fn to_pkcs8_pem(&self) -> Result<Vec<u8>> {
        self.private
            .private_key_to_pem_pkcs8()
            .map_err(|e| Error::Sign(format!("cannot encode key: {e}")))
    }

    /// The same key under another id (metadata may list a key under any id;
    /// ids are opaque labels).
    pub fn with_key_id(&self, key_id: KeyId) -> Self {
        Self {
            scheme: self.scheme,
            private: self.private.clone(),
            ed25519: self.ed25519.clone(),
            key: self.key.clone(),
            key_id,
        }
    }

    /// The scheme of the key.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl Signer for InMemorySigner {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &Key {
        &self.key
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignError> {
        let fail = |e: openssl::error::ErrorStack| SignError(format!("openssl: {e}"));
        if let Some(key) = &self.ed25519 {
            use ed25519_dalek::Signer as _;
            return Ok(key.sign(message).to_bytes().to_vec());
        }
        match self.scheme {
            Scheme::Ed25519 => openssl::sign::Signer::new_without_digest(&self.private)
                .and_then(|mut s| s.sign_oneshot_to_vec(message))
                .map_err(fail),
            Scheme::EcdsaP256Sha256 => {
                openssl::sign::Signer::new(MessageDigest::sha256(), &self.private)
                    .and_then(|mut s| {
                        s.update(message)?;
                        s.sign_to_vec()
                    })
                    .map_err(fail)
            }
            Scheme::RsaPssSha256 => {
                openssl::sign::Signer::new(MessageDigest::sha256(), &self.private)
                    .and_then(|mut s| {
                        s.set_rsa_padding(Padding::PKCS1_PSS)?;
                        s.set_rsa_mgf1_md(MessageDigest::sha256())?;
                        s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                        s.update(message)?;
                        s.sign_to_vec()
                    })
                    .map_err(fail)
            }
            Scheme::RsaPkcs1v15Sha256 => {
                openssl::sign::Signer::new(MessageDigest::sha256(), &self.private)
                    .and_then(|mut s| {
                        s.set_rsa_padding(Padding::PKCS1)?;
                        s.update(message)?;
                        s.sign_to_vec()
                    })
                    .map_err(fail)
            }
        }
    }
}

/// Signs `signed` with every signer, producing the envelope.
pub fn sign<T: Role>(signed: T, signers: &[&dyn Signer]) -> Result<Signed<T>> {
    Ok(Signed {
        signatures: signatures(&signed, signers)?,
        signed,
        unrecognized: Unrecognized::new(),
    })
}

/// The signatures of `signed` by every signer, over its canonical form:
/// what [`sign`] puts in the envelope, for content that stays where it is.
pub fn signatures<T: Role>(signed: &T, signers: &[&dyn Signer]) -> Result<Vec<Signature>> {
    signatures_over(&to_canonical(signed, T::TYPE)?, signers)
}

/// The signatures by every signer over `canonical`, the canonical form of
/// a `signed` object the caller wrote.
pub fn signatures_over(canonical: &[u8], signers: &[&dyn Signer]) -> Result<Vec<Signature>> {
    let mut signatures = Vec::with_capacity(signers.len());
    for s in signers {
        let raw = s
            .sign(canonical)
            .map_err(|e| Error::Sign(format!("key {}: {e}", s.key_id())))?;
        signatures.push(Signature {
            keyid: s.key_id().clone(),
            sig: hex::encode(raw),
            unrecognized: Unrecognized::new(),
        });
    }
    Ok(signatures)
}

/// Adds signatures to an existing envelope, replacing any by the same keys.
///
/// This is how keyholders on separate machines each sign the same root and
/// the signatures are merged.
pub fn add_signatures<T: Role>(envelope: &mut Signed<T>, signers: &[&dyn Signer]) -> Result<()> {
    let canonical = to_canonical(&envelope.signed, T::TYPE)?;
    for s in signers {
        let raw = s
            .sign(&canonical)
            .map_err(|e| Error::Sign(format!("key {}: {e}", s.key_id())))?;
        envelope.signatures.retain(|sig| &sig.keyid != s.key_id());
        envelope.signatures.push(Signature {
            keyid: s.key_id().clone(),
            sig: hex::encode(raw),
            unrecognized: Unrecognized::new(),
        });
    }
    Ok(())
}

/// The bytes keyshare writes for an envelope: compact JSON.
///
/// Not canonical JSON: OLPC canonical form leaves control characters such
/// as the newlines of PEM keys unescaped, which strict JSON parsers refuse.
/// Signatures cover the canonical form of `signed`, which readers compute
/// from the parsed document, so the file's own formatting does not matter.
pub fn to_bytes<T: Role>(envelope: &Signed<T>) -> Result<Vec<u8>> {
    serde_json::to_vec(envelope).map_err(|e| Error::Malformed {
        what: T::TYPE.to_owned(),
        path: ".".to_owned(),
        message: format!("cannot be written as JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_signatures_are_the_bytes_openssl_makes() {
        // Ed25519 is deterministic: the signing key kept for speed must
        // make exactly OpenSSL's signature, for every message length.
        let signer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        assert!(signer.ed25519.is_some());
        for len in [0usize, 1, 31, 32, 64, 127, 1000, 70_000] {
            let message: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let ours = signer.sign(&message).unwrap();
            let by_openssl = openssl::sign::Signer::new_without_digest(&signer.private)
                .unwrap()
                .sign_oneshot_to_vec(&message)
                .unwrap();
            assert_eq!(ours, by_openssl, "{len} bytes");
            let key = signer.public_key();
            assert!(key.verify(signer.key_id(), &message, &ours).unwrap());
            let mut other = message.clone();
            other.push(0);
            assert!(!key.verify(signer.key_id(), &other, &ours).unwrap());
        }
        // Read back from its PEM file, and under another id: the same key.
        let pem = signer.to_pkcs8_pem().unwrap();
        let again = InMemorySigner::from_pkcs8_pem(&pem)
            .unwrap()
            .with_key_id(KeyId::new("another-id"));
        assert_eq!(again.sign(b"m").unwrap(), signer.sign(b"m").unwrap());
        // Other schemes keep OpenSSL's signer.
        assert!(InMemorySigner::generate(Scheme::EcdsaP256Sha256)
            .unwrap()
            .ed25519
            .is_none());
    }

    #[test]
    fn an_rsa_signature_counts_only_under_the_scheme_it_was_made_with() {
        let pss = InMemorySigner::generate(Scheme::RsaPssSha256).unwrap();
        let pem = pss.to_pkcs8_pem().unwrap();
        let pkcs1 = InMemorySigner::from_private(
            Scheme::RsaPkcs1v15Sha256,
            PKey::private_key_from_pem(&pem).unwrap(),
        )
        .unwrap();
        let by_pss = pss.sign(b"m").unwrap();
        let by_pkcs1 = pkcs1.sign(b"m").unwrap();
        let (pss_key, pkcs1_key) = (pss.public_key(), pkcs1.public_key());
        assert!(pss_key.verify(pss.key_id(), b"m", &by_pss).unwrap());
        assert!(pkcs1_key.verify(pkcs1.key_id(), b"m", &by_pkcs1).unwrap());
        assert!(!pss_key.verify(pss.key_id(), b"m", &by_pkcs1).unwrap());
        assert!(!pkcs1_key.verify(pkcs1.key_id(), b"m", &by_pss).unwrap());
        assert_ne!(
            pss.key_id(),
            pkcs1.key_id(),
            "the scheme is part of the key id"
        );
    }

    #[test]
    fn each_scheme_signs_what_its_key_verifies() {
        for scheme in [
            Scheme::Ed25519,
            Scheme::EcdsaP256Sha256,
            Scheme::RsaPssSha256,
            Scheme::RsaPkcs1v15Sha256,
        ] {
            let s = InMemorySigner::generate(scheme).unwrap();
            let sig = s.sign(b"message").unwrap();
            let key = s.public_key();
            assert!(
                key.verify(s.key_id(), b"message", &sig).unwrap(),
                "{scheme:?}"
            );
            assert!(
                !key.verify(s.key_id(), b"other", &sig).unwrap(),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn pkcs8_round_trip_keeps_key_id() {
        let s = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
        let pem = s.to_pkcs8_pem().unwrap();
        let back = InMemorySigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.key_id(), s.key_id());
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let s = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(!text.contains("private"), "{text}");
    }
}
