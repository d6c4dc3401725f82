//! The trust decision with keys: namespaces, windows, ephemeral keys,
//! revocation, thresholds, sub-delegations and peers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::support::*;
use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    Counted, Decision, KeyRef, Listed, Peer, PeerUrl, Peers, PeersFormat, PinnedRoot, Reason,
    Revocation, Revocations, RevocationsFormat, RevokedSubject, Sha256Hex, SignerRef,
    SubDelegation, TrustRule, TrustSet,
};
use keyshare_policy::Error;

const APP: &str = "registry.acme.io/team-a/app";

/// The fingerprint revocations name `s`'s key by.
fn fingerprint(s: &InMemorySigner) -> Sha256Hex {
    s.public_key().fingerprint(&id(s)).unwrap()
}

fn revoke(s: &InMemorySigner, at: time::OffsetDateTime) -> Revocations {
    Revocations {
        format: RevocationsFormat,
        revocations: vec![Revocation {
            subject: RevokedSubject::Key(fingerprint(s)),
            revoked_at: at,
            reason: "key leaked in CI logs".into(),
        }],
    }
}

fn peer(name: &str, patterns: &[&str], terminating: bool) -> Peer {
    Peer {
        name: name.into(),
        patterns: patterns.iter().map(|p| pattern(p)).collect(),
        url: PeerUrl::parse(&format!("https://{name}.example")).unwrap(),
        root: PinnedRoot::Keys {
            keyids: vec![KeyId::new("aa")],
            threshold: nz(1),
        },
        terminating,
    }
}

fn peers(list: Vec<Peer>) -> Peers {
    Peers {
        format: PeersFormat,
        peers: list,
    }
}

// ---- namespaces -------------------------------------------------------------

#[test]
fn listed_key_in_scope_is_trusted() {
    let s = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&s)],
    )]);
    let d = set.decide(APP, &[by_id(&s)], now(), now());
    assert_eq!(
        d,
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::Namespace {
                keys: vec![id(&s)],
                identities: vec![],
                principals: vec![Counted::Key(id(&s))],
                threshold: 1,
            },
        }
    );
    assert!(d.is_trusted());
    assert!(d.to_string().contains("team-a"), "{d}");
}

#[test]
fn artifact_outside_every_scope_is_no_namespace() {
    let s = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&s)],
    )]);
    let r = reason(set.decide("registry.acme.io/team-b/app", &[by_id(&s)], now(), now()));
    assert_eq!(
        r,
        Reason::NoNamespace {
            artifact: "registry.acme.io/team-b/app".into()
        }
    );
}

#[test]
fn unlisted_key_id_is_key_not_listed() {
    let listed = signer();
    let other = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&listed)],
    )]);
    let r = reason(set.decide(APP, &[by_id(&other)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Id(id(&other)),
        }
    );
}

#[test]
fn unlisted_public_key_is_key_not_listed_by_its_fingerprint() {
    let listed = signer();
    let other = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&listed)],
    )]);
    let r = reason(set.decide(
        APP,
        &[SignerRef::PublicKey(other.public_key().clone())],
        now(),
        now(),
    ));
    let spki = other.public_key().spki_der(&id(&other)).unwrap();
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Spki {
                sha256: Sha256Hex::of(&spki)
            },
        }
    );
}

#[test]
fn undecodable_presented_public_key_is_unusable_key() {
    let s = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&s)],
    )]);
    let bad = Key::new("ed25519", "ed25519", "abcd".into());
    let r = reason(set.decide(APP, &[SignerRef::PublicKey(bad)], now(), now()));
    assert!(matches!(r, Reason::UnusableKey { .. }), "{r}");
}

#[test]
fn most_specific_namespace_wins() {
    let broad = signer();
    let narrow = signer();
    let set = set(vec![
        namespace("platform", &["registry.acme.io/**"], 1, vec![key(&broad)]),
        namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&narrow)],
        ),
    ]);
    let d = set.decide(APP, &[by_id(&narrow)], now(), now());
    assert!(
        matches!(&d, Decision::Trusted { namespace, .. } if namespace.as_str() == "team-a"),
        "{d}"
    );
    // The broad namespace's key is not trusted inside the narrower namespace.
    let r = reason(set.decide(APP, &[by_id(&broad)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Id(id(&broad)),
        }
    );
    // Elsewhere the broad one applies.
    let d = set.decide(
        "registry.acme.io/team-b/app",
        &[by_id(&broad)],
        now(),
        now(),
    );
    assert!(
        matches!(&d, Decision::Trusted { namespace, .. } if namespace.as_str() == "platform"),
        "{d}"
    );
}

#[test]
fn equally_specific_namespaces_tie_to_the_smallest_name() {
    let s = signer();
    let build = |order: bool| {
        // Different patterns (one pattern cannot be granted twice), equally specific.
        let a = namespace("alpha", &["registry.acme.io/team-a/a?p"], 1, vec![key(&s)]);
        let b = namespace("beta", &["registry.acme.io/team-a/a*p"], 1, vec![key(&s)]);
        set(if order { vec![a, b] } else { vec![b, a] })
    };
    for order in [true, false] {
        let d = build(order).decide(APP, &[by_id(&s)], now(), now());
        assert!(
            matches!(&d, Decision::Trusted { namespace, .. } if namespace.as_str() == "alpha"),
            "{d}"
        );
    }
}

