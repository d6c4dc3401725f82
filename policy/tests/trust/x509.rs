//! The trust decision with X.509 identities: chains made in the test with OpenSSL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::support::*;
use keyshare_policy::trust::{
    CaCert, Counted, Decision, Listed, Peers, Reason, Revocation, Revocations, RevocationsFormat,
    RevokedSubject, Sha256Hex, SignerRef, SubjectName, TrustRule, X509Identity,
};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Name, X509};
use time::OffsetDateTime;

const APP: &str = "registry.acme.io/team-a/app";
const SUBJECT: &str = "C=US, O=acme, CN=team-a";

struct Issued {
    key: PKey<Private>,
    cert: X509,
}

impl Issued {
    fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().unwrap()).unwrap()
    }

    fn sha256(&self) -> Sha256Hex {
        Sha256Hex::of(&self.der())
    }
}

fn subject(pairs: &[(&str, &str)]) -> X509Name {
    let mut b = X509Name::builder().unwrap();
    for (k, v) in pairs {
        b.append_entry_by_text(k, v).unwrap();
    }
    b.build()
}

/// Issues a certificate for `pairs`, signed by `issuer` (self-signed when `None`).
fn issue(
    pairs: &[(&str, &str)],
    issuer: Option<&Issued>,
    ca: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Issued {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let name = subject(pairs);
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(not_before.unix_timestamp()).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after.unix_timestamp()).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Issued {
        key,
        cert: b.build(),
    }
}

fn years() -> (OffsetDateTime, OffsetDateTime) {
    (now() - secs(365 * 86_400), now() + secs(365 * 86_400))
}

fn root_ca(cn: &str) -> Issued {
    let (nb, na) = years();
    issue(
        &[("C", "US"), ("O", "acme"), ("CN", cn)],
        None,
        true,
        nb,
        na,
    )
}

fn leaf(ca: &Issued, cn: &str) -> Issued {
    let (nb, na) = years();
    issue(
        &[("C", "US"), ("O", "acme"), ("OU", "ci"), ("CN", cn)],
        Some(ca),
        false,
        nb,
        na,
    )
}

fn identity(name: &str, ca: &Issued, subject: &str) -> X509Identity {
    X509Identity {
        name: name.into(),
        ca_certs: vec![CaCert::parse(&ca.pem()).unwrap()],
        subject: SubjectName::parse(subject).unwrap(),
        not_before: None,
        not_after: None,
    }
}

fn namespace_with(identities: Vec<X509Identity>, threshold: u32) -> Ns {
    let mut ns = namespace("team-a", &["registry.acme.io/team-a/**"], 1, vec![]);
    ns.doc.threshold = nz(threshold);
    ns.doc.identities = identities;
    ns
}

fn chain(certs: &[&Issued]) -> SignerRef {
    SignerRef::CertChain(certs.iter().map(|c| c.der()).collect())
}

fn revoke_cert(hash: Sha256Hex, at: OffsetDateTime) -> Revocations {
    Revocations {
        format: RevocationsFormat,
        revocations: vec![Revocation {
            subject: RevokedSubject::Certificate(hash),
            revoked_at: at,
            reason: "certificate key compromised".into(),
        }],
    }
}

#[test]
fn chain_to_the_identity_ca_with_matching_subject_is_trusted() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &ca, SUBJECT)],
        1,
    )]);
    let d = set.decide(APP, &[chain(&[&l])], now(), now());
    assert_eq!(
        d,
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::Namespace {
                keys: vec![],
                identities: vec!["release-ci".into()],
                principals: vec![Counted::Identity("release-ci".into())],
                threshold: 1,
            },
        }
    );
}

#[test]
fn leaf_from_another_ca_is_chain_not_trusted() {
    let ca = root_ca("acme ci root");
    let rogue = root_ca("acme ci root");
    let l = leaf(&rogue, "team-a");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &ca, SUBJECT)],
        1,
    )]);
    let r = reason(set.decide(APP, &[chain(&[&l, &rogue])], now(), now()));
    match r {
        Reason::ChainNotTrusted { namespace, detail } => {
            assert_eq!(namespace, ns_name("team-a"));
            assert!(detail.contains("release-ci"), "{detail}");
        }
        other => panic!("expected ChainNotTrusted, got {other}"),
    }
}

#[test]
fn leaf_with_another_subject_is_subject_mismatch() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-b");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &ca, SUBJECT)],
        1,
    )]);
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert_eq!(
        r,
        Reason::SubjectMismatch {
            namespace: ns_name("team-a"),
            identity: "release-ci".into(),
            expected: SUBJECT.into(),
            found: "C=US, O=acme, OU=ci, CN=team-b".into(),
        }
    );
}

