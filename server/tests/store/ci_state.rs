//! What the store keeps for CI delegations: a key's principal, who asked
//! for each CI key (exactly, and gone with the key), the nonces and ID
//! tokens already used (until they expire), and savepoints that undo one
//! change inside a transaction.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use time::Duration;

use keyshare_policy::trust::Principal;
use keyshare_server::store::{CiOwner, Error, SingleUse, SingleUseKind};

use super::support::{entry, ns, nz, trusted_key, Scratch, T0};

fn with_team_a(s: &Scratch) -> keyshare_server::store::Store {
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    store
}

#[test]
fn a_keys_principal_is_stored_and_read_back() {
    let s = Scratch::new();
    let mut store = with_team_a(&s);
    let mut key = trusted_key();
    key.principal = Some(Principal::parse(&format!("ci:{}", "ab".repeat(32))).unwrap());
    let plain = trusted_key();
    store
        .transaction_at(T0, |tx| {
            tx.add_key(&ns("team-a"), &key)?;
            tx.add_key(&ns("team-a"), &plain)
        })
        .unwrap();
    // Read back by a new connection, as after a restart.
    let store = s.open();
    assert_eq!(store.key("team-a", key.id.as_str()).unwrap().key, key);
    assert_eq!(store.key("team-a", plain.id.as_str()).unwrap().key, plain);
    let doc = store.namespace_document("team-a").unwrap();
    assert!(doc.keys.contains(&key) && doc.keys.contains(&plain));
}

#[test]
fn the_owner_of_a_ci_key_is_exact_and_goes_with_the_key() {
    let s = Scratch::new();
    let mut store = with_team_a(&s);
    let (k1, k2) = (trusted_key(), trusted_key());
    let oidc = CiOwner::Oidc {
        issuer: "https://issuer".into(),
        subject: format!("{}\r", "x".repeat(300)),
    };
    let token = CiOwner::Token {
        id: "tok-0123".into(),
    };
    store
        .transaction_at(T0, |tx| {
            tx.add_key(&ns("team-a"), &k1)?;
            tx.add_key(&ns("team-a"), &k2)?;
            tx.set_ci_owner(&ns("team-a"), k1.id.as_str(), &oidc)?;
            tx.set_ci_owner(&ns("team-a"), k2.id.as_str(), &token)
        })
        .unwrap();
    assert_eq!(
        store.ci_owner("team-a", k1.id.as_str()).unwrap(),
        Some(oidc.clone())
    );
    assert_eq!(
        store.ci_owner("team-a", k2.id.as_str()).unwrap(),
        Some(token)
    );
    // One owner per key; only listed keys have one.
    let again = store.transaction_at(T0, |tx| {
        tx.set_ci_owner(&ns("team-a"), k1.id.as_str(), &oidc)
    });
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let unlisted = store.transaction_at(T0, |tx| tx.set_ci_owner(&ns("team-a"), "nope", &oidc));
    assert!(unlisted.is_err());
    // Removing the key removes its owner.
    store
        .transaction_at(T0, |tx| tx.remove_key("team-a", k1.id.as_str()))
        .unwrap();
    assert_eq!(store.ci_owner("team-a", k1.id.as_str()).unwrap(), None);
}

#[test]
fn a_value_is_used_once_until_it_expires_and_is_pruned_after() {
    let s = Scratch::new();
    let mut store = s.open();
    let value = |kind, digest: &str| SingleUse {
        kind,
        digest: digest.into(),
        expires_at: T0 + Duration::minutes(2),
    };
    let nonce = value(SingleUseKind::Nonce, "aa");
    let token = value(SingleUseKind::Token, "aa");
    assert!(store.transaction_at(T0, |tx| tx.use_once(&nonce)).unwrap());
    // The same digest as another kind is another value.
    assert!(store.transaction_at(T0, |tx| tx.use_once(&token)).unwrap());
    // A new connection (a restart) still knows it.
    let mut store = s.open();
    assert!(!store.transaction_at(T0, |tx| tx.use_once(&nonce)).unwrap());
    let pruned = store
        .transaction_at(T0, |tx| tx.prune_used(T0 + Duration::minutes(1)))
        .unwrap();
    assert_eq!(pruned, 0, "nothing expired yet");
    let pruned = store
        .transaction_at(T0, |tx| tx.prune_used(T0 + Duration::minutes(2)))
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(store.transaction_at(T0, |tx| tx.use_once(&nonce)).unwrap());
}

#[test]
fn a_savepoint_undoes_only_what_failed_inside_it() {
    let s = Scratch::new();
    let mut store = with_team_a(&s);
    let (kept, undone, inner) = (trusted_key(), trusted_key(), trusted_key());
    store
        .transaction_at(T0, |tx| -> Result<(), Error> {
            tx.add_key(&ns("team-a"), &kept)?;
            let failed = tx.savepoint(|tx| -> Result<(), Error> {
                tx.add_key(&ns("team-a"), &undone)?;
                // Nested: kept by the inner savepoint, undone with the outer one.
                tx.savepoint(|tx| tx.add_key(&ns("team-a"), &inner))?;
                tx.add_key(&ns("team-a"), &kept)
            });
            assert!(matches!(failed, Err(Error::AlreadyExists { .. })));
            Ok(())
        })
        .unwrap();
    let ids: Vec<String> = store
        .keys("team-a")
        .unwrap()
        .into_iter()
        .map(|k| k.key.id.to_string())
        .collect();
    assert_eq!(ids, vec![kept.id.to_string()]);
}
