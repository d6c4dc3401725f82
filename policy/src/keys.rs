//! Public keys as TUF metadata lists them, and signature verification.
//!
//! Supported `keytype`/`scheme` pairs, all verified with OpenSSL:
//!
//! | keytype | scheme | `keyval.public` |
//! | --- | --- | --- |
//! | `ed25519` | `ed25519` | 64 hex digits (raw key) |
//! | `ecdsa` or `ecdsa-sha2-nistp256` | `ecdsa-sha2-nistp256` | PEM SubjectPublicKeyInfo, P-256; signatures DER |
//! | `rsa` | `rsassa-pss-sha256` | PEM SubjectPublicKeyInfo; PSS, MGF1-SHA256, any salt length |
//! | `rsa` | `rsa-pkcs1v15-sha256` | PEM SubjectPublicKeyInfo; PKCS#1 v1.5 (repositories other tools sign; keyshare signs RSA with PSS, and its PKCS#11 signer only PSS) |
//!
//! Key ids are opaque: a key is found by the id the metadata gives it, and
//! keyshare never recomputes ids of keys it reads. [`Key::key_id`] computes
//! the conventional id (SHA-256 of the key's canonical JSON) only for keys
//! keyshare creates.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::hash::Sha256Hex;
use crate::ids::KeyId;

/// OpenSSL's "recover the salt length from the signature" (RSA_PSS_SALTLEN_AUTO).
const PSS_SALTLEN_AUTO: i32 = -2;

/// The signature algorithm of a key, decided from its `keytype` and `scheme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Ed25519 (RFC 8032), raw hex public key.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER signatures.
    EcdsaP256Sha256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA256.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (securesystemslib's
    /// `rsa-pkcs1v15-sha256`), for repositories other tools sign; keyshare
    /// itself signs RSA with PSS.
    RsaPkcs1v15Sha256,
}

impl Scheme {
    /// The `(keytype, scheme)` pair keyshare writes for keys it creates.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Ed25519 => ("ed25519", "ed25519"),
            Self::EcdsaP256Sha256 => ("ecdsa", "ecdsa-sha2-nistp256"),
            Self::RsaPssSha256 => ("rsa", "rsassa-pss-sha256"),
            Self::RsaPkcs1v15Sha256 => ("rsa", "rsa-pkcs1v15-sha256"),
        }
    }

    /// Recognises a `(keytype, scheme)` pair.
    pub fn from_names(keytype: &str, scheme: &str) -> Option<Self> {
        match (keytype, scheme) {
            ("ed25519", "ed25519") => Some(Self::Ed25519),
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => Some(Self::EcdsaP256Sha256),
            ("rsa", "rsassa-pss-sha256") => Some(Self::RsaPssSha256),
            ("rsa", "rsa-pkcs1v15-sha256") => Some(Self::RsaPkcs1v15Sha256),
            _ => None,
        }
    }
}

