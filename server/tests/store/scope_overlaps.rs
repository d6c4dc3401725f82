//! Overlapping scopes in the store: creating a namespace, or widening one
//! (`Tx::update_namespace`), with a scope that overlaps another namespace's
//! is refused unless allowed explicitly; only new scopes are looked at; and
//! the check finds overlaps whatever the scopes' text looks like.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_server::store::{Error, OverlapRule, ScopeOverlaps};

fn overlap_of(r: Result<impl std::fmt::Debug, Error>) -> ScopeOverlaps {
    match r {
        Err(Error::ScopeOverlap { overlaps, .. }) => *overlaps,
        other => panic!("expected ScopeOverlap, got {other:?}"),
    }
}

#[test]
fn widening_a_namespace_into_another_teams_names_is_refused_unless_allowed() {
    let s = Scratch::new();
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["r.io/team-a/**"]), nz(1))?;
            tx.create_namespace(&entry("team-b", &["r.io/team-b/**"]), nz(1))
        })
        .unwrap();
    // team-b is given team-a's app on top of its own names.
    let widened = entry("team-b", &["r.io/team-b/**", "r.io/team-a/app"]);
    let overlaps = overlap_of(store.transaction_at(T0, |tx| tx.update_namespace(&widened, nz(1))));
    assert_eq!(overlaps.namespaces, ["team-a"]);
    assert_eq!(overlaps.sample[0].winner, "team-b");
    assert_eq!(
        overlaps.sample[0].example.as_deref(),
        Some("r.io/team-a/app")
    );
    assert_eq!(
        store.namespace("team-b").unwrap().entry,
        entry("team-b", &["r.io/team-b/**"]),
        "a refused update changed the store"
    );
    // Allowed explicitly, it is made, and the overlaps are returned.
    let overlaps = store
        .transaction_at(T0, |tx| {
            tx.update_namespace_with(&widened, nz(1), OverlapRule::Allow)
        })
        .unwrap();
    assert_eq!(overlaps.namespaces, ["team-a"]);
    assert_eq!(store.namespace("team-b").unwrap().entry, widened);
    // Later updates look at new scopes only: keeping the allowed overlap
    // while changing something else needs no new permission.
    let mut renamed = widened.clone();
    renamed.maintainers = vec!["someone-else@acme.example".into()];
    store
        .transaction_at(T0, |tx| tx.update_namespace(&renamed, nz(1)))
        .unwrap();
    // But every new overlapping scope does.
    let wider = entry(
        "team-b",
        &["r.io/team-b/**", "r.io/team-a/app", "r.io/team-a/lib"],
    );
    let overlaps = overlap_of(store.transaction_at(T0, |tx| tx.update_namespace(&wider, nz(1))));
    assert_eq!(overlaps.pair_count, 1);
    assert_eq!(overlaps.sample[0].scope, "r.io/team-a/lib");
}

#[test]
fn a_create_finds_overlaps_above_below_and_across_wildcards() {
    let s = Scratch::new();
    let mut store = s.open();
    let existing = [
        ("exact", "r.io/x/app"),
        ("team", "r.io/x/**"),
        ("star", "r.io/*/lib"),
        ("class", "r.io/[y-z]/tool"),
        ("lead", "**/deep"),
        ("other", "q.io/**"),
    ];
    store
        .transaction_at(T0, |tx| {
            for (name, scope) in existing {
                tx.create_namespace_with(&entry(name, &[scope]), nz(1), OverlapRule::Allow)?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    // (new scope, the namespaces it overlaps)
    let table: [(&str, &[&str]); 7] = [
        // Broader than several (their literal prefixes start with its own).
        ("r.io/**", &["class", "exact", "lead", "star", "team"]),
        // Narrower: the others' literal prefixes are prefixes of its own.
        // (the same text as `exact`: `create_namespace` refuses that anyway)
        ("r.io/x/app", &["exact", "team"]),
        ("r.io/z/tool", &["class"]),
        ("r.io/q/lib", &["star"]),
        // Only a scope starting with a wildcard reaches these.
        ("s.io/a/deep", &["lead"]),
        // No name matches both.
        ("r.io/y/app", &[]),
        ("t.io/**/x", &[]),
    ];
    for (scope, want) in table {
        let overlaps = store
            .transaction_at(T0, |tx| tx.scope_overlaps(&entry("new", &[scope]), &[]))
            .unwrap();
        assert_eq!(overlaps.namespaces, want, "{scope}");
        assert_eq!(overlaps.namespace_count, want.len(), "{scope}");
    }
}

#[test]
fn the_overlap_report_is_bounded_however_many_namespaces_overlap() {
    let s = Scratch::new();
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            for i in 0..150 {
                tx.create_namespace(
                    &entry(&format!("team-{i:03}"), &[&format!("r.io/t{i}/**")]),
                    nz(1),
                )?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    let overlaps = overlap_of(store.transaction_at(T0, |tx| {
        tx.create_namespace(&entry("broad", &["r.io/**"]), nz(1))
    }));
    assert_eq!(overlaps.namespace_count, 150);
    assert_eq!(overlaps.pair_count, 150);
    assert_eq!(overlaps.namespaces.len(), ScopeOverlaps::NAMES);
    assert_eq!(overlaps.namespaces[0], "team-000");
    assert_eq!(overlaps.sample.len(), ScopeOverlaps::SAMPLE);
    let message = Error::ScopeOverlap {
        namespace: "broad".into(),
        overlaps: Box::new(overlaps),
    }
    .to_string();
    assert!(message.contains("150 other namespaces"), "{message}");
    assert!(message.contains("and 50 more"), "{message}");
}
