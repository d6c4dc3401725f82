//! Keys inside PKCS#11 tokens, through `cryptoki`.
//!
//! One `Pkcs11` context per module per process: [`module`] keeps a
//! process-wide registry, because initialising a module twice crashes some
//! (SoftHSM among them). A [`Pkcs11Signer`] keeps a small pool of logged-in
//! read-only sessions, so concurrent callers each sign on their own session.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{SignError, Signer};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Rsa;

use crate::error::{Error, Result};
use crate::pin::{Pin, PinSource};
use crate::uri::{hex_lower, ObjectType, Pkcs11Uri};

/// DER of the OID prime256v1 (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` of P-256.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID id-Ed25519 (1.3.101.112), which SoftHSM 2.6 expects.
const ED25519_OID_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519", which other tokens use.
const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";
/// Most idle sessions a signer keeps open.
const MAX_IDLE_SESSIONS: usize = 16;
/// RSA keys generated in tokens.
const RSA_BITS: u64 = 3072;

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The process-wide context of the PKCS#11 module at `path`, loaded and
/// initialised on first use.
///
/// The path must exist (checked before anything is loaded). The context is
/// never finalised: it lives as long as the process.
pub fn module(path: &Path) -> Result<Pkcs11> {
    if !path.is_file() {
        return Err(Error::ModuleNotFound {
            path: path.to_owned(),
        });
    }
    let canonical = path.canonicalize().map_err(|_| Error::ModuleNotFound {
        path: path.to_owned(),
    })?;
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(&canonical) {
        return Ok(ctx.clone());
    }
    let load_error = |e: CkError| Error::ModuleLoad {
        path: path.to_owned(),
        message: one_line(&e.to_string()),
    };
    let ctx = Pkcs11::new(&canonical).map_err(load_error)?;
    let init = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    // SoftHSM shares libcrypto with the `openssl` crate and leaves errors
    // queued during C_Initialize; drop them so they do not surface later.
    drain_openssl_errors();
    match init {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_error(e)),
    }
    modules.insert(canonical, ctx.clone());
    Ok(ctx)
}

fn drain_openssl_errors() {
    let _ = openssl::error::ErrorStack::get();
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pkcs11_error(operation: &str) -> impl Fn(CkError) -> Error + '_ {
    move |e| Error::Pkcs11 {
        operation: operation.to_owned(),
        rv: match &e {
            CkError::Pkcs11(rv, function) => format!("{function}: {rv:?}"),
            other => one_line(&other.to_string()),
        },
    }
}

fn module_of(uri: &Pkcs11Uri) -> Result<Pkcs11> {
    let path = uri
        .module_path
        .as_deref()
        .ok_or_else(|| Error::BadUri("`module-path` is missing".into()))?;
    module(path)
}

/// Finds the slot holding the token the URI names (by `token` label and/or
/// `slot-id`), returning it with the token's label.
fn find_token(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<(Slot, String)> {
    if uri.token.is_none() && uri.slot_id.is_none() {
        return Err(Error::BadUri(
            "names no token (`token` or `slot-id`)".into(),
        ));
    }
    let slots = ctx
        .get_slots_with_token()
        .map_err(pkcs11_error("listing slots"))?;
    for slot in slots {
        if uri.slot_id.is_some_and(|n| n != slot.id()) {
            continue;
        }
        let info = ctx
            .get_token_info(slot)
            .map_err(pkcs11_error("reading token information"))?;
        let label = info.label().trim_end();
        if uri.token.as_deref().is_some_and(|t| t != label) {
            continue;
        }
        return Ok((slot, label.to_owned()));
    }
    Err(Error::TokenNotFound {
        token: uri.token_description(),
    })
}

fn login(session: &Session, pin: &Pin, token: &str) -> Result<()> {
    let auth = AuthPin::new(pin.expose().into());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(Error::WrongPin {
            token: format!("{token:?}"),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::PinLocked {
            token: format!("{token:?}"),
        }),
        Err(e) => Err(pkcs11_error("logging in")(e)),
    }
}

fn key_template(class: ObjectClass, uri: &Pkcs11Uri) -> Result<Vec<Attribute>> {
    if uri.object.is_none() && uri.id.is_none() {
        return Err(Error::BadUri("names no key (`object` or `id`)".into()));
    }
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    Ok(template)
}

/// The one private key the URI names.
fn find_private_key(session: &Session, uri: &Pkcs11Uri, token: &str) -> Result<ObjectHandle> {
    let found = session
        .find_objects(&key_template(ObjectClass::PRIVATE_KEY, uri)?)
        .map_err(pkcs11_error("finding the private key"))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::KeyNotFound {
            token: format!("{token:?}"),
            key: uri.key_description(),
        }),
        many => Err(Error::AmbiguousKey {
            token: format!("{token:?}"),
            key: uri.key_description(),
            count: many.len(),
        }),
    }
}