#[test]
fn two_documents_for_one_namespace_are_refused() {
    let s = signer();
    let err = TrustSet::new(
        index(vec![entry("team-a", &["registry.acme.io/team-a/**"])]),
        vec![
            document("team-a", 1, vec![key(&s)]),
            document("team-a", 1, vec![key(&s)]),
        ],
        Revocations::default(),
        Peers::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, path, .. } if what == "namespaces/team-a/trust.json" && path == "namespace"),
        "{err}"
    );
}

// ---- validity windows --------------------------------------------------------

fn windowed_set(s: &InMemorySigner) -> TrustSet {
    let mut k = key(s);
    k.not_before = Some(now() - secs(3600));
    k.not_after = Some(now() + secs(3600));
    set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![k],
    )])
}

#[test]
fn signature_before_not_before_is_key_not_yet_valid() {
    let s = signer();
    let signed_at = now() - secs(3601);
    let r = reason(windowed_set(&s).decide(APP, &[by_id(&s)], signed_at, now()));
    assert_eq!(
        r,
        Reason::KeyNotYetValid {
            namespace: ns_name("team-a"),
            signer: Listed::Key(id(&s)),
            not_before: now() - secs(3600),
            signed_at,
        }
    );
}

#[test]
fn signature_at_not_before_is_trusted_not_before_is_inclusive() {
    let s = signer();
    let d = windowed_set(&s).decide(APP, &[by_id(&s)], now() - secs(3600), now());
    assert!(d.is_trusted(), "{d}");
}

#[test]
fn signature_at_not_after_is_key_expired_not_after_is_exclusive() {
    let s = signer();
    let set = windowed_set(&s);
    let signed_at = now() + secs(3600);
    let r = reason(set.decide(APP, &[by_id(&s)], signed_at, signed_at));
    assert_eq!(
        r,
        Reason::KeyExpired {
            namespace: ns_name("team-a"),
            signer: Listed::Key(id(&s)),
            not_after: now() + secs(3600),
            signed_at,
        }
    );
    let just_before = signed_at - secs(1);
    assert!(set
        .decide(APP, &[by_id(&s)], just_before, signed_at + secs(86_400))
        .is_trusted());
}

#[test]
fn long_lived_key_stays_trusted_after_not_after_for_signatures_made_before() {
    let s = signer();
    let set = windowed_set(&s);
    let d = set.decide(APP, &[by_id(&s)], now(), now() + secs(10 * 86_400));
    assert!(d.is_trusted(), "{d}");
}

// ---- ephemeral keys ------------------------------------------------------------

fn ephemeral_set(s: &InMemorySigner, not_after: time::OffsetDateTime) -> TrustSet {
    let mut k = key(s);
    k.ephemeral = true;
    k.not_after = Some(not_after);
    set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![k],
    )])
}

#[test]
fn ephemeral_key_is_untrusted_once_now_reaches_not_after_even_for_earlier_signatures() {
    let s = signer();
    let not_after = now() + secs(600);
    let set = ephemeral_set(&s, not_after);
    let signed_at = now();
    assert!(set
        .decide(APP, &[by_id(&s)], signed_at, not_after - secs(1))
        .is_trusted());
    let r = reason(set.decide(APP, &[by_id(&s)], signed_at, not_after));
    assert_eq!(
        r,
        Reason::EphemeralExpired {
            namespace: ns_name("team-a"),
            key: id(&s),
            not_after,
            now: not_after,
        }
    );
}

#[test]
fn ephemeral_key_signature_at_or_after_not_after_is_refused() {
    let s = signer();
    let not_after = now();
    let set = ephemeral_set(&s, not_after);
    // Once the delegation has ended, that is the reason.
    let r = reason(set.decide(APP, &[by_id(&s)], not_after, not_after));
    assert!(matches!(r, Reason::EphemeralExpired { .. }), "{r}");
    // Before it ends, a signature said to be made after it is outside the window.
    let r = reason(set.decide(APP, &[by_id(&s)], not_after, not_after - secs(1)));
    assert!(matches!(r, Reason::KeyExpired { .. }), "{r}");
}

// ---- revocation --------------------------------------------------------------

#[test]
fn revoked_key_signature_after_revocation_is_untrusted() {
    let s = signer();
    let revoked_at = now() - secs(60);
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&s)],
        )],
        revoke(&s, revoked_at),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[by_id(&s)], now(), now()));
    assert_eq!(
        r,
        Reason::Revoked {
            subject: RevokedSubject::Key(fingerprint(&s)),
            revoked_at,
            reason: "key leaked in CI logs".into(),
            signed_at: now(),
        }
    );
}

#[test]
fn revoked_key_signature_at_revocation_time_is_untrusted() {
    let s = signer();
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&s)],
        )],
        revoke(&s, now()),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[by_id(&s)], now(), now()));
    assert!(matches!(r, Reason::Revoked { .. }), "{r}");
}

#[test]
fn revoked_key_signature_before_revocation_stays_trusted() {
    let s = signer();
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&s)],
        )],
        revoke(&s, now()),
        Peers::default(),
    );
    let d = set.decide(APP, &[by_id(&s)], now() - secs(1), now() + secs(86_400));
    assert!(d.is_trusted(), "{d}");
}

#[test]
fn revoked_key_signature_before_revocation_but_outside_window_is_key_expired() {
    let s = signer();
    let mut k = key(&s);
    k.not_after = Some(now() - secs(7200));
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![k],
        )],
        revoke(&s, now()),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[by_id(&s)], now() - secs(3600), now()));
    assert!(matches!(r, Reason::KeyExpired { .. }), "{r}");
}

