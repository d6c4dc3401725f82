//! Verification: policy's TUF client checks over the bundle's files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use time::OffsetDateTime;

use keyshare_policy::client::{target_remote_name, verify_target, MetadataFile, TrustedSet};
use keyshare_policy::metadata::{Envelope, RoleName, Root};
use keyshare_policy::verify::Authority;

use crate::format::{read_bundle, RawBundle};
use crate::manifest::Manifest;
use crate::{Error, Result};

/// The files of one consistent repository state, verified by
/// [`TrustedSet`] as a TUF client verifies them, in the order a client
/// needs them: roots from version 1, timestamp, snapshot, top-level
/// targets, delegated roles level by level, then target files.
#[derive(Debug)]
pub struct Walked {
    /// `(repository path, bytes)`, in order.
    pub files: Vec<(String, Arc<[u8]>)>,
    /// The trusted metadata.
    pub trusted: TrustedSet,
}

/// Runs policy's TUF client checks ([`TrustedSet`], in the order of the
/// client workflow, §5.3–5.6) over the files `fetch` gives by repository
/// path (`metadata/1.root.json`, ...), starting from root version 1, and
/// loads every targets role the metadata delegates to and every target
/// file they list (checked with [`verify_target`]).
///
/// `previous_timestamp` is a timestamp the caller trusted before (a
/// replica's current state): it is loaded first, so the TUF client's
/// rollback checks apply to the new one (if it no longer verifies, for
/// example after a key rotation, it is ignored, as a client ignores a bad
/// cached file).
///
/// The export walks the origin's files with this to choose what goes into
/// a bundle; the import walks the bundle's.
pub fn walk(
    now: OffsetDateTime,
    previous_timestamp: Option<&[u8]>,
    fetch: &mut dyn FnMut(&str) -> Option<Arc<[u8]>>,
) -> Result<Walked> {
    let mut files: Vec<(String, Arc<[u8]>)> = Vec::new();
    // Every file read is recorded, in order.
    let mut try_get = |path: String| -> Option<Arc<[u8]>> {
        let bytes = fetch(&path)?;
        files.push((path, bytes.clone()));
        Some(bytes)
    };
    let first = try_get("metadata/1.root.json".into())
        .ok_or_else(|| missing("metadata/1.root.json", "the root chain starts at version 1"))?;
    let mut trusted = TrustedSet::new(&first, now)?;
    // §5.3: every newer root, in order, until one is missing.
    loop {
        let next = trusted.root().version.saturating_add(1);
        let Some(bytes) = try_get(format!("metadata/{next}.root.json")) else {
            break;
        };
        trusted.update_root(&bytes)?;
    }
    let mut get = |path: String, why: &str| -> Result<Arc<[u8]>> {
        let p = path.clone();
        try_get(path).ok_or_else(|| missing(&p, why))
    };
    if let Some(previous) = previous_timestamp {
        // Loaded like a cached timestamp: only for the rollback checks.
        let _ = trusted.update_timestamp(previous);
    }
    let timestamp = get("metadata/timestamp.json".into(), "every bundle has one")?;
    trusted.update_timestamp(&timestamp)?;
    let consistent = trusted.consistent_snapshot();
    let snapshot_version = trusted
        .timestamp()
        .map(|t| t.signed().snapshot_meta().version)
        .unwrap_or_default();
    let snapshot_path = format!(
        "metadata/{}",
        MetadataFile::Snapshot {
            version: snapshot_version
        }
        .remote_name(consistent)
    );
    let snapshot = get(snapshot_path, "the timestamp lists it")?;
    trusted.update_snapshot(&snapshot, false)?;
    let role_path = |trusted: &TrustedSet, role: &RoleName| -> Result<String> {
        let version = trusted
            .snapshot()
            .and_then(|s| s.signed().role_meta(role.as_str()).map(|m| m.version))
            .ok_or_else(|| Error::Entry {
                path: format!("metadata/<version>.{}.json", role.as_str()),
                problem: "the role is delegated but the snapshot does not list it".into(),
            })?;
        Ok(format!(
            "metadata/{}",
            MetadataFile::Targets {
                role: role.clone(),
                version
            }
            .remote_name(consistent)
        ))
    };
    let targets_role = RoleName::new("targets");
    let path = role_path(&trusted, &targets_role)?;
    let targets = get(path, "the snapshot lists it")?;
    trusted.update_targets(&targets)?;

    // Delegated roles, one level of the delegation tree at a time,
    // verified on several threads.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut loaded: Vec<RoleName> = vec![targets_role];
    let mut seen: BTreeSet<RoleName> = loaded.iter().cloned().collect();
    let mut level = loaded.clone();
    while !level.is_empty() {
        let mut items: Vec<(RoleName, RoleName, Arc<[u8]>)> = Vec::new();
        for delegator in &level {
            let Some(d) = trusted
                .targets(delegator.as_str())
                .and_then(|t| t.signed().delegations.clone())
            else {
                continue;
            };
            let mut children: Vec<RoleName> =
                d.roles.iter().flatten().map(|r| r.name.clone()).collect();
            if let Some(s) = &d.succinct_roles {
                children.extend(s.bin_names());
            }
            for child in children {
                if !seen.insert(child.clone()) {
                    continue;
                }
                let path = role_path(&trusted, &child)?;
                let bytes = get(path, "a targets role delegates to it")?;
                items.push((child, delegator.clone(), bytes));
            }
        }
        let refs: Vec<(&str, &str, &[u8])> = items
            .iter()
            .map(|(r, d, b)| (r.as_str(), d.as_str(), &**b))
            .collect();
        for result in trusted.update_delegated_targets_batch(&refs, threads) {
            result?;
        }
        level = items.into_iter().map(|(r, _, _)| r).collect();
        loaded.extend(level.iter().cloned());
    }

    // Target files, each checked against its listing.
    let mut targets_seen = BTreeSet::new();
    for role in &loaded {
        let Some(t) = trusted.targets(role.as_str()) else {
            continue;
        };
        for (target_path, target_file) in &t.signed().targets {
            let path = format!(
                "targets/{}",
                target_remote_name(target_path, target_file, consistent)
            );
            if !targets_seen.insert(path.clone()) {
                continue;
            }
            let bytes = get(path, "a targets role lists it")?;
            verify_target(target_file, target_path, &bytes)?;
        }
    }
    Ok(Walked { files, trusted })
}