/// A signer whose private key stays inside a PKCS#11 token.
pub struct Pkcs11Signer {
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    uri: Pkcs11Uri,
    pin: Pin,
    /// The private key's handle; handles of private objects die when the
    /// token logs out, so it is found again after a re-login.
    handle: Mutex<ObjectHandle>,
    scheme: Scheme,
    key: Key,
    key_id: KeyId,
    idle: Mutex<Vec<Session>>,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("uri", &self.uri.to_string())
            .field("scheme", &self.scheme)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Opens the private key the URI names, logging in with `pin`.
    ///
    /// With `expected` set, a key of another type is refused
    /// ([`Error::Unsupported`]); otherwise the scheme follows the key type:
    /// EC P-256 → ECDSA-SHA256, EC Edwards (Ed25519) → Ed25519, RSA →
    /// RSASSA-PSS-SHA256. The public key is read from the token's public
    /// key object with the same label/id.
    pub fn open(uri: &Pkcs11Uri, pin: &PinSource, expected: Option<Scheme>) -> Result<Self> {
        if uri.object_type.is_some_and(|t| t != ObjectType::Private) {
            return Err(Error::BadUri(
                "`type` must be `private` for a signing key".into(),
            ));
        }
        let ctx = module_of(uri)?;
        let (slot, token) = find_token(&ctx, uri)?;
        let pin = pin.read()?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(pkcs11_error("opening a session"))?;
        login(&session, &pin, &token)?;

        let handle = find_private_key(&session, uri, &token)?;
        let (scheme, public) = read_public_key(&session, handle, uri, &token)?;
        drain_openssl_errors();
        if let Some(want) = expected {
            if want != scheme {
                return Err(Error::Unsupported(format!(
                    "key {} in token {token:?} is {}, not {}",
                    uri.key_description(),
                    scheme_name(scheme),
                    scheme_name(want)
                )));
            }
        }
        let key = Key::from_public(scheme, &public).map_err(|e| Error::Crypto(e.to_string()))?;
        let key_id = key.key_id().map_err(|e| Error::Crypto(e.to_string()))?;
        let mut named = uri.clone();
        named.pin_value = None;
        Ok(Self {
            ctx,
            slot,
            token,
            uri: named,
            pin,
            handle: Mutex::new(handle),
            scheme,
            key,
            key_id,
            idle: Mutex::new(vec![session]),
        })
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The key's URI (without any `pin-value`).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    fn session(&self) -> Result<Session> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(s) => Ok(s),
            None => self.fresh_session(),
        }
    }

    fn fresh_session(&self) -> Result<Session> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(pkcs11_error("opening a session"))?;
        login(&session, &self.pin, &self.token)?;
        Ok(session)
    }

    fn release(&self, session: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
    }

    /// Signs `message`, returning the signature in the TUF encoding.
    ///
    /// A pooled session that the token no longer knows (token reinserted,
    /// logged out elsewhere) is dropped and the signature retried once on a
    /// fresh, logged-in session.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>> {
        let session = self.session()?;
        let result = self.sign_on(&session, message);
        drain_openssl_errors();
        match result {
            Ok(sig) => {
                self.release(session);
                Ok(sig)
            }
            Err(SignFailure::Stale) => {
                drop(session);
                let session = self.fresh_session()?;
                let handle = find_private_key(&session, &self.uri, &self.token)?;
                *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = handle;
                let sig = self.sign_on(&session, message);
                drain_openssl_errors();
                let sig = sig.map_err(SignFailure::into_error)?;
                // The key was found again by label/id: make sure it is
                // still the key this signer stands for.
                if !self
                    .key
                    .verify(&self.key_id, message, &sig)
                    .unwrap_or(false)
                {
                    return Err(Error::Unsupported(format!(
                        "key {} in token {:?} changed since it was opened",
                        self.uri.key_description(),
                        self.token
                    )));
                }
                self.release(session);
                Ok(sig)
            }
            Err(SignFailure::Error(e)) => Err(e),
        }
    }

    fn sign_on(
        &self,
        session: &Session,
        message: &[u8],
    ) -> std::result::Result<Vec<u8>, SignFailure> {
        let crypto = |e: openssl::error::ErrorStack| Error::Crypto(e.to_string());
        let handle = *self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        let token = |operation: &'static str| {
            move |e: CkError| match e {
                CkError::Pkcs11(
                    RvError::UserNotLoggedIn
                    // A logged-out token hides its private keys.
                    | RvError::KeyHandleInvalid
                    | RvError::ObjectHandleInvalid
                    | RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::TokenNotPresent,
                    _,
                ) => SignFailure::Stale,
                other => SignFailure::Error(pkcs11_error(operation)(other)),
            }
        };
        match self.scheme {
            Scheme::Ed25519 => session
                .sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    handle,
                    message,
                )
                .map_err(token("signing (CKM_EDDSA)")),
            Scheme::EcdsaP256Sha256 => {
                let digest = hash(MessageDigest::sha256(), message).map_err(crypto)?;
                let raw = session
                    .sign(&Mechanism::Ecdsa, handle, &digest)
                    .map_err(token("signing (CKM_ECDSA)"))?;
                if raw.len() != 64 {
                    return Err(Error::Crypto(format!(
                        "CKM_ECDSA returned {} bytes, not 64",
                        raw.len()
                    ))
                    .into());
                }
                let (r, s) = raw.split_at(32);
                let sig = EcdsaSig::from_private_components(
                    BigNum::from_slice(r).map_err(crypto)?,
                    BigNum::from_slice(s).map_err(crypto)?,
                )
                .map_err(crypto)?;
                Ok(sig.to_der().map_err(crypto)?)
            }
            Scheme::RsaPssSha256 => {
                let digest = hash(MessageDigest::sha256(), message).map_err(crypto)?;
                let params = PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32u64.into(),
                };
                session
                    .sign(&Mechanism::RsaPkcsPss(params), handle, &digest)
                    .map_err(token("signing (CKM_RSA_PKCS_PSS)"))
            }
            other => Err(Error::Unsupported(format!("scheme {other:?}")).into()),
        }
    }
}

