//! The walk of every delegated role ([`Walk`]): the order of requests,
//! the cache, and what a hostile repository cannot make it do (loop on a
//! delegation cycle, enumerate 2³² hashed bins, load a role the snapshot
//! does not list, keep a tampered role, hold unbounded bytes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{corrupt_signature, Client, Repo};
use keyshare_policy::client::{CacheOp, Lookup, Request, Response, Source, Step, Updater, Walk};
use keyshare_policy::ids::KeyId;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Delegations, RoleName};
use keyshare_policy::sign::Signer as _;
use keyshare_policy::Error;

fn names(roles: &[RoleName]) -> Vec<&str> {
    roles.iter().map(RoleName::as_str).collect()
}

/// What a walk did: every step, in order (`L name`/`R name` for a local or
/// remote request, `store name` for a cache write).
#[derive(Debug, Default)]
struct Trace {
    steps: Vec<String>,
}

impl Trace {
    fn requests(&self, prefix: &str) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| s.strip_prefix(prefix))
            .collect()
    }
}

/// Drives `walk` against `repo`'s files and `client`'s cache, applying
/// cache writes to the cache.
fn drive(
    walk: &mut Walk<'_>,
    client: &mut Client,
    files: &BTreeMap<String, Vec<u8>>,
    trace: &mut Trace,
) -> Result<Vec<RoleName>, Error> {
    loop {
        match walk.poll()? {
            Step::Fetch(request) => {
                let response = serve(client, files, trace, &request);
                walk.answer(response);
            }
            Step::Cache(op) => {
                trace.steps.push(format!("store {}", op.name()));
                if let CacheOp::Store { name, bytes } = op {
                    client.cache.insert(name, bytes);
                }
            }
            Step::Done(roles) => return Ok(roles),
        }
    }
}

fn serve(
    client: &Client,
    files: &BTreeMap<String, Vec<u8>>,
    trace: &mut Trace,
    request: &Request,
) -> Response {
    let name = request.file_name();
    let (tag, from) = match request.source() {
        Source::Local => ("L ", &client.cache),
        Source::Remote => ("R ", files),
    };
    trace.steps.push(format!("{tag}{name}"));
    from.get(&name).cloned().into()
}

/// Refreshes, then walks with `setup` applied to the walk.
fn walk_with(
    client: &mut Client,
    repo: &Repo,
    setup: impl FnOnce(Walk<'_>) -> Walk<'_>,
) -> (Updater, Trace, Result<Vec<RoleName>, Error>) {
    let mut updater = client.refresh_ok(repo);
    let mut trace = Trace::default();
    let result = {
        let mut walk = setup(updater.walk(2).unwrap());
        drive(&mut walk, client, &repo.files, &mut trace)
    };
    (updater, trace, result)
}

fn walk(client: &mut Client, repo: &Repo) -> (Trace, Result<Vec<RoleName>, Error>) {
    let (_, trace, result) = walk_with(client, repo, |w| w);
    (trace, result)
}

/// targets → a, b; a → c.
fn tree() -> Repo {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "a", &["a/*", "a/*/*"], false);
    repo.delegate("targets", "b", &["b/*"], false);
    repo.delegate("a", "c", &["a/c/*"], false);
    repo.add_target("c", "a/c/doc", b"c");
    repo.publish();
    repo
}

#[test]
fn walk_loads_every_level_from_the_cache_first_then_the_repository() {
    let repo = tree();
    let mut client = Client::new(&repo);
    let (trace, roles) = walk(&mut client, &repo);
    assert_eq!(names(&roles.unwrap()), ["targets", "a", "b", "c"]);
    assert_eq!(
        trace.steps,
        [
            "L a.json",
            "L b.json",
            "R 1.a.json",
            "R 1.b.json",
            "store a.json",
            "store b.json",
            "L c.json",
            "R 1.c.json",
            "store c.json",
        ]
    );
    // With the cache filled, nothing is fetched or written again.
    let (trace, roles) = walk(&mut client, &repo);
    assert_eq!(names(&roles.unwrap()), ["targets", "a", "b", "c"]);
    assert_eq!(trace.steps, ["L a.json", "L b.json", "L c.json"]);
}

