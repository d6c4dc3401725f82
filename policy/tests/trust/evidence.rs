//! Delegation evidence ([`keyshare_policy::evidence`]) and the decision it
//! feeds ([`TrustSet::decide_attested_with_history`]), from the side of
//! whoever hands a verifier a signature file: every way to make a swept or
//! never-delegated key count is refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use keyshare_policy::datetime::Expires;
use keyshare_policy::evidence::{DelegationEvidence, EvidenceAnchor, EvidenceError};
use keyshare_policy::ids::RoleName;
use keyshare_policy::metadata::{
    Delegations, MetaFile, Snapshot, TargetFile, Targets, Unrecognized,
};
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
use keyshare_policy::trust::{
    namespace_bins, Decision, NamespaceTrust, Peers, Reason, Revocation, Revocations,
    RevokedSubject, SignerRef, TrustSet, TrustedKey,
};
use time::{Duration, OffsetDateTime};

use crate::support::{key, namespace, now, ns_name, set_with, signer};

const ARTIFACT: &str = "registry.acme.io/team-a/app";

/// A repository's bins as a verifier trusts them: top-level targets
/// delegating the bins to `bins_key`, and the snapshot listing each bin at
/// `version`.
struct Repo {
    bins_key: InMemorySigner,
    targets: Targets,
    snapshot: Snapshot,
}

fn targets(version: u64, delegations: Option<Delegations>) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: "1.0.31".into(),
        version,
        expires: Expires::new(now() + Duration::days(1)),
        targets: BTreeMap::new(),
        delegations,
        unrecognized: Unrecognized::new(),
    }
}

impl Repo {
    fn new(version: u64) -> Self {
        let bins_key = signer();
        let bins = namespace_bins(vec![bins_key.key_id().clone()], NonZeroU32::MIN);
        let keys = BTreeMap::from([(bins_key.key_id().clone(), bins_key.public_key().clone())]);
        let meta = bins
            .bin_names()
            .map(|r| (format!("{r}.json"), MetaFile::new(version)))
            .chain([("targets.json".to_owned(), MetaFile::new(1))])
            .collect();
        Self {
            targets: targets(1, Some(Delegations::succinct(keys, bins))),
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: "1.0.31".into(),
                version: 1,
                expires: Expires::new(now() + Duration::days(1)),
                meta,
                unrecognized: Unrecognized::new(),
            },
            bins_key,
        }
    }

    fn anchor(&self) -> EvidenceAnchor {
        EvidenceAnchor::new(&self.targets, &self.snapshot)
    }

    fn role(&self, doc: &NamespaceTrust) -> RoleName {
        self.targets
            .delegations
            .as_ref()
            .unwrap()
            .roles_for_target(&doc.namespace.target_path())
            .remove(0)
            .name
    }

    /// Evidence for `doc`: its bin at `version` listing it, signed by `by`.
    fn evidence_by(
        &self,
        doc: &NamespaceTrust,
        version: u64,
        by: &dyn Signer,
    ) -> DelegationEvidence {
        let document = serde_json::to_vec(doc).unwrap();
        let mut bin = targets(version, None);
        bin.expires = Expires::new(now() - Duration::days(300));
        bin.targets.insert(
            doc.namespace.target_path(),
            TargetFile::from_bytes(&document),
        );
        DelegationEvidence {
            namespace: doc.namespace.clone(),
            role: self.role(doc),
            metadata: to_bytes(&sign(bin, &[by]).unwrap()).unwrap(),
            document,
        }
    }

    fn evidence(&self, doc: &NamespaceTrust, version: u64) -> DelegationEvidence {
        self.evidence_by(doc, version, &self.bins_key)
    }
}

/// `team-a`'s document then: `ci` listed as an ephemeral key until `until`.
fn document_then(ci: &InMemorySigner, until: OffsetDateTime) -> NamespaceTrust {
    let mut k = key(ci);
    k.ephemeral = true;
    k.not_before = Some(until - Duration::minutes(10));
    k.not_after = Some(until);
    namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![k]).doc
}