#[test]
fn revoking_a_key_revokes_it_under_every_id_and_in_every_namespace() {
    let s = signer();
    let mut alias = key(&s);
    alias.id = KeyId::new("team-b-release");
    let set = set_with(
        vec![
            namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![key(&s)]),
            namespace("team-b", &["registry.acme.io/team-b/**"], 1, vec![alias]),
        ],
        revoke(&s, now() - secs(1)),
        Peers::default(),
    );
    let r = reason(set.decide(
        "registry.acme.io/team-b/app",
        &[SignerRef::KeyId(KeyId::new("team-b-release"))],
        now(),
        now(),
    ));
    assert!(
        matches!(&r, Reason::Revoked { subject: RevokedSubject::Key(k), .. } if *k == fingerprint(&s)),
        "{r}"
    );
}

// ---- thresholds ---------------------------------------------------------------

fn two_of_three() -> (TrustSet, [InMemorySigner; 3]) {
    let keys = [signer(), signer(), signer()];
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        2,
        keys.iter().map(key).collect(),
    )]);
    (set, keys)
}

#[test]
fn threshold_two_is_met_by_two_distinct_keys() {
    let (set, [a, b, _]) = two_of_three();
    let d = set.decide(APP, &[by_id(&a), by_id(&b)], now(), now());
    assert_eq!(
        d,
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::Namespace {
                keys: vec![id(&a), id(&b)],
                identities: vec![],
                principals: vec![Counted::Key(id(&a)), Counted::Key(id(&b))],
                threshold: 2,
            },
        }
    );
}

#[test]
fn threshold_two_is_not_met_by_the_same_key_twice() {
    let (set, [a, _, _]) = two_of_three();
    let expected = Reason::ThresholdNotMet {
        namespace: ns_name("team-a"),
        sub_delegation: None,
        valid: 1,
        threshold: 2,
    };
    let r = reason(set.decide(APP, &[by_id(&a), by_id(&a)], now(), now()));
    assert_eq!(r, expected);
    // Nor by the same key presented once by id and once as a public key.
    let r = reason(set.decide(
        APP,
        &[by_id(&a), SignerRef::PublicKey(a.public_key().clone())],
        now(),
        now(),
    ));
    assert_eq!(r, expected);
}

#[test]
fn threshold_not_met_counts_only_trusted_signers() {
    let (set, [a, _, _]) = two_of_three();
    let stranger = signer();
    let r = reason(set.decide(APP, &[by_id(&stranger), by_id(&a)], now(), now()));
    assert_eq!(
        r,
        Reason::ThresholdNotMet {
            namespace: ns_name("team-a"),
            sub_delegation: None,
            valid: 1,
            threshold: 2,
        }
    );
}

#[test]
fn when_no_signer_is_usable_the_first_signers_reason_is_given() {
    let (set, _) = two_of_three();
    let first = signer();
    let second = signer();
    let r = reason(set.decide(APP, &[by_id(&first), by_id(&second)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Id(id(&first)),
        }
    );
}

#[test]
fn no_signers_is_threshold_not_met() {
    let (set, _) = two_of_three();
    let r = reason(set.decide(APP, &[], now(), now()));
    assert!(
        matches!(
            r,
            Reason::ThresholdNotMet {
                valid: 0,
                threshold: 2,
                ..
            }
        ),
        "{r}"
    );
}

// ---- public keys across encodings --------------------------------------------

#[test]
fn public_key_is_matched_by_material_across_ids_and_encodings() {
    let ed = signer();
    let ec = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&ed), key(&ec)],
    )]);
    // Ed25519 written in upper-case hex.
    let ed_upper = Key::new(
        "ed25519",
        "ed25519",
        ed.public_key().keyval.public.to_uppercase(),
    );
    // ECDSA under the other keytype name, with the PEM re-wrapped in CRLF lines.
    let pem = ec.public_key().keyval.public.replace('\n', "\r\n");
    let ec_other = Key::new("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", pem);
    assert_ne!(&ed_upper, ed.public_key());
    assert_ne!(&ec_other, ec.public_key());
    for (presented, listed) in [(ed_upper, id(&ed)), (ec_other, id(&ec))] {
        let d = set.decide(APP, &[SignerRef::PublicKey(presented)], now(), now());
        assert_eq!(
            d,
            Decision::Trusted {
                namespace: ns_name("team-a"),
                rule: TrustRule::Namespace {
                    keys: vec![listed.clone()],
                    identities: vec![],
                    principals: vec![Counted::Key(listed)],
                    threshold: 1,
                },
            }
        );
    }
}

// ---- sub-delegations ----------------------------------------------------------

fn with_sub_delegation() -> (TrustSet, InMemorySigner, InMemorySigner) {
    let owner = signer();
    let ci = signer();
    let mut ns = namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&owner)],
    );
    ns.doc.sub_delegations.push(SubDelegation {
        name: "nightly".into(),
        scopes: vec![pattern("registry.acme.io/team-a/nightly/**")],
        threshold: nz(1),
        keys: vec![key(&ci)],
    });
    (set(vec![ns]), owner, ci)
}

#[test]
fn sub_delegation_key_is_trusted_inside_its_scope() {
    let (set, owner, ci) = with_sub_delegation();
    let artifact = "registry.acme.io/team-a/nightly/app";
    let d = set.decide(artifact, &[by_id(&ci)], now(), now());
    assert_eq!(
        d,
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::SubDelegation {
                name: "nightly".into(),
                keys: vec![id(&ci)],
                principals: vec![Counted::Key(id(&ci))],
                threshold: 1,
            },
        }
    );
    // The namespace's own keys keep their trust there.
    assert!(set
        .decide(artifact, &[by_id(&owner)], now(), now())
        .is_trusted());
}

