//! Trusted time: RFC 3161 timestamp tokens over signatures.
//!
//! A token is a CMS `SignedData` whose content is a `TSTInfo`: a timestamp
//! authority (TSA) signs that a hash (the *message imprint*) existed at
//! `genTime`. keyshare stamps the bytes of a signature, so a verified token
//! says the signature existed then, and `genTime`, not the signer's own
//! claim, becomes the signing time for revocations and key windows.
//!
//! [`verify_token`] checks, in this order, and refuses with a
//! [`TokenError`] naming the reason:
//!
//! 1. the token is a `SignedData` of a `TSTInfo` (at most [`MAX_TOKEN`]
//!    bytes, one signer, signed attributes present);
//! 2. the signed `message-digest` is the hash of the `TSTInfo` and the
//!    `content-type` is `id-ct-TSTInfo` (else the token was tampered with);
//! 3. the signer's certificate (from the token's certificates, or a
//!    listed TSA certificate) is found and its key verifies the signature
//!    over the signed attributes (openssl);
//! 4. the signing-certificate attribute (`ESSCertID` or `ESSCertIDv2`)
//!    names that certificate;
//! 5. the message imprint is the SHA-256, SHA-384 or SHA-512 of the
//!    signature bytes;
//! 6. the signer's certificate has the extended key usage
//!    `id-kp-timeStamping`, marked critical (RFC 3161 §2.3);
//! 7. the signer's certificate, and every certificate of its chain, is
//!    valid at `genTime`, and the chain reaches a trust anchor of
//!    `org/tsas.json` (openssl, at `genTime`);
//! 8. no certificate of the chain, nor its key, is revoked in
//!    `org/revocations.json`, **whatever `revoked_at` says**: `genTime` is
//!    the TSA's own word, and whoever holds a compromised TSA key can write
//!    any `genTime`, one before the revocation included;
//! 9. `genTime` is not later than `now` plus [`MAX_CLOCK_SKEW`].
//!
//! Sans-IO: bytes and the current time in, a [`TrustedTime`] or an error
//! out. [`request`] and [`token_from_response`] are the signer's side:
//! the request to send and the token out of the answer.

use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509StoreContext, X509};
use time::{Date, Duration, Month, OffsetDateTime, Time};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};

use crate::hash::Sha256Hex;
use crate::keys::public_key_fingerprint;
use crate::trust::{AnchorKind, Revocation, RevokedSubject, Tsas};

/// A token larger than this is refused unread.
pub const MAX_TOKEN: usize = 64 * 1024;
/// At most this many certificates in a token.
pub const MAX_TOKEN_CERTS: usize = 16;
/// How far `genTime` may be ahead of the verifier's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_AA_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// OpenSSL's `X509_V_ERR_CERT_NOT_YET_VALID` and `X509_V_ERR_CERT_HAS_EXPIRED`.
const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;

/// When a verified token says the signature existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedTime {
    /// The token's `genTime`: the signing time to decide for.
    pub gen_time: OffsetDateTime,
    /// The name of the listed TSA (`org/tsas.json`) its chain reached.
    pub tsa: String,
    /// The subject of the certificate that signed the token, for people.
    pub signer: String,
    /// SHA-256 of that certificate's DER.
    pub signer_sha256: Sha256Hex,
    /// The token's serial number, hex.
    pub serial: String,
}