/// The `keyval` object of a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key (hex for Ed25519, PEM otherwise).
    pub public: String,
    /// Fields keyshare does not know, kept so the key re-serialises unchanged.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A public key as it appears in root or delegations metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256` or `rsa` (others are kept but cannot verify).
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256` or `rsa-pkcs1v15-sha256`.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
    /// Fields keyshare does not know, kept so the key re-serialises unchanged.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
    /// The decoded OpenSSL key, made on first use.
    #[serde(skip)]
    decoded: OnceLock<Result<PKey<Public>, String>>,
    /// [`Key::material`], made on first use.
    #[serde(skip)]
    material: OnceLock<Result<Vec<u8>, String>>,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.keytype == other.keytype
            && self.scheme == other.scheme
            && self.keyval == other.keyval
            && self.unrecognized == other.unrecognized
    }
}

impl Eq for Key {}

impl Key {
    /// Makes a key entry from a PEM SubjectPublicKeyInfo (`-----BEGIN
    /// PUBLIC KEY-----`), the one PEM → TUF key conversion of the
    /// workspace (admin API, CI keys, the CLI). The scheme follows the key
    /// type: Ed25519, ECDSA P-256 (SHA-256) or RSA-PSS-SHA256; the key is
    /// taken in its canonical form ([`canonical_public_key`]), so one key
    /// always gets one key id however its PEM is written.
    ///
    /// Errors are [`Error::BadKey`] for `(new key)`, with a message a
    /// person can act on: not PEM, unusable, or an unsupported key type.
    pub fn from_spki_pem(pem: &str) -> Result<Self> {
        let pkey = PKey::public_key_from_pem(pem.as_bytes());
        // OpenSSL may leave errors queued after a failed PEM parse.
        let _ = openssl::error::ErrorStack::get();
        let pkey = pkey.map_err(|_| bad_new_key("not a PEM public key (SubjectPublicKeyInfo)"))?;
        let pkey = canonical_public_key(&pkey);
        let _ = openssl::error::ErrorStack::get();
        let pkey = pkey.map_err(|_| bad_new_key("not a usable public key"))?;
        let scheme = match pkey.id() {
            Id::ED25519 => Scheme::Ed25519,
            Id::EC => Scheme::EcdsaP256Sha256,
            Id::RSA => Scheme::RsaPssSha256,
            _ => return Err(bad_new_key(UNSUPPORTED_PEM_KEY)),
        };
        Self::from_public(scheme, &pkey)
    }

    /// Makes a key entry from an OpenSSL public key.
    pub fn from_public(scheme: Scheme, pkey: &PKey<Public>) -> Result<Self> {
        let public = match scheme {
            Scheme::Ed25519 => {
                if pkey.id() != Id::ED25519 {
                    return Err(bad_new_key("not an Ed25519 key"));
                }
                hex::encode(
                    pkey.raw_public_key()
                        .map_err(|e| bad_new_key(&e.to_string()))?,
                )
            }
            Scheme::EcdsaP256Sha256 => {
                let ec = pkey.ec_key().map_err(|_| bad_new_key("not an EC key"))?;
                if ec.group().curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                    return Err(bad_new_key("EC key is not on P-256"));
                }
                // One encoding per key (uncompressed point), so one key
                // always gets one key id.
                let canonical =
                    canonical_public_key(pkey).map_err(|e| bad_new_key(&e.to_string()))?;
                pem_string(&canonical)?
            }
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                if pkey.id() != Id::RSA {
                    return Err(bad_new_key("not an RSA key"));
                }
                pem_string(pkey)?
            }
        };
        let (keytype, scheme_name) = scheme.names();
        Ok(Self::new(keytype, scheme_name, public))
    }

    /// Makes a key entry from its fields.
    pub fn new(keytype: &str, scheme: &str, public: String) -> Self {
        Self {
            keytype: keytype.to_owned(),
            scheme: scheme.to_owned(),
            keyval: KeyVal {
                public,
                unrecognized: BTreeMap::new(),
            },
            unrecognized: BTreeMap::new(),
            decoded: OnceLock::new(),
            material: OnceLock::new(),
        }
    }

    /// The signature scheme, if keyshare supports this key.
    pub fn scheme(&self) -> Option<Scheme> {
        Scheme::from_names(&self.keytype, &self.scheme)
    }

    /// The conventional key id: hex SHA-256 of the key's canonical JSON.
    pub fn key_id(&self) -> Result<KeyId> {
        let bytes = crate::cjson::to_canonical(self, "key")?;
        Ok(KeyId::new(crate::hash::sha256_hex(&bytes)))
    }

    /// The decoded key, or why it cannot be used.
    fn decoded(&self) -> std::result::Result<&PKey<Public>, &str> {
        self.decoded
            .get_or_init(|| self.decode())
            .as_ref()
            .map_err(String::as_str)
    }

    fn decode(&self) -> std::result::Result<PKey<Public>, String> {
        let scheme = self.scheme().ok_or_else(|| {
            format!(
                "unsupported keytype/scheme `{}`/`{}`",
                self.keytype, self.scheme
            )
        })?;
        let public = &self.keyval.public;
        let pkey = match scheme {
            Scheme::Ed25519 => {
                let raw =
                    hex::decode(public).map_err(|_| "Ed25519 public key is not hex".to_owned())?;
                if raw.len() != 32 {
                    return Err(format!("Ed25519 public key is {} bytes, not 32", raw.len()));
                }
                PKey::public_key_from_raw_bytes(&raw, Id::ED25519).map_err(|e| e.to_string())?
            }
            Scheme::EcdsaP256Sha256 | Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                let pkey = PKey::public_key_from_pem(public.as_bytes())
                    .map_err(|_| "public key is not a PEM SubjectPublicKeyInfo".to_owned())?;
                match scheme {
                    Scheme::EcdsaP256Sha256 => {
                        let ec = pkey
                            .ec_key()
                            .map_err(|_| "ecdsa key holds no EC public key".to_owned())?;
                        if ec.group().curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                            return Err("ecdsa key is not on curve P-256".to_owned());
                        }
                    }
                    _ => {
                        if pkey.id() != Id::RSA {
                            return Err("rsa key holds no RSA public key".to_owned());
                        }
                        if pkey.bits() < 2048 {
                            return Err(format!("RSA key of {} bits is too small", pkey.bits()));
                        }
                    }
                }
                pkey
            }
        };
        // OpenSSL may leave errors queued after a failed attempt inside PEM parsing.
        let _ = openssl::error::ErrorStack::get();
        Ok(pkey)
    }

    /// The key as DER SubjectPublicKeyInfo, for comparing keys written in
    /// different encodings.
    pub fn spki_der(&self, keyid: &KeyId) -> Result<Vec<u8>> {
        let pkey = self.decoded().map_err(|m| Error::BadKey {
            keyid: keyid.clone(),
            message: m.to_owned(),
        })?;
        pkey.public_key_to_der().map_err(|e| Error::BadKey {
            keyid: keyid.clone(),
            message: e.to_string(),
        })
    }

    /// The key material: the key's DER SubjectPublicKeyInfo with EC points
    /// uncompressed, the same bytes however the key is written (PEM or hex,
    /// compressed or not) and whatever id it is listed under. Keys are
    /// compared by it: revocations, thresholds and duplicates never go by id.
    pub fn material(&self, keyid: &KeyId) -> Result<&[u8]> {
        self.material
            .get_or_init(|| {
                let pkey = self.decoded().map_err(str::to_owned)?;
                public_key_material(pkey).map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(|m| Error::BadKey {
                keyid: keyid.clone(),
                message: m.clone(),
            })
    }

    /// The SHA-256 of [`Key::material`]: the key's fingerprint, by which
    /// revocations name keys.
    pub fn fingerprint(&self, keyid: &KeyId) -> Result<Sha256Hex> {
        self.material(keyid).map(Sha256Hex::of)
    }

    /// The OpenSSL public key, for callers that verify other formats with it.
    pub fn openssl_key(&self, keyid: &KeyId) -> Result<&PKey<Public>> {
        self.decoded().map_err(|m| Error::BadKey {
            keyid: keyid.clone(),
            message: m.to_owned(),
        })
    }

    /// Checks that the key is usable, naming it by `keyid` in the error.
    pub fn check(&self, keyid: &KeyId) -> Result<()> {
        self.decoded().map(|_| ()).map_err(|m| Error::BadKey {
            keyid: keyid.clone(),
            message: m.to_owned(),
        })
    }

    /// Verifies `sig` (raw signature bytes) over `msg`.
    ///
    /// `Ok(false)` is a signature that does not verify; `Err` is a key that
    /// cannot be used at all.
    pub fn verify(&self, keyid: &KeyId, msg: &[u8], sig: &[u8]) -> Result<bool> {
        let pkey = self.decoded().map_err(|m| Error::BadKey {
            keyid: keyid.clone(),
            message: m.to_owned(),
        })?;
        let ok = match self.scheme() {
            Some(Scheme::Ed25519) => Verifier::new_without_digest(pkey)
                .and_then(|mut v| v.verify_oneshot(sig, msg))
                .unwrap_or(false),
            Some(Scheme::EcdsaP256Sha256) => Verifier::new(MessageDigest::sha256(), pkey)
                .and_then(|mut v| {
                    v.update(msg)?;
                    v.verify(sig)
                })
                .unwrap_or(false),
            Some(Scheme::RsaPssSha256) => Verifier::new(MessageDigest::sha256(), pkey)
                .and_then(|mut v| {
                    v.set_rsa_padding(Padding::PKCS1_PSS)?;
                    v.set_rsa_mgf1_md(MessageDigest::sha256())?;
                    v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALTLEN_AUTO))?;
                    v.update(msg)?;
                    v.verify(sig)
                })
                .unwrap_or(false),
            Some(Scheme::RsaPkcs1v15Sha256) => Verifier::new(MessageDigest::sha256(), pkey)
                .and_then(|mut v| {
                    v.set_rsa_padding(Padding::PKCS1)?;
                    v.update(msg)?;
                    v.verify(sig)
                })
                .unwrap_or(false),
            None => false,
        };
        if !ok {
            // A failed verification leaves OpenSSL errors queued; drop them.
            let _ = openssl::error::ErrorStack::get();
        }
        Ok(ok)
    }
}