fn missing(path: &str, why: &str) -> Error {
    Error::Entry {
        path: path.to_owned(),
        problem: format!("missing ({why})"),
    }
}

/// What an importer already trusts.
#[derive(Clone, Copy, Debug)]
pub struct Anchor<'a> {
    /// The root pinned out of band (any version): the bundle's root of the
    /// same version must be exactly these bytes, and the bundle must not
    /// stop at an older root.
    pub pinned_root: &'a [u8],
    /// The state imported before (a replica's current one), if any: the
    /// bundle must not be older (root, timestamp, snapshot versions), and
    /// a bundle of the same timestamp version must be the same bundle.
    pub previous: Option<&'a VerifiedBundle>,
}

/// A bundle whose every byte was verified: only [`verify`] makes one.
#[derive(Debug)]
pub struct VerifiedBundle {
    manifest: Manifest,
    files: BTreeMap<String, Arc<[u8]>>,
    targets: BTreeMap<String, Arc<[u8]>>,
    trusted: TrustedSet,
}

impl VerifiedBundle {
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every file by repository path (`metadata/...`, `targets/...`): what
    /// a replica serves.
    pub fn files(&self) -> &BTreeMap<String, Arc<[u8]>> {
        &self.files
    }

    /// Every target file by target path (`org/namespaces.json`,
    /// `namespaces/<ns>/trust.json`, ...): what a verifier decides with.
    pub fn targets(&self) -> &BTreeMap<String, Arc<[u8]>> {
        &self.targets
    }