#[test]
fn sub_delegation_key_is_not_listed_outside_its_scope() {
    let (set, _, ci) = with_sub_delegation();
    let r = reason(set.decide(APP, &[by_id(&ci)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Id(id(&ci)),
        }
    );
}

#[test]
fn sub_delegation_threshold_not_met_names_the_sub_delegation() {
    let owner = signer();
    let (c1, c2) = (signer(), signer());
    let mut ns = namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&owner)],
    );
    ns.doc.sub_delegations.push(SubDelegation {
        name: "release".into(),
        scopes: vec![pattern("registry.acme.io/team-a/release/*")],
        threshold: nz(2),
        keys: vec![key(&c1), key(&c2)],
    });
    let set = set(vec![ns]);
    let r = reason(set.decide(
        "registry.acme.io/team-a/release/app",
        &[by_id(&c1)],
        now(),
        now(),
    ));
    assert_eq!(
        r,
        Reason::ThresholdNotMet {
            namespace: ns_name("team-a"),
            sub_delegation: Some("release".into()),
            valid: 1,
            threshold: 2,
        }
    );
}

// ---- ownership: org/namespaces.json ---------------------------------------------

const TEAM_B_APP: &str = "registry.acme.io/team-b/app";

#[test]
fn a_namespace_owns_only_what_the_index_grants_it() {
    // The document has no scopes: whatever team-a lists, it owns only team-a/**.
    let s = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&s)],
    )]);
    assert!(set.decide(APP, &[by_id(&s)], now(), now()).is_trusted());
    let r = reason(set.decide(TEAM_B_APP, &[by_id(&s)], now(), now()));
    assert_eq!(
        r,
        Reason::NoNamespace {
            artifact: TEAM_B_APP.into()
        }
    );
}

/// team-a's document sub-delegates patterns covering team-b's artifact,
/// including the exact name (more specific than team-b's own scope).
fn hijacking_sub_delegation(evil: &InMemorySigner) -> SubDelegation {
    SubDelegation {
        name: "hijack".into(),
        scopes: vec![pattern(TEAM_B_APP), pattern("registry.acme.io/**")],
        threshold: nz(1),
        keys: vec![key(evil)],
    }
}

#[test]
fn team_b_artifact_stays_team_b_when_team_a_sub_delegates_a_pattern_covering_it() {
    let (a, b, evil) = (signer(), signer(), signer());
    let mut team_a = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![key(&a)]);
    team_a
        .doc
        .sub_delegations
        .push(hijacking_sub_delegation(&evil));
    let team_b = namespace("team-b", &["registry.acme.io/team-b/**"], 1, vec![key(&b)]);
    let set = set(vec![team_a, team_b]);
    let r = reason(set.decide(TEAM_B_APP, &[by_id(&evil)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-b"),
            key: KeyRef::Id(id(&evil)),
        }
    );
    let d = set.decide(TEAM_B_APP, &[by_id(&b)], now(), now());
    assert!(
        matches!(&d, Decision::Trusted { namespace, .. } if namespace.as_str() == "team-b"),
        "{d}"
    );
}

#[test]
fn broader_namespace_cannot_take_a_narrower_ones_artifact_by_sub_delegating_its_exact_name() {
    // team-a's granted scope covers team-b's artifact too, but team-b's is
    // more specific; an exact sub-delegation pattern does not change that.
    let (a, b, evil) = (signer(), signer(), signer());
    let mut platform = namespace("platform", &["registry.acme.io/**"], 1, vec![key(&a)]);
    platform
        .doc
        .sub_delegations
        .push(hijacking_sub_delegation(&evil));
    let team_b = namespace("team-b", &["registry.acme.io/team-b/**"], 1, vec![key(&b)]);
    let set = set(vec![platform, team_b]);
    for signer in [&evil, &a] {
        let r = reason(set.decide(TEAM_B_APP, &[by_id(signer)], now(), now()));
        assert_eq!(
            r,
            Reason::KeyNotListed {
                namespace: ns_name("team-b"),
                key: KeyRef::Id(id(signer)),
            }
        );
    }
    // Inside what platform does own, its sub-delegation applies.
    let d = set.decide("registry.acme.io/tools/x", &[by_id(&evil)], now(), now());
    assert!(
        matches!(&d, Decision::Trusted { namespace, rule: TrustRule::SubDelegation { name, .. } } if namespace.as_str() == "platform" && name == "hijack"),
        "{d}"
    );
}

#[test]
fn sub_delegation_applies_only_where_the_namespace_s_granted_scopes_also_match() {
    let (owner, ci) = (signer(), signer());
    let mut ns = namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&owner)],
    );
    ns.doc.sub_delegations.push(SubDelegation {
        name: "wide".into(),
        scopes: vec![pattern("registry.acme.io/**")],
        threshold: nz(1),
        keys: vec![key(&ci)],
    });
    let set = set(vec![ns]);
    // Inside the namespace's scope: the sub-delegation counts.
    assert_eq!(
        set.decide(APP, &[by_id(&ci)], now(), now()),
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::SubDelegation {
                name: "wide".into(),
                keys: vec![id(&ci)],
                principals: vec![Counted::Key(id(&ci))],
                threshold: 1,
            },
        }
    );
    // Outside it, the sub-delegation's wider pattern owns nothing.
    let r = reason(set.decide(
        "registry.acme.io/elsewhere/app",
        &[by_id(&ci)],
        now(),
        now(),
    ));
    assert_eq!(
        r,
        Reason::NoNamespace {
            artifact: "registry.acme.io/elsewhere/app".into()
        }
    );
}

