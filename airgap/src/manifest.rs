//! The bundle manifest: what the bundle holds and which metadata it vouches
//! for, signed by the timestamp role.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use keyshare_policy::cjson::to_canonical;
use keyshare_policy::datetime::Expires;
use keyshare_policy::metadata::{Envelope, Role, Signature};

/// The manifest's `_type`.
pub const MANIFEST_TYPE: &str = "keyshare-bundle";
/// The manifest's `format`.
pub const MANIFEST_FORMAT: &str = "keyshare.bundle/v1";

/// One entry of the bundle: a repository file by its path in a published
/// repository (`metadata/...`, `targets/...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `metadata/<name>` or `targets/<dir>/<sha256>.<name>`.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// The signed part of the manifest (`signed` of a TUF-style envelope,
/// signed by a threshold of the timestamp role's keys of the root at
/// `root_version`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// When the bundle was exported.
    pub created: Expires,
    /// End of the bundle's validity window: the expiry of the bundle
    /// edition of timestamp and snapshot.
    pub expires: Expires,
    /// The newest root in the bundle.
    pub root_version: u64,
    /// The version of the bundle edition of the timestamp.
    pub timestamp_version: u64,
    /// The version of the bundle edition of the snapshot.
    pub snapshot_version: u64,
    /// SHA-256 of `metadata/timestamp.json` in the bundle.
    pub timestamp_sha256: String,
    /// Every entry, in the order of the bundle.
    pub entries: Vec<Entry>,
}

impl Role for Manifest {
    const TYPE: &'static str = MANIFEST_TYPE;

    fn version(&self) -> u64 {
        self.timestamp_version
    }

    fn expires(&self) -> Expires {
        self.expires
    }

    fn type_field(&self) -> &str {
        &self.type_
    }