#[test]
fn revoked_leaf_certificate_signature_after_revocation_is_untrusted() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let revoked_at = now() - secs(60);
    let set = set_with(
        vec![namespace_with(
            vec![identity("release-ci", &ca, SUBJECT)],
            1,
        )],
        revoke_cert(l.sha256(), revoked_at),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert_eq!(
        r,
        Reason::Revoked {
            subject: RevokedSubject::Certificate(l.sha256()),
            revoked_at,
            reason: "certificate key compromised".into(),
            signed_at: now(),
        }
    );
    // A signature made before the revocation keeps its trust.
    let d = set.decide(APP, &[chain(&[&l])], revoked_at - secs(1), now());
    assert!(d.is_trusted(), "{d}");
}

#[test]
fn revoked_ca_certificate_revokes_chains_through_it_even_when_not_presented() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let set = set_with(
        vec![namespace_with(
            vec![identity("release-ci", &ca, SUBJECT)],
            1,
        )],
        revoke_cert(ca.sha256(), now() - secs(60)),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert!(
        matches!(&r, Reason::Revoked { subject: RevokedSubject::Certificate(h), .. } if *h == ca.sha256()),
        "{r}"
    );
}

#[test]
fn intermediate_in_the_presented_chain_leads_to_the_root() {
    let (nb, na) = years();
    let root = root_ca("acme root");
    let intermediate = issue(
        &[("O", "acme"), ("CN", "acme ci")],
        Some(&root),
        true,
        nb,
        na,
    );
    let l = leaf(&intermediate, "team-a");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &root, SUBJECT)],
        1,
    )]);
    assert!(set
        .decide(APP, &[chain(&[&l, &intermediate])], now(), now())
        .is_trusted());
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert!(matches!(r, Reason::ChainNotTrusted { .. }), "{r}");
}

#[test]
fn intermediate_ca_listed_in_the_identity_is_a_trust_anchor() {
    let (nb, na) = years();
    let root = root_ca("acme root");
    let intermediate = issue(
        &[("O", "acme"), ("CN", "acme ci")],
        Some(&root),
        true,
        nb,
        na,
    );
    let l = leaf(&intermediate, "team-a");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &intermediate, SUBJECT)],
        1,
    )]);
    assert!(set.decide(APP, &[chain(&[&l])], now(), now()).is_trusted());
}

#[test]
fn chain_is_verified_at_signing_time_not_now() {
    let ca = root_ca("acme ci root");
    // A short-lived CI certificate, valid for ten minutes.
    let l = issue(
        &[("C", "US"), ("O", "acme"), ("CN", "team-a")],
        Some(&ca),
        false,
        now(),
        now() + secs(600),
    );
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &ca, SUBJECT)],
        1,
    )]);
    let d = set.decide(APP, &[chain(&[&l])], now() + secs(60), now() + secs(86_400));
    assert!(d.is_trusted(), "{d}");
    let r = reason(set.decide(APP, &[chain(&[&l])], now() + secs(700), now() + secs(700)));
    assert!(matches!(r, Reason::ChainNotTrusted { .. }), "{r}");
}

#[test]
fn identity_outside_its_window_is_key_expired() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let mut id = identity("release-ci", &ca, SUBJECT);
    id.not_after = Some(now());
    let set = set(vec![namespace_with(vec![id], 1)]);
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert_eq!(
        r,
        Reason::KeyExpired {
            namespace: ns_name("team-a"),
            signer: Listed::Identity("release-ci".into()),
            not_after: now(),
            signed_at: now(),
        }
    );
}

#[test]
fn garbage_or_empty_chain_is_chain_not_trusted() {
    let ca = root_ca("acme ci root");
    let set = set(vec![namespace_with(
        vec![identity("release-ci", &ca, SUBJECT)],
        1,
    )]);
    for bad in [
        SignerRef::CertChain(vec![b"not a certificate".to_vec()]),
        SignerRef::CertChain(vec![]),
    ] {
        let r = reason(set.decide(APP, &[bad], now(), now()));
        assert!(matches!(r, Reason::ChainNotTrusted { .. }), "{r}");
    }
}

#[test]
fn chain_for_a_namespace_without_identities_is_chain_not_trusted() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let s = signer();
    let set = set(vec![namespace(
        "team-a",
        &["registry.acme.io/team-a/**"],
        1,
        vec![key(&s)],
    )]);
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert!(matches!(r, Reason::ChainNotTrusted { .. }), "{r}");
}