#[test]
fn namespace_in_the_index_without_a_document_owns_its_artifacts_but_trusts_no_one() {
    let broad = signer();
    let platform = namespace("platform", &["registry.acme.io/**"], 1, vec![key(&broad)]);
    let mut team_b = entry("team-b", &["registry.acme.io/team-b/**"]);
    team_b.maintainers = vec!["b-lead@acme.example".into(), "b-ops@acme.example".into()];
    let set = TrustSet::new(
        index(vec![platform.entry, team_b]),
        vec![platform.doc],
        Revocations::default(),
        // A fallback peer would cover the name too; the namespace still owns it.
        peers(vec![peer("upstream", &["**"], false)]),
    )
    .unwrap();
    // Neither the broader namespace's key nor the peer gets team-b's artifact.
    let r = reason(set.decide(TEAM_B_APP, &[by_id(&broad)], now(), now()));
    assert_eq!(
        r,
        Reason::NoTrustDocument {
            namespace: ns_name("team-b"),
            maintainers: vec!["b-lead@acme.example".into(), "b-ops@acme.example".into()],
        }
    );
    let text = r.to_string();
    assert!(
        text.contains("namespaces/team-b/trust.json") && text.contains("b-lead@acme.example"),
        "{text}"
    );
    assert_eq!(
        set.missing_documents().collect::<Vec<_>>(),
        [&ns_name("team-b")]
    );
    assert!(set.unlisted_documents().is_empty());
    // The rest of the index is unaffected.
    assert!(set
        .decide("registry.acme.io/tools/x", &[by_id(&broad)], now(), now())
        .is_trusted());
}

#[test]
fn document_without_an_index_entry_is_ignored_and_reported() {
    let (a, rogue) = (signer(), signer());
    let team_a = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![key(&a)]);
    // An unlisted namespace lists team-a's key under another id: being
    // ignored, it changes nothing.
    let mut alias = key(&a);
    alias.id = KeyId::new("alias");
    let mut stray = document("old-team", 1, vec![key(&rogue), alias]);
    stray.sub_delegations.push(SubDelegation {
        name: "everything".into(),
        scopes: vec![pattern("**")],
        threshold: nz(1),
        keys: vec![key(&signer())],
    });
    let set = TrustSet::new(
        index(vec![team_a.entry]),
        vec![stray, team_a.doc],
        revoke(&rogue, now() - secs(3600)),
        Peers::default(),
    )
    .unwrap();
    assert_eq!(set.unlisted_documents(), [ns_name("old-team")]);
    assert_eq!(set.missing_documents().count(), 0);
    assert_eq!(
        set.namespaces()
            .map(|d| d.namespace.as_str())
            .collect::<Vec<_>>(),
        ["team-a"]
    );
    assert!(set.decide(APP, &[by_id(&a)], now(), now()).is_trusted());
    let r = reason(set.decide(APP, &[by_id(&rogue)], now(), now()));
    assert_eq!(
        r,
        Reason::KeyNotListed {
            namespace: ns_name("team-a"),
            key: KeyRef::Id(id(&rogue)),
        }
    );
    let r = reason(set.decide("anything/at/all", &[by_id(&rogue)], now(), now()));
    assert!(matches!(r, Reason::NoNamespace { .. }), "{r}");
}

#[test]
fn trust_set_refuses_an_index_that_would_not_parse() {
    let s = signer();
    let err = TrustSet::new(
        index(vec![
            entry("team-a", &["registry.acme.io/team-a/**"]),
            entry("team-a", &["registry.acme.io/other/**"]),
        ]),
        vec![document("team-a", 1, vec![key(&s)])],
        Revocations::default(),
        Peers::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, path, .. } if what == "org/namespaces.json" && path == "namespaces[1].name"),
        "{err}"
    );
}

// ---- peers --------------------------------------------------------------------

#[test]
fn terminating_peer_owns_its_patterns_before_any_namespace() {
    let s = signer();
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&s)],
        )],
        Revocations::default(),
        peers(vec![peer("partner", &["registry.acme.io/**"], true)]),
    );
    let r = reason(set.decide(APP, &[by_id(&s)], now(), now()));
    assert_eq!(
        r,
        Reason::DelegatedToPeer {
            peer: "partner".into(),
            url: PeerUrl::parse("https://partner.example").unwrap(),
            root: PinnedRoot::Keys {
                keyids: vec![KeyId::new("aa")],
                threshold: nz(1),
            },
        }
    );
}

#[test]
fn non_terminating_peer_is_asked_only_when_no_namespace_matches() {
    let s = signer();
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![key(&s)],
        )],
        Revocations::default(),
        peers(vec![peer("upstream", &["registry.acme.io/**"], false)]),
    );
    assert!(set.decide(APP, &[by_id(&s)], now(), now()).is_trusted());
    let r = reason(set.decide("registry.acme.io/vendor/lib", &[by_id(&s)], now(), now()));
    assert!(
        matches!(&r, Reason::DelegatedToPeer { peer, .. } if peer == "upstream"),
        "{r}"
    );
}

#[test]
fn most_specific_peer_wins() {
    let set = set_with(
        vec![],
        Revocations::default(),
        peers(vec![
            peer("broad", &["**"], false),
            peer("narrow", &["docker.io/library/*"], false),
        ]),
    );
    let r = reason(set.decide("docker.io/library/alpine", &[], now(), now()));
    assert!(
        matches!(&r, Reason::DelegatedToPeer { peer, .. } if peer == "narrow"),
        "{r}"
    );
    let r = reason(set.decide("quay.io/x/y", &[], now(), now()));
    assert!(
        matches!(&r, Reason::DelegatedToPeer { peer, .. } if peer == "broad"),
        "{r}"
    );
}

