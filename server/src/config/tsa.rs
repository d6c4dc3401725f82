//! The timestamp authority's settings (`[tsa]`, see `docs/tsa.md`).

use std::path::PathBuf;

use time::Duration;

use super::KeyRef;

/// The TSA policy OID of a configuration that names none
/// (`tsa.policy`): under IANA's enterprise number for documentation
/// (32473, RFC 5612), `1.3.6.1.4.1.32473.3161.1`. An organization with an
/// OID arc of its own should set its own policy OID.
pub const DEFAULT_POLICY: &str = "1.3.6.1.4.1.32473.3161.1";

/// `[tsa]`: the RFC 3161 timestamp authority (`POST /api/v1/timestamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsaConfig {
    /// `tsa.enabled`: answer `POST /api/v1/timestamp` (on by default).
    pub enabled: bool,
    /// `tsa.key`: the TSA's signing key (ECDSA P-256): `keys/tsa.pem` by
    /// default (made by `init`), another PKCS#8 PEM file, or a key in a
    /// PKCS#11 token.
    pub key: KeyRef,
    /// `tsa.cert_chain`: PEM certificates, the TSA certificate first, then
    /// its CA certificates; `None`: `tsa/chain.pem` (made by `init`).
    /// Relative to the data directory.
    pub cert_chain: Option<PathBuf>,
    /// `tsa.policy`: the TSA policy OID every token carries (dotted; each
    /// arc below 2^32).
    pub policy: String,
    /// `tsa.accuracy`: the accuracy stated in every token, whole seconds
    /// (at least 1s).
    pub accuracy: Duration,
    /// `tsa.rate_limit`: requests per client address per `rate_window`;
    /// 0 turns the limit off.
    pub rate_limit: u32,
    /// `tsa.rate_window`.
    pub rate_window: Duration,
}

impl Default for TsaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key: KeyRef::Default,
            cert_chain: None,
            policy: DEFAULT_POLICY.to_owned(),
            accuracy: Duration::seconds(1),
            rate_limit: 600,
            rate_window: Duration::minutes(1),
        }
    }
}

/// Checks a dotted OID as `tsa.policy` takes it: at least two arcs, the
/// first 0, 1 or 2 (the second below 40 unless the first is 2), each a
/// decimal number below 2^32 without leading zeros.
pub(super) fn check_oid(text: &str) -> Result<(), String> {
    let expected = "expected a dotted OID such as 1.3.6.1.4.1.32473.3161.1 (each arc below 2^32)";
    let arcs: Vec<&str> = text.split('.').collect();
    if arcs.len() < 2 {
        return Err(expected.into());
    }
    let mut values = Vec::with_capacity(arcs.len());
    for arc in &arcs {
        let bad_form = arc.is_empty()
            || !arc.bytes().all(|b| b.is_ascii_digit())
            || (arc.len() > 1 && arc.starts_with('0'));
        let value = if bad_form {
            None
        } else {
            arc.parse::<u32>().ok()
        };
        values.push(value.ok_or_else(|| expected.to_owned())?);
    }
    match values.as_slice() {
        [first, second, ..] if *first <= 1 && *second < 40 => Ok(()),
        [2, ..] => Ok(()),
        _ => Err(expected.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_checked_as_the_asn1_library_takes_them() {
        for good in [
            DEFAULT_POLICY,
            "1.2",
            "2.999.1",
            "0.39",
            "1.3.6.1.4.1.4294967295",
        ] {
            assert_eq!(check_oid(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1",
            "1..2",
            "1.2.",
            "3.1",
            "1.40",
            "1.02",
            "1.2.x",
            "1.3.6.1.4.1.4294967296",
            "2.25.96320766088623288303540650397250267126",
            " 1.2",
        ] {
            assert!(check_oid(bad).is_err(), "{bad}");
        }
    }
}
