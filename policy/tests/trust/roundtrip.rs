//! Property: every valid namespace trust document, and every valid
//! namespaces index, parses back to itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use crate::support::{nz, pattern};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    CaCert, NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, NamespacesFormat, Principal,
    Revocation, RevokedSubject, Sha256Hex, SubDelegation, SubjectName, TrustFormat, TrustedKey,
    X509Identity,
};
use proptest::prelude::*;
use time::OffsetDateTime;

/// Keys to draw from (generating keys per case would be slow).
fn pool() -> &'static [InMemorySigner] {
    static POOL: OnceLock<Vec<InMemorySigner>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut v: Vec<InMemorySigner> = (0..6)
            .map(|_| InMemorySigner::generate(Scheme::Ed25519).unwrap())
            .collect();
        v.push(InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap());
        v.push(InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap());
        v
    })
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBxjCCAW2gAwIBAgIUOavzvEIzIoOwq8FLFKpE94IHK6kwCgYIKoZIzj0EAwIw\nMTELMAkGA1UEBhMCVVMxDTALBgNVBAoMBGFjbWUxEzARBgNVBAMMCmFjbWUgQ0kg\nQ0EwHhcNMjYxMTIyMDMwNDM2WhcNNDYxMTE3MDMwNDM2WjAxMQswCQYDVQQGEwJV\nUzENMAsGA1UECgwEYWNtZTETMBEGA1UEAwwKYWNtZSBDSSBDQTBZMBMGByqGSM49\nAgEGCCqGSM49AwEHA0IABLeD6cQ8s5ylx80a9UrwvSP9pwm4NnitYixmef7FxH+p\nK3HJ61Mb/K3t5/E+ePXZ6JyLX0IF7dL/lOTK9jlTbWejYzBhMB0GA1UdDgQWBBR/\n9FNJbGir6a75CBjA6akAHPXq+zAfBgNVHSMEGDAWgBR/9FNJbGir6a75CBjA6akA\nHPXq+zAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQD\nAgNHADBEAiBI+4G8xeb69fmHYqI92Mb+q6l/5Q6tMgy/34zIC5SFmwIgR6JYGpqz\nLFL2Jdu6oqqys0P+6cQU2TQVm2TfSndtZzQ=\n-----END CERTIFICATE-----\n";

fn time_strategy() -> impl Strategy<Value = OffsetDateTime> {
    // 2000-01-01 .. 2100-01-01, whole seconds, UTC.
    (946_684_800i64..4_102_444_800).prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
}

/// An optional `(not_before, not_after)` window with `not_before < not_after`.
fn window() -> impl Strategy<Value = (Option<OffsetDateTime>, Option<OffsetDateTime>)> {
    (
        proptest::option::of(time_strategy()),
        proptest::option::of(1i64..10_000_000),
    )
        .prop_map(|(nb, len)| match (nb, len) {
            (Some(nb), Some(len)) => (Some(nb), Some(nb + time::Duration::seconds(len))),
            (None, Some(len)) => (
                None,
                Some(OffsetDateTime::from_unix_timestamp(1_900_000_000 + len).unwrap()),
            ),
            (nb, None) => (nb, None),
        })
}

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ._@-]{0,20}"
}

/// Keys drawn without repetition from the pool, with windows and flags.
fn keys(max: usize) -> impl Strategy<Value = Vec<TrustedKey>> {
    (
        proptest::sample::subsequence((0..pool().len()).collect::<Vec<_>>(), 1..=max),
        proptest::collection::vec(
            (
                window(),
                any::<bool>(),
                proptest::option::of(text()),
                proptest::option::of("[a-z]{1,3}:[0-9a-f]{1,8}"),
            ),
            max,
        ),
    )
        .prop_map(|(picked, extras)| {
            picked
                .into_iter()
                .zip(extras)
                .map(
                    |(i, ((not_before, not_after), ephemeral, description, principal))| {
                        let s = &pool()[i];
                        TrustedKey {
                            id: KeyId::new(format!("key-{i}")),
                            key: s.public_key().clone(),
                            not_before,
                            not_after,
                            ephemeral: ephemeral && not_after.is_some(),
                            description,
                            principal: principal.map(|p| Principal::parse(&p).unwrap()),
                            layout_root: false,
                        }
                    },
                )
                .collect()
        })
}