// ---- messages -----------------------------------------------------------------

#[test]
fn every_reason_says_what_to_do() {
    let (set, [a, _, _]) = two_of_three();
    let r = reason(set.decide(APP, &[by_id(&a)], now(), now()));
    let text = r.to_string();
    assert!(
        text.contains("team-a") && text.contains("2 distinct"),
        "{text}"
    );
    let r = reason(set.decide("nowhere/x", &[], now(), now()));
    assert!(
        r.to_string().contains("nowhere/x") && r.to_string().contains("namespace index"),
        "{r}"
    );
    let r = Reason::NoTrustDocument {
        namespace: ns_name("team-c"),
        maintainers: vec![],
    };
    assert!(
        r.to_string()
            .contains("its maintainers must publish namespaces/team-c/trust.json"),
        "{r}"
    );
}

#[test]
fn owner_names_the_namespace_scope_or_peer_that_answers_for_an_artifact() {
    use keyshare_policy::trust::{Namespaces, Owner, Peers, Revocations, TrustSet};
    let index: Namespaces = serde_json::from_value(serde_json::json!({
        "format": "keyshare.namespaces/v1",
        "namespaces": [
            {"name": "broad", "scopes": ["r.io/**"]},
            {"name": "team-a", "scopes": ["r.io/team-a/**", "r.io/team-a/app"]},
        ]
    }))
    .unwrap();
    let peers: Peers = serde_json::from_value(serde_json::json!({
        "format": "keyshare.peers/v1",
        "peers": [
            {"name": "partner", "patterns": ["r.io/partner/**"], "url": "https://p.example",
             "root": {"sha256": "0".repeat(64)}, "terminating": true},
            {"name": "fallback", "patterns": ["docker.io/**"], "url": "https://f.example",
             "root": {"sha256": "1".repeat(64)}},
        ]
    }))
    .unwrap();
    let set = TrustSet::new(index, vec![], Revocations::default(), peers).unwrap();
    let namespace = |artifact: &str| match set.owner(artifact) {
        Some(Owner::Namespace { entry, scope }) => {
            Some((entry.name.to_string(), scope.to_string()))
        }
        _ => None,
    };
    assert_eq!(
        namespace("r.io/team-a/x"),
        Some(("team-a".into(), "r.io/team-a/**".into()))
    );
    assert_eq!(
        namespace("r.io/team-a/app"),
        Some(("team-a".into(), "r.io/team-a/app".into()))
    );
    assert_eq!(
        namespace("r.io/other"),
        Some(("broad".into(), "r.io/**".into()))
    );
    assert!(matches!(set.owner("r.io/partner/x"), Some(Owner::Peer(p)) if p.name == "partner"));
    assert!(matches!(set.owner("docker.io/x/y"), Some(Owner::Peer(p)) if p.name == "fallback"));
    assert_eq!(set.owner("quay.io/x"), None);
}

// ---- insiders: what a maintainer or a CI job can do with ordinary rights -------

/// An EC key written with its point compressed: the same key material as `s`.
fn compressed(s: &InMemorySigner) -> Key {
    use openssl::bn::BigNumContext;
    use openssl::ec::PointConversionForm;
    let pkey = s.public_key().openssl_key(&id(s)).unwrap();
    let ec = pkey.ec_key().unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let point = ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::COMPRESSED, &mut ctx)
        .unwrap();
    // SubjectPublicKeyInfo, id-ecPublicKey on prime256v1, compressed point.
    let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
    der.extend_from_slice(&point);
    let pem = openssl::pkey::PKey::public_key_from_der(&der)
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    Key::new(
        "ecdsa",
        "ecdsa-sha2-nistp256",
        String::from_utf8(pem).unwrap(),
    )
}

fn listed_as(s: &InMemorySigner, listed_id: &str) -> keyshare_policy::trust::TrustedKey {
    let mut k = key(s);
    k.id = KeyId::new(listed_id);
    k
}

#[test]
fn forged_revocation_a_maintainer_cannot_get_another_teams_key_revoked() {
    // The organization revoked a retired key, `retired`, three years ago.
    // A maintainer of team-a lists team-b's public key (public: it is in
    // team-b's document) in team-a under that retired id.
    let retired = signer();
    let b = signer();
    let set = set_with(
        vec![
            namespace(
                "team-a",
                &["registry.acme.io/team-a/**"],
                1,
                vec![listed_as(&b, "retired")],
            ),
            namespace(
                "team-b",
                &["registry.acme.io/team-b/**"],
                1,
                vec![listed_as(&b, "b-release")],
            ),
        ],
        revoke(&retired, now() - secs(3 * 365 * 86_400)),
        Peers::default(),
    );
    for signer in [
        SignerRef::KeyId(KeyId::new("b-release")),
        SignerRef::PublicKey(b.public_key().clone()),
    ] {
        let d = set.decide("registry.acme.io/team-b/app", &[signer], now(), now());
        assert!(d.is_trusted(), "{d}");
    }
    // And the retired key stays revoked under any id it is listed.
    let set = set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            1,
            vec![listed_as(&retired, "brand-new-id")],
        )],
        revoke(&retired, now() - secs(3 * 365 * 86_400)),
        Peers::default(),
    );
    let r = reason(set.decide(
        APP,
        &[SignerRef::KeyId(KeyId::new("brand-new-id"))],
        now(),
        now(),
    ));
    assert!(matches!(r, Reason::Revoked { .. }), "{r}");
}