/// Why a timestamp token is refused. Each message starts with the reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a timestamp token keyshare can read.
    #[error("malformed timestamp token: {0}")]
    Malformed(String),
    /// An algorithm keyshare does not accept.
    #[error("timestamp token uses an unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The token's signature does not verify, or what it signs was changed.
    #[error("bad timestamp token signature (the token was tampered with or not signed by its certificate): {0}")]
    BadSignature(String),
    /// The signing-certificate attribute names another certificate.
    #[error("the timestamp token's signing-certificate attribute ({0}) does not name the certificate that signed it (the token was tampered with)")]
    SigningCertificateMismatch(&'static str),
    /// The token stamps other bytes than the signature's.
    #[error("timestamp token message imprint mismatch: the token's {algorithm} hash is not that of this signature (the token belongs to another signature)")]
    ImprintMismatch {
        /// The imprint's hash algorithm.
        algorithm: &'static str,
    },
    /// The TSA certificate lacks `id-kp-timeStamping`.
    #[error("the TSA certificate `{subject}` has no extended key usage id-kp-timeStamping: it is not a timestamp authority")]
    MissingTimestampingEku {
        /// The TSA certificate's subject.
        subject: String,
    },
    /// The TSA certificate's `id-kp-timeStamping` is not critical.
    #[error("the TSA certificate `{subject}` has the extended key usage id-kp-timeStamping but not marked critical, as RFC 3161 requires")]
    TimestampingEkuNotCritical {
        /// The TSA certificate's subject.
        subject: String,
    },
    /// A certificate of the TSA's chain was not valid at `genTime`.
    #[error("TSA certificate not valid at the token's genTime {gen_time} (expired TSA certificate, or not yet valid): {detail}")]
    TsaCertNotValid {
        /// The token's `genTime`, RFC 3339.
        gen_time: String,
        /// Which certificate and its validity.
        detail: String,
    },
    /// The TSA's chain does not reach a listed TSA.
    #[error("untrusted TSA: {0}")]
    UntrustedTsa(String),
    /// A certificate of the TSA's chain, or its key, is revoked.
    #[error("revoked TSA: {subject} was revoked at {revoked_at} ({reason}); every token it signed is refused, whatever its genTime, since a compromised TSA key can write any genTime")]
    RevokedTsa {
        /// What the revocation names.
        subject: String,
        /// When, RFC 3339.
        revoked_at: String,
        /// Why.
        reason: String,
    },
    /// `genTime` is later than the verifier's clock allows.
    #[error("the timestamp token's genTime {gen_time} is in the future (now {now})")]
    FromTheFuture {
        /// The token's `genTime`, RFC 3339.
        gen_time: String,
        /// The verifier's now, RFC 3339.
        now: String,
    },
    /// The TSA refused the request (signer's side).
    #[error("the timestamp authority refused the request: status {status}{text}")]
    Refused {
        /// The PKIStatus.
        status: u8,
        /// The status text, if any (with a leading `: `).
        text: String,
    },
}

type TokenResult<T> = std::result::Result<T, TokenError>;

fn malformed(what: &str) -> impl Fn(der::Error) -> TokenError + '_ {
    move |e| TokenError::Malformed(format!("{what}: {e}"))
}

fn ossl(e: openssl::error::ErrorStack) -> TokenError {
    TokenError::BadSignature(format!("openssl: {e}"))
}

/// `TSTInfo` as RFC 3161 has it, with `genTime` read by keyshare (fractions
/// of seconds allowed, which `der`'s `GeneralizedTime` refuses).
#[derive(Clone, Debug, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// `SigningCertificate` (RFC 2634 §5.4).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// `ESSCertID`: the SHA-1 of the signing certificate.
#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// `SigningCertificateV2` (RFC 5035 §3).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// `ESSCertIDv2`: the hash (SHA-256 by default) of the signing certificate.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// A token taken apart: the signed data, its one signer, the `TSTInfo`.
struct Parsed {
    signed: SignedData,
    tst_der: Vec<u8>,
    tst: TstInfo,
    gen_time: OffsetDateTime,
}

fn parse(token: &[u8]) -> TokenResult<Parsed> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed(format!(
            "larger than {MAX_TOKEN} bytes"
        )));
    }
    let info = ContentInfo::from_der(token).map_err(malformed("ContentInfo"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(TokenError::Malformed(format!(
            "content type {} is not signedData",
            info.content_type
        )));
    }
    let signed = info
        .content
        .decode_as::<SignedData>()
        .map_err(malformed("SignedData"))?;
    if signed.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TokenError::Malformed(format!(
            "encapsulated content type {} is not id-ct-TSTInfo",
            signed.encap_content_info.econtent_type
        )));
    }
    let econtent = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TokenError::Malformed("no TSTInfo (detached content)".into()))?;
    if econtent.tag() != Tag::OctetString {
        return Err(TokenError::Malformed(
            "the TSTInfo is not in an OCTET STRING".into(),
        ));
    }
    let tst_der = econtent.value().to_vec();
    let tst = TstInfo::from_der(&tst_der).map_err(malformed("TSTInfo"))?;
    let gen_time = generalized_time(&tst.gen_time)?;
    Ok(Parsed {
        signed,
        tst_der,
        tst,
        gen_time,
    })
}