/// Why signing on one session failed.
enum SignFailure {
    /// The session or its login is gone: retry on a fresh session.
    Stale,
    /// Anything else.
    Error(Error),
}

impl SignFailure {
    fn into_error(self) -> Error {
        match self {
            Self::Stale => Error::Pkcs11 {
                operation: "signing".into(),
                rv: "the session was lost twice in a row".into(),
            },
            Self::Error(e) => e,
        }
    }
}

impl From<Error> for SignFailure {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

impl Signer for Pkcs11Signer {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &Key {
        &self.key
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignError> {
        self.sign_message(message)
            .map_err(|e| SignError(e.to_string()))
    }
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Ed25519 => "Ed25519",
        Scheme::EcdsaP256Sha256 => "ECDSA P-256",
        Scheme::RsaPssSha256 => "RSA",
        _ => "another scheme",
    }
}

/// Reads the public half of `private` and decides the scheme.
fn read_public_key(
    session: &Session,
    private: ObjectHandle,
    uri: &Pkcs11Uri,
    token: &str,
) -> Result<(Scheme, PKey<Public>)> {
    let key_type = session
        .get_attributes(private, &[AttributeType::KeyType])
        .map_err(pkcs11_error("reading the key type"))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(t) => Some(t),
            _ => None,
        })
        .ok_or_else(|| Error::Unsupported("the private key has no CKA_KEY_TYPE".into()))?;
    let crypto = |e: openssl::error::ErrorStack| Error::Crypto(e.to_string());
    if key_type == KeyType::RSA {
        let attrs = session
            .get_attributes(
                private,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(pkcs11_error("reading the RSA public key"))?;
        let mut n = None;
        let mut e = None;
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        let (Some(n), Some(e)) = (n, e) else {
            return Err(Error::Unsupported(
                "the RSA key does not expose its modulus and public exponent".into(),
            ));
        };
        let rsa = Rsa::from_public_components(
            BigNum::from_slice(&n).map_err(crypto)?,
            BigNum::from_slice(&e).map_err(crypto)?,
        )
        .map_err(crypto)?;
        return Ok((Scheme::RsaPssSha256, PKey::from_rsa(rsa).map_err(crypto)?));
    }
    if key_type != KeyType::EC && key_type != KeyType::EC_EDWARDS {
        return Err(Error::Unsupported(format!(
            "key {} in token {token:?} has key type {key_type}; keyshare signs with \
             EC P-256, Ed25519 and RSA keys",
            uri.key_description()
        )));
    }
    let public = session
        .find_objects(&key_template(ObjectClass::PUBLIC_KEY, uri)?)
        .map_err(pkcs11_error("finding the public key"))?;
    let [public] = public.as_slice() else {
        return Err(Error::Unsupported(format!(
            "token {token:?} holds {} public key objects for {} (one is needed to build the TUF key)",
            public.len(),
            uri.key_description()
        )));
    };
    let mut params = None;
    let mut point = None;
    for a in session
        .get_attributes(*public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(pkcs11_error("reading the EC public key"))?
    {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else {
        return Err(Error::Unsupported(
            "the EC public key has no CKA_EC_PARAMS or CKA_EC_POINT".into(),
        ));
    };
    let point = unwrap_octet_string(&point);
    if key_type == KeyType::EC {
        if params != P256_PARAMS {
            return Err(Error::Unsupported(format!(
                "key {} in token {token:?} is an EC key on a curve other than P-256",
                uri.key_description()
            )));
        }
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto)?;
        let mut ctx = BigNumContext::new().map_err(crypto)?;
        let point = EcPoint::from_bytes(&group, point, &mut ctx).map_err(crypto)?;
        let ec = EcKey::from_public_key(&group, &point).map_err(crypto)?;
        Ok((
            Scheme::EcdsaP256Sha256,
            PKey::from_ec_key(ec).map_err(crypto)?,
        ))
    } else {
        if params != ED25519_OID_PARAMS && params != ED25519_NAME_PARAMS {
            return Err(Error::Unsupported(format!(
                "key {} in token {token:?} is an Edwards key other than Ed25519",
                uri.key_description()
            )));
        }
        let pkey = PKey::public_key_from_raw_bytes(point, Id::ED25519).map_err(crypto)?;
        Ok((Scheme::Ed25519, pkey))
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point; some tokens
/// return the bare point. Accept both.
fn unwrap_octet_string(value: &[u8]) -> &[u8] {
    match value {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => rest,
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => value,
    }
}

/// Generates a key pair inside the token the URI names and returns the URI
/// of the new private key (token, object = `label`, a random 16-byte id,
/// `type=private`, the same module and `pin-source`).
///
/// EC P-256 (`CKM_EC_KEY_PAIR_GEN`), Ed25519 (`CKM_EC_EDWARDS_KEY_PAIR_GEN`)
/// or RSA 3072 (`CKM_RSA_PKCS_KEY_PAIR_GEN`). The private key is a token
/// object, private, sensitive and not extractable. A key already labelled
/// `label` is refused ([`Error::KeyExists`]).
pub fn generate_key(
    uri: &Pkcs11Uri,
    pin: &PinSource,
    scheme: Scheme,
    label: &str,
) -> Result<Pkcs11Uri> {
    let ctx = module_of(uri)?;
    let (slot, token) = find_token(&ctx, uri)?;
    let pin = pin.read()?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(pkcs11_error("opening a read-write session"))?;
    login(&session, &pin, &token)?;
    let existing = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(pkcs11_error("looking for existing keys"))?;
    if !existing.is_empty() {
        return Err(Error::KeyExists {
            token: format!("{token:?}"),
            label: label.to_owned(),
        });
    }
    let mut id = vec![0u8; 16];
    openssl::rand::rand_bytes(&mut id).map_err(|e| Error::Crypto(e.to_string()))?;
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let mechanism = match scheme {
        Scheme::EcdsaP256Sha256 => {
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            Mechanism::EccKeyPairGen
        }
        Scheme::Ed25519 => {
            public.push(Attribute::EcParams(ED25519_OID_PARAMS.to_vec()));
            Mechanism::EccEdwardsKeyPairGen
        }
        Scheme::RsaPssSha256 => {
            public.push(Attribute::ModulusBits(RSA_BITS.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
        other => return Err(Error::Unsupported(format!("scheme {other:?}"))),
    };
    let generated = session.generate_key_pair(&mechanism, &public, &private);
    drain_openssl_errors();
    match generated {
        Ok(_) => {}
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
            return Err(Error::Unsupported(format!(
                "token {token:?} cannot generate {} keys",
                scheme_name(scheme)
            )))
        }
        Err(e) => return Err(pkcs11_error("generating a key pair")(e)),
    }
    tracing::info!(
        token = %token,
        label = %label,
        id = %hex_lower(&id),
        scheme = scheme_name(scheme),
        "generated a key pair in a PKCS#11 token"
    );
    Ok(Pkcs11Uri {
        token: Some(token),
        object: Some(label.to_owned()),
        id: Some(id),
        slot_id: None,
        object_type: Some(ObjectType::Private),
        module_path: uri.module_path.clone(),
        pin_source: uri.pin_source.clone(),
        pin_value: None,
    })
}
