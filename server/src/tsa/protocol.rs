//! The ASN.1 of the timestamp protocol, with RustCrypto's `der` types:
//! RFC 3161 (`TimeStampReq`, `TSTInfo`, `TimeStampResp`, from the
//! `x509-tsp` crate), RFC 5652 CMS `SignedData` (the `cms` crate) and
//! RFC 5816's `signingCertificateV2` attribute (ESSCertIDv2 with
//! SHA-256, defined here).
//!
//! No IO and no clock: the time, the serial number and the signature come
//! in as parameters, so every input can be tried here without a server.
//! Decoding is DER only (no BER: a request must be DER, as RFC 3161 says),
//! of at most [`super::MAX_REQUEST_BYTES`], and never panics.

use std::fmt;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use cmpv2::status::{PkiStatus, PkiStatusInfo};

/// id-sha256, id-sha384, id-sha512 (NIST).
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// ecdsa-with-SHA256 (RFC 5758).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-signedData (RFC 5652).
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo (RFC 3161).
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-contentType, id-messageDigest (RFC 5652).
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-aa-signingCertificateV2 (RFC 5035, required by RFC 5816).
const SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// extendedKeyUsage, id-kp-timeStamping (RFC 5280).
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// The message imprint algorithms accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    fn of(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            SHA256 => Some(Self::Sha256),
            SHA384 => Some(Self::Sha384),
            SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The digest's length, bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// `sha256`, `sha384`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// The `PKIFailureInfo` bits the TSA answers with (RFC 3161 §2.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailInfo {
    /// 0: unrecognized or unsupported algorithm.
    BadAlg,
    /// 2: transaction not permitted or supported.
    BadRequest,
    /// 5: the data submitted has the wrong format.
    BadDataFormat,
    /// 15: the requested TSA policy is not supported.
    UnacceptedPolicy,
    /// 16: the requested extension is not supported.
    UnacceptedExtension,
    /// 25: the request cannot be handled due to system failure.
    SystemFailure,
}

impl FailInfo {
    /// The bit number in `PKIFailureInfo`.
    pub fn bit(self) -> u32 {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }
}

/// The TSA policy OID (`tsa.policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Policy(ObjectIdentifier);

impl Policy {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        ObjectIdentifier::new(text)
            .map(Self)
            .map_err(|e| format!("{text:?} is not an OID the ASN.1 library takes ({e})"))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A request the TSA will grant: its checks passed.
#[derive(Debug)]
pub(super) struct Request {
    imprint: MessageImprint,
    pub(super) hash_alg: HashAlg,
    pub(super) hash: Vec<u8>,
    nonce: Option<Int>,
    pub(super) cert_req: bool,
}

/// Why a request is refused: the failInfo bit and the statusString.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) fail: FailInfo,
    pub(super) reason: String,
}

fn refuse(fail: FailInfo, reason: impl Into<String>) -> Refusal {
    Refusal {
        fail,
        reason: reason.into(),
    }
}

/// Reads and checks a DER `TimeStampReq`.
pub(super) fn read_request(der: &[u8], policy: &Policy) -> Result<Request, Refusal> {
    let req = TimeStampReq::from_der(der).map_err(|e| {
        refuse(
            FailInfo::BadDataFormat,
            format!("the body is not a DER TimeStampReq (RFC 3161): {e}"),
        )
    })?;
    let algorithm = &req.message_imprint.hash_algorithm;
    let hash_alg = HashAlg::of(&algorithm.oid).ok_or_else(|| {
        refuse(
            FailInfo::BadAlg,
            format!(
                "message imprint algorithm {} is not accepted: use SHA-256, SHA-384 or SHA-512",
                algorithm.oid
            ),
        )
    })?;
    // Parameters absent (RFC 5754) or NULL (as many clients write them).
    if let Some(params) = &algorithm.parameters {
        if params.tag() != Tag::Null || !params.value().is_empty() {
            return Err(refuse(
                FailInfo::BadDataFormat,
                "the message imprint algorithm has parameters other than NULL",
            ));
        }
    }
    let hash = req.message_imprint.hashed_message.as_bytes().to_vec();
    if hash.len() != hash_alg.digest_len() {
        return Err(refuse(
            FailInfo::BadDataFormat,
            format!(
                "the message imprint is {} bytes, but a {} digest is {}",
                hash.len(),
                hash_alg.name(),
                hash_alg.digest_len()
            ),
        ));
    }
    if let Some(asked) = &req.req_policy {
        if *asked != policy.0 {
            return Err(refuse(
                FailInfo::UnacceptedPolicy,
                format!(
                    "policy {asked} is not offered; this TSA issues under {}",
                    policy.0
                ),
            ));
        }
    }
    if req.extensions.is_some() {
        return Err(refuse(
            FailInfo::UnacceptedExtension,
            "request extensions are not supported",
        ));
    }
    Ok(Request {
        imprint: req.message_imprint,
        hash_alg,
        hash,
        nonce: req.nonce,
        cert_req: req.cert_req,
    })
}