/// `pkey` in one encoding per key: an EC point re-encoded uncompressed on
/// its named curve (a point sent compressed, or in hybrid form, is the same
/// key as sent uncompressed, and must never pass for another key). Other
/// keys, and EC keys without a named curve, are returned as they are.
pub fn canonical_public_key<T: HasPublic>(
    pkey: &PKeyRef<T>,
) -> std::result::Result<PKey<Public>, openssl::error::ErrorStack> {
    let Ok(ec) = pkey.ec_key() else {
        let _ = openssl::error::ErrorStack::get();
        return PKey::public_key_from_der(&pkey.public_key_to_der()?);
    };
    let Some(nid) = ec.group().curve_name() else {
        return PKey::public_key_from_der(&pkey.public_key_to_der()?);
    };
    let group = EcGroup::from_curve_name(nid)?;
    let mut ctx = BigNumContext::new()?;
    let bytes =
        ec.public_key()
            .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)?;
    let point = EcPoint::from_bytes(&group, &bytes, &mut ctx)?;
    let fresh = EcKey::from_public_key(&group, &point)?;
    fresh.check_key()?;
    PKey::from_ec_key(fresh)
}

/// The key material of an OpenSSL public key (see [`Key::material`]): DER
/// SubjectPublicKeyInfo of its [`canonical_public_key`]. For keys that come
/// as PEM or inside certificates.
pub fn public_key_material<T: HasPublic>(
    pkey: &PKeyRef<T>,
) -> std::result::Result<Vec<u8>, openssl::error::ErrorStack> {
    canonical_public_key(pkey)?.public_key_to_der()
}

