//! Consistent-snapshot file naming (TUF 1.0 §5.5.2 and §5.7.3): the names
//! of metadata and target files in a repository and in a client's cache.
//!
//! The repository builder ([`crate::repo`]) writes under these names, and
//! the client state machines ([`crate::client`]) and every reader outside
//! this crate (the server's store, the air-gap bundle check, the CLI's
//! cache) read under them.
//!
//! | file | name |
//! | --- | --- |
//! | root version `N` | `metadata/N.root.json` (always versioned) |
//! | targets role `R`, version `V` | `metadata/V.<R percent-encoded>.json` |
//! | snapshot version `V` | `metadata/V.snapshot.json` |
//! | timestamp | `metadata/timestamp.json` (never versioned) |
//! | target `dir/base` | `targets/dir/<sha256>.base` |

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ids::RoleName;
use crate::metadata::TargetFile;

/// The repository's metadata directory, relative to its base.
pub const METADATA_DIR: &str = "metadata";
/// The repository's targets directory, relative to its base.
pub const TARGETS_DIR: &str = "targets";
/// The timestamp's path, relative to the repository's base: rewritten on
/// every commit, never versioned.
pub const TIMESTAMP_PATH: &str = "metadata/timestamp.json";

/// What [`percent_encode`] keeps: RFC 3986's unreserved characters (ASCII
/// letters, digits and `-._~`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` with no safe characters, as python's
/// `urllib.parse.quote(text, safe="")`: every byte but ASCII letters,
/// digits and `-._~` becomes `%XX` (upper-case hex). For file names and
/// URL path segments: `/` and `..` never make a path.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Percent-encodes a role name for a file name, as python-tuf does
/// ([`percent_encode`]), so `/` and `..` never make a path.
pub fn encode_role(role: &str) -> String {
    percent_encode(role)
}

/// A role's metadata file name without a version: `<encoded role>.json`
/// (the timestamp, a client's cache, repositories without consistent
/// snapshots).
pub fn metadata_name(role: &str) -> String {
    format!("{}.json", encode_role(role))
}

/// A role's metadata file name at `version`: `V.<encoded role>.json`.
pub fn versioned_metadata_name(role: &str, version: u64) -> String {
    format!("{version}.{}.json", encode_role(role))
}

/// A role's metadata file name in a repository: roots are always
/// versioned, the timestamp never, other roles when the repository uses
/// consistent snapshots.
pub fn remote_metadata_name(role: &str, version: Option<u64>, consistent_snapshot: bool) -> String {
    match version {
        Some(version)
            if role == RoleName::ROOT || (consistent_snapshot && role != RoleName::TIMESTAMP) =>
        {
            versioned_metadata_name(role, version)
        }
        _ => metadata_name(role),
    }
}

/// The path of a role's metadata file at `version` under the repository's
/// base: `metadata/V.<encoded role>.json`.
pub fn metadata_path(role: &str, version: u64) -> String {
    format!("{METADATA_DIR}/{}", versioned_metadata_name(role, version))
}

/// The file name of a target in the repository's targets directory.
///
/// With consistent snapshots: `dir/<hash>.<basename>`, with the SHA-256 hash
/// if listed (keyshare always lists it), else the first listed hash by
/// algorithm name; without: the target path itself.
pub fn target_remote_name(
    target_path: &str,
    target_file: &TargetFile,
    consistent_snapshot: bool,
) -> String {
    let hash = target_file
        .sha256()
        .or_else(|| target_file.hashes.values().next().map(String::as_str));
    match hash {
        Some(hash) if consistent_snapshot => match target_path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{hash}.{base}"),
            None => format!("{hash}.{target_path}"),
        },
        _ => target_path.to_owned(),
    }
}

/// The path of a target file under the repository's base, with
/// consistent snapshots: `targets/dir/<sha256>.<basename>`.
pub fn target_path(target_path: &str, target_file: &TargetFile) -> String {
    format!(
        "{TARGETS_DIR}/{}",
        target_remote_name(target_path, target_file, true)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::Unrecognized;

    #[test]
    fn client_role_names_are_percent_encoded_with_no_safe_characters() {
        assert_eq!(encode_role("team-a_1.x~"), "team-a_1.x~");
        assert_eq!(encode_role("a/b"), "a%2Fb");
        assert_eq!(encode_role("a b%"), "a%20b%25");
        assert_eq!(encode_role("é"), "%C3%A9");
        assert_eq!(encode_role(".."), "..");
    }

    #[test]
    fn client_target_names_use_sha256_before_the_basename() {
        let t = TargetFile::from_bytes(b"abc");
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            target_remote_name("a/b/c.json", &t, true),
            format!("a/b/{sha}.c.json")
        );
        assert_eq!(
            target_remote_name("c.json", &t, true),
            format!("{sha}.c.json")
        );
        assert_eq!(target_remote_name("a/b/c.json", &t, false), "a/b/c.json");
        let other = TargetFile {
            length: 3,
            hashes: BTreeMap::from([("sha512".to_owned(), "00ff".to_owned())]),
            unrecognized: Unrecognized::new(),
        };
        assert_eq!(target_remote_name("x/y", &other, true), "x/00ff.y");
    }
}