/// `YYYYMMDDHHMMSS[.f*]Z` (RFC 5280 §4.1.2.5.2, with RFC 3161's fractions).
fn generalized_time(any: &Any) -> TokenResult<OffsetDateTime> {
    let bad = || TokenError::Malformed("genTime is not a UTC GeneralizedTime".into());
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad());
    }
    let s = std::str::from_utf8(any.value()).map_err(|_| bad())?;
    let s = s.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> TokenResult<u32> {
        whole.get(r).and_then(|d| d.parse().ok()).ok_or_else(bad)
    };
    let year = i32::try_from(num(0..4)?).map_err(|_| bad())?;
    let month = Month::try_from(u8::try_from(num(4..6)?).map_err(|_| bad())?).map_err(|_| bad())?;
    let small = |v: u32| u8::try_from(v).map_err(|_| bad());
    let date = Date::from_calendar_date(year, month, small(num(6..8)?)?).map_err(|_| bad())?;
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            if f.is_empty()
                || f.len() > 9
                || !f.bytes().all(|b| b.is_ascii_digit())
                || f.ends_with('0')
            {
                return Err(bad());
            }
            let padded = format!("{f:0<9}");
            padded.parse::<u32>().map_err(|_| bad())?
        }
    };
    let time = Time::from_hms_nano(
        small(num(8..10)?)?,
        small(num(10..12)?)?,
        small(num(12..14)?)?,
        nanos,
    )
    .map_err(|_| bad())?;
    Ok(date.with_time(time).assume_utc())
}

fn digest_of(oid: &ObjectIdentifier) -> TokenResult<(MessageDigest, &'static str)> {
    match *oid {
        ID_SHA256 => Ok((MessageDigest::sha256(), "SHA-256")),
        ID_SHA384 => Ok((MessageDigest::sha384(), "SHA-384")),
        ID_SHA512 => Ok((MessageDigest::sha512(), "SHA-512")),
        other => Err(TokenError::UnsupportedAlgorithm(format!(
            "hash {other} (SHA-256, SHA-384 or SHA-512 only)"
        ))),
    }
}

/// A certificate the token may be signed with.
struct Candidate {
    der: Vec<u8>,
    cert: Certificate,
    x509: X509,
}

impl Candidate {
    fn from_der(der: Vec<u8>) -> TokenResult<Self> {
        let cert = Certificate::from_der(&der).map_err(malformed("certificate"))?;
        let x509 = X509::from_der(&der);
        let _ = openssl::error::ErrorStack::get();
        let x509 = x509.map_err(|e| TokenError::Malformed(format!("certificate: {e}")))?;
        Ok(Self { der, cert, x509 })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn is_signer(&self, sid: &SignerIdentifier) -> bool {
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                self.cert.tbs_certificate.issuer == isn.issuer
                    && self.cert.tbs_certificate.serial_number == isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => self
                .x509
                .subject_key_id()
                .is_some_and(|k| k.as_slice() == ski.0.as_bytes()),
        }
    }
}

fn attribute(
    attrs: &x509_cert::attr::Attributes,
    oid: ObjectIdentifier,
) -> TokenResult<Option<&Any>> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(TokenError::Malformed(format!(
            "signed attribute {oid} must appear once with one value"
        )));
    }
    Ok(attr.values.iter().next())
}

/// Verifies `token` (DER `TimeStampToken`) over `signature` (the signature's
/// bytes) against the trusted TSAs and the organization's revocations, as
/// of `now`. See the module documentation for the checks.
pub fn verify_token(
    token: &[u8],
    signature: &[u8],
    tsas: &Tsas,
    revocations: &[Revocation],
    now: OffsetDateTime,
) -> TokenResult<TrustedTime> {
    let result = verify_inner(token, signature, tsas, revocations, now);
    // Failed OpenSSL calls may leave errors queued; drop them.
    let _ = openssl::error::ErrorStack::get();
    result
}

