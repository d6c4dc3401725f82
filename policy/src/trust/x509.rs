//! X.509 identities: CA certificates plus a required subject, and chain verification.

use std::collections::BTreeSet;
use std::fmt;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509NameRef, X509StoreContext, X509};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use super::check::{check_label, check_window, Problem};
use super::Sha256Hex;
use crate::keys::public_key_fingerprint;

/// A CA certificate, PEM, parsed when the document is parsed.
#[derive(Clone)]
pub struct CaCert {
    pem: String,
    cert: X509,
    sha256: Sha256Hex,
}

impl CaCert {
    /// Parses exactly one PEM certificate.
    pub fn parse(pem: &str) -> std::result::Result<Self, String> {
        let certs = X509::stack_from_pem(pem.as_bytes());
        // OpenSSL may leave errors queued after PEM parsing.
        let _ = openssl::error::ErrorStack::get();
        let mut certs = certs.map_err(|e| format!("not a PEM certificate: {e}"))?;
        let cert = match (certs.pop(), certs.is_empty()) {
            (Some(cert), true) => cert,
            (None, _) => return Err("not a PEM certificate".into()),
            (Some(_), false) => return Err("holds more than one certificate".into()),
        };
        let der = cert.to_der().map_err(|e| e.to_string())?;
        Ok(Self {
            pem: pem.to_owned(),
            sha256: Sha256Hex::of(&der),
            cert,
        })
    }

    /// The PEM text as written in the document.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The parsed certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// SHA-256 of the certificate's DER, as revocations name certificates.
    pub fn sha256(&self) -> &Sha256Hex {
        &self.sha256
    }
}

impl fmt::Debug for CaCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCert")
            .field("subject", &name_text(self.cert.subject_name()))
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl PartialEq for CaCert {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl Eq for CaCert {}

impl Serialize for CaCert {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.pem)
    }
}

impl<'de> Deserialize<'de> for CaCert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An attribute of a distinguished name that an identity may require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SubjectAttr {
    /// `C`, country.
    Country,
    /// `ST`, state or province.
    State,
    /// `L`, locality.
    Locality,
    /// `O`, organization.
    Organization,
    /// `OU`, organizational unit.
    OrganizationalUnit,
    /// `CN`, common name.
    CommonName,
}

impl SubjectAttr {
    const ALL: [Self; 6] = [
        Self::Country,
        Self::State,
        Self::Locality,
        Self::Organization,
        Self::OrganizationalUnit,
        Self::CommonName,
    ];

    /// The short name used in subjects (`C`, `ST`, `L`, `O`, `OU`, `CN`).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Country => "C",
            Self::State => "ST",
            Self::Locality => "L",
            Self::Organization => "O",
            Self::OrganizationalUnit => "OU",
            Self::CommonName => "CN",
        }
    }

    fn nid(self) -> Nid {
        match self {
            Self::Country => Nid::COUNTRYNAME,
            Self::State => Nid::STATEORPROVINCENAME,
            Self::Locality => Nid::LOCALITYNAME,
            Self::Organization => Nid::ORGANIZATIONNAME,
            Self::OrganizationalUnit => Nid::ORGANIZATIONALUNITNAME,
            Self::CommonName => Nid::COMMONNAME,
        }
    }
}

impl fmt::Display for SubjectAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// A required certificate subject in notation's form, `C=US, O=acme, CN=team-a`.
///
/// Parsed into attribute/value pairs when the document is parsed. `\` escapes
/// a `,`, `=` or `\` inside a value. A leaf certificate matches when its
/// subject contains every pair (exact, case-sensitive values); other
/// attributes of the leaf are ignored.
#[derive(Clone, Debug)]
pub struct SubjectName {
    source: String,
    pairs: Vec<(SubjectAttr, String)>,
}

impl SubjectName {
    /// Parses `ATTR=value, ATTR=value, ...`.
    pub fn parse(source: &str) -> std::result::Result<Self, String> {
        let mut pairs = Vec::new();
        let mut seen = BTreeSet::new();
        for part in split_unescaped(source, ',') {
            let part = part.trim();
            let mut kv = split_unescaped(part, '=').into_iter();
            let (Some(attr), Some(value), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(format!("`{part}` is not ATTRIBUTE=value"));
            };
            let attr = attr.trim();
            let attr = SubjectAttr::ALL
                .into_iter()
                .find(|a| a.short_name() == attr)
                .ok_or_else(|| {
                    format!("unsupported attribute `{attr}` (supported: C, ST, L, O, OU, CN)")
                })?;
            let value = unescape(value.trim());
            if value.is_empty() {
                return Err(format!("attribute `{attr}` has an empty value"));
            }
            if !seen.insert(attr) {
                return Err(format!("attribute `{attr}` is given twice"));
            }
            pairs.push((attr, value));
        }
        if pairs.is_empty() {
            return Err("empty subject".into());
        }
        Ok(Self {
            source: source.to_owned(),
            pairs,
        })
    }

    /// The subject as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The required attribute/value pairs.
    pub fn pairs(&self) -> &[(SubjectAttr, String)] {
        &self.pairs
    }

    /// True when `name` holds every required pair.
    pub fn matches(&self, name: &X509NameRef) -> bool {
        self.pairs.iter().all(|(attr, value)| {
            name.entries_by_nid(attr.nid())
                .any(|e| e.data().to_string().is_ok_and(|v| v == value.as_str()))
        })
    }
}