/// The DER INTEGER contents of an unsigned big-endian number: no
/// superfluous leading zero, a zero first when the top bit is set.
fn unsigned_int(bytes: &[u8]) -> Result<Int, String> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let digits = bytes.get(start..).unwrap_or_default();
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    Int::new(&content).map_err(|e| format!("serial number: {e}"))
}

/// Lowercase hex of an unsigned serial number, without leading zeros
/// (`0` for zero).
pub(super) fn serial_hex(bytes: &[u8]) -> String {
    let text = hex::encode(bytes);
    let trimmed = text.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The DER `TSTInfo` of a token for `req`.
pub(super) fn tst_info(
    req: &Request,
    policy: &Policy,
    serial: &[u8],
    gen_time: OffsetDateTime,
    accuracy_seconds: u64,
) -> Result<Vec<u8>, String> {
    let seconds = u64::try_from(gen_time.unix_timestamp()).map_err(|_| "genTime before 1970")?;
    let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .map_err(|e| format!("genTime: {e}"))?;
    let info = TstInfo {
        version: TspVersion::V1,
        policy: policy.0,
        message_imprint: req.imprint.clone(),
        serial_number: unsigned_int(serial)?,
        gen_time,
        accuracy: Some(Accuracy {
            seconds: Some(accuracy_seconds),
            millis: None,
            micros: None,
        }),
        ordering: false,
        nonce: req.nonce.clone(),
        tsa: None,
        extensions: None,
    };
    info.to_der().map_err(|e| format!("TSTInfo: {e}"))
}

/// ESSCertIDv2 (RFC 5035) with the default hash algorithm, SHA-256, left
/// out as DER requires.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

/// IssuerSerial (RFC 5035).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035), without policies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, String> {
    let values = SetOfVec::try_from(vec![value]).map_err(|e| format!("attribute {oid}: {e}"))?;
    Ok(Attribute { oid, values })
}

fn any_of<T: Encode>(what: &str, value: &T) -> Result<Any, String> {
    value
        .to_der()
        .and_then(|der| Any::from_der(&der))
        .map_err(|e| format!("{what}: {e}"))
}

/// What every token's signature needs from the certificates, worked out
/// once: the chain, the signer's identifier and the
/// `signingCertificateV2` attribute.
#[derive(Debug)]
pub(super) struct Signing {
    /// The TSA certificate's validity, Unix seconds: no token is issued
    /// outside it.
    pub(super) valid: (u64, u64),
    chain: Vec<Certificate>,
    sid: IssuerAndSerialNumber,
    signing_certificate: Attribute,
}