#[test]
fn revocation_undone_by_relisting_is_impossible_under_any_id_encoding_or_namespace() {
    // The organization revokes team-b's `b-release`; team-b's maintainer
    // deletes it and lists the same key again, under a new id, in another
    // encoding, in a sub-delegation; another namespace lists it too.
    let b = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
    let revoked_at = now() - secs(3600);
    let mut relisted = listed_as(&b, "b-release-2");
    relisted.key = compressed(&b);
    assert_ne!(&relisted.key, b.public_key());
    let mut team_b = namespace("team-b", &["registry.acme.io/team-b/**"], 1, vec![relisted]);
    team_b.doc.sub_delegations.push(SubDelegation {
        name: "nightly".into(),
        scopes: vec![pattern("registry.acme.io/team-b/nightly/**")],
        threshold: nz(1),
        keys: vec![listed_as(&b, "nightly-bot")],
    });
    let team_c = namespace(
        "team-c",
        &["registry.acme.io/team-c/**"],
        1,
        vec![listed_as(&b, "borrowed")],
    );
    let set = set_with(
        vec![team_b, team_c],
        revoke(&b, revoked_at),
        Peers::default(),
    );
    for (artifact, signer) in [
        (
            "registry.acme.io/team-b/app",
            SignerRef::KeyId(KeyId::new("b-release-2")),
        ),
        (
            "registry.acme.io/team-b/app",
            SignerRef::PublicKey(b.public_key().clone()),
        ),
        (
            "registry.acme.io/team-b/app",
            SignerRef::PublicKey(compressed(&b)),
        ),
        (
            "registry.acme.io/team-b/nightly/x",
            SignerRef::KeyId(KeyId::new("nightly-bot")),
        ),
        (
            "registry.acme.io/team-c/app",
            SignerRef::KeyId(KeyId::new("borrowed")),
        ),
    ] {
        let r = reason(set.decide(artifact, &[signer], now(), now()));
        assert_eq!(
            r,
            Reason::Revoked {
                subject: RevokedSubject::Key(fingerprint(&b)),
                revoked_at,
                reason: "key leaked in CI logs".into(),
                signed_at: now(),
            },
            "{artifact}"
        );
    }
    // A revoked key presented as a public key is refused as revoked even
    // where nobody lists it.
    let r = reason(set.decide(
        "registry.acme.io/team-c/app",
        &[SignerRef::PublicKey(compressed(&b))],
        now(),
        now(),
    ));
    assert!(matches!(r, Reason::Revoked { .. }), "{r}");
}

/// `n` ephemeral keys of one CI identity (principal `ci:…`) in team-a.
fn ci_keys(principal: &str, n: usize) -> Vec<(InMemorySigner, keyshare_policy::trust::TrustedKey)> {
    (0..n)
        .map(|_| {
            let s = signer();
            let mut k = key(&s);
            k.ephemeral = true;
            k.not_before = Some(now() - secs(60));
            k.not_after = Some(now() + secs(600));
            k.principal = Some(keyshare_policy::trust::Principal::parse(principal).unwrap());
            (s, k)
        })
        .collect()
}

#[test]
fn threshold_met_by_one_principal_one_ci_job_with_two_delegations_counts_once() {
    let release = signer();
    let job = ci_keys("ci:0a1b2c", 2);
    let other_job = ci_keys("ci:9f8e7d", 1);
    let mut keys = vec![key(&release)];
    keys.extend(job.iter().map(|(_, k)| k.clone()));
    keys.extend(other_job.iter().map(|(_, k)| k.clone()));
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        2,
        keys,
    )]);
    // "Two release managers" or "human + CI": one CI job asking for two
    // delegations is still one principal.
    let r = reason(set.decide(APP, &[by_id(&job[0].0), by_id(&job[1].0)], now(), now()));
    assert_eq!(
        r,
        Reason::ThresholdNotMet {
            namespace: ns_name("team-a"),
            sub_delegation: None,
            valid: 1,
            threshold: 2,
        }
    );
    // Human + CI, and two CI identities, are two principals; the decision says which.
    let d = set.decide(
        APP,
        &[by_id(&release), by_id(&job[0].0), by_id(&job[1].0)],
        now(),
        now(),
    );
    match d {
        Decision::Trusted {
            rule: TrustRule::Namespace { principals, .. },
            ..
        } => assert_eq!(
            principals,
            vec![
                Counted::Key(id(&release)),
                Counted::Principal {
                    principal: keyshare_policy::trust::Principal::parse("ci:0a1b2c").unwrap(),
                    keys: vec![id(&job[0].0), id(&job[1].0)],
                },
            ]
        ),
        other => panic!("{other}"),
    }
    let d = set.decide(
        APP,
        &[by_id(&job[0].0), by_id(&other_job[0].0)],
        now(),
        now(),
    );
    assert!(d.is_trusted(), "{d}");
    assert!(d.to_string().contains("principal ci:0a1b2c"), "{d}");
}

// ---- a namespace's own revocations ----

/// `ns` revoking `s`'s key in its own document (format v2) at `at`.
fn revoke_in(ns: &mut Ns, s: &InMemorySigner, at: time::OffsetDateTime) {
    ns.doc.format = keyshare_policy::trust::TrustFormat::V2;
    ns.doc.revocations.push(Revocation {
        subject: RevokedSubject::Key(fingerprint(s)),
        revoked_at: at,
        reason: "laptop stolen".into(),
    });
}

