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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

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
    /// The key material.
    pub keyval: KeyVal,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256` or `rsa-pkcs1v15-sha256`.
    /// (Fields in canonical JSON's order: see [`crate::metadata`].)
    pub scheme: String,
    /// Fields keyshare does not know, kept so the key re-serialises unchanged.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
    /// The decoded OpenSSL key and its material, made on first use (or
    /// when the key is made from an OpenSSL key) and shared by every copy
    /// of the key and every key with the same scheme and public value
    /// ([`decoded_cache`]). Not compared, hashed or serialised.
    #[serde(skip)]
    decoded: OnceLock<Arc<Decoded>>,
}

/// A key's public value decoded once: the OpenSSL key (or why it cannot be
/// used), for an Ed25519 key its point for [`Key::verify`] (made on first use),
/// and, made on first use, its [`Key::material`].
#[derive(Debug)]
struct Decoded {
    pkey: std::result::Result<PKey<Public>, String>,
    /// The Ed25519 public point, decompressed on the first check and
    /// kept; `None` for other keys and for 32 bytes that are no point on
    /// the curve (no signature verifies under those).
    ed25519: OnceLock<Option<ed25519_dalek::VerifyingKey>>,
    material: OnceLock<std::result::Result<Vec<u8>, String>>,
}

impl Decoded {
    fn new(pkey: std::result::Result<PKey<Public>, String>) -> Arc<Self> {
        Arc::new(Self {
            pkey,
            ed25519: OnceLock::new(),
            material: OnceLock::new(),
        })
    }

    /// [`Self::ed25519`], decompressed now if it was not yet.
    fn ed25519(&self) -> Option<&ed25519_dalek::VerifyingKey> {
        self.ed25519
            .get_or_init(|| {
                let point = self
                    .pkey
                    .as_ref()
                    .ok()
                    .filter(|pkey| pkey.id() == Id::ED25519)
                    .and_then(|pkey| pkey.raw_public_key().ok())
                    .and_then(|raw| <[u8; 32]>::try_from(raw.as_slice()).ok())
                    .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok());
                let _ = openssl::error::ErrorStack::get();
                point
            })
            .as_ref()
    }
}

/// Verifies an Ed25519 signature with `ed25519-dalek`: RFC 8032 with the checks
/// of `verify_strict` (a canonical `S`, and neither the key nor `R` of
/// small order, which no honest signer produces), so a signature verifies
/// here only if it verifies under every RFC 8032 verifier.
fn verify_ed25519(key: Option<&ed25519_dalek::VerifyingKey>, msg: &[u8], sig: &[u8]) -> bool {
    let (Some(key), Ok(sig)) = (key, ed25519_dalek::Signature::from_slice(sig)) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

/// Most entries of [`decoded_cache`]; when it is full it starts again
/// empty (keys held by metadata keep their own decoded value).
const DECODED_CACHE_MAX: usize = 8_192;

/// Longest public value [`decoded_cache`] keeps (an RSA 8192-bit PEM is
/// about 1,500 characters), so metadata listing huge or junk keys cannot
/// make it hold much memory; longer ones are decoded each time they are read.
const DECODED_CACHE_MAX_PUBLIC: usize = 2_048;

/// What a decoded key is found by: its scheme and public value, the only
/// inputs of decoding.
type CacheKey = (Scheme, String);

/// Keys decoded in this process, by scheme and public value, so a key read
/// again (a trust document rebuilt from the store, metadata parsed again)
/// is not decoded again: decoding runs OpenSSL's decoders and algorithm
/// lookups, which cost far more than a signature check's arithmetic.
fn decoded_cache() -> &'static RwLock<HashMap<CacheKey, Arc<Decoded>>> {
    static CACHE: OnceLock<RwLock<HashMap<CacheKey, Arc<Decoded>>>> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

fn cached(key: &CacheKey) -> Option<Arc<Decoded>> {
    decoded_cache()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
        .cloned()
}

fn remember(key: CacheKey, decoded: &Arc<Decoded>) {
    if key.1.len() > DECODED_CACHE_MAX_PUBLIC {
        return;
    }
    let mut cache = decoded_cache()
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= DECODED_CACHE_MAX {
        cache.clear();
    }
    cache.insert(key, decoded.clone());
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
        if let Some(raw) = ed25519_spki_pem(pem) {
            // The one DER encoding of an Ed25519 key: no need for OpenSSL's
            // PEM decoders, which cost more than the key's signature check.
            if let Ok(pkey) = PKey::public_key_from_raw_bytes(&raw, Id::ED25519) {
                return Self::from_public(Scheme::Ed25519, &pkey);
            }
            let _ = openssl::error::ErrorStack::get();
        }
        let pkey = PKey::public_key_from_pem(pem.as_bytes());
        // OpenSSL may leave errors queued after a failed PEM parse.
        let _ = openssl::error::ErrorStack::get();
        let pkey = pkey.map_err(|_| bad_new_key("not a PEM public key (SubjectPublicKeyInfo)"))?;
        // Only an EC point has more than one encoding; other keys are used
        // as decoded.
        let pkey = if pkey.id() == Id::EC {
            let canonical = canonical_public_key(&pkey);
            let _ = openssl::error::ErrorStack::get();
            canonical.map_err(|_| bad_new_key("not a usable public key"))?
        } else {
            pkey
        };
        let scheme = match pkey.id() {
            Id::ED25519 => Scheme::Ed25519,
            Id::EC => Scheme::EcdsaP256Sha256,
            Id::RSA => Scheme::RsaPssSha256,
            _ => return Err(bad_new_key(UNSUPPORTED_PEM_KEY)),
        };
        Self::from_public(scheme, &pkey)
    }

    /// Makes a key entry from an OpenSSL public key. The entry keeps the
    /// OpenSSL key (checked as a decoded one would be), so it is not
    /// decoded again from its text.
    pub fn from_public(scheme: Scheme, pkey: &PKey<Public>) -> Result<Self> {
        let mut ready = pkey.clone();
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
                let pem = pem_string(&canonical)?;
                ready = canonical;
                pem
            }
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
                if pkey.id() != Id::RSA {
                    return Err(bad_new_key("not an RSA key"));
                }
                pem_string(pkey)?
            }
        };
        let (keytype, scheme_name) = scheme.names();
        let key = Self::new(keytype, scheme_name, public);
        let decoded = Decoded::new(checked(scheme, ready));
        remember((scheme, key.keyval.public.clone()), &decoded);
        let _ = key.decoded.set(decoded);
        Ok(key)
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

    /// The decoded key and its material: this key's own, or one decoded
    /// before for the same scheme and public value, or decoded now.
    fn decoded_entry(&self) -> &Arc<Decoded> {
        self.decoded.get_or_init(|| {
            let Some(scheme) = self.scheme() else {
                return Decoded::new(Err(format!(
                    "unsupported keytype/scheme `{}`/`{}`",
                    self.keytype, self.scheme
                )));
            };
            let key = (scheme, self.keyval.public.clone());
            if let Some(found) = cached(&key) {
                return found;
            }
            let decoded = Decoded::new(decode(scheme, &self.keyval.public));
            remember(key, &decoded);
            decoded
        })
    }

    /// The decoded key, or why it cannot be used.
    fn decoded(&self) -> std::result::Result<&PKey<Public>, &str> {
        self.decoded_entry().pkey.as_ref().map_err(String::as_str)
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
        let decoded = self.decoded_entry();
        decoded
            .material
            .get_or_init(|| {
                let pkey = decoded.pkey.as_ref().map_err(String::clone)?;
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
        let decoded = self.decoded_entry();
        let pkey = decoded.pkey.as_ref().map_err(|m| Error::BadKey {
            keyid: keyid.clone(),
            message: m.clone(),
        })?;
        let ok = match self.scheme() {
            Some(Scheme::Ed25519) => return Ok(verify_ed25519(decoded.ed25519(), msg, sig)),
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

/// The DER SubjectPublicKeyInfo of an Ed25519 key, up to its 32 key bytes
/// (RFC 8410: algorithm id-Ed25519, no parameters).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The key bytes of `pem` when it is exactly one `PUBLIC KEY` PEM block
/// holding an Ed25519 SubjectPublicKeyInfo in its one DER encoding; `None`
/// for anything else (which OpenSSL's PEM reader then decides on).
fn ed25519_spki_pem(pem: &str) -> Option<[u8; 32]> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // 44 bytes are 59 base64 characters and one `=`.
    let digits = b64.strip_suffix('=')?;
    if digits.len() != 59
        || !digits
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    let der = openssl::base64::decode_block(&b64);
    let _ = openssl::error::ErrorStack::get();
    let der = der.ok()?;
    <[u8; 32]>::try_from(der.strip_prefix(&ED25519_SPKI_PREFIX)?).ok()
}

/// Decodes the public value of a key of `scheme` and checks it ([`checked`]).
fn decode(scheme: Scheme, public: &str) -> std::result::Result<PKey<Public>, String> {
    let pkey = match scheme {
        Scheme::Ed25519 => {
            let raw =
                hex::decode(public).map_err(|_| "Ed25519 public key is not hex".to_owned())?;
            if raw.len() != 32 {
                return Err(format!("Ed25519 public key is {} bytes, not 32", raw.len()));
            }
            PKey::public_key_from_raw_bytes(&raw, Id::ED25519).map_err(|e| e.to_string())
        }
        Scheme::EcdsaP256Sha256 | Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
            PKey::public_key_from_pem(public.as_bytes())
                .map_err(|_| "public key is not a PEM SubjectPublicKeyInfo".to_owned())
        }
    };
    // OpenSSL may leave errors queued after a failed attempt inside PEM parsing.
    let _ = openssl::error::ErrorStack::get();
    checked(scheme, pkey?)
}

/// `pkey` if keyshare verifies signatures of `scheme` with it: an Ed25519
/// key, an EC key on P-256, an RSA key of 2048 bits or more.
fn checked(scheme: Scheme, pkey: PKey<Public>) -> std::result::Result<PKey<Public>, String> {
    match scheme {
        Scheme::Ed25519 => {
            if pkey.id() != Id::ED25519 {
                return Err("ed25519 key holds no Ed25519 public key".to_owned());
            }
        }
        Scheme::EcdsaP256Sha256 => {
            let ec = pkey
                .ec_key()
                .map_err(|_| "ecdsa key holds no EC public key".to_owned());
            let _ = openssl::error::ErrorStack::get();
            if ec?.group().curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                return Err("ecdsa key is not on curve P-256".to_owned());
            }
        }
        Scheme::RsaPssSha256 | Scheme::RsaPkcs1v15Sha256 => {
            if pkey.id() != Id::RSA {
                return Err("rsa key holds no RSA public key".to_owned());
            }
            if pkey.bits() < 2048 {
                return Err(format!("RSA key of {} bits is too small", pkey.bits()));
            }
        }
    }
    Ok(pkey)
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
    if pkey.id() == Id::ED25519 {
        // Its one DER encoding, without OpenSSL's encoders.
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend(pkey.raw_public_key()?);
        return Ok(der);
    }
    if pkey.id() != Id::EC {
        // One encoding per key already: its DER is its material.
        return pkey.public_key_to_der();
    }
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
    fn a_key_read_again_is_not_decoded_again() {
        let signer = crate::sign::InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
        let id = KeyId::new("k");
        let json = serde_json::to_string(crate::sign::Signer::public_key(&signer)).unwrap();
        // Two keys parsed from the same text, as a document rebuilt from
        // the store or metadata parsed again would be.
        let a: Key = serde_json::from_str(&json).unwrap();
        let b: Key = serde_json::from_str(&json).unwrap();
        let (pa, pb) = (a.openssl_key(&id).unwrap(), b.openssl_key(&id).unwrap());
        assert!(std::ptr::eq(pa, pb), "decoded twice");
        assert!(std::ptr::eq(
            a.material(&id).unwrap().as_ptr(),
            b.material(&id).unwrap().as_ptr()
        ));
        // The cached object plays no part in equality or serialisation.
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), json);
        // Made from an OpenSSL key, the entry holds that key already.
        let own = crate::sign::Signer::public_key(&signer);
        assert!(std::ptr::eq(own.openssl_key(&id).unwrap(), pa));
    }

    /// Whoever writes metadata (a peer, a mirror, a namespace's keys) can
    /// make a verifier read as many distinct keys as it likes: the process
    /// cache of decoded keys stays within its bound, and a huge public
    /// value is not kept at all.
    #[test]
    fn crafted_keys_cannot_grow_the_decoded_key_cache_past_its_bound() {
        let id = KeyId::new("k");
        let len = || {
            decoded_cache()
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        };
        let mut most = 0;
        for i in 0..(DECODED_CACHE_MAX + 500) {
            // Distinct 32-byte values: decoded (or refused) and remembered.
            let public = format!("{:064x}", i + 1);
            let key = Key::new("ed25519", "ed25519", public);
            let _ = key.verify(&id, b"m", &[0; 64]);
            most = most.max(len());
            assert!(most <= DECODED_CACHE_MAX, "{most} entries after {i} keys");
        }
        // The keys were remembered (the bound was reached, not avoided).
        assert!(most > DECODED_CACHE_MAX / 2, "at most {most} entries");
        let huge = "ab".repeat(DECODED_CACHE_MAX_PUBLIC);
        let key = Key::new("ed25519", "ed25519", huge.clone());
        assert!(key.check(&id).is_err());
        let kept = decoded_cache()
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&(Scheme::Ed25519, huge));
        assert!(
            !kept,
            "a {}-character public value was cached",
            2 * DECODED_CACHE_MAX_PUBLIC
        );
    }

    #[test]
    fn a_key_made_from_an_openssl_key_is_checked_as_a_decoded_one() {
        // A 1024-bit RSA key: `from_public` writes it, but it must be as
        // unusable as the same key read from metadata.
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let public =
            PKey::public_key_from_der(&PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap())
                .unwrap();
        let id = KeyId::new("k");
        let made = Key::from_public(Scheme::RsaPssSha256, &public).unwrap();
        let read = Key::new("rsa", "rsassa-pss-sha256", made.keyval.public.clone());
        for key in [&made, &read] {
            let err = key.check(&id).unwrap_err();
            assert!(err.to_string().contains("too small"), "{err}");
            assert!(key.verify(&id, b"m", b"s").is_err());
        }
        // An Ed25519 key listed under the RSA scheme is no RSA key.
        let ed = PKey::generate_ed25519().unwrap();
        let ed =
            PKey::public_key_from_raw_bytes(&ed.raw_public_key().unwrap(), Id::ED25519).unwrap();
        assert!(Key::from_public(Scheme::RsaPssSha256, &ed).is_err());
    }

    #[test]
    fn ed25519_keys_read_without_openssl_decoders_are_the_keys_openssl_reads() {
        for _ in 0..8 {
            let ed = PKey::generate_ed25519().unwrap();
            let pem = String::from_utf8(ed.public_key_to_pem().unwrap()).unwrap();
            let raw = ed25519_spki_pem(&pem).unwrap();
            assert_eq!(raw.to_vec(), ed.raw_public_key().unwrap());
            let key = Key::from_spki_pem(&pem).unwrap();
            let id = KeyId::new("k");
            // Material is the DER OpenSSL writes.
            assert_eq!(
                key.material(&id).unwrap(),
                ed.public_key_to_der().unwrap().as_slice()
            );
            assert_eq!(
                public_key_material(&ed).unwrap(),
                ed.public_key_to_der().unwrap()
            );
            // CRLF line ends and surrounding blank lines are the same key.
            let crlf = format!("\n{}\n", pem.replace('\n', "\r\n"));
            assert_eq!(Key::from_spki_pem(&crlf).unwrap(), key);
        }
        // Anything else goes to OpenSSL's reader: other key types, another
        // label, trailing bytes inside the block.
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let ec_pem = String::from_utf8(ec.public_key_to_pem().unwrap()).unwrap();
        assert_eq!(ed25519_spki_pem(&ec_pem), None);
        let ed = PKey::generate_ed25519().unwrap();
        let mut der = ed.public_key_to_der().unwrap();
        der.extend([0, 0, 0]);
        let b64 = openssl::base64::encode_block(&der);
        let longer = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        assert_eq!(ed25519_spki_pem(&longer), None);
        let other_label = String::from_utf8(ed.public_key_to_pem().unwrap())
            .unwrap()
            .replace("PUBLIC KEY", "X25519 KEY");
        assert_eq!(ed25519_spki_pem(&other_label), None);
        assert!(Key::from_spki_pem(&other_label).is_err());
    }

    /// An Ed25519 signature made by OpenSSL, over `msg`, with `pkey`.
    fn openssl_ed25519_sign(pkey: &PKey<openssl::pkey::Private>, msg: &[u8]) -> Vec<u8> {
        openssl::sign::Signer::new_without_digest(pkey)
            .unwrap()
            .sign_oneshot_to_vec(msg)
            .unwrap()
    }

    /// OpenSSL's own Ed25519 verification, the one keyshare used before.
    fn openssl_ed25519_verify(pkey: &PKey<Public>, msg: &[u8], sig: &[u8]) -> bool {
        let ok = Verifier::new_without_digest(pkey)
            .and_then(|mut v| v.verify_oneshot(sig, msg))
            .unwrap_or(false);
        let _ = openssl::error::ErrorStack::get();
        ok
    }

    #[test]
    fn ed25519_verification_agrees_with_openssl_on_signatures_and_on_every_tampering() {
        let id = KeyId::new("k");
        for round in 0..24_usize {
            let private = PKey::generate_ed25519().unwrap();
            let public =
                PKey::public_key_from_raw_bytes(&private.raw_public_key().unwrap(), Id::ED25519)
                    .unwrap();
            let key = Key::from_public(Scheme::Ed25519, &public).unwrap();
            let msg: Vec<u8> = (0..round * 37).map(|i| (i * 7 + round) as u8).collect();
            let sig = openssl_ed25519_sign(&private, &msg);
            assert!(key.verify(&id, &msg, &sig).unwrap(), "round {round}");
            assert!(openssl_ed25519_verify(&public, &msg, &sig));
            // Every flipped bit of the signature, and of the message (where
            // there is one), is refused by both.
            for bit in (0..sig.len() * 8).step_by(5) {
                let mut bad = sig.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!key.verify(&id, &msg, &bad).unwrap(), "sig bit {bit}");
                assert!(
                    !openssl_ed25519_verify(&public, &msg, &bad),
                    "sig bit {bit}"
                );
            }
            if !msg.is_empty() {
                let mut bad = msg.clone();
                bad[round % msg.len()] ^= 0x10;
                assert!(!key.verify(&id, &bad, &sig).unwrap());
                assert!(!openssl_ed25519_verify(&public, &bad, &sig));
            }
            // Wrong lengths are no signature, not an error.
            assert!(!key.verify(&id, &msg, &sig[..63]).unwrap());
            assert!(!key
                .verify(&id, &msg, &[sig.clone(), vec![0]].concat())
                .unwrap());
            assert!(!key.verify(&id, &msg, b"").unwrap());
        }
    }

    #[test]
    fn ed25519_rfc_8032_test_vectors_verify() {
        // RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2.
        let vectors = [
            (
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        let id = KeyId::new("k");
        for (public, msg, sig) in vectors {
            let key = Key::new("ed25519", "ed25519", public.to_owned());
            let msg = hex::decode(msg).unwrap();
            let sig = hex::decode(sig.replace(' ', "")).unwrap();
            assert!(key.verify(&id, &msg, &sig).unwrap());
            assert!(!key.verify(&id, b"another message", &sig).unwrap());
        }
    }

    #[test]
    fn an_ed25519_key_of_small_order_verifies_nothing() {
        // The identity point as a public key, with R the identity and S = 0:
        // the cofactorless equation [S]B = R + [k]A holds for every message,
        // so a lax verifier takes this one "signature" for any document.
        // Listed by whoever controls a delegation, it must count for nothing.
        let identity = format!("01{}", "00".repeat(31));
        let key = Key::new("ed25519", "ed25519", identity.clone());
        let id = KeyId::new("small-order");
        let sig = hex::decode(format!("{identity}{}", "00".repeat(32))).unwrap();
        for msg in [&b""[..], b"root.json", b"{\"signed\":{}}"] {
            assert!(!key.verify(&id, msg, &sig).unwrap());
        }
        // A point that is not on the curve verifies nothing either.
        let off_curve = Key::new("ed25519", "ed25519", "02".repeat(32));
        let any = vec![7_u8; 64];
        assert!(!off_curve.verify(&id, b"m", &any).unwrap_or(false));
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
