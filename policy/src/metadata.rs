//! The TUF 1.0 metadata model: root, targets (with delegations and succinct
//! hashed bins), snapshot and timestamp, in their signed envelopes.
//!
//! Every object keeps the fields keyshare does not know in an `unrecognized`
//! map, so metadata with custom fields re-serialises to the very canonical
//! bytes that were signed. Signatures are checked over the canonical form of
//! the `signed` object as received (see [`Envelope`]), never over a
//! re-serialisation of the typed values.
//!
//! Fields are declared in the order of their JSON names, which is the order
//! canonical JSON writes them in, so [`to_canonical`] writes each object's
//! entries where they come instead of sorting them again (a test checks
//! that `serde_json` already writes these types canonically).
//!
//! Parsing refuses what the specification forbids (wrong `_type`, a
//! threshold of zero, duplicate key ids in a role, both or neither of
//! `paths` and `path_hash_prefixes`, …) with the JSON path of the offending
//! field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cjson::to_canonical;
use crate::datetime::Expires;
use crate::error::{Error, Result};
pub use crate::ids::{KeyId, RoleName, TOP_LEVEL_ROLES};
use crate::keys::Key;
use crate::pattern::PathPattern;

/// Fields a TUF object carries that keyshare does not interpret.
pub type Unrecognized = BTreeMap<String, Value>;

/// The specification version keyshare writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// A signature in an envelope's `signatures` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id.
    pub keyid: KeyId,
    /// The signature, hex-encoded.
    pub sig: String,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// What every role's `signed` object has in common.
pub trait Role: Serialize + DeserializeOwned + Clone + fmt::Debug {
    /// The `_type` value.
    const TYPE: &'static str;
    /// The `version` field.
    fn version(&self) -> u64;
    /// The `expires` field.
    fn expires(&self) -> Expires;
    /// The `_type` field as received.
    fn type_field(&self) -> &str;
    /// Rules serde cannot express; returns the JSON path and the problem.
    fn check(&self) -> std::result::Result<(), (String, String)> {
        Ok(())
    }
}

/// `keyids` + `threshold` of a top-level role in root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Keys allowed to sign the role.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: NonZeroU32,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// The root role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Whether the repository uses consistent snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// Expiry.
    pub expires: Expires,
    /// Every key used by a top-level role, by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<RoleName, RoleKeys>,
    /// Specification version, e.g. `1.0.31`.
    pub spec_version: String,
    /// Version, counting from 1.
    pub version: u64,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// Snapshot and timestamp's description of a metadata file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// Hashes by algorithm, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Length in bytes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Version of the described role.
    pub version: u64,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl MetaFile {
    /// A description with the version only.
    pub fn new(version: u64) -> Self {
        Self {
            version,
            length: None,
            hashes: None,
            unrecognized: Unrecognized::new(),
        }
    }

    /// A description with version, length and SHA-256 of `bytes`.
    pub fn with_bytes(version: u64, bytes: &[u8]) -> Self {
        Self {
            version,
            length: Some(bytes.len() as u64),
            hashes: Some(BTreeMap::from([(
                "sha256".to_owned(),
                crate::hash::sha256_hex(bytes),
            )])),
            unrecognized: Unrecognized::new(),
        }
    }

    /// Checks `bytes` against the listed length and hashes.
    pub fn check_bytes(&self, what: &str, bytes: &[u8]) -> Result<()> {
        self.check_bytes_with(what, bytes, None)
    }

    /// [`Self::check_bytes`] for a caller that has the SHA-256 (hex) of
    /// `bytes` already (computed from these very bytes): a listed
    /// `sha256` is compared with it instead of hashing them again.
    pub fn check_bytes_with(&self, what: &str, bytes: &[u8], sha256: Option<&str>) -> Result<()> {
        if let Some(length) = self.length {
            check_length(what, length, bytes)?;
        }
        if let Some(hashes) = &self.hashes {
            check_hashes(what, hashes, bytes, sha256)?;
        }
        Ok(())
    }
}

/// The snapshot role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry.
    pub expires: Expires,
    /// `targets.json` and `<role>.json` of every delegated role.
    pub meta: BTreeMap<String, MetaFile>,
    /// Specification version.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl Snapshot {
    /// The listing of a targets role (`targets` or a delegated role).
    pub fn role_meta(&self, role: &str) -> Option<&MetaFile> {
        // `<role>.json` built on the stack for the usual short names (a
        // lookup per delegated role, on every refresh).
        let mut buf = [0u8; 64];
        let name = buf
            .get_mut(..role.len().saturating_add(5))
            .and_then(|slot| {
                let (head, tail) = slot.split_at_mut(role.len());
                head.copy_from_slice(role.as_bytes());
                tail.copy_from_slice(b".json");
                std::str::from_utf8(slot).ok()
            });
        match name {
            Some(name) => self.meta.get(name),
            None => self.meta.get(&format!("{role}.json")),
        }
    }
}