fn scopes() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(
        vec![
            "registry.acme.io/team-a/**".to_owned(),
            "registry.acme.io/team-a/*".to_owned(),
            "registry.acme.io/team-?/app".to_owned(),
            "registry.acme.io/[ab]/x".to_owned(),
            "ghcr.io/acme/**".to_owned(),
        ],
        1..=3,
    )
}

fn identity() -> impl Strategy<Value = X509Identity> {
    (text(), "[A-Za-z0-9 -]{1,10}", window()).prop_map(|(name, cn, (not_before, not_after))| {
        X509Identity {
            name,
            ca_certs: vec![CaCert::parse(CA_PEM).unwrap()],
            subject: SubjectName::parse(&format!("C=US, O=acme, CN={}", cn.trim_end()))
                .unwrap_or_else(|_| SubjectName::parse("CN=x").unwrap()),
            not_before,
            not_after,
        }
    })
}

fn sub_delegation() -> impl Strategy<Value = (Vec<String>, Vec<TrustedKey>, u32)> {
    (scopes(), keys(3), 1u32..=3)
}

prop_compose! {
    fn namespace_doc()(
        name in "[a-z0-9][a-z0-9-]{0,20}",
        mut keys in keys(4),
        layout_roots in proptest::collection::vec(any::<bool>(), 4),
        identity in proptest::option::of(identity()),
        threshold in 1u32..=5,
        subs in proptest::collection::vec(sub_delegation(), 0..3),
        revoked in proptest::collection::btree_map(
            "[0-9a-f]{64}",
            (time_strategy(), text()),
            0..3,
        ),
    ) -> NamespaceTrust {
        let identities: Vec<X509Identity> = identity.into_iter().collect();
        let listed = u32::try_from(keys.len() + identities.len()).unwrap();
        let revocations: Vec<Revocation> = revoked
            .into_iter()
            .map(|(spki, (revoked_at, reason))| Revocation {
                subject: RevokedSubject::Key(Sha256Hex::parse(&spki).unwrap()),
                revoked_at,
                reason,
            })
            .collect();
        // Layout-root keys (never ephemeral) make the document `v3`.
        for (k, root) in keys.iter_mut().zip(layout_roots) {
            k.layout_root = root && !k.ephemeral;
        }
        NamespaceTrust {
            format: TrustFormat::for_contents(&revocations, &keys),
            revocations,
            namespace: NamespaceName::parse(&name).unwrap(),
            threshold: nz(threshold.min(listed)),
            keys,
            identities,
            sub_delegations: subs
                .into_iter()
                .enumerate()
                .map(|(i, (scopes, keys, threshold))| SubDelegation {
                    name: format!("sub-{i}"),
                    scopes: scopes.iter().map(|s| pattern(s)).collect(),
                    threshold: nz(threshold.min(u32::try_from(keys.len()).unwrap())),
                    keys,
                })
                .collect(),
        }
    }
}

prop_compose! {
    /// Up to five namespaces with distinct names, each granted its own
    /// patterns (one pattern is never granted twice).
    fn namespaces_index()(
        names in proptest::collection::btree_set("[a-z0-9][a-z0-9-]{0,20}", 0..5),
        grants in proptest::collection::vec(
            (scopes(), proptest::collection::btree_set(text(), 0..3)),
            5,
        ),
    ) -> Namespaces {
        Namespaces {
            format: NamespacesFormat,
            namespaces: names
                .into_iter()
                .zip(grants)
                .map(|(name, (scopes, maintainers))| NamespaceEntry {
                    // Prefixed with the (unique) name, so no two namespaces share one.
                    scopes: scopes.iter().map(|s| pattern(&format!("{name}.{s}"))).collect(),
                    name: NamespaceName::parse(&name).unwrap(),
                    maintainers: maintainers.into_iter().collect(),
                })
                .collect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn namespace_document_round_trips(doc in namespace_doc()) {
        let bytes = doc.to_vec().unwrap();
        let back = NamespaceTrust::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(&back, &doc);
        // Compact serde_json output parses back too.
        let compact = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(NamespaceTrust::from_slice(&compact).unwrap(), doc);
    }

    #[test]
    fn namespaces_index_round_trips(doc in namespaces_index()) {
        let bytes = doc.to_vec().unwrap();
        let back = Namespaces::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        prop_assert_eq!(&back, &doc);
        let compact = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(Namespaces::from_slice(&compact).unwrap(), doc);
    }
}