impl Signing {
    /// From the DER chain, the TSA certificate first. Refuses a TSA
    /// certificate without the critical extendedKeyUsage timeStamping
    /// (alone) that RFC 3161 §2.3 requires.
    pub(super) fn new(chain: &[Vec<u8>]) -> Result<Self, String> {
        let certs = chain
            .iter()
            .map(|der| Certificate::from_der(der).map_err(|e| format!("a certificate: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(tsa), Some(tsa_der)) = (certs.first(), chain.first()) else {
            return Err("no certificate".into());
        };
        check_time_stamping(tsa)?;
        let tbs = &tsa.tbs_certificate;
        let sid = IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        };
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(keyshare_policy::hash::sha256(tsa_der).to_vec())
                    .map_err(|e| format!("certHash: {e}"))?,
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                    serial_number: tbs.serial_number.clone(),
                },
            }],
        };
        let signing_certificate = attribute(
            SIGNING_CERTIFICATE_V2,
            any_of("signingCertificateV2", &ess)?,
        )?;
        let validity = &tbs.validity;
        let valid = (
            validity.not_before.to_unix_duration().as_secs(),
            validity.not_after.to_unix_duration().as_secs(),
        );
        Ok(Self {
            valid,
            chain: certs,
            sid,
            signing_certificate,
        })
    }

    /// The token (a CMS `ContentInfo` of `SignedData`) over the DER
    /// `TSTInfo`: signed attributes contentType, messageDigest (SHA-256)
    /// and signingCertificateV2, signed ECDSA with SHA-256 by `sign`
    /// (which gets the DER of the attributes and returns a DER
    /// Ecdsa-Sig-Value); the chain included when `with_certs`.
    pub(super) fn sign(
        &self,
        tst_info: &[u8],
        with_certs: bool,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<ContentInfo, String> {
        let digest = OctetString::new(keyshare_policy::hash::sha256(tst_info).to_vec())
            .map_err(|e| format!("messageDigest: {e}"))?;
        let attrs = SetOfVec::try_from(vec![
            attribute(CONTENT_TYPE, any_of("contentType", &TST_INFO)?)?,
            attribute(MESSAGE_DIGEST, any_of("messageDigest", &digest)?)?,
            self.signing_certificate.clone(),
        ])
        .map_err(|e| format!("signed attributes: {e}"))?;
        let to_sign = attrs
            .to_der()
            .map_err(|e| format!("signed attributes: {e}"))?;
        let signature = sign(&to_sign)?;
        let sha256 = AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        };
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(self.sid.clone()),
            digest_alg: sha256.clone(),
            signed_attrs: Some(attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: OctetString::new(signature).map_err(|e| format!("signature: {e}"))?,
            unsigned_attrs: None,
        };
        let certificates = if with_certs {
            let choices = self
                .chain
                .iter()
                .cloned()
                .map(CertificateChoices::Certificate)
                .collect::<Vec<_>>();
            Some(CertificateSet(
                SetOfVec::try_from(choices).map_err(|e| format!("certificates: {e}"))?,
            ))
        } else {
            None
        };
        let econtent = OctetString::new(tst_info.to_vec()).map_err(|e| format!("eContent: {e}"))?;
        let signed_data = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256])
                .map_err(|e| format!("digestAlgorithms: {e}"))?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: TST_INFO,
                econtent: Some(any_of("eContent", &econtent)?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(
                SetOfVec::try_from(vec![signer_info]).map_err(|e| format!("signerInfos: {e}"))?,
            ),
        };
        Ok(ContentInfo {
            content_type: SIGNED_DATA,
            content: any_of("SignedData", &signed_data)?,
        })
    }
}

/// extendedKeyUsage must be present, critical, and timeStamping alone.
fn check_time_stamping(cert: &Certificate) -> Result<(), String> {
    let refused = "the TSA certificate must have a critical extendedKeyUsage of \
                   timeStamping alone (RFC 3161 §2.3)";
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == EXTENDED_KEY_USAGE)
        .ok_or(refused)?;
    let usages = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
        .map_err(|_| refused)?;
    if !ext.critical || usages.0 != [TIME_STAMPING] {
        return Err(refused.into());
    }
    Ok(())
}

/// The DER `TimeStampResp` granting `token`.
pub(super) fn granted(token: &ContentInfo) -> Result<Vec<u8>, String> {
    TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Accepted,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(token.clone()),
    }
    .to_der()
    .map_err(|e| format!("TimeStampResp: {e}"))
}