    /// The verified metadata.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The bytes of the newest root (what a verifier stores as its trusted
    /// root after using the bundle).
    pub fn root(&self) -> Option<&Arc<[u8]>> {
        self.files.get(&format!(
            "metadata/{}.root.json",
            self.manifest.root_version
        ))
    }

    /// The bundle's timestamp (the bundle edition).
    pub fn timestamp(&self) -> Option<&Arc<[u8]>> {
        self.files.get("metadata/timestamp.json")
    }

    /// End of the bundle's validity window.
    pub fn expires(&self) -> OffsetDateTime {
        self.manifest.expires.time()
    }
}

/// Reads and verifies a bundle: [`read_bundle`] then [`verify`].
pub fn open_bundle(
    input: &mut dyn std::io::Read,
    anchor: Anchor<'_>,
    now: OffsetDateTime,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifiedBundle> {
    let raw = read_bundle(input, progress)?;
    verify(raw, anchor, now)
}

/// Verifies a bundle read by [`read_bundle`] against `anchor` at `now`:
///
/// 1. the window: `now` before the manifest's `expires`;
/// 2. [`walk`] over the bundle's entries (policy's TUF client checks, the
///    previous state's timestamp loaded first for rollback);
/// 3. every entry was reached by the walk (nothing unverified rides along);
/// 4. the pinned root, and the previous state's newest root, are in the
///    bundle's chain byte for byte; no version goes back;
/// 5. the manifest is signed by a threshold of the timestamp role's keys
///    of the newest root, and names exactly the verified root, timestamp
///    (version and SHA-256), snapshot version and window.
pub fn verify(raw: RawBundle, anchor: Anchor<'_>, now: OffsetDateTime) -> Result<VerifiedBundle> {
    let RawBundle { manifest, files } = raw;
    if manifest.signed.expires.is_expired(now) {
        return Err(Error::Expired {
            expires: manifest.signed.expires.to_string(),
            now: keyshare_policy::datetime::Expires::new(now).to_string(),
        });
    }
    let previous_timestamp = anchor
        .previous
        .and_then(|p| p.timestamp())
        .map(|t| t.to_vec());
    let walked = walk(now, previous_timestamp.as_deref(), &mut |path| {
        files.get(path).cloned()
    })?;
    let reached: BTreeSet<&str> = walked.files.iter().map(|(p, _)| p.as_str()).collect();
    if let Some(extra) = files.keys().find(|p| !reached.contains(p.as_str())) {
        return Err(Error::Entry {
            path: extra.clone(),
            problem: "not part of the verified repository (nothing in the metadata lists it)"
                .into(),
        });
    }
    let trusted = walked.trusted;
    let root_version = trusted.root().version;
    let timestamp = trusted
        .timestamp()
        .ok_or_else(|| Error::Anchor("no timestamp was verified".into()))?;
    let timestamp_version = timestamp.signed().version;
    let snapshot_version = trusted
        .snapshot()
        .map(|s| s.signed().version)
        .unwrap_or_default();

    // Anchors: the pinned root and the previous state.
    let pinned = Envelope::<Root>::parse("pinned root", anchor.pinned_root)?;
    check_root_in_chain(&files, pinned.signed.version, anchor.pinned_root, "pinned")?;
    if let Some(prev) = anchor.previous {
        let have = prev.manifest();
        if root_version < have.root_version {
            return Err(Error::Rollback {
                what: "root",
                bundle: root_version,
                have: have.root_version,
            });
        }
        if let Some(prev_root) = prev.root() {
            check_root_in_chain(&files, have.root_version, prev_root, "previously imported")?;
        }
        if timestamp_version < have.timestamp_version {
            return Err(Error::Rollback {
                what: "timestamp",
                bundle: timestamp_version,
                have: have.timestamp_version,
            });
        }
        if snapshot_version < have.snapshot_version {
            return Err(Error::Rollback {
                what: "snapshot",
                bundle: snapshot_version,
                have: have.snapshot_version,
            });
        }
        if timestamp_version == have.timestamp_version
            && files.get("metadata/timestamp.json").map(|b| &**b) != prev.timestamp().map(|b| &**b)
        {
            return Err(Error::Anchor(format!(
                "timestamp version {timestamp_version} is already imported with other content"
            )));
        }
    }

    // The manifest: signed by the timestamp role, naming what was verified.
    Authority::from_root(trusted.root(), "timestamp")
        .and_then(|a| a.check("timestamp", &manifest))
        .map_err(Error::Signature)?;
    let m = &manifest.signed;
    let timestamp_sha256 = files
        .get("metadata/timestamp.json")
        .map(|b| keyshare_policy::hash::sha256_hex(b))
        .unwrap_or_default();
    let mismatch = |field: &str, says: String, verified: String| {
        Err(Error::Manifest(format!(
            "{field} is {says} but the verified metadata has {verified}"
        )))
    };
    if m.root_version != root_version {
        return mismatch(
            "root_version",
            m.root_version.to_string(),
            root_version.to_string(),
        );
    }
    if m.timestamp_version != timestamp_version {
        return mismatch(
            "timestamp_version",
            m.timestamp_version.to_string(),
            timestamp_version.to_string(),
        );
    }
    if m.snapshot_version != snapshot_version {
        return mismatch(
            "snapshot_version",
            m.snapshot_version.to_string(),
            snapshot_version.to_string(),
        );
    }
    if m.timestamp_sha256 != timestamp_sha256 {
        return mismatch(
            "timestamp_sha256",
            m.timestamp_sha256.clone(),
            timestamp_sha256,
        );
    }
    if m.expires != timestamp.signed().expires {
        return mismatch(
            "expires",
            m.expires.to_string(),
            timestamp.signed().expires.to_string(),
        );
    }

    let mut targets = BTreeMap::new();
    let consistent = trusted.consistent_snapshot();
    let mut roles: Vec<&str> = vec!["targets"];
    let delegated: Vec<String> = trusted_role_names(&trusted);
    roles.extend(delegated.iter().map(String::as_str));
    for role in roles {
        if let Some(t) = trusted.targets(role) {
            for (target_path, target_file) in &t.signed().targets {
                let path = format!(
                    "targets/{}",
                    target_remote_name(target_path, target_file, consistent)
                );
                if let Some(bytes) = files.get(&path) {
                    targets
                        .entry(target_path.clone())
                        .or_insert_with(|| bytes.clone());
                }
            }
        }
    }
    Ok(VerifiedBundle {
        manifest: manifest.signed,
        files,
        targets,
        trusted,
    })
}

/// Names of every loaded delegated role (from the snapshot's listing).
fn trusted_role_names(trusted: &TrustedSet) -> Vec<String> {
    trusted
        .snapshot()
        .map(|s| {
            s.signed()
                .meta
                .keys()
                .filter_map(|k| k.strip_suffix(".json"))
                .filter(|r| *r != "targets" && trusted.targets(r).is_some())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn check_root_in_chain(
    files: &BTreeMap<String, Arc<[u8]>>,
    version: u64,
    expected: &[u8],
    which: &str,
) -> Result<()> {
    match files.get(&format!("metadata/{version}.root.json")) {
        Some(b) if **b == *expected => Ok(()),
        Some(_) => Err(Error::Anchor(format!(
            "its root version {version} is not the {which} root: the bundle is not from this organization's repository"
        ))),
        None => Err(Error::Anchor(format!(
            "it has no root version {version} (the {which} root): the bundle is older than that root, or from another repository"
        ))),
    }
}