#[test]
fn a_search_after_the_walk_asks_for_nothing_more() {
    let repo = tree();
    let mut client = Client::new(&repo);
    let (mut updater, _, roles) = walk_with(&mut client, &repo, |w| w);
    roles.unwrap();
    let mut asked = Vec::new();
    let lookup = updater
        .find_target_with("a/c/doc", |r| {
            asked.push(r.file_name());
            Response::NotFound
        })
        .unwrap();
    assert!(
        matches!(&lookup, Lookup::Found { role, .. } if role.as_str() == "c"),
        "{lookup:?}"
    );
    assert!(asked.is_empty(), "{asked:?}");
}

#[test]
fn walk_of_a_delegation_cycle_visits_each_role_once_and_ends() {
    let mut repo = Repo::new(Scheme::Ed25519);
    // a → b → a, a → a, b → c: a cycle, a self-delegation and a way out.
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "b", &["*"], false);
    repo.delegate("a", "a", &["*"], false);
    repo.delegate("b", "a", &["*"], false);
    repo.delegate("b", "c", &["*"], false);
    repo.publish();
    let mut client = Client::new(&repo);
    let (trace, roles) = walk(&mut client, &repo);
    assert_eq!(names(&roles.unwrap()), ["targets", "a", "b", "c"]);
    assert_eq!(
        trace.requests("R "),
        ["1.a.json", "1.b.json", "1.c.json"],
        "each role fetched once"
    );
}

/// targets delegates 2³² hashed bins (TAP 15) of which the repository
/// publishes the first and the last.
fn huge_fan_out() -> Repo {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate_succinct("targets", 1, "bins");
    for (old, new) in [("bins-0", "bins-00000000"), ("bins-1", "bins-ffffffff")] {
        let role = repo.targets.remove(old).unwrap();
        repo.targets.insert(new.to_owned(), role);
        let keys = repo.signers.remove(old).unwrap();
        repo.signers.insert(new.to_owned(), keys);
    }
    let delegations = repo.delegations_of("targets");
    delegations.succinct_roles.as_mut().unwrap().bit_length = 32;
    repo.publish();
    repo
}

#[test]
fn walk_of_two_to_the_32_hashed_bins_stops_at_the_first_bin_the_snapshot_does_not_list() {
    let repo = huge_fan_out();
    let mut client = Client::new(&repo);
    let started = Instant::now();
    let (trace, result) = walk(&mut client, &repo);
    assert_eq!(
        result,
        Err(Error::MissingRole {
            role: RoleName::new("bins-00000001"),
            message: "delegated but not listed in snapshot".into(),
        })
    );
    assert!(trace.steps.is_empty(), "{:?}", trace.steps);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn walk_skipping_unlisted_roles_looks_2_to_the_32_bins_up_in_the_snapshot() {
    let repo = huge_fan_out();
    let mut client = Client::new(&repo);
    let started = Instant::now();
    let (_, trace, roles) = walk_with(&mut client, &repo, |w| w.skip_unlisted());
    assert_eq!(
        names(&roles.unwrap()),
        ["targets", "bins-00000000", "bins-ffffffff"]
    );
    assert_eq!(
        trace.requests("R "),
        ["1.bins-00000000.json", "1.bins-ffffffff.json"]
    );
    // Enumerating 2³² names would take minutes.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_delegated_role_the_snapshot_does_not_list_is_refused_or_skipped_never_fetched() {
    let mut repo = tree();
    repo.snapshot.version += 1;
    repo.timestamp.version += 1;
    repo.publish_targets();
    repo.snapshot.meta.remove("a.json");
    repo.sign_snapshot();
    repo.sign_timestamp();
    let mut client = Client::new(&repo);
    let (trace, result) = walk(&mut client, &repo);
    assert_eq!(
        result,
        Err(Error::MissingRole {
            role: RoleName::new("a"),
            message: "delegated but not listed in snapshot".into(),
        })
    );
    assert!(trace.steps.is_empty(), "{:?}", trace.steps);

    let (_, trace, roles) = walk_with(&mut client, &repo, |w| w.skip_unlisted());
    // a is skipped, and so is c, which only a delegates to.
    assert_eq!(names(&roles.unwrap()), ["targets", "b"]);
    assert_eq!(trace.requests("R "), ["1.b.json"]);
}

#[test]
fn a_delegated_role_missing_from_the_repository_is_unavailable() {
    let mut repo = tree();
    repo.files.remove("1.b.json");
    let mut client = Client::new(&repo);
    let (trace, result) = walk(&mut client, &repo);
    assert_eq!(
        result,
        Err(Error::Unavailable {
            role: RoleName::new("b"),
            file: "1.b.json".into(),
        })
    );
    // Nothing of the failed level is stored, nothing below it asked for.
    assert!(!trace.steps.iter().any(|s| s.starts_with("store")));
    assert!(!trace.steps.iter().any(|s| s.contains("c.json")));
}

#[test]
fn a_tampered_delegated_role_ends_the_walk_and_is_not_stored() {
    let mut repo = tree();
    repo.meta_hashes = false;
    repo.publish();
    let tampered = corrupt_signature(&repo.files["1.b.json"]);
    repo.files.insert("1.b.json".into(), tampered);
    let mut client = Client::new(&repo);
    let (trace, result) = walk(&mut client, &repo);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::BadSignature { role, .. } if role.as_str() == "b"),
        "{err:?}"
    );
    assert_eq!(trace.requests("store "), ["a.json"]);
    assert!(!client.cache.contains_key("b.json"));
}

