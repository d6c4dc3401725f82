//! Short-lived X.509 certificates for CI keys, issued by the
//! organization's CI certificate authority (`[ci.ca]`) with `rcgen`.
//!
//! The CA key is a key reference as in `[keys]`: a PKCS#8 PEM file or a
//! key in a PKCS#11 token, through the same
//! [`Signer`](keyshare_policy::sign::Signer) backends as the online keys;
//! it must be ECDSA P-256 or Ed25519 (an RSA key would sign with RSA-PSS,
//! which `rcgen` cannot express). A leaf certificate holds the delegated
//! public key (Ed25519, ECDSA P-256 or RSA), is valid exactly for the
//! delegation's window, carries `digitalSignature` and the `codeSigning`
//! extended key usage, names the delegation in its common name and the
//! job's identity as a URI subject alternative name.

use std::path::Path;
use std::sync::Arc;

use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::x509::X509;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
    SigningKey,
};
use time::OffsetDateTime;

use keyshare_hsm::{PinSource, Pkcs11Signer};
use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::repo::SharedSigner;

use super::CiError;
use crate::config::ci::CaConfig;
use crate::config::KeyRef;

/// A public key in the shape `rcgen` wants.
struct PublicKey {
    der: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
}

impl PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.der
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// The bare subjectPublicKey and algorithm of an OpenSSL key.
fn public_key(pkey: &PKey<Public>) -> Result<PublicKey, String> {
    match pkey.id() {
        Id::ED25519 => Ok(PublicKey {
            der: pkey.raw_public_key().map_err(|e| e.to_string())?,
            algorithm: &rcgen::PKCS_ED25519,
        }),
        Id::EC => {
            let ec = pkey.ec_key().map_err(|e| e.to_string())?;
            if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
                return Err("EC key is not on P-256".into());
            }
            let mut ctx = openssl::bn::BigNumContext::new().map_err(|e| e.to_string())?;
            let der = ec
                .public_key()
                .to_bytes(
                    ec.group(),
                    openssl::ec::PointConversionForm::UNCOMPRESSED,
                    &mut ctx,
                )
                .map_err(|e| e.to_string())?;
            Ok(PublicKey {
                der,
                algorithm: &rcgen::PKCS_ECDSA_P256_SHA256,
            })
        }
        Id::RSA => Ok(PublicKey {
            der: pkey
                .rsa()
                .and_then(|r| r.public_key_to_der_pkcs1())
                .map_err(|e| e.to_string())?,
            algorithm: &rcgen::PKCS_RSA_SHA256,
        }),
        _ => Err("unsupported key type".into()),
    }
}

/// The CA key as an `rcgen` signing key.
struct CaKey {
    signer: SharedSigner,
    public: PublicKey,
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public.der
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.public.algorithm
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // Ed25519 (raw) and ECDSA P-256 with SHA-256 (DER) signatures are
        // the same in TUF and X.509.
        self.signer
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The organization's CI certificate authority.
pub struct CiCa {
    key: CaKey,
    /// The CA's subject, in `rcgen`'s form.
    subject: DistinguishedName,
    /// The CA's subject key identifier, when it has one.
    key_id: Option<Vec<u8>>,
    /// The CA certificate and its intermediates, PEM, as configured.
    chain_pem: String,
}

impl std::fmt::Debug for CiCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiCa").finish_non_exhaustive()
    }
}