#[test]
fn key_and_identity_together_meet_threshold_two() {
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let s = signer();
    let mut ns = namespace_with(vec![identity("release-ci", &ca, SUBJECT)], 2);
    ns.doc.keys.push(key(&s));
    let set = set(vec![ns]);
    let d = set.decide(APP, &[by_id(&s), chain(&[&l])], now(), now());
    assert_eq!(
        d,
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::Namespace {
                keys: vec![id(&s)],
                identities: vec!["release-ci".into()],
                principals: vec![Counted::Key(id(&s)), Counted::Identity("release-ci".into())],
                threshold: 2,
            },
        }
    );
    // The same certificate twice counts once.
    let r = reason(set.decide(APP, &[chain(&[&l]), chain(&[&l])], now(), now()));
    assert!(
        matches!(
            r,
            Reason::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{r}"
    );
}

// ---- insiders ------------------------------------------------------------------

#[test]
fn threshold_met_by_one_principal_two_leaves_of_one_identity_count_once() {
    // "Two release managers": one person holding two leaf certificates that
    // the same identity rule matches is one principal.
    let ca = root_ca("acme ci root");
    let (first, second) = (leaf(&ca, "team-a"), leaf(&ca, "team-a"));
    let other_ca = root_ca("acme people root");
    let colleague = leaf(&other_ca, "team-a");
    let ns = namespace_with(
        vec![
            identity("release", &ca, SUBJECT),
            identity("people", &other_ca, SUBJECT),
        ],
        2,
    );
    let set = set(vec![ns]);
    let r = reason(set.decide(APP, &[chain(&[&first]), chain(&[&second])], now(), now()));
    assert_eq!(
        r,
        Reason::ThresholdNotMet {
            namespace: ns_name("team-a"),
            sub_delegation: None,
            valid: 1,
            threshold: 2,
        }
    );
    let d = set.decide(APP, &[chain(&[&first]), chain(&[&colleague])], now(), now());
    assert!(d.is_trusted(), "{d}");
}

#[test]
fn a_revoked_key_is_revoked_in_every_certificate_that_carries_it() {
    use keyshare_policy::keys::public_key_fingerprint;
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let revoked_at = now() - secs(60);
    let revoke_key = |pkey: &PKey<Private>| Revocations {
        format: RevocationsFormat,
        revocations: vec![Revocation {
            subject: RevokedSubject::Key(public_key_fingerprint(pkey).unwrap()),
            revoked_at,
            reason: "key stolen".into(),
        }],
    };
    // The leaf's key: its certificate (any certificate for that key) is refused.
    let set = set_with(
        vec![namespace_with(vec![identity("release", &ca, SUBJECT)], 1)],
        revoke_key(&l.key),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert!(
        matches!(
            r,
            Reason::Revoked {
                subject: RevokedSubject::Key(_),
                ..
            }
        ),
        "{r}"
    );
    // The CA's key: the identity's own CA certificate carries it.
    let set = set_with(
        vec![namespace_with(vec![identity("release", &ca, SUBJECT)], 1)],
        revoke_key(&ca.key),
        Peers::default(),
    );
    let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
    assert!(
        matches!(
            r,
            Reason::Revoked {
                subject: RevokedSubject::Key(_),
                ..
            }
        ),
        "{r}"
    );
    // Before the revocation the signature keeps its trust.
    let d = set.decide(APP, &[chain(&[&l])], revoked_at - secs(1), now());
    assert!(d.is_trusted(), "{d}");
}

#[test]
fn a_key_revoked_by_the_namespace_is_revoked_in_every_certificate_presented_for_it() {
    use keyshare_policy::keys::public_key_fingerprint;
    use keyshare_policy::trust::TrustFormat;
    let ca = root_ca("acme ci root");
    let l = leaf(&ca, "team-a");
    let revoked_at = now() - secs(60);
    for (what, key) in [("leaf", &l.key), ("CA", &ca.key)] {
        let fingerprint = public_key_fingerprint(key).unwrap();
        let mut ns = namespace_with(vec![identity("release", &ca, SUBJECT)], 1);
        ns.doc.format = TrustFormat::V2;
        ns.doc.revocations = vec![Revocation {
            subject: RevokedSubject::Key(fingerprint.clone()),
            revoked_at,
            reason: "key stolen".into(),
        }];
        let set = set_with(vec![ns], Revocations::default(), Peers::default());
        let r = reason(set.decide(APP, &[chain(&[&l])], now(), now()));
        assert_eq!(
            r,
            Reason::RevokedInNamespace {
                namespace: ns_name("team-a"),
                key: fingerprint,
                revoked_at,
                reason: "key stolen".into(),
                signed_at: now(),
            },
            "{what}"
        );
        let d = set.decide(APP, &[chain(&[&l])], revoked_at - secs(1), now());
        assert!(d.is_trusted(), "{what}: {d}");
    }
}
