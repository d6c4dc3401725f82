//! Target lookup through delegations: the pre-order depth-first walk,
//! cycles, terminating roles, the delegation limit, hashed bins, hash
//! prefixes, attacks on delegated roles and on the target file itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::{expires_in_days, signed_bytes, Client, Repo};
use keyshare_policy::client::{verify_target, Lookup, Source};
use keyshare_policy::hash::sha256_hex;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::RoleName;
use keyshare_policy::Error;

fn role(name: &str) -> RoleName {
    RoleName::new(name)
}

fn lookup(client: &mut Client, repo: &Repo, path: &str) -> Result<Lookup, Error> {
    let mut updater = client.refresh_ok(repo);
    client.find(&mut updater, repo, path)
}

fn found_in(client: &mut Client, repo: &Repo, path: &str) -> Option<String> {
    match lookup(client, repo, path).unwrap() {
        Lookup::Found { role, .. } => Some(role.as_str().to_owned()),
        Lookup::NotFound => None,
    }
}

#[test]
fn target_in_a_delegated_role_is_found_there() {
    let mut repo = Repo::new(Scheme::Ed25519);
    // A pattern matches paths of its own depth only.
    repo.delegate(
        "targets",
        "team-a",
        &["namespaces/team-a/*", "namespaces/team-a/*/*"],
        false,
    );
    repo.delegate("team-a", "team-a-ci", &["namespaces/team-a/ci/*"], true);
    repo.add_target("team-a-ci", "namespaces/team-a/ci/trust.json", b"ci");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        client.fetch_target(&repo, "namespaces/team-a/ci/trust.json"),
        "team-a-ci"
    );
    // Each delegated role: the cache first, then the repository.
    let requests: Vec<(Source, String)> = client.requests[client.requests.len() - 4..].to_vec();
    assert_eq!(
        requests,
        [
            (Source::Local, "team-a.json".into()),
            (Source::Remote, "1.team-a.json".into()),
            (Source::Local, "team-a-ci.json".into()),
            (Source::Remote, "1.team-a-ci.json".into()),
        ]
    );
}

#[test]
fn the_first_role_in_delegation_order_wins() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "first", &["x/*"], false);
    repo.delegate("targets", "second", &["x/*"], false);
    repo.add_target("first", "x/only-first", b"1");
    repo.add_target("second", "x/both", b"2");
    repo.add_target("first", "x/both", b"1");
    repo.add_target("second", "x/only-second", b"2");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        found_in(&mut client, &repo, "x/both").as_deref(),
        Some("first")
    );
    assert_eq!(
        found_in(&mut client, &repo, "x/only-second").as_deref(),
        Some("second")
    );
}

#[test]
fn delegation_cycle_ends_without_finding_the_target() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "b", &["*"], false);
    repo.delegate("b", "a", &["*"], false);
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(lookup(&mut client, &repo, "missing"), Ok(Lookup::NotFound));
    let delegated: Vec<String> = client
        .remote_requests()
        .into_iter()
        .filter(|n| n == "1.a.json" || n == "1.b.json")
        .collect();
    assert_eq!(delegated, ["1.a.json", "1.b.json"]);
    assert!(client.requests.len() < 20, "{:?}", client.requests);
}

#[test]
fn terminating_role_without_the_target_stops_before_later_siblings() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "stops", &["x/*"], true);
    repo.delegate("targets", "later", &["x/*"], false);
    repo.add_target("later", "x/t", b"t");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(lookup(&mut client, &repo, "x/t"), Ok(Lookup::NotFound));
    assert!(!client.requests.iter().any(|(_, n)| n.contains("later")));
}

#[test]
fn non_terminating_role_without_the_target_lets_the_search_go_on() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "goes-on", &["x/*"], false);
    repo.delegate("targets", "later", &["x/*"], false);
    repo.add_target("later", "x/t", b"t");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        found_in(&mut client, &repo, "x/t").as_deref(),
        Some("later")
    );
}