impl CiCa {
    /// Opens the CA of `config`; relative paths are relative to `data_dir`.
    /// `pin_file` is `keys.pin_file`, for PKCS#11 URIs without `pin-source`.
    pub fn open(
        config: &CaConfig,
        data_dir: &Path,
        pin_file: Option<&Path>,
    ) -> Result<Self, CiError> {
        let bad = |m: String| CiError::Config(format!("ci.ca: {m}"));
        let cert_path = data_dir.join(&config.cert);
        let chain_pem = std::fs::read_to_string(&cert_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", cert_path.display())))?;
        let ca = X509::from_pem(chain_pem.as_bytes()).map_err(|e| {
            bad(format!(
                "{}: not a PEM certificate: {e}",
                cert_path.display()
            ))
        })?;
        let signer: SharedSigner =
            match KeyRef::parse(&config.key).map_err(|e| bad(format!("key: {e}")))? {
                KeyRef::Default => return Err(bad("key: name the CA key".into())),
                KeyRef::File(path) => crate::keys::load_one(&data_dir.join(path))
                    .map_err(|e| bad(format!("key: {e}")))?,
                KeyRef::Pkcs11(uri) => {
                    let pin = uri
                        .pin()
                        .or_else(|| pin_file.map(|p| PinSource::File(p.to_owned())))
                        .ok_or_else(|| {
                            bad(
                                "key: the PKCS#11 URI has no pin-source and keys.pin_file is unset"
                                    .into(),
                            )
                        })?;
                    Arc::new(
                        Pkcs11Signer::open(&uri, &pin, None)
                            .map_err(|e| bad(format!("key: {e}")))?,
                    )
                }
            };
        if !matches!(
            signer.public_key().scheme(),
            Some(Scheme::Ed25519 | Scheme::EcdsaP256Sha256)
        ) {
            return Err(bad("key: the CA key must be ECDSA P-256 or Ed25519".into()));
        }
        let ca_public = ca.public_key().map_err(|e| bad(e.to_string()))?;
        let signer_public = signer
            .public_key()
            .openssl_key(signer.key_id())
            .map_err(|e| bad(e.to_string()))?;
        if !ca_public.public_eq(signer_public) {
            return Err(bad(
                "key does not belong to the certificate in ci.ca.cert".into()
            ));
        }
        let public = public_key(signer_public).map_err(bad)?;
        let mut subject = DistinguishedName::new();
        for entry in ca.subject_name().entries() {
            let kind = match entry.object().nid() {
                Nid::COMMONNAME => DnType::CommonName,
                Nid::ORGANIZATIONNAME => DnType::OrganizationName,
                Nid::ORGANIZATIONALUNITNAME => DnType::OrganizationalUnitName,
                Nid::COUNTRYNAME => DnType::CountryName,
                Nid::STATEORPROVINCENAME => DnType::StateOrProvinceName,
                Nid::LOCALITYNAME => DnType::LocalityName,
                other => {
                    return Err(bad(format!(
                        "the CA subject has an attribute keyshare cannot copy ({}); use CN, O, OU, C, ST and L only",
                        other.short_name().unwrap_or("?")
                    )))
                }
            };
            let value = entry.data().to_string().map_err(|e| bad(e.to_string()))?;
            subject.push(kind, value);
        }
        let key_id = ca.subject_key_id().map(|k| k.as_slice().to_vec());
        let _ = openssl::error::ErrorStack::get();
        Ok(Self {
            key: CaKey { signer, public },
            subject,
            key_id,
            chain_pem,
        })
    }

    /// Issues a certificate for `key` valid from `not_before` to
    /// `not_after`; returns the chain, PEM: the new certificate first, then
    /// the configured CA chain.
    pub fn issue(
        &self,
        key: &Key,
        key_id: &KeyId,
        delegation_id: &str,
        identity_uri: Option<&str>,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<String, CiError> {
        let internal = |m: String| CiError::Internal(format!("issuing a certificate: {m}"));
        let pkey = key
            .openssl_key(key_id)
            .map_err(|e| internal(e.to_string()))?;
        let leaf = public_key(pkey).map_err(internal)?;
        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        let mut serial = [0u8; 16];
        openssl::rand::rand_bytes(&mut serial).map_err(|e| internal(e.to_string()))?;
        if let Some(first) = serial.first_mut() {
            *first &= 0x7f;
        }
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("keyshare-ci {delegation_id}"));
        params.distinguished_name = dn;
        if let Some(uri) = identity_uri {
            if let Ok(uri) = uri.to_owned().try_into() {
                params.subject_alt_names = vec![SanType::URI(uri)];
            }
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        // Subject key identifier: SHA-1 of the key bits (RFC 5280 4.2.1.2).
        let ski = openssl::sha::sha1(&leaf.der);
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.to_vec());
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = self.subject.clone();
        match &self.key_id {
            Some(id) => {
                issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(id.clone());
                params.use_authority_key_identifier_extension = true;
            }
            None => params.use_authority_key_identifier_extension = false,
        }
        let issuer = Issuer::from_params(&issuer_params, &self.key);
        let cert = params
            .signed_by(&leaf, &issuer)
            .map_err(|e| internal(e.to_string()))?;
        let mut chain = cert.pem();
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(&self.chain_pem);
        Ok(chain)
    }
}