/// The timestamp role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry.
    pub expires: Expires,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Specification version.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl Timestamp {
    /// The `snapshot.json` entry (present: parsing checks it).
    pub fn snapshot_meta(&self) -> &MetaFile {
        // `check` guarantees the entry; fall back to an impossible version otherwise.
        static MISSING: OnceLock<MetaFile> = OnceLock::new();
        self.meta
            .get("snapshot.json")
            .unwrap_or_else(|| MISSING.get_or_init(|| MetaFile::new(0)))
    }
}

/// A target file's description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Hashes by algorithm (at least one).
    pub hashes: BTreeMap<String, String>,
    /// Length in bytes.
    pub length: u64,
    /// Fields keyshare does not know, including `custom`.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl TargetFile {
    /// Describes `bytes` with length and SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            length: bytes.len() as u64,
            hashes: BTreeMap::from([("sha256".to_owned(), crate::hash::sha256_hex(bytes))]),
            unrecognized: Unrecognized::new(),
        }
    }

    /// Checks downloaded bytes against length and every supported hash.
    pub fn check_bytes(&self, target_path: &str, bytes: &[u8]) -> Result<()> {
        check_length(target_path, self.length, bytes)?;
        check_hashes(target_path, &self.hashes, bytes, None)
    }

    /// The SHA-256 hash, used in consistent-snapshot target file names.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

/// A delegated role in a targets role's `delegations.roles`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Keys allowed to sign the role.
    pub keyids: Vec<KeyId>,
    /// The role's name.
    pub name: RoleName,
    /// Hex prefixes of SHA-256(target path) delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Target path patterns delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<PathPattern>>,
    /// If true, a search that reaches this role stops here.
    pub terminating: bool,
    /// How many distinct keys must sign.
    pub threshold: NonZeroU32,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl DelegatedRole {
    /// True when the role is trusted for `target_path`.
    ///
    /// `path_hash` is the hex SHA-256 of the path, computed once by the caller.
    pub fn is_delegated_path(&self, target_path: &str, path_hash: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| p.matches(target_path));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            return prefixes.iter().any(|p| path_hash.starts_with(p.as_str()));
        }
        false
    }
}

/// Succinct hashed-bin delegation (TAP 15): `2^bit_length` roles named
/// `<name_prefix>-<bin in lowercase hex, zero-padded>`, all sharing keys and
/// threshold; a target belongs to the bin given by the first `bit_length`
/// bits of SHA-256(target path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Number of hash bits that choose the bin, 1 to 32.
    pub bit_length: u32,
    /// Keys allowed to sign every bin.
    pub keyids: Vec<KeyId>,
    /// Prefix of every bin's role name.
    pub name_prefix: String,
    /// How many distinct keys must sign each bin.
    pub threshold: NonZeroU32,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl SuccinctRoles {
    /// How many bins there are.
    pub fn bin_count(&self) -> u64 {
        1u64 << self.bit_length.clamp(1, 32)
    }

    fn suffix_width(&self) -> usize {
        // The hex digits of the last bin's number, at least one (as
        // `format!("{:x}", last).len()`, without building the string: this
        // runs for every bin name made or checked).
        let last = self.bin_count().saturating_sub(1);
        let bits = (u64::BITS - last.leading_zeros()) as usize;
        bits.div_ceil(4).max(1)
    }

    /// The name of bin number `bin`.
    pub fn bin_name(&self, bin: u64) -> RoleName {
        // Written on the stack for the usual short prefixes: one
        // allocation, the name's own.
        let width = self.suffix_width();
        let prefix = self.name_prefix.as_bytes();
        let mut buf = [0u8; 64];
        let len = prefix.len().saturating_add(1).saturating_add(width);
        if let Some(slot) = buf.get_mut(..len) {
            let (head, rest) = slot.split_at_mut(prefix.len());
            head.copy_from_slice(prefix);
            let mut n = bin;
            for (i, digit) in rest.iter_mut().enumerate().rev() {
                *digit = if i == 0 {
                    b'-'
                } else {
                    let d = (n & 0xf) as u8;
                    n >>= 4;
                    if d < 10 {
                        b'0' + d
                    } else {
                        b'a' + d - 10
                    }
                };
            }
            if n == 0 {
                if let Ok(name) = std::str::from_utf8(slot) {
                    return RoleName::new(name);
                }
            }
        }
        RoleName::new(format!("{}-{}", self.name_prefix, self.bin_suffix(bin)))
    }

    /// The bin number responsible for `target_path`: the first
    /// `bit_length` bits of SHA-256(`target_path`).
    pub fn bin_for_target(&self, target_path: &str) -> u64 {
        let digest = crate::hash::sha256(target_path.as_bytes());
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let shift = 32 - self.bit_length.clamp(1, 32);
        u64::from(first >> shift)
    }

    /// The bin role responsible for `target_path`.
    pub fn role_for_target(&self, target_path: &str) -> RoleName {
        self.bin_name(self.bin_for_target(target_path))
    }

    /// The suffix of bin number `bin`'s name: lowercase hex, zero-padded
    /// (`bin_name` is `<name_prefix>-<suffix>`).
    pub fn bin_suffix(&self, bin: u64) -> String {
        format!("{:0width$x}", bin, width = self.suffix_width())
    }

    /// True when `role` is one of the bins.
    pub fn is_bin(&self, role: &str) -> bool {
        let Some(suffix) = role
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|r| r.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.suffix_width()
            && suffix
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < self.bin_count())
    }

    /// Every bin name, in order.
    pub fn bin_names(&self) -> impl Iterator<Item = RoleName> + '_ {
        (0..self.bin_count()).map(|b| self.bin_name(b))
    }
}

