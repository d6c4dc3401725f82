//! Hashes TUF lists for metadata and target files, and [`Sha256Hex`], the
//! digest form keyshare names files, certificates and keys by.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    digest_hex("sha256", data).unwrap_or_default()
}

/// Raw SHA-256 of `data`.
///
/// Hashes here use OpenSSL's SHA-2 contexts directly (`openssl::sha::Sha256`
/// and its kin: `SHA256_Init`/`Update`/`Final`), neither the `EVP` digest
/// interface nor the one-shot functions (`openssl::sha::sha256`, OpenSSL's
/// `SHA256()`): in OpenSSL 3 both look the algorithm up by name (locks, a
/// hash table of names) on every call, which cost more than hashing the
/// small documents keyshare hashes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    h.update(data);
    h.finish()
}

/// Hex digest of `data` with the algorithm TUF names `algorithm`
/// (`sha256`, `sha384`, `sha512`), or `None` for one keyshare does not compute.
pub fn digest_hex(algorithm: &str, data: &[u8]) -> Option<String> {
    match algorithm {
        "sha256" => Some(hex::encode(sha256(data))),
        "sha384" => {
            let mut h = openssl::sha::Sha384::new();
            h.update(data);
            Some(hex::encode(h.finish()))
        }
        "sha512" => {
            let mut h = openssl::sha::Sha512::new();
            h.update(data);
            Some(hex::encode(h.finish()))
        }
        _ => None,
    }
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
        assert_eq!(
            digest_hex("sha384", b"abc").unwrap(),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            digest_hex("sha512", b"abc").unwrap(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        let data = vec![0xa5u8; 100_000];
        assert_eq!(
            sha256(&data).to_vec(),
            openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &data)
                .unwrap()
                .to_vec()
        );
    }
}