    fn check(&self) -> Result<(), (String, String)> {
        if self.format != MANIFEST_FORMAT {
            return Err((
                "format".into(),
                format!("is {:?}, expected {MANIFEST_FORMAT:?}", self.format),
            ));
        }
        if !is_sha256_hex(&self.timestamp_sha256) {
            return Err((
                "timestamp_sha256".into(),
                "is not 64 lowercase hex digits".into(),
            ));
        }
        if self.created.time() > self.expires.time() {
            return Err(("expires".into(), "is before `created`".into()));
        }
        let mut seen = BTreeSet::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !is_clean_path(&e.path) {
                return Err((
                    format!("entries[{i}].path"),
                    format!("{:?} is not a clean metadata/ or targets/ path", e.path),
                ));
            }
            if !seen.insert(e.path.as_str()) {
                return Err((
                    format!("entries[{i}].path"),
                    format!("{:?} is listed twice", e.path),
                ));
            }
            if !is_sha256_hex(&e.sha256) {
                return Err((
                    format!("entries[{i}].sha256"),
                    "is not 64 lowercase hex digits".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The manifest's envelope, parsed straight into its types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEnvelope {
    signatures: Vec<Signature>,
    signed: Manifest,
}

/// Parses a manifest (untrusted bytes): its `signed` part and its
/// signatures. [`envelope`] then makes the [`Envelope`] whose signatures
/// [`keyshare_policy::verify::Authority::check`] verifies.
///
/// Unlike the generic [`Envelope::parse`], which goes through a JSON tree
/// of the whole document (about ten times its size in memory), this parses
/// into the manifest's types directly, and the canonical form of `signed`
/// is written field by field ([`canonical`]), so a manifest takes about
/// twice its size while it is checked. A manifest has no room for unknown
/// fields, so nothing is lost between the bytes and the types.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Manifest, Vec<Signature>), String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: ManifestEnvelope =
        serde_path_to_error::deserialize(&mut de).map_err(|e| match e.path().to_string() {
            p if p == "." => e.inner().to_string(),
            p => format!("{p}: {}", e.inner()),
        })?;
    de.end().map_err(|e| e.to_string())?;
    if raw.signed.type_ != MANIFEST_TYPE {
        return Err(format!(
            "signed._type is {:?}, expected {MANIFEST_TYPE:?}",
            raw.signed.type_
        ));
    }
    raw.signed
        .check()
        .map_err(|(path, message)| format!("signed.{path}: {message}"))?;
    Ok((raw.signed, raw.signatures))
}

/// The envelope of a parsed manifest, with the canonical bytes of
/// `signed` its signatures must cover.
pub(crate) fn envelope(
    signed: Manifest,
    signatures: Vec<Signature>,
) -> Result<Envelope<Manifest>, String> {
    let canonical = canonical(&signed).map_err(|e| e.to_string())?;
    Ok(Envelope {
        signed,
        signatures,
        canonical,
    })
}

/// The canonical JSON of `m`, as [`to_canonical`] writes it, without
/// building a JSON tree of the whole manifest: keys in sorted order, each
/// value (a string, a number, one entry) written by [`to_canonical`].
fn canonical(m: &Manifest) -> keyshare_policy::Result<Vec<u8>> {
    let what = "bundle manifest";
    // Room for every entry without growing (escapes aside): the keys,
    // punctuation and a length take at most 56 bytes.
    let room = m
        .entries
        .iter()
        .map(|e| e.path.len() + e.sha256.len() + 56)
        .sum::<usize>();
    let mut out = Vec::with_capacity(512 + room);
    out.push(b'{');
    field(&mut out, true, "_type");
    out.extend(to_canonical(&m.type_, what)?);
    field(&mut out, false, "created");
    out.extend(to_canonical(&m.created, what)?);
    field(&mut out, false, "entries");
    out.push(b'[');
    for (i, e) in m.entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(to_canonical(e, what)?);
    }
    out.push(b']');
    field(&mut out, false, "expires");
    out.extend(to_canonical(&m.expires, what)?);
    field(&mut out, false, "format");
    out.extend(to_canonical(&m.format, what)?);
    field(&mut out, false, "root_version");
    out.extend(to_canonical(&m.root_version, what)?);
    field(&mut out, false, "snapshot_version");
    out.extend(to_canonical(&m.snapshot_version, what)?);
    field(&mut out, false, "timestamp_sha256");
    out.extend(to_canonical(&m.timestamp_sha256, what)?);
    field(&mut out, false, "timestamp_version");
    out.extend(to_canonical(&m.timestamp_version, what)?);
    out.push(b'}');
    Ok(out)
}

/// Writes `"key":`, after a comma unless it is the first.
fn field(out: &mut Vec<u8>, first: bool, key: &str) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A relative path under `metadata/` or `targets/` made of plain segments:
/// no empty segment, no `.` or `..`, no backslash or control character.
/// Such a path can be written under a directory without leaving it.
pub(crate) fn is_clean_path(path: &str) -> bool {
    (path.starts_with("metadata/") || path.starts_with("targets/"))
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_must_stay_under_metadata_or_targets() {
        for bad in [
            "",
            "metadata",
            "metadata/",
            "other/x",
            "/metadata/x",
            "metadata/../x",
            "targets/a//b",
            "targets/./a",
            "targets/a\\b",
            "targets/a\nb",
        ] {
            assert!(!is_clean_path(bad), "{bad:?}");
        }
        for ok in ["metadata/1.root.json", "targets/org/abc.peers.json"] {
            assert!(is_clean_path(ok), "{ok}");
        }
    }

    fn sample(paths: &[&str]) -> Manifest {
        let t = |s| Expires::new(time::OffsetDateTime::from_unix_timestamp(s).unwrap());
        Manifest {
            type_: MANIFEST_TYPE.into(),
            format: MANIFEST_FORMAT.into(),
            created: t(1_900_000_000),
            expires: t(1_900_600_000),
            root_version: 3,
            timestamp_version: 17,
            snapshot_version: 16,
            timestamp_sha256: "ab".repeat(32),
            entries: paths
                .iter()
                .enumerate()
                .map(|(i, p)| Entry {
                    path: (*p).to_owned(),
                    length: 1000 + i as u64,
                    sha256: format!("{i:064x}"),
                })
                .collect(),
        }
    }

    #[test]
    fn manifest_canonical_form_is_policys() {
        for paths in [
            &[][..],
            &["metadata/1.root.json"][..],
            &[
                "metadata/1.root.json",
                "metadata/2.root.json",
                "targets/namespaces/t\u{e9}am-\"q\"/x\\y.json",
                "targets/\u{1f511}/k.json",
            ][..],
        ] {
            let m = sample(paths);
            assert_eq!(
                canonical(&m).unwrap(),
                to_canonical(&m, "m").unwrap(),
                "{paths:?}"
            );
        }
    }

    #[test]
    fn manifest_parse_gives_what_envelope_parse_gives() {
        let m = sample(&["metadata/1.root.json", "targets/org/abc.peers.json"]);
        let bytes = keyshare_policy::sign::to_bytes(&keyshare_policy::metadata::Signed {
            signed: m.clone(),
            signatures: Vec::new(),
            unrecognized: Default::default(),
        })
        .unwrap();
        let (signed, signatures) = parse(&bytes).unwrap();
        let ours = envelope(signed, signatures).unwrap();
        let generic = Envelope::<Manifest>::parse("bundle manifest", &bytes).unwrap();
        assert_eq!(ours.signed, m);
        assert_eq!(ours.canonical, generic.canonical);
    }

    #[test]
    fn manifest_parse_refuses_what_breaks_a_rule() {
        let good = sample(&["metadata/1.root.json"]);
        let envelope = |signed: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({"signatures": [], "signed": signed})).unwrap()
        };
        let mut wrong_type = serde_json::to_value(&good).unwrap();
        wrong_type["_type"] = "timestamp".into();
        let mut unknown = serde_json::to_value(&good).unwrap();
        unknown["extra"] = 1.into();
        let mut dotdot = serde_json::to_value(&good).unwrap();
        dotdot["entries"][0]["path"] = "metadata/../x".into();
        let mut top = serde_json::to_value(serde_json::json!({
            "signatures": [], "signed": good, "more": 1
        }))
        .unwrap();
        top["more"] = 2.into();
        for (bytes, says) in [
            (envelope(wrong_type), "_type"),
            (envelope(unknown), "extra"),
            (envelope(dotdot), "signed.entries[0].path"),
            (serde_json::to_vec(&top).unwrap(), "more"),
            (b"{}".to_vec(), "missing field"),
            (
                {
                    let mut b = envelope(serde_json::to_value(&good).unwrap());
                    b.extend_from_slice(b" x");
                    b
                },
                "trailing",
            ),
        ] {
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }
}
