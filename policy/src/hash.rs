//! Hashes TUF lists for metadata and target files.

use openssl::hash::{hash, MessageDigest};

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