fn verify_inner(
    token: &[u8],
    signature: &[u8],
    tsas: &Tsas,
    revocations: &[Revocation],
    now: OffsetDateTime,
) -> TokenResult<TrustedTime> {
    let parsed = parse(token)?;
    let gen_time_text = crate::datetime::rfc3339(parsed.gen_time);

    // 1. One signer, with signed attributes.
    let mut signers = parsed.signed.signer_infos.0.iter();
    let (Some(signer), None) = (signers.next(), signers.next()) else {
        return Err(TokenError::Malformed(
            "a timestamp token has exactly one signer".into(),
        ));
    };
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| {
        TokenError::Malformed("no signed attributes (no signing-certificate attribute)".into())
    })?;

    // 2. What is signed is this TSTInfo.
    let (md, _) = digest_of(&signer.digest_alg.oid)?;
    let content_type = attribute(attrs, ID_CONTENT_TYPE)?
        .ok_or_else(|| TokenError::Malformed("no content-type signed attribute".into()))?
        .decode_as::<ObjectIdentifier>()
        .map_err(malformed("content-type attribute"))?;
    if content_type != ID_CT_TST_INFO {
        return Err(TokenError::BadSignature(format!(
            "the signed content type {content_type} is not id-ct-TSTInfo"
        )));
    }
    let message_digest = attribute(attrs, ID_MESSAGE_DIGEST)?
        .ok_or_else(|| TokenError::Malformed("no message-digest signed attribute".into()))?
        .decode_as::<OctetString>()
        .map_err(malformed("message-digest attribute"))?;
    let tst_digest = hash(md, &parsed.tst_der).map_err(ossl)?;
    if message_digest.as_bytes() != &*tst_digest {
        return Err(TokenError::BadSignature(
            "the TSTInfo is not the one the TSA signed".into(),
        ));
    }

    // 3. The signer's certificate, and its signature.
    let mut candidates = Vec::new();
    if let Some(set) = &parsed.signed.certificates {
        if set.0.len() > MAX_TOKEN_CERTS {
            return Err(TokenError::Malformed(format!(
                "carries more than {MAX_TOKEN_CERTS} certificates"
            )));
        }
        for choice in set.0.iter() {
            if let CertificateChoices::Certificate(c) = choice {
                candidates.push(Candidate::from_der(
                    c.to_der().map_err(malformed("certificate"))?,
                )?);
            }
        }
    }
    let carried = candidates.len();
    for tsa in &tsas.tsas {
        let der = tsa
            .certificate
            .cert()
            .to_der()
            .map_err(|e| TokenError::Malformed(format!("listed TSA certificate: {e}")))?;
        candidates.push(Candidate::from_der(der)?);
    }
    let leaf = candidates
        .iter()
        .find(|c| c.is_signer(&signer.sid))
        .ok_or_else(|| {
            TokenError::UntrustedTsa(
                "the token's signer is neither among its certificates nor a listed TSA certificate"
                    .into(),
            )
        })?;
    let signed_attrs = attrs.to_der().map_err(malformed("signed attributes"))?;
    let key = leaf
        .x509
        .public_key()
        .map_err(|e| TokenError::Malformed(format!("TSA public key: {e}")))?;
    if !signature_holds(
        &key,
        md,
        &signer.signature_algorithm.oid,
        &signed_attrs,
        signer.signature.as_bytes(),
    )? {
        return Err(TokenError::BadSignature(format!(
            "the signature does not verify with the key of `{}`",
            leaf.subject()
        )));
    }

    // 4. The signing-certificate attribute names it.
    check_signing_certificate(attrs, &leaf.der)?;

    // 5. The token stamps this signature.
    let (imprint_md, algorithm) = digest_of(&parsed.tst.message_imprint.hash_algorithm.oid)?;
    let expected = hash(imprint_md, signature).map_err(ossl)?;
    if parsed.tst.message_imprint.hashed_message.as_bytes() != &*expected {
        return Err(TokenError::ImprintMismatch { algorithm });
    }

    // 6. A TSA certificate, by its critical extended key usage.
    let kind = AnchorKind::of(&leaf.cert);
    if !kind.time_stamping {
        return Err(TokenError::MissingTimestampingEku {
            subject: leaf.subject(),
        });
    }
    if !kind.eku_critical {
        return Err(TokenError::TimestampingEkuNotCritical {
            subject: leaf.subject(),
        });
    }

    // 7. Valid at genTime, chaining to a listed TSA.
    check_validity(&leaf.cert, parsed.gen_time, &gen_time_text)?;
    let intermediates = candidates
        .iter()
        .take(carried)
        .map(|c| c.x509.clone())
        .collect::<Vec<_>>();
    let chain = verify_chain(
        tsas,
        &leaf.x509,
        intermediates,
        parsed.gen_time,
        &gen_time_text,
    )?;

    // 8. Not revoked, whenever.
    for cert in &chain {
        let cert_sha = Sha256Hex::of(&cert.to_der().map_err(ossl)?);
        let key_fp = cert
            .public_key()
            .and_then(|k| public_key_fingerprint(&k))
            .ok();
        for r in revocations {
            let hit = match &r.subject {
                RevokedSubject::Certificate(h) => *h == cert_sha,
                RevokedSubject::Key(h) => key_fp.as_ref() == Some(h),
            };
            if hit {
                return Err(TokenError::RevokedTsa {
                    subject: r.subject.to_string(),
                    revoked_at: crate::datetime::rfc3339(r.revoked_at),
                    reason: r.reason.clone(),
                });
            }
        }
    }
    // The listed certificate nearest the leaf (OpenSSL may extend a
    // partial chain past a listed TSA leaf to its CA).
    let anchor = chain
        .iter()
        .filter_map(|c| c.to_der().ok())
        .find_map(|der| tsas.by_certificate(&Sha256Hex::of(&der)))
        .ok_or_else(|| TokenError::UntrustedTsa("the chain reaches no listed TSA".into()))?;

    // 9. Not from the future.
    if parsed.gen_time > now + MAX_CLOCK_SKEW {
        return Err(TokenError::FromTheFuture {
            gen_time: gen_time_text,
            now: crate::datetime::rfc3339(now),
        });
    }
    Ok(TrustedTime {
        gen_time: parsed.gen_time,
        tsa: anchor.name.clone(),
        signer: leaf.subject(),
        signer_sha256: Sha256Hex::of(&leaf.der),
        serial: hex::encode(parsed.tst.serial_number.as_bytes()),
    })
}