/// The current state: `team-a` lists `others` only (the CI key was swept).
fn set_now(others: Vec<TrustedKey>, threshold: u32, revocations: Revocations) -> TrustSet {
    set_with(
        vec![namespace(
            "team-a",
            &["registry.acme.io/team-a/**"],
            threshold,
            others,
        )],
        revocations,
        Peers::default(),
    )
}

fn signers(s: &InMemorySigner) -> [SignerRef; 1] {
    [SignerRef::PublicKey(s.public_key().clone())]
}

#[test]
fn evidence_of_a_swept_ci_key_checks_and_its_stamped_signature_is_trusted() {
    let repo = Repo::new(7);
    let ci = signer();
    let until = now() - Duration::days(200);
    let then = document_then(&ci, until);
    let checked = repo.anchor().check(&repo.evidence(&then, 5)).unwrap();
    assert_eq!(checked.version, 5);
    assert_eq!(checked.document, then);

    let set = set_now(vec![key(&signer())], 1, Revocations::default());
    let signed_at = until - Duration::minutes(3);
    // Without the evidence the key is not listed.
    match set.decide_attested(ARTIFACT, &signers(&ci), signed_at, now()) {
        Decision::Untrusted {
            reason: Reason::KeyNotListed { .. },
        } => {}
        other => panic!("{other}"),
    }
    let d = set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &then);
    assert!(d.is_trusted(), "{d}");
    // A signature stamped after the window that document gave: refused.
    let late = set.decide_attested_with_history(
        ARTIFACT,
        &signers(&ci),
        until + Duration::seconds(1),
        now(),
        &then,
    );
    assert!(!late.is_trusted(), "{late}");
}

