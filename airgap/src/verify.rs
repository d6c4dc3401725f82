//! Verification: the manifest's signature as soon as the root chain at the
//! front of the bundle has been read, then policy's TUF client checks over
//! the bundle's files, read back one at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

use time::OffsetDateTime;

use keyshare_policy::client::{verify_target, MetadataFile, Response, Step, TrustedSet, Walk};
use keyshare_policy::layout::{target_remote_name, TARGETS_DIR};
use keyshare_policy::metadata::{Envelope, RoleName, Root};
use keyshare_policy::verify::Authority;

use crate::format::{Layout, Reader, Source, SourceReader, MAX_ENTRY_BYTES};
use crate::manifest::{Entry, Manifest};
use crate::{Error, Result};

/// The files of one consistent repository state, verified by
/// [`TrustedSet`] as a TUF client verifies them, in the order a client
/// needs them: roots from version 1, timestamp, snapshot, top-level
/// targets, delegated roles level by level, then target files.
#[derive(Debug)]
pub struct Walked {
    /// Repository paths of the files read, in order.
    pub paths: Vec<String>,
    /// The trusted metadata.
    pub trusted: TrustedSet,
}

/// Where [`walk`] gets a file by repository path: `Ok(None)` when there is
/// none.
pub type Fetch<'a> = dyn FnMut(&str) -> Result<Option<Arc<[u8]>>> + 'a;

/// Most bytes of delegated roles verified in one batch (the bytes of one
/// batch are held at once).
const BATCH_BYTES: usize = MAX_ENTRY_BYTES as usize;

