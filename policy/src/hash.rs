//! Hashes TUF lists for metadata and target files, and [`Sha256Hex`], the
//! digest form keyshare names files, certificates and keys by.

use std::fmt;

use openssl::hash::{hash, MessageDigest};
use serde::{Deserialize, Deserializer, Serialize};

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    digest_hex("sha256", data).unwrap_or_default()
}

/// Raw SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = hash(MessageDigest::sha256(), data) {
        out.copy_from_slice(&d);
    }
    out
}

/// Hex digest of `data` with the algorithm TUF names `algorithm`
/// (`sha256`, `sha384`, `sha512`), or `None` for one keyshare does not compute.
pub fn digest_hex(algorithm: &str, data: &[u8]) -> Option<String> {
    let md = match algorithm {
        "sha256" => MessageDigest::sha256(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        _ => return None,
    };
    hash(md, data).ok().map(hex::encode)
}

/// A SHA-256 digest as 64 lowercase hex digits (a certificate or root file hash).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// Parses 64 lowercase hex digits.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a SHA-256 digest (64 lowercase hex digits)"
            ))
        }
    }

    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha256_hex(bytes))
    }

    /// A SHA-256 digest computed elsewhere (32 raw bytes), in hex.
    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest_hex("md5", b"abc"), None);
    }
}