#[test]
fn evidence_signed_by_anyone_but_the_current_bins_key_is_refused() {
    let repo = Repo::new(7);
    let ci = signer();
    let then = document_then(&ci, now());
    // A maintainer, a CI job or a mirror signs a bin of its own making.
    let forged = repo.evidence_by(&then, 5, &signer());
    match repo.anchor().check(&forged) {
        Err(EvidenceError::NotSigned { version: 5, .. }) => {}
        other => panic!("{other:?}"),
    }
    // The bins key rotated since: the old bin no longer checks.
    let rotated = Repo::new(7);
    match rotated.anchor().check(&repo.evidence(&then, 5)) {
        Err(e @ EvidenceError::NotSigned { .. }) => {
            assert!(e.to_string().contains("rotated"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn evidence_that_changes_the_document_the_bin_listed_is_refused() {
    let repo = Repo::new(7);
    let ci = signer();
    let then = document_then(&ci, now());
    // The bin lists the real document; the evidence carries one widened to
    // a year's window.
    let mut evidence = repo.evidence(&then, 5);
    let mut wider = then.clone();
    wider.keys[0].not_after = Some(now() + Duration::days(365));
    evidence.document = serde_json::to_vec(&wider).unwrap();
    match repo.anchor().check(&evidence) {
        Err(EvidenceError::NotListed { .. }) => {}
        other => panic!("{other:?}"),
    }
    // Another namespace's evidence renamed as team-a's: its bin lists no
    // team-a document (or another bin is named).
    let other = namespace(
        "team-b",
        &["registry.acme.io/team-b/**"],
        1,
        then.keys.clone(),
    )
    .doc;
    let mut renamed = repo.evidence(&other, 5);
    renamed.namespace = ns_name("team-a");
    assert!(repo.anchor().check(&renamed).is_err());
}

#[test]
fn evidence_naming_a_bin_the_path_is_not_delegated_to_is_refused() {
    let repo = Repo::new(7);
    let then = document_then(&signer(), now());
    let mut evidence = repo.evidence(&then, 5);
    let ours = repo.role(&then);
    evidence.role = if ours.as_str() == "bins-00" {
        RoleName::new("bins-01")
    } else {
        RoleName::new("bins-00")
    };
    match repo.anchor().check(&evidence) {
        Err(e @ EvidenceError::WrongRole { .. }) => {
            assert!(e.to_string().contains(ours.as_str()), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn evidence_newer_than_the_verifiers_snapshot_asks_for_a_refresh() {
    let repo = Repo::new(7);
    let then = document_then(&signer(), now());
    assert!(repo.anchor().check(&repo.evidence(&then, 7)).is_ok());
    match repo.anchor().check(&repo.evidence(&then, 8)) {
        Err(e @ EvidenceError::Newer { held: 7, .. }) => {
            assert!(e.to_string().contains("refresh"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A verifier with no trusted targets checks nothing.
    assert!(matches!(
        EvidenceAnchor::default().check(&repo.evidence(&then, 1)),
        Err(EvidenceError::NoDelegations)
    ));
}

#[test]
fn evidence_files_are_base64_and_bounded() {
    let repo = Repo::new(7);
    let then = document_then(&signer(), now());
    let evidence = repo.evidence(&then, 5);
    let mut json = serde_json::to_value(&evidence).unwrap();
    assert_eq!(
        serde_json::from_value::<DelegationEvidence>(json.clone()).unwrap(),
        evidence
    );
    json["document"] = "not base64!".into();
    let e = serde_json::from_value::<DelegationEvidence>(json.clone()).unwrap_err();
    assert!(e.to_string().contains("base64"), "{e}");
    json["document"] = "A".repeat(8 << 20).into();
    let e = serde_json::from_value::<DelegationEvidence>(json).unwrap_err();
    assert!(e.to_string().contains("longer"), "{e}");
}

#[test]
fn history_brings_back_ephemeral_keys_only_and_only_in_their_namespace() {
    let ci = signer();
    let until = now() - Duration::days(1);
    let signed_at = until - Duration::minutes(1);
    let set = set_now(vec![key(&signer())], 1, Revocations::default());

    // A long-lived key the maintainers removed stays removed.
    let mut removed = document_then(&ci, until);
    removed.keys[0].ephemeral = false;
    let d = set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &removed);
    assert!(!d.is_trusted(), "{d}");

    // Another namespace's history proves nothing for team-a's artifacts.
    let mut elsewhere = document_then(&ci, until);
    elsewhere.namespace = ns_name("team-b");
    let d = set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &elsewhere);
    assert!(!d.is_trusted(), "{d}");

    // The key under an id the current document uses for another key.
    let mut same_id = document_then(&ci, until);
    let current = signer();
    same_id.keys[0].id = current.key_id().clone();
    let set_same = set_now(vec![key(&current)], 1, Revocations::default());
    let d =
        set_same.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &same_id);
    assert!(!d.is_trusted(), "{d}");
}

#[test]
fn history_applies_current_revocations_and_the_current_threshold() {
    let ci = signer();
    let until = now() - Duration::days(100);
    let signed_at = until - Duration::minutes(1);
    let then = document_then(&ci, until);
    let revoked = |at: OffsetDateTime| Revocations {
        revocations: vec![Revocation {
            subject: RevokedSubject::Key(ci.public_key().fingerprint(ci.key_id()).unwrap()),
            revoked_at: at,
            reason: "runner compromised".into(),
        }],
        ..Revocations::default()
    };
    // Revoked (later, by the organization) from before it signed.
    let set = set_now(vec![], 1, revoked(signed_at - Duration::minutes(1)));
    match set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &then) {
        Decision::Untrusted {
            reason: Reason::Revoked { .. },
        } => {}
        other => panic!("{other}"),
    }
    // Revoked from after it signed: the signature stands.
    let set = set_now(vec![], 1, revoked(signed_at + Duration::minutes(1)));
    let d = set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &then);
    assert!(d.is_trusted(), "{d}");
    // The namespace now needs two signers: one CI key is not enough.
    let set = set_now(vec![key(&signer())], 2, Revocations::default());
    let d = set.decide_attested_with_history(ARTIFACT, &signers(&ci), signed_at, now(), &then);
    assert!(!d.is_trusted(), "{d}");
}