impl PartialEq for SubjectName {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for SubjectName {}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for SubjectName {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for SubjectName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Splits on `sep` where it is not escaped by `\`; escapes are kept.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(s.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// An X.509 identity: certificates chaining to one of `ca_certs` whose leaf
/// has `subject`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct X509Identity {
    /// Name, unique within the namespace.
    pub name: String,
    /// Trust anchors, PEM (each may be a root or an intermediate CA).
    pub ca_certs: Vec<CaCert>,
    /// Required leaf subject.
    pub subject: SubjectName,
    /// Signatures made before this time are untrusted (inclusive bound).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<OffsetDateTime>,
    /// Signatures made at or after this time are untrusted (exclusive bound).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
}

impl X509Identity {
    pub(super) fn check(&self, at: &dyn Fn(&str) -> String) -> std::result::Result<(), Problem> {
        check_label(|| at("name"), &self.name)?;
        if self.ca_certs.is_empty() {
            return Err((
                at("ca_certs"),
                "must list at least one CA certificate".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, ca) in self.ca_certs.iter().enumerate() {
            if !seen.insert(ca.sha256()) {
                return Err((
                    format!("{}[{i}]", at("ca_certs")),
                    "certificate is listed twice".into(),
                ));
            }
        }
        check_window(at, self.not_before, self.not_after)
    }

    /// Verifies `leaf` (with `intermediates`) up to one of the identity's CA
    /// certificates as of `at`, returning every certificate of the verified
    /// chain (for revocation checks), or OpenSSL's reason.
    pub(super) fn verify_chain(
        &self,
        leaf: &X509,
        intermediates: &Stack<X509>,
        at: OffsetDateTime,
    ) -> std::result::Result<Vec<ChainCert>, String> {
        let result = self.verify_chain_inner(leaf, intermediates, at);
        // A failed verification leaves OpenSSL errors queued; drop them.
        let _ = openssl::error::ErrorStack::get();
        result
    }

    fn verify_chain_inner(
        &self,
        leaf: &X509,
        intermediates: &Stack<X509>,
        at: OffsetDateTime,
    ) -> std::result::Result<Vec<ChainCert>, String> {
        let ossl = |e: openssl::error::ErrorStack| format!("openssl: {e}");
        let mut builder = X509StoreBuilder::new().map_err(ossl)?;
        for ca in &self.ca_certs {
            builder.add_cert(ca.cert.clone()).map_err(ossl)?;
        }
        let mut param = X509VerifyParam::new().map_err(ossl)?;
        #[allow(clippy::useless_conversion)] // time_t is not i64 everywhere
        param.set_time(
            at.unix_timestamp()
                .try_into()
                .map_err(|_| "signing time out of range".to_owned())?,
        );
        // Every listed CA certificate is a trust anchor, intermediate or not.
        param
            .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
            .map_err(ossl)?;
        builder.set_param(&param).map_err(ossl)?;
        let store = builder.build();
        let mut ctx = X509StoreContext::new().map_err(ossl)?;
        let outcome = ctx
            .init(&store, leaf, intermediates, |c| {
                if c.verify_cert()? {
                    let hashes = c
                        .chain()
                        .map(|chain| {
                            chain
                                .iter()
                                .filter_map(|cert| {
                                    let d = cert.digest(MessageDigest::sha256()).ok()?;
                                    Some(ChainCert {
                                        sha256: Sha256Hex::from_digest(&d),
                                        key: cert
                                            .public_key()
                                            .and_then(|k| public_key_fingerprint(&k))
                                            .ok(),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Ok(Ok(hashes))
                } else {
                    let depth = c.error_depth();
                    Ok(Err(format!(
                        "{} (certificate {depth} of the chain)",
                        c.error().error_string()
                    )))
                }
            })
            .map_err(ossl)?;
        outcome
    }
}

/// A certificate of a verified chain, as revocations name it.
#[derive(Debug)]
pub(super) struct ChainCert {
    /// SHA-256 of its DER.
    pub(super) sha256: Sha256Hex,
    /// The fingerprint of its public key.
    pub(super) key: Option<Sha256Hex>,
}

/// A name as `C=US, O=acme, CN=x` text, for messages.
pub(super) fn name_text(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let attr = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".to_owned());
            format!("{attr}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn subject_parses_pairs_and_escapes() {
        let s = SubjectName::parse(r"C=US, O=acme\, inc, CN=team-a").unwrap();
        assert_eq!(
            s.pairs(),
            &[
                (SubjectAttr::Country, "US".to_owned()),
                (SubjectAttr::Organization, "acme, inc".to_owned()),
                (SubjectAttr::CommonName, "team-a".to_owned()),
            ]
        );
    }

    #[test]
    fn subject_refuses_bad_forms() {
        assert!(SubjectName::parse("").is_err());
        assert!(SubjectName::parse("CN").is_err());
        assert!(SubjectName::parse("CN=").is_err());
        assert!(SubjectName::parse("XX=a").is_err());
        assert!(SubjectName::parse("CN=a, CN=b").is_err());
        assert!(SubjectName::parse("CN=a=b").is_err());
    }
}