#[test]
fn a_tampered_cached_role_is_fetched_again_from_the_repository() {
    let repo = tree();
    let mut client = Client::new(&repo);
    walk(&mut client, &repo).1.unwrap();
    let bad = corrupt_signature(&client.cache["a.json"]);
    client.cache.insert("a.json".into(), bad);
    let (trace, roles) = walk(&mut client, &repo);
    assert_eq!(names(&roles.unwrap()), ["targets", "a", "b", "c"]);
    assert_eq!(trace.requests("R "), ["1.a.json"]);
    assert_eq!(client.cache["a.json"], repo.files["1.a.json"]);
}

#[test]
fn walk_verifies_and_releases_answers_once_a_batch_is_full() {
    let repo = tree();
    let mut client = Client::new(&repo);
    // One byte per batch: each fetched role is verified (and handed to the
    // cache) before the next is asked for, so no more than one is held.
    let (_, trace, roles) = walk_with(&mut client, &repo, |w| w.batch_bytes(1));
    roles.unwrap();
    assert_eq!(
        trace.steps,
        [
            "L a.json",
            "L b.json",
            "R 1.a.json",
            "store a.json",
            "R 1.b.json",
            "store b.json",
            "L c.json",
            "R 1.c.json",
            "store c.json",
        ]
    );
}

#[test]
fn pending_lists_the_whole_batch_for_concurrent_fetches() {
    let repo = tree();
    let mut client = Client::new(&repo);
    let mut updater = client.refresh_ok(&repo);
    let mut walk = updater.walk(1).unwrap();
    let mut batches = Vec::new();
    loop {
        match walk.poll().unwrap() {
            Step::Fetch(first) => {
                let pending = walk.pending();
                assert_eq!(pending.first(), Some(&first));
                batches.push(pending.iter().map(Request::file_name).collect::<Vec<_>>());
                let mut trace = Trace::default();
                for request in &pending {
                    let response = serve(&client, &repo.files, &mut trace, request);
                    walk.answer(response);
                }
            }
            Step::Cache(_) => {}
            Step::Done(_) => break,
        }
    }
    assert_eq!(
        batches,
        [
            vec!["a.json", "b.json"],
            vec!["1.a.json", "1.b.json"],
            vec!["c.json"],
            vec!["1.c.json"],
        ]
    );
}

#[test]
fn walk_needs_a_completed_refresh_and_a_pending_request() {
    let repo = tree();
    let mut client = Client::new(&repo);
    let mut fresh = client.updater();
    assert!(matches!(fresh.walk(1), Err(Error::Order(_))));
    let mut updater = client.refresh_ok(&repo);
    let mut walk = updater.walk(1).unwrap();
    // An answer nobody asked for is an error, on every poll.
    walk.answer(Response::NotFound);
    assert!(matches!(walk.poll(), Err(Error::Order(_))));
    assert!(matches!(walk.poll(), Err(Error::Order(_))));
}

/// Refreshes and walks, taking roles over from `earlier` when given.
fn walk_after(
    client: &mut Client,
    repo: &Repo,
    earlier: Option<std::sync::Arc<keyshare_policy::client::EarlierRoles>>,
) -> (Updater, Trace, Result<Vec<RoleName>, Error>) {
    let mut updater = client.refresh_ok(repo);
    if let Some(earlier) = earlier {
        updater.set_earlier_roles(earlier);
    }
    let mut trace = Trace::default();
    let result = {
        let mut walk = updater.walk(2).unwrap();
        drive(&mut walk, client, &repo.files, &mut trace)
    };
    (updater, trace, result)
}