/// A targets role's `delegations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys used by the delegated roles, by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// Delegated roles in priority order (exclusive with `succinct_roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hashed bins (exclusive with `roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
    /// Position of each role in `roles` by name, built on first lookup
    /// (a repository may delegate to tens of thousands of roles).
    #[serde(skip)]
    index: OnceLock<HashMap<RoleName, usize>>,
}

impl PartialEq for Delegations {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.roles == other.roles
            && self.succinct_roles == other.succinct_roles
            && self.unrecognized == other.unrecognized
    }
}

/// One child a search should visit: name, keys and whether it terminates the search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// The delegated role.
    pub name: RoleName,
    /// Whether the search stops after this child.
    pub terminating: bool,
}

impl Delegations {
    /// Delegations to `roles` (in priority order) using `keys`.
    pub fn new(keys: BTreeMap<KeyId, Key>, roles: Vec<DelegatedRole>) -> Self {
        Self {
            keys,
            roles: Some(roles),
            succinct_roles: None,
            unrecognized: Unrecognized::new(),
            index: OnceLock::new(),
        }
    }

    /// Hashed-bin delegations.
    pub fn succinct(keys: BTreeMap<KeyId, Key>, succinct: SuccinctRoles) -> Self {
        Self {
            keys,
            roles: None,
            succinct_roles: Some(succinct),
            unrecognized: Unrecognized::new(),
            index: OnceLock::new(),
        }
    }

    /// The delegated role called `name` (not for succinct bins).
    pub fn role(&self, name: &str) -> Option<&DelegatedRole> {
        let roles = self.roles.as_ref()?;
        let index = self.index.get_or_init(|| {
            let mut index = HashMap::with_capacity(roles.len());
            for (i, r) in roles.iter().enumerate() {
                // Names are unique (checked at parse); keep the first anyway.
                index.entry(r.name.clone()).or_insert(i);
            }
            index
        });
        // `roles` is a public field: if it was edited after the index was
        // built, the index may be stale, so check the name and fall back to a
        // scan. A stale index can cost time, never return the wrong role.
        if let Some(r) = index.get(name).and_then(|&i| roles.get(i)) {
            if r.name.as_str() == name {
                return Some(r);
            }
        }
        roles.iter().find(|r| r.name.as_str() == name)
    }

    /// Mutable access to the delegated roles; drops the lookup index.
    pub fn roles_mut(&mut self) -> Option<&mut Vec<DelegatedRole>> {
        self.index = OnceLock::new();
        self.roles.as_mut()
    }

    /// The delegated roles trusted for `target_path`, in priority order.
    pub fn roles_for_target(&self, target_path: &str) -> Vec<Child> {
        if let Some(succinct) = &self.succinct_roles {
            return vec![Child {
                name: succinct.role_for_target(target_path),
                terminating: true,
            }];
        }
        let hash = crate::hash::sha256_hex(target_path.as_bytes());
        self.roles
            .iter()
            .flatten()
            .filter(|r| r.is_delegated_path(target_path, &hash))
            .map(|r| Child {
                name: r.name.clone(),
                terminating: r.terminating,
            })
            .collect()
    }

    /// The key ids and threshold of the delegated role `name`, if delegated here.
    pub fn role_keys(&self, name: &str) -> Option<(&[KeyId], NonZeroU32)> {
        if let Some(succinct) = &self.succinct_roles {
            return succinct
                .is_bin(name)
                .then_some((succinct.keyids.as_slice(), succinct.threshold));
        }
        self.role(name).map(|r| (r.keyids.as_slice(), r.threshold))
    }
}

/// The targets role (top-level or delegated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Delegations to other roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Expiry.
    pub expires: Expires,
    /// Specification version.
    pub spec_version: String,
    /// Target files by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Version.
    pub version: u64,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

macro_rules! impl_role {
    ($ty:ty, $name:expr, $check:expr) => {
        impl Role for $ty {
            const TYPE: &'static str = $name;
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> Expires {
                self.expires
            }
            fn type_field(&self) -> &str {
                &self.type_
            }
            fn check(&self) -> std::result::Result<(), (String, String)> {
                if self.version == 0 {
                    return Err(("version".into(), "must be at least 1".into()));
                }
                check_spec_version(&self.spec_version)?;
                #[allow(clippy::redundant_closure_call)]
                ($check)(self)
            }
        }
    };
}

