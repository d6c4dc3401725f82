//! A repository rewritten into the layout keyshare-server published before
//! trust documents were listed in the hashed bins: bin `bins-xx`
//! delegating `namespaces/<ns>/*` to a role named like the namespace,
//! signed by the namespaces key, that lists `namespaces/<ns>/trust.json`.
//! For the tests of the migration to the current layout.
//!
//! Also [`UNDO_SCHEMA_11`], for the tests that take a store back to an
//! older schema version.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use time::OffsetDateTime;

use keyshare_policy::metadata::{DelegatedRole, RoleName, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{File, Options, Published, Repository, SharedSigner};

/// The online keys of the repository being rewritten.
#[derive(Clone, Debug)]
pub struct LegacyKeys {
    /// Top-level targets and the bins.
    pub targets: SharedSigner,
    /// Snapshot.
    pub snapshot: SharedSigner,
    /// Timestamp.
    pub timestamp: SharedSigner,
    /// The namespace roles.
    pub namespaces: SharedSigner,
}

/// Rewrites `published` (a repository in the current layout) so that
/// every trust document a bin lists moves to a namespace role delegated
/// from that bin, as earlier versions published it, and returns the new
/// files (the bins, the namespace roles, snapshot, timestamp). The new
/// timestamp carries the same extension fields (the audit head) as the
/// current one, so the audit chain still agrees with it.
pub fn into_namespace_roles(
    published: &Published<'_>,
    keys: &LegacyKeys,
    now: OffsetDateTime,
) -> Vec<File> {
    let mut signers: BTreeMap<RoleName, Vec<SharedSigner>> = BTreeMap::from([
        (RoleName::targets(), vec![keys.targets.clone()]),
        (
            RoleName::new(RoleName::SNAPSHOT),
            vec![keys.snapshot.clone()],
        ),
        (
            RoleName::new(RoleName::TIMESTAMP),
            vec![keys.timestamp.clone()],
        ),
    ]);
    let probe = Repository::restore(published, signers.clone(), Options::default())
        .expect("the published repository restores");
    let bins = probe
        .targets(RoleName::TARGETS)
        .and_then(|t| t.signed.delegations.clone())
        .and_then(|d| d.succinct_roles)
        .expect("targets delegates to hashed bins");
    for bin in bins.bin_names() {
        signers.insert(bin, vec![keys.targets.clone()]);
    }
    let fields = probe
        .timestamp()
        .expect("a timestamp")
        .signed
        .unrecognized
        .clone();
    let mut repo =
        Repository::restore(published, signers, Options::default()).expect("restores again");
    let key = &keys.namespaces;
    for bin in bins.bin_names() {
        let paths: Vec<String> = repo
            .staged(bin.as_str())
            .map(|t| t.targets.keys().cloned().collect())
            .unwrap_or_default();
        for path in paths {
            let Some(ns) = path
                .strip_prefix("namespaces/")
                .and_then(|p| p.strip_suffix("/trust.json"))
            else {
                continue;
            };
            repo.delegate(
                bin.as_str(),
                DelegatedRole {
                    name: RoleName::new(ns),
                    keyids: vec![key.key_id().clone()],
                    threshold: NonZeroU32::MIN,
                    terminating: true,
                    paths: Some(vec![PathPattern::new(&format!("namespaces/{ns}/*"))]),
                    path_hash_prefixes: None,
                    unrecognized: Unrecognized::new(),
                },
                vec![(key.key_id().clone(), key.public_key().clone())],
                vec![key.clone()],
                now,
            )
            .expect("delegates the namespace role");
            assert!(repo
                .copy_target(bin.as_str(), ns, &path)
                .expect("lists the document in the namespace role"));
            repo.remove_target(bin.as_str(), &path)
                .expect("removes the document from the bin");
        }
    }
    repo.commit_with(now, |_| Ok::<_, keyshare_policy::Error>(fields.clone()))
        .expect("signs the earlier layout")
}

/// SQL that takes a store of schema version 11 back to version 10: which
/// published file is current and when the others were superseded go back
/// into `published_files.superseded_at`, with version 2's indexes and
/// triggers, as a store written by an older build holds them.
pub const UNDO_SCHEMA_11: &str = "
    DROP TRIGGER published_files_no_update;
    DROP TRIGGER published_files_keep_current;
    ALTER TABLE published_files ADD COLUMN superseded_at TEXT;
    UPDATE published_files SET superseded_at =
        (SELECT s.superseded_at FROM published_superseded s WHERE s.id = published_files.id);
    DROP TABLE published_superseded;
    DROP TABLE published_current;
    CREATE INDEX published_files_current ON published_files(lineage) WHERE superseded_at IS NULL;
    CREATE INDEX published_files_superseded ON published_files(superseded_at)
        WHERE superseded_at IS NOT NULL;
    CREATE TRIGGER published_files_no_update BEFORE UPDATE ON published_files
    WHEN NEW.id IS NOT OLD.id OR NEW.path IS NOT OLD.path OR NEW.role IS NOT OLD.role
      OR NEW.version IS NOT OLD.version OR NEW.bytes IS NOT OLD.bytes
      OR NEW.sha256 IS NOT OLD.sha256 OR NEW.immutable IS NOT OLD.immutable
      OR NEW.created_at IS NOT OLD.created_at OR NEW.lineage IS NOT OLD.lineage
    BEGIN SELECT RAISE(ABORT, 'published files are immutable'); END;
    CREATE TRIGGER published_files_keep_current BEFORE DELETE ON published_files
    WHEN OLD.superseded_at IS NULL
    BEGIN SELECT RAISE(ABORT, 'current published files are never deleted'); END;
    DELETE FROM schema_version WHERE version > 10;
";