/// A client's first refresh and walk of `repo` (which must succeed), and
/// the roles it verified, for the next walk to take over.
fn first_walk(
    repo: &Repo,
) -> (
    Client,
    std::sync::Arc<keyshare_policy::client::EarlierRoles>,
) {
    let mut client = Client::new(repo);
    let (first, _, result) = walk_after(&mut client, repo, None);
    result.unwrap();
    let earlier = std::sync::Arc::new(first.trusted().earlier_roles());
    (client, earlier)
}

/// Adds a new key to the top-level targets' delegations, which `edit`
/// then gives to some of its roles (the roles themselves stay signed by
/// the old keys).
fn rekey_delegations(repo: &mut Repo, edit: impl FnOnce(&mut Delegations, KeyId)) {
    let new_key = repo.key();
    let d = repo.delegations_of("targets");
    d.keys
        .insert(new_key.key_id().clone(), new_key.public_key().clone());
    edit(d, new_key.key_id().clone());
}

#[test]
fn a_walk_takes_over_the_roles_the_last_one_verified_and_reads_only_what_changed() {
    for hashes in [false, true] {
        let mut repo = tree();
        repo.meta_hashes = hashes;
        repo.publish();
        let mut client = Client::new(&repo);
        let (first, _, result) = walk_after(&mut client, &repo, None);
        assert_eq!(names(&result.unwrap()), ["targets", "a", "b", "c"]);
        let earlier = std::sync::Arc::new(first.trusted().earlier_roles());
        assert_eq!(earlier.len(), 3);

        repo.add_target("b", "b/new", b"new");
        repo.bump_role("b");
        let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
        assert_eq!(names(&result.unwrap()), ["targets", "a", "b", "c"]);
        // Only b, the role that changed, is read (its old copy from the
        // cache is the wrong version; then the repository's).
        let read: Vec<&str> = trace
            .steps
            .iter()
            .filter(|s| s.starts_with("L ") || s.starts_with("R "))
            .map(String::as_str)
            .collect();
        assert!(
            read.iter()
                .all(|s| s.ends_with(" b.json") || s.ends_with(".b.json")),
            "{read:?}"
        );
        assert!(read.iter().any(|s| s.starts_with("R ")), "{read:?}");
        assert!(second
            .trusted()
            .targets("b")
            .unwrap()
            .targets
            .contains_key("b/new"));
        assert!(second.trusted().targets("c").is_some());
    }
}

#[test]
fn a_role_is_not_taken_over_once_its_delegator_gives_it_other_keys() {
    let mut repo = tree();
    let (mut client, earlier) = first_walk(&repo);

    // targets now delegates `a` to a new key; `a` itself is unchanged,
    // still signed by the old one.
    rekey_delegations(&mut repo, |d, key| {
        let a = d
            .roles_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r.name.as_str() == "a")
            .unwrap();
        a.keyids = vec![key];
    });
    repo.bump_role("targets");
    let (_, trace, result) = walk_after(&mut client, &repo, Some(earlier));
    // Not taken over: read, and refused, as a fresh client would.
    assert!(
        trace.steps.iter().any(|s| s.ends_with("a.json")),
        "{:?}",
        trace.steps
    );
    assert!(result.is_err(), "a role signed by keys no longer delegated");
}

#[test]
fn a_role_is_not_taken_over_when_the_snapshot_lists_other_bytes_for_its_version() {
    let mut repo = tree();
    repo.meta_hashes = true;
    repo.publish();
    let (mut client, earlier) = first_walk(&repo);
    // The same version of `b` with other content (a repository that
    // re-signed it without a new version): the snapshot's hash differs.
    repo.add_target("b", "b/other", b"other");
    repo.bump();
    let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
    result.unwrap();
    assert!(
        trace.steps.iter().any(|s| s.ends_with("b.json")),
        "{:?}",
        trace.steps
    );
    assert!(second
        .trusted()
        .targets("b")
        .unwrap()
        .targets
        .contains_key("b/other"));
}

