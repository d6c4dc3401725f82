//! A `jsonwebtoken` crypto provider backed by OpenSSL, so ID tokens are
//! checked with the crypto stack the rest of keyshare uses (the crate's own
//! providers are RustCrypto or aws-lc-rs). Verification only: RS256,
//! RS384, RS512 (RSA of 2048 bits or more) and ES256, ES384. Everything
//! else, and every signing request, is refused.
//!
//! `jsonwebtoken` asks for a verifier for every token, with the key's JWK
//! parameters; the OpenSSL key made from them is kept (`KEYS`), so an
//! issuer's key is built and checked once, not once per token.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;

/// The provider; installed process-wide by [`install`].
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes OpenSSL `jsonwebtoken`'s provider for this process (idempotent;
/// if another provider was installed first, that one stays).
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

struct Verifier {
    alg: Algorithm,
    digest: MessageDigest,
    key: PKey<Public>,
    /// ECDSA: bytes of r and of s in the JWS signature.
    ec_len: Option<usize>,
}

impl signature::Verifier<Vec<u8>> for Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let der;
        let sig: &[u8] = match self.ec_len {
            Some(n) => {
                // JWS ECDSA signatures are r‖s; OpenSSL wants DER.
                if sig.len() != 2 * n {
                    return Err(signature::Error::new());
                }
                let (r, s) = sig.split_at(n);
                let parts = BigNum::from_slice(r)
                    .and_then(|r| Ok((r, BigNum::from_slice(s)?)))
                    .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
                    .and_then(|s| s.to_der());
                der = parts.map_err(|_| signature::Error::new())?;
                &der
            }
            None => sig,
        };
        let ok = openssl::sign::Verifier::new(self.digest, &self.key)
            .and_then(|mut v| {
                v.update(msg)?;
                v.verify(sig)
            })
            .unwrap_or(false);
        let _ = openssl::error::ErrorStack::get();
        if ok {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for Verifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Most OpenSSL keys kept; when full, [`KEYS`] starts again empty. Keys
/// come from the configured issuers' key sets, never from a token.
const KEYS_MAX: usize = 256;

/// OpenSSL keys made from JWK parameters, by an unambiguous encoding of
/// the key type and those parameters.
static KEYS: OnceLock<Mutex<HashMap<Vec<u8>, PKey<Public>>>> = OnceLock::new();

fn keys() -> std::sync::MutexGuard<'static, HashMap<Vec<u8>, PKey<Public>>> {
    KEYS.get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let (digest, curve) = match alg {
        Algorithm::RS256 => (MessageDigest::sha256(), None),
        Algorithm::RS384 => (MessageDigest::sha384(), None),
        Algorithm::RS512 => (MessageDigest::sha512(), None),
        Algorithm::ES256 => (MessageDigest::sha256(), Some((Nid::X9_62_PRIME256V1, 32))),
        Algorithm::ES384 => (MessageDigest::sha384(), Some((Nid::SECP384R1, 48))),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let ec_len = curve.map(|(_, len)| len);
    let cache_key = match (curve, key.kind()) {
        (None, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            super::secret::encode(&[b"rsa", n.as_slice(), e.as_slice()])
        }
        (Some((nid, _)), DecodingKeyKind::SecretOrDer(point)) => {
            let curve = nid.as_raw().to_be_bytes();
            super::secret::encode(&[b"ec", &curve, point.as_slice()])
        }
        _ => return Err(ErrorKind::InvalidKeyFormat.into()),
    };
    let found = keys().get(&cache_key).cloned();
    let pkey = match found {
        Some(pkey) => pkey,
        None => {
            // Through DER once, so the key kept is a provider-native key,
            // not a legacy one made from components, which OpenSSL 3 looks
            // up its export of on every use.
            let pkey = make_key(curve.map(|(nid, _)| nid), key).and_then(|k| {
                k.public_key_to_der()
                    .and_then(|der| PKey::public_key_from_der(&der))
                    .map_err(|_| Error::from(ErrorKind::InvalidKeyFormat))
            });
            let _ = openssl::error::ErrorStack::get();
            let pkey = pkey?;
            let mut kept = keys();
            if kept.len() >= KEYS_MAX {
                kept.clear();
            }
            kept.insert(cache_key, pkey.clone());
            pkey
        }
    };
    Ok(Box::new(Verifier {
        alg: *alg,
        digest,
        key: pkey,
        ec_len,
    }))
}

/// The OpenSSL key of JWK parameters: RSA of 2048 bits or more, or a point
/// on `curve`.
fn make_key(curve: Option<Nid>, key: &DecodingKey) -> Result<PKey<Public>, Error> {
    let bad = |_| Error::from(ErrorKind::InvalidKeyFormat);
    match (curve, key.kind()) {
        (None, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(n).map_err(bad)?,
                BigNum::from_slice(e).map_err(bad)?,
            )
            .map_err(bad)?;
            if rsa.size() < 256 {
                return Err(ErrorKind::InvalidKeyFormat.into());
            }
            PKey::from_rsa(rsa).map_err(bad)
        }
        (Some(nid), DecodingKeyKind::SecretOrDer(point)) => {
            let group = EcGroup::from_curve_name(nid).map_err(bad)?;
            let mut ctx = BigNumContext::new().map_err(bad)?;
            let point = EcPoint::from_bytes(&group, point, &mut ctx).map_err(bad)?;
            let ec = EcKey::from_public_key(&group, &point).map_err(bad)?;
            ec.check_key().map_err(bad)?;
            PKey::from_ec_key(ec).map_err(bad)
        }
        _ => Err(ErrorKind::InvalidKeyFormat.into()),
    }
}

#[cfg(test)]
mod tests {
    /// TUF's canonical JSON (and every signature over it) relies on
    /// serde_json's maps being sorted: no dependency may turn on its
    /// `preserve_order` feature (josekit does, which is why it is not used).
    #[test]
    fn serde_json_maps_stay_sorted() {
        let v = serde_json::json!({ "b": 1, "a": 2 });
        assert_eq!(v.to_string(), r#"{"a":2,"b":1}"#);
    }
}