/// Runs policy's TUF client checks ([`TrustedSet`], in the order of the
/// client workflow, §5.3–5.6) over the files `fetch` gives by repository
/// path (`metadata/1.root.json`, ...; `Ok(None)` when there is none),
/// starting from root version 1, and loads every targets role the
/// metadata delegates to (policy's [`Walk`]: each role once, level by
/// level; a delegated role the snapshot does not list is an error) and
/// every target file they list (checked with [`verify_target`]). Files are
/// not kept: each is dropped once verified (delegated roles are verified in
/// batches of at most 16 MiB).
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
    fetch: &mut Fetch<'_>,
) -> Result<Walked> {
    let mut paths: Vec<String> = Vec::new();
    // Every file read is recorded, in order.
    let mut try_get = |path: String| -> Result<Option<Arc<[u8]>>> {
        let bytes = fetch(&path)?;
        if bytes.is_some() {
            paths.push(path);
        }
        Ok(bytes)
    };
    let first = try_get("metadata/1.root.json".into())?
        .ok_or_else(|| missing("metadata/1.root.json", "the root chain starts at version 1"))?;
    let mut trusted = TrustedSet::new(&first, now)?;
    drop(first);
    // §5.3: every newer root, in order, until one is missing.
    loop {
        let next = trusted.root().version.saturating_add(1);
        let Some(bytes) = try_get(format!("metadata/{next}.root.json"))? else {
            break;
        };
        trusted.update_root(&bytes)?;
    }
    let mut get = |path: String, why: &str| -> Result<Arc<[u8]>> {
        let p = path.clone();
        try_get(path)?.ok_or_else(|| missing(&p, why))
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
    drop(snapshot);
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
    let targets_role = RoleName::targets();
    let path = role_path(&trusted, &targets_role)?;
    let targets = get(path, "the snapshot lists it")?;
    trusted.update_targets(&targets)?;
    drop(targets);

    // Every delegated role, one level of the delegation graph at a time
    // (policy's walk: each role once, only roles the snapshot lists),
    // verified on several threads, in batches of bounded size.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let loaded = {
        let mut walk = Walk::new(&mut trusted, threads)?.batch_bytes(BATCH_BYTES);
        loop {
            match walk.poll()? {
                Step::Fetch(request) => {
                    // No cache here: every role comes from the files.
                    let response = if request.is_local() {
                        Response::NotFound
                    } else {
                        let path = format!("metadata/{}", request.remote_name());
                        Response::Bytes(get(path, "a targets role delegates to it")?.to_vec())
                    };
                    walk.answer(response);
                }
                // Verified: the bytes are dropped.
                Step::Cache(_) => {}
                Step::Done(roles) => break roles,
            }
        }
    };

    // Target files, each checked against its listing.
    let mut targets_seen = BTreeSet::new();
    for role in &loaded {
        let Some(t) = trusted.targets(role.as_str()) else {
            continue;
        };
        for (target_path, target_file) in &t.signed().targets {
            let path = format!(
                "{TARGETS_DIR}/{}",
                target_remote_name(target_path, target_file, consistent)
            );
            if !targets_seen.insert(path.clone()) {
                continue;
            }
            let bytes = get(path, "a targets role lists it")?;
            verify_target(target_file, target_path, &bytes)?;
        }
    }
    Ok(Walked { paths, trusted })
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

/// A bundle read through once by [`read_bundle`]: the container and every
/// entry's length and SHA-256 checked against the manifest, the root chain
/// at its front verified from version 1 and holding the pinned root, and
/// the manifest signed by that chain's timestamp role. Only
/// [`read_bundle`] makes one; [`verify`] finishes the checks.
#[derive(Debug)]
pub struct RawBundle {
    manifest: Manifest,
    layout: Layout,
}

impl RawBundle {
    /// The manifest (its signature verified).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// Reads a bundle from `input` in one pass, with bounded memory, copying
/// every byte to `copy` (the file an importer verifies and keeps, or
/// [`io::sink`] when the input can be read again):
///
/// 1. the header: magic line, manifest (at most
///    [`crate::MAX_MANIFEST_BYTES`]), whose entries may claim at most
///    [`crate::MAX_ENTRY_BYTES`] each and [`crate::MAX_BUNDLE_BYTES`] in
///    all, checked before anything is read for them;
/// 2. the root chain, which is at the front of every bundle: root 1,
///    checked by itself, then each next root by the one before (policy's
///    [`TrustedSet`]), the root at the pinned root's version being the
///    pinned root byte for byte;
/// 3. the manifest's signature, by a threshold of the timestamp keys of
///    the chain's newest root, which must be the manifest's `root_version`;
/// 4. every other entry, streamed, hashed and refused at its first
///    missing byte or a SHA-256 that differs from the manifest's; nothing
///    after the last one.
///
/// So an unsigned or forged bundle is refused after its roots, whatever
/// it claims to hold. `progress(done, total)` is called after each entry.
pub fn read_bundle(
    input: &mut dyn Read,
    copy: &mut dyn Write,
    pinned_root: &[u8],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RawBundle> {
    let pinned = Envelope::<Root>::parse("pinned root", pinned_root)?;
    let pinned_version = pinned.signed.version;
    let mut reader = Reader::open(input, copy, progress)?;
    // Expiry plays no part in chaining roots; the window is `verify`'s.
    let created = reader.manifest().signed.created.time();
    let mut chain: Option<TrustedSet> = None;
    loop {
        let next = chain
            .as_ref()
            .map_or(1, |t| t.root().version.saturating_add(1));
        let is_next_root = reader
            .peek()
            .is_some_and(|e| e.path == format!("metadata/{next}.root.json"));
        if !is_next_root {
            break;
        }
        let bytes = reader.read_entry()?;
        match chain.as_mut() {
            None => chain = Some(TrustedSet::new(&bytes, created)?),
            Some(trusted) => {
                trusted.update_root(&bytes)?;
            }
        }
        if next == pinned_version && bytes != pinned_root {
            return Err(not_the_root(next, "pinned"));
        }
    }
    let Some(chain) = chain else {
        return Err(missing(
            "metadata/1.root.json",
            "a bundle starts with its root chain, from version 1",
        ));
    };
    let newest = chain.root().version;
    if newest < pinned_version {
        return Err(no_such_root(pinned_version, "pinned"));
    }
    let manifest = reader.manifest();
    if manifest.signed.root_version != newest {
        return Err(Error::Manifest(format!(
            "root_version is {} but the root chain at the front of the bundle ends at version {newest}",
            manifest.signed.root_version
        )));
    }
    Authority::from_root(chain.root(), "timestamp")
        .and_then(|a| a.check("timestamp", manifest))
        .map_err(Error::Signature)?;
    drop(chain);
    let (manifest, layout) = reader.finish()?;
    Ok(RawBundle {
        manifest: manifest.signed,
        layout,
    })
}

/// A bundle whose every byte was verified: only [`verify`] makes one. It
/// holds the manifest, the verified metadata and where each file is; the
/// files themselves stay in the [`Source`] and are read back (checked
/// against the manifest again) when asked for.
#[derive(Debug)]
pub struct VerifiedBundle {
    manifest: Manifest,
    layout: Layout,
    source: Arc<dyn Source>,
    targets: BTreeMap<String, String>,
    trusted: TrustedSet,
    root: Arc<[u8]>,
    timestamp: Arc<[u8]>,
}

impl VerifiedBundle {
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every file's repository path (`metadata/...`, `targets/...`), in
    /// bundle order: what a replica serves.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.manifest.entries.iter().map(|e| e.path.as_str())
    }

    /// The manifest's entry for the file at `path` (its length and
    /// SHA-256), without reading it.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.layout.find(&self.manifest, path).map(|(e, _)| e)
    }

    /// The bytes of the file at `path`, read from the source and checked
    /// against the manifest again; `None` when the bundle has none.
    pub fn file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.layout.read(&self.manifest, &*self.source, path)
    }

    /// Every target file's repository path by target path
    /// (`org/namespaces.json`, `namespaces/<ns>/trust.json`, ...): what a
    /// verifier decides with ([`Self::target`] reads one).
    pub fn targets(&self) -> &BTreeMap<String, String> {
        &self.targets
    }

    /// The bytes of the target file at `target_path`.
    pub fn target(&self, target_path: &str) -> Result<Option<Vec<u8>>> {
        match self.targets.get(target_path) {
            Some(path) => self.file(path),
            None => Ok(None),
        }
    }

    /// The verified metadata.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The bytes of the newest root (what a verifier stores as its trusted
    /// root after using the bundle).
    pub fn root(&self) -> Option<&Arc<[u8]>> {
        Some(&self.root)
    }

    /// The bundle's timestamp (the bundle edition).
    pub fn timestamp(&self) -> Option<&Arc<[u8]>> {
        Some(&self.timestamp)
    }

    /// End of the bundle's validity window.
    pub fn expires(&self) -> OffsetDateTime {
        self.manifest.expires.time()
    }
}