#[test]
fn terminating_role_cuts_off_its_delegators_later_siblings_too() {
    // targets -> [a, c]; a -> [b (terminating)]; c holds the target.
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "a", &["x/*"], false);
    repo.delegate("targets", "c", &["x/*"], false);
    repo.delegate("a", "b", &["x/*"], true);
    repo.add_target("c", "x/t", b"t");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(lookup(&mut client, &repo, "x/t"), Ok(Lookup::NotFound));
}

#[test]
fn delegation_not_trusted_for_the_path_is_not_visited() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["namespaces/team-a/*"], false);
    repo.add_target("team-a", "namespaces/team-b/trust.json", b"stolen");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        lookup(&mut client, &repo, "namespaces/team-b/trust.json"),
        Ok(Lookup::NotFound)
    );
    assert!(!client.requests.iter().any(|(_, n)| n.contains("team-a")));
}

fn chain(length: usize) -> Repo {
    let mut repo = Repo::new(Scheme::Ed25519);
    let mut parent = "targets".to_owned();
    for i in 1..=length {
        let name = format!("r{i}");
        repo.delegate(&parent, &name, &["*"], false);
        parent = name;
    }
    repo.add_target(&parent, "deep", b"deep");
    repo.publish();
    repo
}

#[test]
fn search_stops_at_max_delegations() {
    // targets -> r1 -> ... -> r5 (holds the target): six roles to visit.
    let repo = chain(5);
    let mut client = Client::new(&repo);
    client.config.max_delegations = 4;
    assert_eq!(lookup(&mut client, &repo, "deep"), Ok(Lookup::NotFound));
    assert!(!client.requests.iter().any(|(_, n)| n.contains("r5")));
    // python-tuf visits roles while `visited <= max_delegations`.
    client.config.max_delegations = 5;
    assert_eq!(found_in(&mut client, &repo, "deep").as_deref(), Some("r5"));
}

#[test]
fn hashed_bins_find_each_target_in_its_bin() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let bins = repo.delegate_succinct("targets", 4, "bin");
    let paths: Vec<String> = (0..20)
        .map(|i| format!("namespaces/team-{i:02}/trust.json"))
        .collect();
    for path in &paths {
        let bin = bins.role_for_target(path);
        repo.add_target(bin.as_str(), path, path.as_bytes());
    }
    // A target listed in a bin it does not hash to is not trusted.
    let stray = "namespaces/stray/trust.json";
    let own = bins.role_for_target(stray);
    let wrong = bins.bin_names().find(|b| *b != own).unwrap();
    repo.add_target(wrong.as_str(), stray, b"stray");
    repo.publish();

    let mut client = Client::new(&repo);
    let mut updater = client.refresh_ok(&repo);
    for path in &paths {
        let found = client.find(&mut updater, &repo, path).unwrap();
        let Lookup::Found { role, target_file } = found else {
            panic!("{path} not found");
        };
        assert_eq!(role, bins.role_for_target(path), "{path}");
        assert_eq!(
            target_file.sha256(),
            Some(sha256_hex(path.as_bytes()).as_str())
        );
    }
    assert_eq!(
        client.find(&mut updater, &repo, stray),
        Ok(Lookup::NotFound)
    );
    // Only the bin of each path was ever fetched.
    let mut expected: Vec<String> = paths
        .iter()
        .chain([&stray.to_owned()])
        .map(|p| format!("1.{}.json", bins.role_for_target(p)))
        .collect();
    expected.sort();
    expected.dedup();
    let mut fetched: Vec<String> = client
        .remote_requests()
        .into_iter()
        .filter(|n| n.contains("bin-"))
        .collect();
    fetched.sort();
    assert_eq!(fetched, expected);
}

#[test]
fn path_hash_prefix_delegation_finds_matching_targets_only() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let inside = "namespaces/team-b/trust.json";
    let outside = "namespaces/team-c/trust.json";
    let prefix = &sha256_hex(inside.as_bytes())[..2];
    assert!(!sha256_hex(outside.as_bytes()).starts_with(prefix));
    repo.delegate_hash_prefixes("targets", "team-b", &[prefix]);
    repo.add_target("team-b", inside, b"b");
    repo.add_target("team-b", outside, b"c");
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        found_in(&mut client, &repo, inside).as_deref(),
        Some("team-b")
    );
    assert_eq!(found_in(&mut client, &repo, outside), None);
}