#[test]
fn a_cached_snapshot_is_taken_over_only_as_the_same_file_under_the_root_trusted_now() {
    use keyshare_policy::client::TrustedSet;
    use std::sync::Arc;
    let mut repo = tree();
    repo.meta_hashes = true;
    repo.publish();
    let mut client = Client::new(&repo);
    let (first, _, result) = walk_after(&mut client, &repo, None);
    result.unwrap();
    let earlier = Arc::new(first.trusted().earlier_roles());
    let root = client.cache["root.json"].clone();
    let timestamp = client.cache["timestamp.json"].clone();
    let snapshot = client.cache["snapshot.json"].clone();
    let load = |root_updates: &[&[u8]], bytes: &[u8]| {
        let mut set = TrustedSet::new(&root, client.now).unwrap();
        for update in root_updates {
            set.update_root(update).unwrap();
        }
        set.set_earlier_roles(earlier.clone());
        set.update_timestamp(&timestamp).unwrap();
        let loaded = set.update_snapshot(bytes, true).map(|_| ());
        (set, loaded)
    };

    // The very file: the snapshot that refresh verified, not parsed again.
    let (set, loaded) = load(&[], &snapshot);
    loaded.unwrap();
    assert!(Arc::ptr_eq(
        &set.snapshot_shared().unwrap(),
        &first.trusted().snapshot_shared().unwrap()
    ));

    // Other bytes (a signature changed): parsed and verified, and refused.
    let (_, loaded) = load(&[], &corrupt_signature(&snapshot));
    assert!(
        matches!(
            loaded,
            Err(Error::BadSignature { .. } | Error::ThresholdNotMet { .. })
        ),
        "{loaded:?}"
    );

    // The same file under a newer root that gives snapshot another key:
    // its signatures are checked against that root, and it is refused.
    let new_key = repo.key();
    repo.set_role_keys("snapshot", vec![new_key], 1);
    repo.root.version = 2;
    repo.publish_root();
    let root2 = repo.root_bytes(2);
    let (_, loaded) = load(&[&root2], &snapshot);
    assert!(
        matches!(
            loaded,
            Err(Error::BadSignature { .. } | Error::ThresholdNotMet { .. })
        ),
        "{loaded:?}"
    );
}

/// targets → 8 hashed bins `bin-0` … `bin-7` (one key), a target in each
/// of two bins.
fn binned() -> Repo {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate_succinct("targets", 3, "bin");
    repo.add_target("bin-2", "two", b"2");
    repo.add_target("bin-5", "five", b"5");
    repo.publish();
    repo
}

/// The files a walk read, local or remote (`L name`, `R name`).
fn reads(trace: &Trace) -> Vec<&str> {
    trace
        .steps
        .iter()
        .filter(|s| s.starts_with("L ") || s.starts_with("R "))
        .map(String::as_str)
        .collect()
}

fn bins() -> Vec<String> {
    (0..8).map(|b| format!("bin-{b}")).collect()
}