impl_role!(Root, RoleName::ROOT, |r: &Root| {
    let names: BTreeSet<&str> = r.roles.keys().map(RoleName::as_str).collect();
    if names != BTreeSet::from(TOP_LEVEL_ROLES) {
        return Err((
            "roles".into(),
            "must list exactly root, targets, snapshot and timestamp".into(),
        ));
    }
    for (name, role) in &r.roles {
        unique_keyids(&role.keyids).map_err(|m| (format!("roles.{name}.keyids"), m))?;
    }
    Ok(())
});
impl_role!(Targets, RoleName::TARGETS, |t: &Targets| {
    for (path, file) in &t.targets {
        if file.hashes.is_empty() {
            return Err((format!("targets.{path}.hashes"), "must not be empty".into()));
        }
    }
    if let Some(d) = &t.delegations {
        check_delegations(d)?;
    }
    Ok(())
});
impl_role!(Snapshot, RoleName::SNAPSHOT, |s: &Snapshot| {
    check_meta_versions(&s.meta)
});
impl_role!(Timestamp, RoleName::TIMESTAMP, |t: &Timestamp| {
    if t.meta.len() != 1 || !t.meta.contains_key("snapshot.json") {
        return Err((
            "meta".into(),
            "must hold exactly one entry, snapshot.json".into(),
        ));
    }
    check_meta_versions(&t.meta)
});

/// `X.Y` or `X.Y.Z` with major version 1, as python-tuf accepts.
fn check_spec_version(v: &str) -> std::result::Result<(), (String, String)> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric || parts.first() != Some(&"1") {
        return Err((
            "spec_version".into(),
            format!("`{v}` is not a supported specification version (1.x)"),
        ));
    }
    Ok(())
}

fn check_meta_versions(
    meta: &BTreeMap<String, MetaFile>,
) -> std::result::Result<(), (String, String)> {
    for (name, m) in meta {
        if m.version == 0 {
            return Err((format!("meta.{name}.version"), "must be at least 1".into()));
        }
    }
    Ok(())
}

fn unique_keyids(keyids: &[KeyId]) -> std::result::Result<(), String> {
    let set: BTreeSet<&KeyId> = keyids.iter().collect();
    if set.len() == keyids.len() {
        Ok(())
    } else {
        Err("lists a key id more than once".into())
    }
}