/// The DER `TimeStampResp` refusing a request: status `rejection`, the
/// reason as statusString, the failInfo bit.
pub(super) fn rejection(fail: FailInfo, reason: &str) -> Vec<u8> {
    // Hand-written rather than through the `cmpv2` types: it cannot fail,
    // so a refusal is always answered.
    let text = reason.as_bytes();
    let utf8 = tlv(0x0c, text);
    let free_text = tlv(0x30, &utf8);
    let bit = fail.bit();
    let bytes = usize::try_from(bit / 8 + 1).unwrap_or(4);
    let mut bits = vec![0u8; bytes];
    if let Some(b) = bits.get_mut(bytes - 1) {
        *b = 0x80 >> (bit % 8);
    }
    let unused = u8::try_from(7 - bit % 8).unwrap_or(0);
    let fail_info = tlv(0x03, &[&[unused][..], &bits].concat());
    let status = tlv(0x02, &[2]);
    let info = tlv(0x30, &[status, free_text, fail_info].concat());
    tlv(0x30, &info)
}

/// One DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let be = len.to_be_bytes();
        let skip = be.iter().position(|b| *b != 0).unwrap_or(be.len() - 1);
        let digits = be.get(skip..).unwrap_or_default();
        out.push(0x80 | u8::try_from(digits.len()).unwrap_or(0));
        out.extend_from_slice(digits);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// PKIStatusInfo read back with plain `der` types.
    #[derive(Sequence)]
    struct StatusInfo {
        status: u8,
        #[asn1(optional = "true")]
        text: Option<Vec<String>>,
        #[asn1(optional = "true")]
        fail: Option<der::asn1::BitString>,
    }

    #[derive(Sequence)]
    struct Resp {
        status: StatusInfo,
    }

    #[test]
    fn rejections_are_der_with_the_one_fail_bit_and_the_reason_however_long() {
        for fail in [
            FailInfo::BadAlg,
            FailInfo::BadRequest,
            FailInfo::BadDataFormat,
            FailInfo::UnacceptedPolicy,
            FailInfo::UnacceptedExtension,
            FailInfo::SystemFailure,
        ] {
            for reason in ["", "short", &"long reason ".repeat(40), &"x".repeat(70_000)] {
                let der = rejection(fail, reason);
                let resp = Resp::from_der(&der).unwrap();
                assert_eq!(resp.status.status, 2);
                assert_eq!(resp.status.text.unwrap(), [reason.to_owned()]);
                let bits: Vec<usize> = resp
                    .status
                    .fail
                    .unwrap()
                    .bits()
                    .enumerate()
                    .filter_map(|(i, b)| b.then_some(i))
                    .collect();
                assert_eq!(bits, [usize::try_from(fail.bit()).unwrap()]);
                // DER: re-encoding gives the same bytes.
                assert_eq!(Any::from_der(&der).unwrap().to_der().unwrap(), der);
            }
        }
    }

    #[test]
    fn serial_numbers_are_positive_minimal_integers() {
        for (bytes, hex, der_content) in [
            (&[0u8; 16][..], "0", &[0u8][..]),
            (&[0, 0, 1][..], "1", &[1][..]),
            (&[0x80, 0][..], "8000", &[0, 0x80, 0][..]),
            (&[0, 0x7f, 0xff][..], "7fff", &[0x7f, 0xff][..]),
        ] {
            assert_eq!(serial_hex(bytes), hex);
            assert_eq!(unsigned_int(bytes).unwrap().as_bytes(), der_content);
        }
    }

    #[test]
    fn any_input_is_refused_without_panicking() {
        let policy = Policy::parse("1.2.3").unwrap();
        let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0x30], vec![0x30, 0x80, 0, 0]];
        for n in 0..=255u8 {
            inputs.push(vec![n; 3]);
            inputs.push(vec![0x30, n, 0x02, 0x01, 0x01]);
        }
        // Indefinite length (BER) of an otherwise plausible request.
        inputs.push(vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00]);
        for input in inputs {
            let refusal = read_request(&input, &policy).unwrap_err();
            assert_eq!(refusal.fail, FailInfo::BadDataFormat, "{input:02x?}");
        }
    }
}