// --- attacks on delegated roles -------------------------------------------

fn team_a() -> Repo {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["a/*"], false);
    repo.add_target("team-a", "a/t", b"t");
    repo.publish();
    repo
}

#[test]
fn expired_delegated_role_is_refused() {
    let mut repo = team_a();
    repo.targets.get_mut("team-a").unwrap().expires = expires_in_days(-1);
    repo.bump_role("team-a");
    let mut client = Client::new(&repo);
    assert_eq!(
        lookup(&mut client, &repo, "a/t"),
        Err(Error::Expired {
            role: role("team-a"),
            expires: "2029-12-31T00:00:00Z".into()
        })
    );
}

#[test]
fn delegated_role_signed_by_a_key_its_delegator_does_not_authorise_is_refused() {
    let mut repo = team_a();
    let other = repo.key();
    let bytes = signed_bytes(&repo.targets["team-a"], &[&other]);
    repo.signers.insert("team-a".into(), vec![other]);
    repo.publish();
    assert_eq!(repo.current("team-a"), bytes);
    let mut client = Client::new(&repo);
    assert_eq!(
        lookup(&mut client, &repo, "a/t"),
        Err(Error::ThresholdNotMet {
            role: role("team-a"),
            valid: 0,
            threshold: 1
        })
    );
}

#[test]
fn delegated_role_version_differing_from_snapshot_listing_is_refused() {
    let mut repo = team_a();
    repo.meta_hashes = false;
    repo.publish();
    let v1 = repo.current("team-a");
    repo.bump_role("team-a");
    repo.files.insert("2.team-a.json".into(), v1);
    let mut client = Client::new(&repo);
    assert_eq!(
        lookup(&mut client, &repo, "a/t"),
        Err(Error::VersionMismatch {
            role: role("team-a"),
            listed_by: "snapshot",
            expected: 2,
            received: 1
        })
    );
}

#[test]
fn delegated_role_missing_from_snapshot_is_refused() {
    let mut repo = team_a();
    repo.publish_targets();
    repo.snapshot.meta.remove("team-a.json");
    repo.sign_snapshot();
    repo.sign_timestamp();
    let mut client = Client::new(&repo);
    assert!(matches!(
        lookup(&mut client, &repo, "a/t"),
        Err(Error::MissingRole { role, .. }) if role.as_str() == "team-a"
    ));
}

#[test]
fn invalid_cached_delegated_role_is_replaced_from_the_repository() {
    let repo = team_a();
    let mut client = Client::new(&repo);
    client.fetch_target(&repo, "a/t");
    client
        .cache
        .insert("team-a.json".into(), b"garbage".to_vec());
    assert_eq!(client.fetch_target(&repo, "a/t"), "team-a");
    assert_eq!(client.cache["team-a.json"], repo.current("team-a"));
}

// --- the target file ------------------------------------------------------

#[test]
fn target_with_the_wrong_length_is_refused() {
    let repo = team_a();
    let mut client = Client::new(&repo);
    let Ok(Lookup::Found { target_file, .. }) = lookup(&mut client, &repo, "a/t") else {
        panic!("not found");
    };
    assert_eq!(
        verify_target(&target_file, "a/t", b"tt"),
        Err(Error::LengthMismatch {
            what: "a/t".into(),
            expected: 1,
            received: 2
        })
    );
}

#[test]
fn target_with_the_wrong_hash_is_refused() {
    let repo = team_a();
    let mut client = Client::new(&repo);
    let Ok(Lookup::Found { target_file, .. }) = lookup(&mut client, &repo, "a/t") else {
        panic!("not found");
    };
    assert_eq!(
        verify_target(&target_file, "a/t", b"x"),
        Err(Error::HashMismatch {
            what: "a/t".into(),
            algorithm: "sha256".into()
        })
    );
}