fn check_delegations(d: &Delegations) -> std::result::Result<(), (String, String)> {
    match (&d.roles, &d.succinct_roles) {
        (Some(_), Some(_)) | (None, None) => {
            return Err((
                "delegations".into(),
                "must have exactly one of roles and succinct_roles".into(),
            ))
        }
        (None, Some(s)) => {
            if !(1..=32).contains(&s.bit_length) {
                return Err((
                    "delegations.succinct_roles.bit_length".into(),
                    "must be between 1 and 32".into(),
                ));
            }
            unique_keyids(&s.keyids)
                .map_err(|m| ("delegations.succinct_roles.keyids".to_owned(), m))?;
        }
        (Some(roles), None) => {
            let mut names = BTreeSet::new();
            for (i, r) in roles.iter().enumerate() {
                let at = |field: &str| format!("delegations.roles[{i}].{field}");
                if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                    return Err((at("name"), format!("`{}` is a top-level role name", r.name)));
                }
                if !names.insert(r.name.as_str()) {
                    return Err((at("name"), format!("`{}` is delegated twice", r.name)));
                }
                unique_keyids(&r.keyids).map_err(|m| (at("keyids"), m))?;
                if r.paths.is_some() == r.path_hash_prefixes.is_some() {
                    return Err((
                        at("paths"),
                        "must have exactly one of paths and path_hash_prefixes".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The signed envelope of a role, typed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// Signatures over the canonical form of `signed`.
    pub signatures: Vec<Signature>,
    /// The role's content.
    pub signed: T,
    /// Fields keyshare does not know.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// Raw envelope shape, with `signed` left as JSON.
#[derive(Deserialize)]
struct RawEnvelope {
    signatures: Vec<Signature>,
    signed: Value,
}

/// Untrusted metadata, parsed: the typed role, its signatures, and the
/// canonical bytes of `signed` that the signatures must cover.
///
/// Nothing here is verified; [`crate::verify`] turns it into a
/// [`crate::verify::Verified`] value.
#[derive(Clone, Debug)]
pub struct Envelope<T> {
    /// The role's content.
    pub signed: T,
    /// Signatures as received.
    pub signatures: Vec<Signature>,
    /// Canonical JSON of `signed` as received, unknown fields included.
    pub canonical: Vec<u8>,
}

/// Raw envelope shape with `signed` left as its text
/// ([`Envelope::parse_canonical_text`]).
#[derive(Deserialize)]
struct RawEnvelopeText<'a> {
    signatures: Vec<Signature>,
    #[serde(borrow)]
    signed: &'a serde_json::value::RawValue,
}

impl<T: Role> Envelope<T> {
    /// Parses metadata bytes fetched for role `role`.
    pub fn parse(role: &str, bytes: &[u8]) -> Result<Self> {
        let (signed, signatures, canonical) = match Self::parse_canonical_text(role, bytes) {
            Some(parsed) => parsed,
            None => Self::parse_value(role, bytes)?,
        };
        Self::checked(role, signed, signatures, canonical)
    }

    /// The fast path for a snapshot or timestamp written compactly in
    /// canonical form, as keyshare writes them: `signed` deserialised from
    /// its text (no JSON value tree), and its canonical form written from
    /// the typed value. Taken only when that canonical form is the text
    /// byte for byte; then the text is a canonical JSON text, so it is the
    /// canonical form of what was received, exactly what
    /// [`Self::parse_value`] computes. Otherwise (another writer's layout,
    /// escapes, duplicate keys, anything malformed) `None`, and the general
    /// path parses it, with its errors. A snapshot lists every role, so it
    /// is the largest file a refresh parses on every change; other roles
    /// hold PEM keys, whose newlines canonical JSON leaves unescaped, and
    /// would rarely match.
    fn parse_canonical_text(role: &str, bytes: &[u8]) -> Option<(T, Vec<Signature>, Vec<u8>)> {
        if (T::TYPE != RoleName::SNAPSHOT && T::TYPE != RoleName::TIMESTAMP)
            || !bytes.starts_with(b"{\"signatures\":")
        {
            return None;
        }
        let raw: RawEnvelopeText<'_> = serde_json::from_slice(bytes).ok()?;
        let text = raw.signed.get();
        let signed: T = serde_json::from_str(text).ok()?;
        let canonical = to_canonical(&signed, role).ok()?;
        (canonical == text.as_bytes()).then_some((signed, raw.signatures, canonical))
    }

    /// The general path: the envelope through a JSON value, its canonical
    /// form computed from the value, the typed role from the same value.
    fn parse_value(role: &str, bytes: &[u8]) -> Result<(T, Vec<Signature>, Vec<u8>)> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw: RawEnvelope = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| malformed(role, &e.path().to_string(), e.inner()))?;
        de.end().map_err(|e| malformed(role, ".", &e))?;
        let canonical = to_canonical(&raw.signed, role)?;
        let signed: T = serde_path_to_error::deserialize(raw.signed).map_err(|e| {
            let path = format!("signed.{}", e.path());
            malformed(role, &path, e.inner())
        })?;
        Ok((signed, raw.signatures, canonical))
    }

    /// The checks serde cannot make, on either path's result.
    fn checked(
        role: &str,
        signed: T,
        signatures: Vec<Signature>,
        canonical: Vec<u8>,
    ) -> Result<Self> {
        if signed.type_field() != T::TYPE {
            return Err(Error::WrongType {
                role: RoleName::new(role),
                expected: T::TYPE,
                found: signed.type_field().to_owned(),
            });
        }
        signed.check().map_err(|(path, message)| Error::Malformed {
            what: role.to_owned(),
            path: format!("signed.{path}"),
            message,
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for sig in &signatures {
            if !seen.insert(&sig.keyid) {
                return Err(Error::DuplicateSignature {
                    role: RoleName::new(role),
                    keyid: sig.keyid.clone(),
                });
            }
        }
        Ok(Self {
            signed,
            signatures,
            canonical,
        })
    }
}

fn malformed(what: &str, path: &str, e: &dyn fmt::Display) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn check_length(what: &str, expected: u64, bytes: &[u8]) -> Result<()> {
    let received = bytes.len() as u64;
    if received == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: what.to_owned(),
            expected,
            received,
        })
    }
}

/// Every listed hash keyshare can compute must match, and at least one must be computable.
fn check_hashes(
    what: &str,
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
    sha256: Option<&str>,
) -> Result<()> {
    let mut checked = false;
    for (algorithm, expected) in hashes {
        let actual = match sha256 {
            Some(known) if algorithm == "sha256" => Some(std::borrow::Cow::Borrowed(known)),
            _ => crate::hash::digest_hex(algorithm, bytes).map(std::borrow::Cow::Owned),
        };
        if let Some(actual) = actual {
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(Error::HashMismatch {
                    what: what.to_owned(),
                    algorithm: algorithm.clone(),
                });
            }
            checked = true;
        }
    }
    if checked {
        Ok(())
    } else {
        Err(Error::NoSupportedHash {
            what: what.to_owned(),
            algorithms: hashes.keys().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_names_are_the_prefix_and_the_zero_padded_hex_number() {
        for bit_length in 1..=32 {
            for prefix in [
                "bins",
                "",
                "a-very-long-prefix-for-hashed-bins-that-needs-the-heap-0123456789",
            ] {
                let bins = SuccinctRoles {
                    keyids: Vec::new(),
                    threshold: std::num::NonZeroU32::MIN,
                    bit_length,
                    name_prefix: prefix.to_owned(),
                    unrecognized: Unrecognized::new(),
                };
                let last = bins.bin_count() - 1;
                let width = format!("{last:x}").len();
                for bin in [0, 1, last / 2, last, last + 1] {
                    let name = bins.bin_name(bin);
                    assert_eq!(name.as_str(), format!("{prefix}-{bin:0width$x}"));
                    assert_eq!(bins.is_bin(name.as_str()), bin <= last, "{name}");
                }
            }
        }
    }

    /// The general path's result, for comparing with [`Envelope::parse`].
    fn by_value<T: Role>(bytes: &str) -> std::result::Result<(T, Vec<u8>, usize), String> {
        Envelope::<T>::parse_value("r", bytes.as_bytes())
            .and_then(|(t, sigs, c)| Envelope::checked("r", t, sigs, c))
            .map(|e| (e.signed, e.canonical, e.signatures.len()))
            .map_err(|e| e.to_string())
    }

    fn parsed<T: Role>(bytes: &str) -> std::result::Result<(T, Vec<u8>, usize), String> {
        Envelope::<T>::parse("r", bytes.as_bytes())
            .map(|e| (e.signed, e.canonical, e.signatures.len()))
            .map_err(|e| e.to_string())
    }

    const SIGS: &str = r#"{"signatures":[{"keyid":"ab","sig":"cd"}],"signed":"#;

    #[test]
    fn a_compact_canonical_snapshot_is_parsed_from_its_text_with_the_same_result() {
        let signed = r#"{"_type":"snapshot","expires":"2030-01-01T00:00:00Z","meta":{"bins-00.json":{"version":2},"targets.json":{"hashes":{"sha256":"00"},"length":10,"version":1}},"spec_version":"1.0.31","version":3,"zz-custom":{"a":[1,"x"],"b":null}}"#;
        let text = format!("{SIGS}{signed}}}");
        let fast = Envelope::<Snapshot>::parse_canonical_text("snapshot", text.as_bytes());
        let (_, _, canonical) = fast.expect("the fast path is taken");
        assert_eq!(canonical, signed.as_bytes());
        assert_eq!(parsed::<Snapshot>(&text), by_value::<Snapshot>(&text));
        let timestamp = r#"{"_type":"timestamp","expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":3}},"spec_version":"1.0.31","version":4}"#;
        let text = format!("{SIGS}{timestamp}}}");
        assert!(Envelope::<Timestamp>::parse_canonical_text("t", text.as_bytes()).is_some());
        assert_eq!(parsed::<Timestamp>(&text), by_value::<Timestamp>(&text));
    }

    #[test]
    fn the_snapshots_keyshare_writes_take_the_fast_path() {
        let meta = (0..256)
            .map(|i| {
                let file = MetaFile {
                    hashes: (i % 2 == 0)
                        .then(|| BTreeMap::from([("sha256".into(), "ab".repeat(32))])),
                    length: (i % 2 == 0).then_some(1000 + i),
                    version: i + 1,
                    unrecognized: Unrecognized::new(),
                };
                (format!("bins-{i:02x}.json"), file)
            })
            .collect();
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            expires: Expires::parse("2030-01-01T00:00:00Z").unwrap(),
            meta,
            spec_version: "1.0.31".into(),
            version: 7,
            unrecognized: Unrecognized::new(),
        };
        let envelope = Signed {
            signatures: vec![Signature {
                keyid: KeyId::new("ab"),
                sig: "cd".into(),
                unrecognized: Unrecognized::new(),
            }],
            signed: snapshot,
            unrecognized: Unrecognized::new(),
        };
        let bytes = crate::sign::to_bytes(&envelope).unwrap();
        let (signed, _, canonical) =
            Envelope::<Snapshot>::parse_canonical_text("snapshot", &bytes).expect("fast path");
        assert_eq!(signed, envelope.signed);
        assert_eq!(
            canonical,
            to_canonical(&envelope.signed, "snapshot").unwrap()
        );
    }

    #[test]
    fn anything_but_canonical_text_takes_the_general_path_with_the_same_result() {
        let variants = [
            // Whitespace, as python-tuf writes.
            "{\n \"signatures\": [{\"keyid\": \"ab\", \"sig\": \"cd\"}],\n \"signed\": {\"_type\": \"snapshot\", \"expires\": \"2030-01-01T00:00:00Z\", \"meta\": {\"targets.json\": {\"version\": 1}}, \"spec_version\": \"1.0.31\", \"version\": 3}}".to_owned(),
            // Keys out of order.
            format!("{SIGS}{{\"version\":3,\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\"}}}}"),
            // An escape canonical JSON would not write.
            format!("{SIGS}{{\"_type\":\"snaps\\u0068ot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":3}}}}"),
            // A duplicate key.
            format!("{SIGS}{{\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":3,\"version\":4}}}}"),
            // An unknown field sorting before known ones, and unsorted inside.
            format!("{SIGS}{{\"_type\":\"snapshot\",\"a\":{{\"b\":1,\"a\":2}},\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":3}}}}"),
            // A float (canonical JSON has none), a version 0, the wrong type.
            format!("{SIGS}{{\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":3,\"z\":1.5}}}}"),
            format!("{SIGS}{{\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"targets.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":0}}}}"),
            format!("{SIGS}{{\"_type\":\"timestamp\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"snapshot.json\":{{\"version\":1}}}},\"spec_version\":\"1.0.31\",\"version\":3}}}}"),
            // Trailing bytes, a duplicate signature, truncation.
            format!("{SIGS}{{\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{}},\"spec_version\":\"1.0.31\",\"version\":3}}}} x"),
            r#"{"signatures":[{"keyid":"ab","sig":"cd"},{"keyid":"ab","sig":"ef"}],"signed":{"_type":"snapshot","expires":"2030-01-01T00:00:00Z","meta":{},"spec_version":"1.0.31","version":3}}"#.to_owned(),
            format!("{SIGS}{{\"_type\":\"snapshot\",\"expires\":\"2030-01-01T00:00:00Z\""),
        ];
        for (i, text) in variants.iter().enumerate() {
            let fast = Envelope::<Snapshot>::parse_canonical_text("r", text.as_bytes());
            // Canonical text, refused after parsing: version 0, the wrong
            // type, a duplicate signature.
            assert_eq!(fast.is_some(), [6, 7, 9].contains(&i), "{text}");
            let general = by_value::<Snapshot>(text);
            // Only canonical text may take the fast path, and then the
            // general path computes the same canonical form.
            if let Some((signed, _, canonical)) = fast {
                let (by_value, _, general_canonical) =
                    Envelope::<Snapshot>::parse_value("r", text.as_bytes()).unwrap();
                assert_eq!(canonical, general_canonical, "{text}");
                assert_eq!(signed, by_value, "{text}");
            }
            assert_eq!(parsed::<Snapshot>(text), general, "{text}");
        }
        // Those that are canonical but wrong are still refused by the same
        // checks.
        assert!(parsed::<Snapshot>(&variants[6])
            .unwrap_err()
            .contains("at least 1"));
        assert!(parsed::<Snapshot>(&variants[7]).is_err());
        assert!(parsed::<Snapshot>(&variants[9]).is_err());
    }

    fn succinct(bits: u32) -> SuccinctRoles {
        SuccinctRoles {
            keyids: vec![],
            threshold: NonZeroU32::MIN,
            bit_length: bits,
            name_prefix: "bin".into(),
            unrecognized: Unrecognized::new(),
        }
    }

    /// Fields declared in canonical order: `serde_json`'s compact output is
    /// already canonical JSON, with no object for the canonical encoder to
    /// sort (each type written with every field it has, and one unknown
    /// field, sorting after the known ones, from input in another order).
    #[test]
    fn every_role_is_declared_in_canonical_key_order() {
        fn canonical_as_declared<T: Serialize + DeserializeOwned>(json: &str) {
            let value: T = serde_json::from_str(json).unwrap();
            let declared = serde_json::to_vec(&value).unwrap();
            let canonical = to_canonical(&value, "test").unwrap();
            assert_eq!(
                String::from_utf8(declared).unwrap(),
                String::from_utf8(canonical).unwrap(),
                "{}",
                std::any::type_name::<T>()
            );
        }
        let meta = r#"{"version": 3, "length": 10, "hashes": {"sha256": "ab"}, "zz": 1}"#;
        let target = r#"{"length": 10, "hashes": {"sha512": "cd", "sha256": "ab"}, "zz": 1}"#;
        let key = r#"{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "ab"}}"#;
        canonical_as_declared::<MetaFile>(meta);
        canonical_as_declared::<TargetFile>(target);
        canonical_as_declared::<Timestamp>(&format!(
            r#"{{"_type": "timestamp", "spec_version": "1.0.31", "version": 2,
                "expires": "2030-01-01T00:00:00Z", "meta": {{"snapshot.json": {meta}}}, "zz": 1}}"#
        ));
        canonical_as_declared::<Snapshot>(&format!(
            r#"{{"_type": "snapshot", "spec_version": "1.0.31", "version": 2,
                "expires": "2030-01-01T00:00:00Z",
                "meta": {{"targets.json": {meta}, "bins-00.json": {meta}}}, "zz": 1}}"#
        ));
        canonical_as_declared::<Targets>(&format!(
            r#"{{"_type": "targets", "spec_version": "1.0.31", "version": 2,
                "expires": "2030-01-01T00:00:00Z",
                "targets": {{"b/x": {target}, "a/y": {target}}},
                "delegations": {{
                    "keys": {{"k1": {key}}},
                    "roles": [
                        {{"name": "team", "keyids": ["k1"], "threshold": 1,
                          "terminating": true, "paths": ["a/*"], "zz": 1}},
                        {{"name": "hashed", "keyids": ["k1"], "threshold": 1,
                          "terminating": false, "path_hash_prefixes": ["ab"]}}
                    ],
                    "zz": 1
                }},
                "zz": 1}}"#
        ));
        canonical_as_declared::<Targets>(&format!(
            r#"{{"_type": "targets", "spec_version": "1.0.31", "version": 2,
                "expires": "2030-01-01T00:00:00Z", "targets": {{}},
                "delegations": {{
                    "keys": {{"k1": {key}}},
                    "succinct_roles": {{"keyids": ["k1"], "threshold": 1,
                        "bit_length": 8, "name_prefix": "bins", "zz": 1}}
                }}}}"#
        ));
        canonical_as_declared::<Root>(&format!(
            r#"{{"_type": "root", "spec_version": "1.0.31", "version": 1,
                "expires": "2030-01-01T00:00:00Z", "consistent_snapshot": true,
                "keys": {{"k1": {key}}},
                "roles": {{
                    "root": {{"keyids": ["k1"], "threshold": 1}},
                    "targets": {{"keyids": ["k1"], "threshold": 1}},
                    "snapshot": {{"keyids": ["k1"], "threshold": 1}},
                    "timestamp": {{"keyids": ["k1"], "threshold": 1, "zz": 1}}
                }},
                "zz": 1}}"#
        ));
    }

    #[test]
    fn succinct_bin_names_are_zero_padded_hex() {
        let s = succinct(8);
        assert_eq!(s.bin_count(), 256);
        assert_eq!(s.bin_name(0).as_str(), "bin-00");
        assert_eq!(s.bin_name(255).as_str(), "bin-ff");
        assert_eq!(succinct(4).bin_name(10).as_str(), "bin-a");
        assert_eq!(succinct(9).bin_name(1).as_str(), "bin-001");
        assert!(s.is_bin("bin-0a"));
        assert!(!s.is_bin("bin-a"));
        assert!(!s.is_bin("bin-0A"));
        assert!(!s.is_bin("bin-100"));
        assert!(!s.is_bin("other-00"));
    }

    #[test]
    fn succinct_bin_uses_leading_hash_bits() {
        // SHA-256("a") starts with 0xca978112.
        assert_eq!(succinct(8).role_for_target("a").as_str(), "bin-ca");
        assert_eq!(succinct(4).role_for_target("a").as_str(), "bin-c");
        assert_eq!(succinct(32).role_for_target("a").as_str(), "bin-ca978112");
        assert_eq!(succinct(8).bin_for_target("a"), 0xca);
        assert_eq!(succinct(8).bin_suffix(0xca), "ca");
        assert_eq!(succinct(9).bin_suffix(1), "001");
    }

    fn role(name: &str, keyid: &str) -> DelegatedRole {
        DelegatedRole {
            name: RoleName::new(name),
            keyids: vec![KeyId::new(keyid)],
            threshold: NonZeroU32::MIN,
            terminating: false,
            paths: Some(vec![]),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        }
    }

    #[test]
    fn role_lookup_never_uses_a_stale_index() {
        let mut d = Delegations::new(BTreeMap::new(), vec![role("a", "k1"), role("b", "k2")]);
        assert_eq!(d.role_keys("b").unwrap().0, [KeyId::new("k2")]);
        // Edit through the public field, behind the index's back.
        let roles = d.roles.as_mut().unwrap();
        roles.remove(0);
        roles.insert(0, role("c", "k3"));
        roles.push(role("d", "k4"));
        assert_eq!(d.role_keys("b").unwrap().0, [KeyId::new("k2")]);
        assert_eq!(d.role_keys("c").unwrap().0, [KeyId::new("k3")]);
        assert_eq!(d.role_keys("d").unwrap().0, [KeyId::new("k4")]);
        assert!(d.role_keys("a").is_none());
    }

    #[test]
    fn timestamp_must_list_only_snapshot() {
        let json = br#"{"signatures":[],"signed":{"_type":"timestamp","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","meta":{"targets.json":{"version":1}}}}"#;
        let err = Envelope::<Timestamp>::parse("timestamp", json).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { path, .. } if path == "signed.meta"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_spec_version_is_refused() {
        let json = br#"{"signatures":[],"signed":{"_type":"timestamp","spec_version":"2.0.0","version":1,"expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":1}}}}"#;
        let err = Envelope::<Timestamp>::parse("timestamp", json).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { path, .. } if path == "signed.spec_version"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let json = br#"{"signatures":[],"signed":{"_type":"snapshot","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":1}}}}"#;
        let err = Envelope::<Timestamp>::parse("timestamp", json).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongType {
                    expected: "timestamp",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_field_path_is_reported() {
        let json = br#"{"signatures":[],"signed":{"_type":"timestamp","spec_version":"1.0.31","version":"x","expires":"2030-01-01T00:00:00Z","meta":{}}}"#;
        let err = Envelope::<Timestamp>::parse("timestamp", json).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { path, .. } if path == "signed.version"),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let json = br#"{"signatures":[],"signed":{}} x"#;
        assert!(Envelope::<Timestamp>::parse("timestamp", json).is_err());
    }

    #[test]
    fn hashes_must_match_and_be_computable() {
        let m = MetaFile::with_bytes(1, b"abc");
        assert!(m.check_bytes("x", b"abc").is_ok());
        assert!(matches!(
            m.check_bytes("x", b"abd"),
            Err(Error::HashMismatch { .. })
        ));
        assert!(matches!(
            m.check_bytes("x", b"abcd"),
            Err(Error::LengthMismatch { .. })
        ));
        let odd = TargetFile {
            length: 3,
            hashes: BTreeMap::from([("blake3".into(), "00".into())]),
            unrecognized: Unrecognized::new(),
        };
        assert!(matches!(
            odd.check_bytes("t", b"abc"),
            Err(Error::NoSupportedHash { .. })
        ));
    }
}
