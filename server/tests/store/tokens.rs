//! Tokens: only a hash of the secret is stored; lookup, scope and revocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_server::store::{Error, NewToken, Store, TokenKind};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn setup(s: &Scratch) -> (Store, Vec<NewToken>) {
    let mut store = s.open();
    let tokens = store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.create_namespace(&entry("team-b", &["b/**"]), nz(1))?;
            Ok::<_, Error>(vec![
                tx.create_token(&TokenKind::OrgAdmin, Some("root admin"))?,
                tx.create_token(&TokenKind::Maintainer(ns("team-a")), None)?,
                tx.create_token(&TokenKind::Ci(vec![ns("team-a"), ns("team-b")]), Some("ci"))?,
            ])
        })
        .unwrap();
    (store, tokens)
}

#[test]
fn secrets_never_reach_the_database_file_only_their_hashes_do() {
    let s = Scratch::new();
    let (store, tokens) = setup(&s);
    let check = |when: &str| {
        let bytes = database_bytes(&s);
        for t in &tokens {
            let secret = t.secret.expose();
            assert!(!contains(&bytes, secret.as_bytes()), "{when}: secret found");
            // The random part alone, in case of an encoding change.
            assert!(
                !contains(&bytes, &secret.as_bytes()[3..]),
                "{when}: secret body found"
            );
            let hash = keyshare_policy::hash::sha256_hex(secret.as_bytes());
            assert!(
                contains(&bytes, hash.as_bytes()),
                "{when}: hash not found (scan broken?)"
            );
        }
    };
    check("open");
    drop(store);
    check("closed");
}

#[test]
fn secrets_are_prefixed_random_and_not_shown_by_debug() {
    let s = Scratch::new();
    let (_store, tokens) = setup(&s);
    for t in &tokens {
        let secret = t.secret.expose();
        assert!(secret.starts_with("ks_"));
        assert_eq!(secret.len(), 3 + 64);
        assert!(secret[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        let debug = format!("{t:?}");
        assert!(!debug.contains(&secret[3..]), "{debug}");
        assert!(t.token.id.starts_with("tok-"));
    }
    assert_ne!(tokens[0].secret, tokens[1].secret);
    assert_ne!(tokens[0].token.id, tokens[1].token.id);
}

#[test]
fn token_by_secret_finds_the_token_with_its_scope() {
    let s = Scratch::new();
    let (store, tokens) = setup(&s);
    for t in &tokens {
        let found = store.token_by_secret(t.secret.expose()).unwrap().unwrap();
        assert_eq!(found, t.token);
    }
    assert_eq!(
        store
            .token_by_secret(tokens[2].secret.expose())
            .unwrap()
            .unwrap()
            .kind,
        TokenKind::Ci(vec![ns("team-a"), ns("team-b")])
    );
    assert!(store.token_by_secret("ks_wrong").unwrap().is_none());
    assert!(store.token_by_secret("").unwrap().is_none());
    let listed = store.tokens().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(store.token(&tokens[1].token.id).unwrap(), tokens[1].token);
    assert_not_found(store.token("tok-missing"), "token");
}

#[test]
fn revoked_token_is_no_longer_found_by_secret_and_cannot_be_revoked_twice() {
    let s = Scratch::new();
    let (mut store, tokens) = setup(&s);
    let id = tokens[1].token.id.clone();
    store.transaction_at(T0, |tx| tx.revoke_token(&id)).unwrap();
    assert!(store
        .token_by_secret(tokens[1].secret.expose())
        .unwrap()
        .is_none());
    let t = store.token(&id).unwrap();
    assert_eq!(t.revoked_at, Some(T0));
    assert!(!t.is_active());
    assert_exists(
        store.transaction_at(T0, |tx| tx.revoke_token(&id)),
        "token revocation",
    );
    assert_not_found(
        store.transaction_at(T0, |tx| tx.revoke_token("tok-missing")),
        "token",
    );
}

#[test]
fn token_for_a_missing_namespace_or_ci_without_namespaces_is_refused() {
    let s = Scratch::new();
    let (mut store, _) = setup(&s);
    assert_not_found(
        store.transaction_at(T0, |tx| {
            tx.create_token(&TokenKind::Maintainer(ns("team-z")), None)
        }),
        "namespace",
    );
    assert!(matches!(
        store.transaction_at(T0, |tx| tx.create_token(&TokenKind::Ci(vec![]), None)),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(count(&s.path, "tokens"), 3);
}

#[test]
fn deleting_a_namespace_revokes_its_tokens_so_a_new_namespace_of_that_name_grants_nothing() {
    let s = Scratch::new();
    let (mut store, tokens) = setup(&s);
    let revoked = store
        .transaction_at(T0, |tx| tx.delete_namespace("team-a"))
        .unwrap();
    assert_eq!(revoked, 2, "the maintainer and the CI token");
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    assert!(store
        .token_by_secret(tokens[0].secret.expose())
        .unwrap()
        .is_some());
    assert!(store
        .token_by_secret(tokens[1].secret.expose())
        .unwrap()
        .is_none());
    assert!(store
        .token_by_secret(tokens[2].secret.expose())
        .unwrap()
        .is_none());
}