fn signature_holds(
    key: &PKey<Public>,
    md: MessageDigest,
    algorithm: &ObjectIdentifier,
    data: &[u8],
    signature: &[u8],
) -> TokenResult<bool> {
    if *algorithm == ID_RSASSA_PSS {
        return Err(TokenError::UnsupportedAlgorithm(
            "RSASSA-PSS token signatures".into(),
        ));
    }
    let ok = match key.id() {
        Id::ED25519 => {
            let mut v = Verifier::new_without_digest(key).map_err(ossl)?;
            v.verify_oneshot(signature, data).unwrap_or(false)
        }
        Id::EC | Id::RSA => {
            let mut v = Verifier::new(md, key).map_err(ossl)?;
            v.update(data).map_err(ossl)?;
            v.verify(signature).unwrap_or(false)
        }
        other => {
            return Err(TokenError::UnsupportedAlgorithm(format!(
                "TSA key type {other:?}"
            )))
        }
    };
    Ok(ok)
}

fn check_signing_certificate(
    attrs: &x509_cert::attr::Attributes,
    cert_der: &[u8],
) -> TokenResult<()> {
    let v1 = attribute(attrs, ID_AA_SIGNING_CERTIFICATE)?;
    let v2 = attribute(attrs, ID_AA_SIGNING_CERTIFICATE_V2)?;
    if v1.is_none() && v2.is_none() {
        return Err(TokenError::Malformed(
            "no signing-certificate attribute (ESSCertID or ESSCertIDv2)".into(),
        ));
    }
    if let Some(any) = v2 {
        let sc = any
            .decode_as::<SigningCertificateV2>()
            .map_err(malformed("signing-certificate-v2 attribute"))?;
        let first = sc.certs.first().ok_or_else(|| {
            TokenError::Malformed("empty signing-certificate-v2 attribute".into())
        })?;
        let (md, _) = match &first.hash_algorithm {
            None => (MessageDigest::sha256(), ""),
            Some(a) => digest_of(&a.oid)?,
        };
        if first.cert_hash.as_bytes() != &*hash(md, cert_der).map_err(ossl)? {
            return Err(TokenError::SigningCertificateMismatch("ESSCertIDv2"));
        }
    }
    if let Some(any) = v1 {
        let sc = any
            .decode_as::<SigningCertificate>()
            .map_err(malformed("signing-certificate attribute"))?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| TokenError::Malformed("empty signing-certificate attribute".into()))?;
        if first.cert_hash.as_bytes() != &*hash(MessageDigest::sha1(), cert_der).map_err(ossl)? {
            return Err(TokenError::SigningCertificateMismatch("ESSCertID"));
        }
    }
    Ok(())
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn check_validity(cert: &Certificate, gen_time: OffsetDateTime, text: &str) -> TokenResult<()> {
    let validity = &cert.tbs_certificate.validity;
    let at = gen_time.unix_timestamp();
    let (from, to) = (unix(&validity.not_before), unix(&validity.not_after));
    if at < from || at > to {
        let show = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .map(crate::datetime::rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        return Err(TokenError::TsaCertNotValid {
            gen_time: text.to_owned(),
            detail: format!(
                "`{}` is valid from {} to {}",
                cert.tbs_certificate.subject,
                show(from),
                show(to)
            ),
        });
    }
    Ok(())
}

fn verify_chain(
    tsas: &Tsas,
    leaf: &X509,
    intermediates: Vec<X509>,
    gen_time: OffsetDateTime,
    text: &str,
) -> TokenResult<Vec<X509>> {
    let untrusted =
        |e: openssl::error::ErrorStack| TokenError::UntrustedTsa(format!("openssl: {e}"));
    if tsas.tsas.is_empty() {
        return Err(TokenError::UntrustedTsa(
            "the organization lists no TSA (org/tsas.json)".into(),
        ));
    }
    let mut builder = X509StoreBuilder::new().map_err(untrusted)?;
    for tsa in &tsas.tsas {
        builder
            .add_cert(tsa.certificate.cert().clone())
            .map_err(untrusted)?;
    }
    let mut param = X509VerifyParam::new().map_err(untrusted)?;
    #[allow(clippy::useless_conversion)] // time_t is not i64 everywhere
    param.set_time(
        gen_time
            .unix_timestamp()
            .try_into()
            .map_err(|_| TokenError::Malformed("genTime out of range".into()))?,
    );
    // A listed TSA leaf is a trust anchor too.
    param
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(untrusted)?;
    builder.set_param(&param).map_err(untrusted)?;
    let store = builder.build();
    let mut stack = Stack::new().map_err(untrusted)?;
    for c in intermediates {
        stack.push(c).map_err(untrusted)?;
    }
    let mut ctx = X509StoreContext::new().map_err(untrusted)?;
    ctx.init(&store, leaf, &stack, |c| {
        if c.verify_cert()? {
            Ok(Ok(c
                .chain()
                .map(|chain| chain.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default()))
        } else {
            let code = c.error().as_raw();
            let depth = c.error_depth();
            let detail = format!(
                "{} (certificate {depth} of the chain)",
                c.error().error_string()
            );
            Ok(Err(
                if code == X509_V_ERR_CERT_HAS_EXPIRED || code == X509_V_ERR_CERT_NOT_YET_VALID {
                    TokenError::TsaCertNotValid {
                        gen_time: text.to_owned(),
                        detail,
                    }
                } else {
                    TokenError::UntrustedTsa(format!(
                        "its certificate does not chain to a TSA listed in org/tsas.json: {detail}"
                    ))
                },
            ))
        }
    })
    .map_err(untrusted)?
}

/// The DER `TimeStampReq` for `signature`: SHA-256 imprint of the
/// signature's bytes, `nonce` (big-endian, given by the caller: policy
/// has no randomness), and the TSA's certificate asked for.
pub fn request(signature: &[u8], nonce: &[u8]) -> TokenResult<Vec<u8>> {
    let digest = hash(MessageDigest::sha256(), signature).map_err(ossl)?;
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA256,
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(digest.to_vec()).map_err(malformed("imprint"))?,
        },
        req_policy: None,
        nonce: Some(Int::new(nonce).map_err(malformed("nonce"))?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(malformed("TimeStampReq"))
}

/// The token out of a DER `TimeStampResp`, checked to answer [`request`]
/// for `signature` with `nonce` (its imprint and nonce). Whether the TSA is
/// trusted is the verifier's business ([`verify_token`]).
pub fn token_from_response(
    response: &[u8],
    signature: &[u8],
    nonce: &[u8],
) -> TokenResult<Vec<u8>> {
    if response.len() > MAX_TOKEN {
        return Err(TokenError::Malformed(format!(
            "response larger than {MAX_TOKEN} bytes"
        )));
    }
    // A refusal is read first, by hand: the ASN.1 crates do not decode
    // every failure-info bit string a TSA may send (`unacceptedExtension`,
    // `systemFailure`), and a refusal must say why, not "malformed".
    if let Some(refused) = refusal(response) {
        return Err(refused);
    }
    let resp = TimeStampResp::from_der(response).map_err(malformed("TimeStampResp"))?;
    let token = resp
        .time_stamp_token
        .ok_or_else(|| TokenError::Malformed("the response carries no token".into()))?
        .to_der()
        .map_err(malformed("TimeStampToken"))?;
    let parsed = parse(&token)?;
    let (md, algorithm) = digest_of(&parsed.tst.message_imprint.hash_algorithm.oid)?;
    if parsed.tst.message_imprint.hashed_message.as_bytes()
        != &*hash(md, signature).map_err(ossl)?
    {
        return Err(TokenError::ImprintMismatch { algorithm });
    }
    let expected = Int::new(nonce).map_err(malformed("nonce"))?;
    if parsed.tst.nonce.as_ref() != Some(&expected) {
        return Err(TokenError::Malformed(
            "the token does not carry the request's nonce".into(),
        ));
    }
    Ok(token)
}

/// The TSA's refusal in `response` (PKIStatus 2 and up, RFC 3161 §2.4.2),
/// with its status strings and failure-info names; `None` when the
/// response grants a token or cannot be read that far.
fn refusal(response: &[u8]) -> Option<TokenError> {
    // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken OPTIONAL }
    // PKIStatusInfo ::= SEQUENCE { status INTEGER, statusString SEQUENCE OF
    //     UTF8String OPTIONAL, failInfo BIT STRING OPTIONAL }
    let outer = Vec::<Any>::from_der(response).ok()?;
    let info = Vec::<Any>::from_der(&outer.first()?.to_der().ok()?).ok()?;
    let status = info.first()?.decode_as::<u8>().ok()?;
    if status <= 1 {
        return None;
    }
    let mut parts = Vec::new();
    for field in info.iter().skip(1) {
        if field.tag() == Tag::Sequence {
            let der = field.to_der().ok()?;
            let texts = Vec::<der::asn1::Utf8StringRef<'_>>::from_der(&der).ok()?;
            parts.extend(texts.iter().map(|t| t.as_str().to_owned()));
        } else if field.tag() == Tag::BitString {
            let der = field.to_der().ok()?;
            let bits = der::asn1::BitStringRef::from_der(&der).ok()?;
            let names: Vec<String> = bits
                .bits()
                .enumerate()
                .filter(|(_, set)| *set)
                .map(|(i, _)| failure_name(i))
                .collect();
            if !names.is_empty() {
                parts.push(format!("failure info {}", names.join(", ")));
            }
        }
    }
    let text = if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    };
    Some(TokenError::Refused { status, text })
}

/// The name of PKIFailureInfo bit `bit` (RFC 3161 §2.4.2).
fn failure_name(bit: usize) -> String {
    match bit {
        0 => "badAlg",
        2 => "badRequest",
        5 => "badDataFormat",
        14 => "timeNotAvailable",
        15 => "unacceptedPolicy",
        16 => "unacceptedExtension",
        17 => "addInfoNotAvailable",
        25 => "systemFailure",
        _ => return format!("bit {bit}"),
    }
    .to_owned()
}

/// The `genTime` a token claims, unverified (for display only).
pub fn claimed_gen_time(token: &[u8]) -> TokenResult<OffsetDateTime> {
    parse(token).map(|p| p.gen_time)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gt(s: &str) -> TokenResult<OffsetDateTime> {
        let any = Any::new(Tag::GeneralizedTime, s.as_bytes()).unwrap();
        generalized_time(&any)
    }

    /// A TSA's refusal names its status, its text and its failure info,
    /// whichever bit is set (the ASN.1 crate's own decoding fails on some).
    #[test]
    fn a_refusal_says_why_whatever_its_failure_info() {
        // TimeStampResp { PKIStatusInfo { rejection, ["nope"], failInfo } }
        let response = |bits: &[u8]| {
            let mut info = vec![0x02, 0x01, 0x02, 0x30, 0x06, 0x0c, 0x04];
            info.extend(b"nope");
            info.push(0x03);
            info.push(u8::try_from(bits.len()).unwrap());
            info.extend(bits);
            let mut status = vec![0x30, u8::try_from(info.len()).unwrap()];
            status.extend(info);
            let mut out = vec![0x30, u8::try_from(status.len()).unwrap()];
            out.extend(status);
            out
        };
        for (bits, name) in [
            (&[0x07, 0x00, 0x00, 0x80][..], "unacceptedExtension"),
            (&[0x06, 0x00, 0x00, 0x00, 0x40][..], "systemFailure"),
            (&[0x07, 0x80][..], "badAlg"),
            (&[0x00, 0x00, 0x01][..], "unacceptedPolicy"),
            (&[0x00, 0x01][..], "bit 7"),
        ] {
            let e = token_from_response(&response(bits), b"sig", b"\x01").unwrap_err();
            let TokenError::Refused { status, text } = &e else {
                panic!("{name}: {e}");
            };
            assert_eq!(*status, 2, "{name}");
            assert!(text.contains("nope") && text.contains(name), "{name}: {e}");
        }
        // What a hostile server might send instead: every truncation of a
        // refusal, a granted status with no token, and junk are malformed
        // answers, never a refusal made up from part of the bytes or a panic.
        let full = response(&[0x07, 0x00, 0x00, 0x80]);
        for cut in 0..full.len() {
            let e = token_from_response(&full[..cut], b"sig", b"\x01").unwrap_err();
            assert!(matches!(e, TokenError::Malformed(_)), "cut at {cut}: {e}");
        }
        for junk in [
            &[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00][..],
            &[0xff; 64][..],
            b"",
        ] {
            let e = token_from_response(junk, b"sig", b"\x01").unwrap_err();
            assert!(matches!(e, TokenError::Malformed(_)), "{junk:?}: {e}");
        }
    }

    #[test]
    fn generalized_time_reads_whole_and_fractional_seconds() {
        assert_eq!(
            gt("20300102030405Z").unwrap(),
            time::macros::datetime!(2030-01-02 03:04:05 UTC)
        );
        assert_eq!(
            gt("20300102030405.25Z").unwrap(),
            time::macros::datetime!(2030-01-02 03:04:05.25 UTC)
        );
        for bad in [
            "20300102030405",
            "2030010203040Z",
            "20301302030405Z",
            "20300102030405.Z",
            "20300102030405.50Z",
            "20300102030405+0100",
        ] {
            assert!(gt(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let tsas = Tsas::default();
        for bytes in [&b""[..], b"\x30\x00", b"\x30\x80\x00\x00", &[0xff; 100]] {
            assert!(matches!(
                verify_token(bytes, b"sig", &tsas, &[], OffsetDateTime::UNIX_EPOCH),
                Err(TokenError::Malformed(_))
            ));
        }
    }
}