/// The fingerprint (SHA-256 of [`public_key_material`]) of an OpenSSL public key.
pub fn public_key_fingerprint<T: HasPublic>(
    pkey: &PKeyRef<T>,
) -> std::result::Result<Sha256Hex, openssl::error::ErrorStack> {
    public_key_material(pkey).map(|m| Sha256Hex::of(&m))
}

fn pem_string(pkey: &PKey<Public>) -> Result<String> {
    let pem = pkey
        .public_key_to_pem()
        .map_err(|e| bad_new_key(&e.to_string()))?;
    String::from_utf8(pem).map_err(|_| bad_new_key("PEM is not UTF-8"))
}

/// What [`Key::from_spki_pem`] says about a key of another type.
const UNSUPPORTED_PEM_KEY: &str =
    "unsupported key type (supported: Ed25519, ECDSA P-256, RSA 2048 bits or more)";

fn bad_new_key(message: &str) -> Error {
    Error::BadKey {
        keyid: KeyId::new("(new key)"),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scheme_is_a_bad_key_not_a_panic() {
        let k = Key::new("ed448", "ed448", "00".into());
        let id = KeyId::new("k");
        assert!(matches!(k.check(&id), Err(Error::BadKey { .. })));
        assert!(matches!(
            k.verify(&id, b"m", b"s"),
            Err(Error::BadKey { .. })
        ));
    }

    #[test]
    fn short_ed25519_key_is_refused() {
        let k = Key::new("ed25519", "ed25519", "abcd".into());
        let err = k.check(&KeyId::new("k")).unwrap_err();
        assert!(err.to_string().contains("not 32"), "{err}");
    }

    #[test]
    fn key_id_is_sha256_of_canonical_form() {
        let k = Key::new("ed25519", "ed25519", "ab".repeat(32));
        let canonical = crate::cjson::to_canonical(&k, "key").unwrap();
        assert!(canonical.starts_with(b"{\"keytype\":\"ed25519\",\"keyval\""));
        assert_eq!(
            k.key_id().unwrap().as_str(),
            crate::hash::sha256_hex(&canonical)
        );
    }

    #[test]
    fn material_ignores_ec_point_compression() {
        use openssl::nid::Nid;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let private = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let compressed = private
            .public_key()
            .to_bytes(&group, PointConversionForm::COMPRESSED, &mut ctx)
            .unwrap();
        // SubjectPublicKeyInfo, id-ecPublicKey on prime256v1, compressed point.
        let mut compressed_der =
            hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        compressed_der.extend_from_slice(&compressed);
        let a = PKey::public_key_from_der(&compressed_der).unwrap();
        let b = PKey::public_key_from_der(&private.public_key_to_der().unwrap()).unwrap();
        assert_eq!(
            public_key_material(&a).unwrap(),
            public_key_material(&b).unwrap()
        );
        assert_eq!(
            public_key_material(&a).unwrap(),
            private.public_key_to_der().unwrap()
        );
    }

    fn new_key_message(r: Result<Key>) -> String {
        match r {
            Err(Error::BadKey { keyid, message }) => {
                assert_eq!(keyid.as_str(), "(new key)");
                message
            }
            other => panic!("expected BadKey, got {other:?}"),
        }
    }

    #[test]
    fn spki_pem_keys_get_the_scheme_of_their_type() {
        let ed = PKey::generate_ed25519().unwrap();
        let pem = String::from_utf8(ed.public_key_to_pem().unwrap()).unwrap();
        let key = Key::from_spki_pem(&pem).unwrap();
        assert_eq!(key.scheme(), Some(Scheme::Ed25519));
        assert_eq!(key.keyval.public, hex::encode(ed.raw_public_key().unwrap()));

        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let pem = String::from_utf8(ec.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(
            Key::from_spki_pem(&pem).unwrap().scheme(),
            Some(Scheme::EcdsaP256Sha256)
        );

        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let pem = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(
            Key::from_spki_pem(&pem).unwrap().scheme(),
            Some(Scheme::RsaPssSha256)
        );
    }

    #[test]
    fn spki_pem_of_a_compressed_ec_point_gets_the_same_key_id_as_uncompressed() {
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let private = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let compressed = private
            .public_key()
            .to_bytes(&group, PointConversionForm::COMPRESSED, &mut ctx)
            .unwrap();
        let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        der.extend_from_slice(&compressed);
        let compressed_pem = PKey::public_key_from_der(&der)
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let uncompressed_pem = PKey::from_ec_key(private)
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let a = Key::from_spki_pem(std::str::from_utf8(&compressed_pem).unwrap()).unwrap();
        let b = Key::from_spki_pem(std::str::from_utf8(&uncompressed_pem).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key_id().unwrap(), b.key_id().unwrap());
    }

    #[test]
    fn spki_pem_that_is_not_a_supported_public_key_is_refused_by_name() {
        assert_eq!(
            new_key_message(Key::from_spki_pem(
                "-----BEGIN PUBLIC KEY-----\nnot base64\n"
            )),
            "not a PEM public key (SubjectPublicKeyInfo)"
        );
        // A private key is not a public key, even in PEM.
        let ed = PKey::generate_ed25519().unwrap();
        let private = String::from_utf8(ed.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert_eq!(
            new_key_message(Key::from_spki_pem(&private)),
            "not a PEM public key (SubjectPublicKeyInfo)"
        );
        let x448 = PKey::generate_x448().unwrap();
        let pem = String::from_utf8(x448.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(
            new_key_message(Key::from_spki_pem(&pem)),
            UNSUPPORTED_PEM_KEY
        );
        let p384 = EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&p384).unwrap()).unwrap();
        let pem = String::from_utf8(ec.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(
            new_key_message(Key::from_spki_pem(&pem)),
            "EC key is not on P-256"
        );
    }
}