#[test]
fn unchanged_hashed_bins_are_taken_over_together_and_a_changed_bin_is_read() {
    for hashes in [false, true] {
        let mut repo = binned();
        repo.meta_hashes = hashes;
        repo.publish();
        let mut client = Client::new(&repo);
        let (first, _, result) = walk_after(&mut client, &repo, None);
        assert_eq!(result.unwrap().len(), 9);
        let earlier = std::sync::Arc::new(first.trusted().earlier_roles());
        assert_eq!(earlier.len(), 8);

        repo.add_target("bin-5", "five-more", b"55");
        repo.bump_role("bin-5");
        let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
        let mut roles = names(&result.unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        roles.sort();
        let mut expected = bins();
        expected.push("targets".into());
        assert_eq!(roles, expected);
        // Only bin-5 is read: its cached copy is the old version, then the
        // repository's.
        let read = reads(&trace);
        assert!(read.iter().all(|s| s.ends_with("bin-5.json")), "{read:?}");
        assert!(read.iter().any(|s| s.starts_with("R ")), "{read:?}");
        let trusted = second.trusted();
        assert!(trusted
            .targets("bin-5")
            .unwrap()
            .targets
            .contains_key("five-more"));
        assert!(trusted
            .targets("bin-2")
            .unwrap()
            .targets
            .contains_key("two"));
        for bin in bins() {
            assert!(trusted.contains(&bin, "targets"), "{bin}");
            assert!(trusted.delegated_file(&bin).is_some(), "{bin}");
        }
        // The new bin-5's file is the one recorded, for the next refresh.
        let current = repo.current("bin-5");
        let file = trusted.delegated_file("bin-5").unwrap();
        assert_eq!(file.length, current.len() as u64);
        assert_eq!(file.sha256, keyshare_policy::hash::sha256_hex(&current));

        // And the next refresh takes the new bin-5 over as well.
        let earlier = std::sync::Arc::new(trusted.earlier_roles());
        repo.bump();
        let (_, trace, result) = walk_after(&mut client, &repo, Some(earlier));
        result.unwrap();
        assert_eq!(reads(&trace), Vec::<&str>::new());
    }
}

#[test]
fn a_hashed_bin_whose_snapshot_entry_changed_under_the_same_version_is_read_again() {
    let mut repo = binned();
    repo.meta_hashes = true;
    repo.publish();
    let (mut client, earlier) = first_walk(&repo);
    // bin-2 re-signed with other content under its old version: the
    // snapshot lists another hash and length for it.
    repo.add_target("bin-2", "two-more", b"22");
    repo.bump();
    let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
    result.unwrap();
    let read = reads(&trace);
    assert!(!read.is_empty(), "bin-2 must be read again");
    assert!(read.iter().all(|s| s.ends_with("bin-2.json")), "{read:?}");
    assert!(second
        .trusted()
        .targets("bin-2")
        .unwrap()
        .targets
        .contains_key("two-more"));
}

#[test]
fn no_hashed_bin_is_taken_over_once_targets_gives_the_bins_other_keys() {
    let mut repo = binned();
    let (mut client, earlier) = first_walk(&repo);

    // targets now gives the bins a new key; the bins are unchanged, still
    // signed by the old one.
    rekey_delegations(&mut repo, |d, key| {
        d.succinct_roles.as_mut().unwrap().keyids = vec![key];
    });
    repo.bump_role("targets");
    let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
    // Not taken over: read, and refused, as a fresh client would.
    assert!(
        reads(&trace).iter().any(|s| s.contains("bin-")),
        "{:?}",
        trace.steps
    );
    assert!(
        matches!(
            result,
            Err(Error::BadSignature { .. } | Error::ThresholdNotMet { .. })
        ),
        "{result:?}"
    );
    for bin in bins() {
        assert!(second.trusted().targets(&bin).is_none(), "{bin}");
    }
}

#[test]
fn an_expired_hashed_bin_is_not_taken_over() {
    let mut repo = binned();
    repo.targets.get_mut("bin-6").unwrap().expires = crate::common::expires_in_days(1);
    repo.publish();
    let (mut client, earlier) = first_walk(&repo);
    assert_eq!(earlier.len(), 8);

    // Two days on, nothing changed but snapshot and timestamp: bin-6 has
    // expired, the same file as before.
    client.now = crate::common::NOW + Duration::from_secs(2 * 86_400);
    repo.bump();
    let (second, trace, result) = walk_after(&mut client, &repo, Some(earlier));
    assert!(
        matches!(&result, Err(Error::Expired { role, .. }) if role.as_str() == "bin-6"),
        "{result:?}"
    );
    assert!(
        reads(&trace).iter().any(|s| s.ends_with("bin-6.json")),
        "{:?}",
        trace.steps
    );
    assert!(second.trusted().targets("bin-6").is_none());
}

#[test]
fn a_trusted_root_is_taken_over_only_as_the_same_file_its_signatures_checked_again() {
    use keyshare_policy::client::{Config, TrustedSet};
    use std::sync::Arc;
    let mut repo = tree();
    let mut client = Client::new(&repo);
    // The first refresh rotates to root version 2: the root it ends with
    // is the one the cache holds next.
    repo.root.version = 2;
    repo.publish_root();
    repo.bump();
    let (first, _, result) = walk_after(&mut client, &repo, None);
    result.unwrap();
    assert_eq!(first.trusted().root().version, 2);
    let earlier = Arc::new(first.trusted().earlier_roles());
    let root = client.cache["root.json"].clone();
    assert_eq!(root, repo.root_bytes(2));
    let load = |bytes: &[u8], earlier: Option<Arc<_>>| {
        TrustedSet::with_earlier_roles(bytes, client.now, Config::default(), None, earlier)
    };

    // The very file: the root that refresh trusted, not parsed again.
    let set = load(&root, Some(earlier.clone())).unwrap();
    assert!(std::ptr::eq(set.root(), first.trusted().root()));

    // Other bytes (a signature changed): parsed and verified, and refused.
    let loaded = load(&corrupt_signature(&root), Some(earlier.clone()));
    assert!(
        matches!(
            loaded,
            Err(Error::BadSignature { .. } | Error::ThresholdNotMet { .. })
        ),
        "{loaded:?}"
    );

    // Version 1's file is another file: parsed, not taken over.
    let v1 = load(&repo.root_bytes(1), Some(earlier)).unwrap();
    assert_eq!(v1.root().version, 1);
    assert!(!std::ptr::eq(v1.root(), first.trusted().root()));
}