/// Reads and verifies the bundle in `source` (a bundle file, or its bytes
/// in a `Vec<u8>`): [`read_bundle`] through it once, then [`verify`],
/// which reads the entries back from it. Memory stays bounded whatever
/// the file claims (see [`read_bundle`]).
pub fn open_bundle(
    source: Arc<dyn Source>,
    anchor: Anchor<'_>,
    now: OffsetDateTime,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifiedBundle> {
    let raw = read_bundle(
        &mut SourceReader::new(&*source),
        &mut io::sink(),
        anchor.pinned_root,
        progress,
    )?;
    verify(raw, source, anchor, now)
}

/// Verifies a bundle read by [`read_bundle`] against `anchor` at `now`,
/// reading its entries back from `source` (the bundle `read_bundle` read,
/// or its copy), one at a time, each checked against the manifest again:
///
/// 1. the window: `now` before the manifest's `expires`;
/// 2. [`walk`] over the bundle's entries (policy's TUF client checks, the
///    previous state's timestamp loaded first for rollback);
/// 3. every entry was reached by the walk (nothing unverified rides along);
/// 4. the pinned root, and the previous state's newest root, are in the
///    bundle's chain byte for byte; no version goes back;
/// 5. the manifest (whose signature by the timestamp role of the newest
///    root `read_bundle` checked) names exactly the verified root,
///    timestamp (version and SHA-256), snapshot version and window.
pub fn verify(
    raw: RawBundle,
    source: Arc<dyn Source>,
    anchor: Anchor<'_>,
    now: OffsetDateTime,
) -> Result<VerifiedBundle> {
    let RawBundle { manifest, layout } = raw;
    if manifest.expires.is_expired(now) {
        return Err(Error::Expired {
            expires: manifest.expires.to_string(),
            now: keyshare_policy::datetime::Expires::new(now).to_string(),
        });
    }
    let read = |path: &str| layout.read(&manifest, &*source, path);
    let previous_timestamp = anchor.previous.map(|p| p.timestamp.clone());
    let walked = walk(now, previous_timestamp.as_deref(), &mut |path| {
        Ok(read(path)?.map(Arc::from))
    })?;
    let reached: BTreeSet<&str> = walked.paths.iter().map(String::as_str).collect();
    if let Some(extra) = manifest
        .entries
        .iter()
        .find(|e| !reached.contains(e.path.as_str()))
    {
        return Err(Error::Entry {
            path: extra.path.clone(),
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
    let root: Arc<[u8]> = read(&format!("metadata/{root_version}.root.json"))?
        .ok_or_else(|| no_such_root(root_version, "newest"))?
        .into();
    let timestamp_bytes: Arc<[u8]> = read("metadata/timestamp.json")?
        .ok_or_else(|| missing("metadata/timestamp.json", "every bundle has one"))?
        .into();

    // Anchors: the pinned root and the previous state.
    let pinned = Envelope::<Root>::parse("pinned root", anchor.pinned_root)?;
    check_root_in_chain(&read, pinned.signed.version, anchor.pinned_root, "pinned")?;
    if let Some(prev) = anchor.previous {
        let have = prev.manifest();
        if root_version < have.root_version {
            return Err(Error::Rollback {
                what: "root",
                bundle: root_version,
                have: have.root_version,
            });
        }
        check_root_in_chain(&read, have.root_version, &prev.root, "previously imported")?;
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
        if timestamp_version == have.timestamp_version && timestamp_bytes != prev.timestamp {
            return Err(Error::Anchor(format!(
                "timestamp version {timestamp_version} is already imported with other content"
            )));
        }
    }

    // The manifest (signed by the timestamp role: `read_bundle`) names
    // what was verified.
    let m = &manifest;
    let timestamp_sha256 = keyshare_policy::hash::sha256_hex(&timestamp_bytes);
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
    let mut roles: Vec<&str> = vec![RoleName::TARGETS];
    let delegated: Vec<String> = trusted_role_names(&trusted);
    roles.extend(delegated.iter().map(String::as_str));
    for role in roles {
        if let Some(t) = trusted.targets(role) {
            for (target_path, target_file) in &t.signed().targets {
                let path = format!(
                    "{TARGETS_DIR}/{}",
                    target_remote_name(target_path, target_file, consistent)
                );
                if layout.find(&manifest, &path).is_some() {
                    targets.entry(target_path.clone()).or_insert(path);
                }
            }
        }
    }
    Ok(VerifiedBundle {
        manifest,
        layout,
        source,
        targets,
        trusted,
        root,
        timestamp: timestamp_bytes,
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
                .filter(|r| *r != RoleName::TARGETS && trusted.targets(r).is_some())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn check_root_in_chain(
    read: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
    version: u64,
    expected: &[u8],
    which: &str,
) -> Result<()> {
    match read(&format!("metadata/{version}.root.json"))? {
        Some(b) if *b == *expected => Ok(()),
        Some(_) => Err(not_the_root(version, which)),
        None => Err(no_such_root(version, which)),
    }
}

fn not_the_root(version: u64, which: &str) -> Error {
    Error::Anchor(format!(
        "its root version {version} is not the {which} root: the bundle is not from this organization's repository"
    ))
}

fn no_such_root(version: u64, which: &str) -> Error {
    Error::Anchor(format!(
        "it has no root version {version} (the {which} root): the bundle is older than that root, or from another repository"
    ))
}