#[test]
fn a_namespace_revocation_ends_trust_from_revoked_at_on_and_keeps_earlier_signatures() {
    // team-a's maintainer revokes the key of a stolen laptop; the key stays
    // listed (removing it would untrust everything it ever signed).
    let k = signer();
    let other = signer();
    let revoked_at = now() - secs(3600);
    let mut team_a = namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&k), key(&other)],
    );
    team_a.doc.sub_delegations.push(SubDelegation {
        name: "nightly".into(),
        scopes: vec![pattern("registry.acme.io/team-a/nightly/**")],
        threshold: nz(1),
        keys: vec![listed_as(&k, "nightly-bot")],
    });
    revoke_in(&mut team_a, &k, revoked_at);
    let set = set(vec![team_a]);
    let revoked = Reason::RevokedInNamespace {
        namespace: ns_name("team-a"),
        key: fingerprint(&k),
        revoked_at,
        reason: "laptop stolen".into(),
        signed_at: now(),
    };
    for (artifact, signer) in [
        (APP, by_id(&k)),
        (APP, SignerRef::PublicKey(k.public_key().clone())),
        (
            "registry.acme.io/team-a/nightly/x",
            SignerRef::KeyId(KeyId::new("nightly-bot")),
        ),
    ] {
        assert_eq!(
            reason(set.decide(artifact, std::slice::from_ref(&signer), now(), now())),
            revoked,
            "{artifact} {signer:?}"
        );
        // Signed before the revocation: still trusted.
        let d = set.decide(artifact, &[signer], revoked_at - secs(1), now());
        assert!(d.is_trusted(), "{artifact}: {d}");
    }
    assert_eq!(
        revoked.to_string(),
        format!(
            "key with SPKI SHA-256 {} was revoked by namespace `team-a` at {} (laptop stolen) and this signature was made at 2030-06-01T12:00:00Z: re-sign with a key that is not revoked",
            fingerprint(&k),
            "2030-06-01T11:00:00Z"
        )
    );
    // The namespace's other keys are untouched.
    assert!(set.decide(APP, &[by_id(&other)], now(), now()).is_trusted());
}

#[test]
fn a_maintainer_cannot_affect_another_namespace_by_revoking_a_key_it_also_lists() {
    // team-b's release key is public (it is in team-b's document). team-a's
    // maintainer lists it in team-a, under team-b's id and another, and
    // revokes it there, with a revocation dated before the key ever signed.
    let b = signer();
    let mut team_a = namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![listed_as(&b, "b-release"), key(&signer())],
    );
    revoke_in(&mut team_a, &b, now() - secs(10 * 365 * 86_400));
    let team_b = namespace(
        "team-b",
        &["registry.acme.io/team-b/**"],
        1,
        vec![listed_as(&b, "b-release")],
    );
    let set = set(vec![team_a, team_b]);
    for signer in [
        SignerRef::KeyId(KeyId::new("b-release")),
        SignerRef::PublicKey(b.public_key().clone()),
    ] {
        let d = set.decide(
            "registry.acme.io/team-b/app",
            std::slice::from_ref(&signer),
            now(),
            now(),
        );
        assert_eq!(
            d,
            Decision::Trusted {
                namespace: ns_name("team-b"),
                rule: TrustRule::Namespace {
                    keys: vec![KeyId::new("b-release")],
                    identities: vec![],
                    principals: vec![Counted::Key(KeyId::new("b-release"))],
                    threshold: 1,
                },
            }
        );
        // In team-a, where it was revoked, it is.
        let r = reason(set.decide(APP, &[signer], now(), now()));
        assert!(matches!(r, Reason::RevokedInNamespace { .. }), "{r}");
        // Machine-readable as what it is, not as some other refusal.
        assert_eq!(r.code(), "revoked_in_namespace");
    }
    // Listings say the same: revoked in team-a, not in team-b.
    assert_eq!(
        set.key_revocation("team-a", &fingerprint(&b)).map(|r| r.by),
        Some(keyshare_policy::trust::RevokedBy::Namespace)
    );
    assert_eq!(set.key_revocation("team-b", &fingerprint(&b)), None);
}

#[test]
fn a_namespace_revocation_holds_under_any_id_the_namespace_lists_the_key() {
    // The maintainer who revoked the key (or a thief with their token)
    // lists the same material again under a new id, in another encoding.
    let k = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
    let mut relisted = listed_as(&k, "new-id");
    relisted.key = compressed(&k);
    let mut team_a = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![relisted]);
    revoke_in(&mut team_a, &k, now() - secs(60));
    let set = set(vec![team_a]);
    for signer in [
        SignerRef::KeyId(KeyId::new("new-id")),
        SignerRef::PublicKey(compressed(&k)),
    ] {
        let r = reason(set.decide(APP, &[signer], now(), now()));
        assert!(matches!(r, Reason::RevokedInNamespace { .. }), "{r}");
    }
}

#[test]
fn of_an_organization_and_a_namespace_revocation_listings_show_the_earlier() {
    let k = signer();
    let mut team_a = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![key(&k)]);
    revoke_in(&mut team_a, &k, now() - secs(60));
    let org = revoke(&k, now() - secs(3600));
    let set = set_with(vec![team_a], org, Peers::default());
    let r = set.key_revocation("team-a", &fingerprint(&k)).unwrap();
    assert_eq!(r.by, keyshare_policy::trust::RevokedBy::Organization);
    assert_eq!(r.revocation.revoked_at, now() - secs(3600));
    // The organization's revocation is the reason, as it came first.
    let r = reason(set.decide(APP, &[by_id(&k)], now(), now()));
    assert!(matches!(r, Reason::Revoked { .. }), "{r}");
}
