#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! `keyshare_client::export`: a trust set with several namespaces and
//! identities exports a notation trust store and trust policy that pass
//! the checks of notation's trust policy specification (written out here,
//! as no `notation` binary can be installed on this machine), and PEM key
//! files that leave out what they cannot carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openssl::pkey::PKey;
use serde_json::{json, Value};

use keyshare_client::export::{notation, pem};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    NamespaceTrust, Namespaces, Peers, Revocations, Sha256Hex, TrustSet, Tsas,
};

/// A self-signed CA certificate, PEM.
fn ca(cn: &str) -> String {
    keyshare_testkit::ca_pem(cn)
}

fn sha256_of_pem(pem: &str) -> String {
    let der = openssl::x509::X509::from_pem(pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    Sha256Hex::of(&der).to_string()
}

fn key_entry(s: &InMemorySigner, extra: Value) -> Value {
    let mut v = json!({"id": s.key_id().as_str(), "key": s.public_key()});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

struct World {
    set: TrustSet,
    ca_a: String,
    ca_b: String,
    ca_revoked: String,
    keys: BTreeMap<&'static str, InMemorySigner>,
}

/// Namespaces:
/// * team-a: two exact scopes (one also claimed by a terminating peer) and
///   a glob; identities `release` and `builder` (narrower subject, same CA,
///   so covered), `other-ca` (another CA), `windowed` (a validity window),
///   `no-st` (subject without ST); a raw key, an ephemeral key, a revoked
///   key, and a sub-delegation;
/// * team-b: one exact scope, an identity whose subject needs escaping and
///   whose CA list holds a revoked certificate;
/// * team-c: glob scopes only; team-d: threshold 2; team-e: no document.
fn world() -> World {
    let (ca_a, ca_b, ca_revoked, ca_other) = (ca("CA A"), ca("CA B"), ca("CA R"), ca("CA O"));
    let keys: BTreeMap<&str, InMemorySigner> = ["raw", "ephemeral", "revoked", "sub", "d1", "d2"]
        .into_iter()
        .map(|n| (n, InMemorySigner::generate(Scheme::Ed25519).unwrap()))
        .collect();
    let subject = |s: &str| json!(s);
    let identity = |name: &str, cas: &[&String], subj: &str| json!({"name": name, "ca_certs": cas, "subject": subject(subj)});
    let index = json!({
        "format": "keyshare.namespaces/v1",
        "namespaces": [
            {"name": "team-a", "maintainers": [], "scopes": [
                "registry.acme.io/team-a/app", "registry.acme.io/team-a/api", "registry.acme.io/team-a/**"]},
            {"name": "team-b", "maintainers": [], "scopes": ["registry.acme.io/team-b/web"]},
            {"name": "team-c", "maintainers": [], "scopes": ["registry.acme.io/team-c/**"]},
            {"name": "team-d", "maintainers": [], "scopes": ["registry.acme.io/team-d/x"]},
            {"name": "team-e", "maintainers": [], "scopes": ["registry.acme.io/team-e/x"]},
        ]
    });
    let mut windowed = identity("windowed", &[&ca_a], "C=US, ST=WA, O=acme, OU=w");
    windowed["not_after"] = json!("2031-01-01T00:00:00Z");
    let docs = [
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-a", "threshold": 1,
            "identities": [
                identity("builder", &[&ca_a], "C=US, ST=WA, O=acme, OU=team-a, CN=builder"),
                identity("release", &[&ca_a], "C=US, ST=WA, O=acme, OU=team-a"),
                identity("other-ca", &[&ca_other], "C=US, ST=WA, O=acme, OU=elsewhere"),
                windowed,
                identity("no-st", &[&ca_a], "C=US, O=acme, CN=x"),
            ],
            "keys": [
                key_entry(&keys["raw"], json!({"not_after": "2031-01-01T00:00:00Z"})),
                key_entry(&keys["ephemeral"], json!({"ephemeral": true, "not_after": "2031-01-01T00:00:00Z"})),
                key_entry(&keys["revoked"], json!({})),
            ],
            "sub_delegations": [{
                "name": "nightly", "scopes": ["registry.acme.io/team-a/nightly/**"],
                "threshold": 1, "keys": [key_entry(&keys["sub"], json!({}))]
            }]
        }),
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-b", "threshold": 1,
            "identities": [identity("web", &[&ca_b, &ca_revoked], "C=US, ST=CA, O=Acme\\, Inc.;, CN=web")],
        }),
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-c", "threshold": 1,
            "identities": [identity("c", &[&ca_a], "C=US, ST=WA, O=acme")],
        }),
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-d", "threshold": 2,
            "keys": [key_entry(&keys["d1"], json!({})), key_entry(&keys["d2"], json!({}))],
            "identities": [identity("d", &[&ca_a], "C=US, ST=WA, O=acme, OU=d")],
        }),
    ];
    let revocations = json!({
        "format": "keyshare.revocations/v2",
        "revocations": [
            {"subject": {"spki_sha256": keys["revoked"].public_key().fingerprint(keys["revoked"].key_id()).unwrap()},
             "revoked_at": "2030-01-01T00:00:00Z", "reason": "lost"},
            {"subject": {"certificate_sha256": sha256_of_pem(&ca_revoked)},
             "revoked_at": "2030-01-01T00:00:00Z", "reason": "CA key exposed"},
        ]
    });
    let peers = json!({
        "format": "keyshare.peers/v1",
        "peers": [{"name": "partner", "patterns": ["registry.acme.io/team-a/api"],
                   "url": "https://keyshare.partner.example",
                   "root": {"sha256": "0".repeat(64)}, "terminating": true}]
    });
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let set = TrustSet::new(
        Namespaces::from_slice(&bytes(&index)).unwrap(),
        docs.iter()
            .map(|d| NamespaceTrust::from_slice(&bytes(d)).unwrap())
            .collect(),
        Revocations::from_slice(&bytes(&revocations)).unwrap(),
        Peers::from_slice(&bytes(&peers)).unwrap(),
    )
    .unwrap();
    World {
        set,
        ca_a,
        ca_b,
        ca_revoked,
        keys,
    }
}

// ---- notation's trust policy specification, as checks ----

const POLICY_FIELDS: [&str; 5] = [
    "name",
    "registryScopes",
    "signatureVerification",
    "trustStores",
    "trustedIdentities",
];

/// Splits `x509.subject: A=v, B=w` into pairs, honouring `\` escapes.
fn parse_subject(s: &str) -> Vec<(String, String)> {
    let body = s
        .strip_prefix("x509.subject:")
        .expect("x509.subject: prefix")
        .trim_start();
    let mut parts = vec![String::new()];
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => parts
                .last_mut()
                .unwrap()
                .push(chars.next().expect("escape at end")),
            ',' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
        .iter()
        .map(|p| {
            let (k, v) = p.trim_start().split_once('=').expect("RDN is ATTR=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Checks `trustpolicy.oci.json` and the trust store under `dir` against
/// the specification; returns the policies by name.
fn check_notation(dir: &Path) -> BTreeMap<String, Value> {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("trustpolicy.oci.json")).unwrap()).unwrap();
    let top: BTreeSet<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["version", "trustPolicies"]));
    assert_eq!(doc["version"], "1.0");
    let mut policies = BTreeMap::new();
    let mut all_scopes = BTreeSet::new();
    let mut globals = 0;
    for p in doc["trustPolicies"].as_array().unwrap() {
        let fields: BTreeSet<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            fields.iter().all(|f| POLICY_FIELDS.contains(f)),
            "{fields:?}"
        );
        let name = p["name"].as_str().unwrap();
        assert!(!name.is_empty());
        assert!(
            policies.insert(name.to_owned(), p.clone()).is_none(),
            "policy name {name} twice"
        );

        let scopes = p["registryScopes"].as_array().unwrap();
        assert!(
            !scopes.is_empty(),
            "{name}: registryScopes must not be empty"
        );
        if scopes.iter().any(|s| s == "*") {
            assert_eq!(scopes.len(), 1, "{name}: `*` must stand alone");
            globals += 1;
        }
        for s in scopes {
            let s = s.as_str().unwrap();
            if s != "*" {
                assert!(!s.contains('*'), "{name}: {s}");
                let (registry, repo) = s.split_once('/').expect("registry/repository");
                assert!(!registry.is_empty() && !repo.is_empty(), "{s}");
                assert!(
                    !s.contains('@') && !repo.contains(':'),
                    "{s}: no tag or digest"
                );
                assert!(all_scopes.insert(s.to_owned()), "scope {s} in two policies");
            }
        }

        let level = p["signatureVerification"]["level"].as_str().unwrap();
        assert!(["strict", "permissive", "audit", "skip"].contains(&level));
        if level == "skip" {
            continue;
        }
        let stores = p["trustStores"].as_array().unwrap();
        assert!(!stores.is_empty());
        for s in stores {
            let (kind, store) = s.as_str().unwrap().split_once(':').unwrap();
            assert!(["ca", "signingAuthority", "tsa"].contains(&kind), "{kind}");
            assert!(
                !store.is_empty()
                    && store
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            );
            // The named store exists and holds certificates that parse.
            let store_dir = dir.join("truststore/x509").join(kind).join(store);
            let mut n = 0;
            for entry in std::fs::read_dir(&store_dir).unwrap() {
                let path = entry.unwrap().path();
                assert_eq!(path.extension().unwrap(), "pem");
                let bytes = std::fs::read(&path).unwrap();
                let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
                let cert = pem.parse_x509().unwrap();
                assert!(cert.is_ca(), "{}", path.display());
                n += 1;
            }
            assert!(n > 0, "{}: empty store", store_dir.display());
        }

        let identities: Vec<&str> = p["trustedIdentities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!identities.is_empty());
        if identities.contains(&"*") {
            assert_eq!(identities.len(), 1);
            continue;
        }
        let parsed: Vec<BTreeMap<String, String>> = identities
            .iter()
            .map(|i| parse_subject(i).into_iter().collect())
            .collect();
        for (i, dn) in parsed.iter().enumerate() {
            for required in ["C", "ST", "O"] {
                assert!(
                    dn.contains_key(required),
                    "{}: lacks {required}",
                    identities[i]
                );
            }
            for (j, other) in parsed.iter().enumerate() {
                let subset = dn.iter().all(|(k, v)| other.get(k) == Some(v));
                assert!(
                    i == j || !subset,
                    "overlapping: {} / {}",
                    identities[i],
                    identities[j]
                );
            }
        }
    }
    assert!(globals <= 1);
    policies
}

fn store_files(dir: &Path, kind: &str, store: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("truststore/x509").join(kind).join(store))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn export_notation_writes_a_valid_trust_policy_and_stores() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let summary = notation::write(&w.set, &Tsas::default(), dir.path()).unwrap();
    let policies = check_notation(dir.path());
    assert_eq!(policies.keys().collect::<Vec<_>>(), ["team-a", "team-b"]);
    assert_eq!(summary.namespaces, ["team-a", "team-b"]);

    let a = &policies["team-a"];
    // The peer's exact name and the glob are left out.
    assert_eq!(a["registryScopes"], json!(["registry.acme.io/team-a/app"]));
    assert_eq!(a["signatureVerification"], json!({"level": "strict"}));
    assert_eq!(
        a["trustStores"],
        json!(["ca:team-a", "signingAuthority:team-a"])
    );
    // `builder` is covered by `release`; other-ca, windowed, no-st left out.
    assert_eq!(
        a["trustedIdentities"],
        json!(["x509.subject: C=US, ST=WA, O=acme, OU=team-a"])
    );
    for kind in ["ca", "signingAuthority"] {
        assert_eq!(
            store_files(dir.path(), kind, "team-a"),
            BTreeSet::from([format!("{}.pem", sha256_of_pem(&w.ca_a))])
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!(
            "truststore/x509/ca/team-a/{}.pem",
            sha256_of_pem(&w.ca_a)
        )))
        .unwrap(),
        w.ca_a
    );

    let b = &policies["team-b"];
    assert_eq!(b["registryScopes"], json!(["registry.acme.io/team-b/web"]));
    assert_eq!(
        b["trustedIdentities"],
        json!(["x509.subject: C=US, ST=CA, O=Acme\\, Inc.\\;, CN=web"])
    );
    // The revoked CA certificate is not in the store.
    assert_eq!(
        store_files(dir.path(), "ca", "team-b"),
        BTreeSet::from([format!("{}.pem", sha256_of_pem(&w.ca_b))])
    );
    assert!(!dir
        .path()
        .join(format!(
            "truststore/x509/ca/team-b/{}.pem",
            sha256_of_pem(&w.ca_revoked)
        ))
        .exists());

    // Nothing for the namespaces notation cannot express.
    for ns in ["team-c", "team-d", "team-e"] {
        assert!(
            !dir.path().join("truststore/x509/ca").join(ns).exists(),
            "{ns}"
        );
    }
    let warned = |needle: &str| {
        assert!(
            summary.warnings.iter().any(|w| w.contains(needle)),
            "no warning with `{needle}`: {:#?}",
            summary.warnings
        );
    };
    warned("team-a: scope `registry.acme.io/team-a/**` is a pattern");
    warned("team-a: scope `registry.acme.io/team-a/api` is answered by a peer");
    warned("team-a: identity `builder`: covered by identity `release`");
    warned("team-a: identity `other-ca`: its CA certificates differ");
    warned("team-a: identity `windowed`: its validity window");
    warned("team-a: identity `no-st`: notation requires C, ST and O");
    warned("team-a: 3 raw key(s)");
    warned("team-a: 1 sub-delegation(s)");
    warned("team-b: identity `web`: CA certificate");
    warned("team-c: no scope notation can express");
    warned("team-d: threshold 2");
    warned("team-e: no trust document");
    assert_eq!(summary.warnings.len(), 13, "{:#?}", summary.warnings);
    assert_eq!(summary.files.len(), 1 + 2 + 2);

    // A second export replaces the stores and the policy, same result.
    std::fs::write(dir.path().join("truststore/x509/ca/team-a/stale.pem"), "x").unwrap();
    notation::write(&w.set, &Tsas::default(), dir.path()).unwrap();
    assert_eq!(check_notation(dir.path()), policies);
    assert!(!dir
        .path()
        .join("truststore/x509/ca/team-a/stale.pem")
        .exists());
    // Nothing but the policy file and the stores.
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["trustpolicy.oci.json", "truststore"]);
}

#[test]
fn export_pem_writes_public_keys_but_not_ephemeral_or_revoked_ones() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let summary = pem::write(&w.set, dir.path()).unwrap();
    assert_eq!(summary.namespaces, ["team-a", "team-b", "team-c", "team-d"]);
    let id = |n: &str| w.keys[n].key_id().as_str().to_owned();
    let expected: Vec<std::path::PathBuf> = {
        let mut v = vec![
            format!("team-a/{}.pem", id("raw")),
            format!("team-a/sub-delegations/nightly/{}.pem", id("sub")),
            format!("team-d/{}.pem", id("d1")),
            format!("team-d/{}.pem", id("d2")),
        ];
        v.sort();
        v.into_iter().map(Into::into).collect()
    };
    assert_eq!(summary.files, expected);
    for (file, key) in [(&expected[0], "raw"), (&expected[1], "sub")] {
        let pem = std::fs::read(dir.path().join(file)).unwrap();
        let parsed = PKey::public_key_from_pem(&pem).unwrap();
        let want = w.keys[key]
            .public_key()
            .openssl_key(w.keys[key].key_id())
            .unwrap();
        assert!(parsed.public_eq(want), "{}", file.display());
    }
    let joined = summary.warnings.join("\n");
    for needle in [
        &format!("team-a: key {}: ephemeral", id("ephemeral")),
        &format!("team-a: key {}: revoked", id("revoked")),
        &format!("team-a: key {}: its validity window", id("raw")),
        &"team-d: threshold 2".to_owned(),
    ] {
        assert!(
            joined.contains(needle.as_str()),
            "`{needle}` not in:\n{joined}"
        );
    }
}

#[test]
fn export_notation_puts_the_trusted_tsas_in_a_tsa_store_every_policy_verifies_timestamps_with() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let root = ca("acme TSA root");
    let issuer = keyshare_testkit::CertBuilder::new("acme TSA CA")
        .ca()
        .build();
    let intermediate = keyshare_testkit::CertBuilder::new("acme TSA intermediate")
        .ca()
        .issued_by(&issuer)
        .build()
        .pem();
    let tsas: Tsas = serde_json::from_value(json!({
        "format": "keyshare.tsas/v1",
        "tsas": [
            {"name": "acme-tsa", "certificate": root},
            {"name": "not-a-root", "certificate": intermediate},
        ]
    }))
    .unwrap();
    let summary = notation::write(&w.set, &tsas, dir.path()).unwrap();
    let policies = check_notation(dir.path());
    for (name, p) in &policies {
        assert_eq!(
            p["signatureVerification"],
            json!({"level": "strict", "verifyTimestamp": "always"}),
            "{name}"
        );
        assert_eq!(
            p["trustStores"],
            json!([
                format!("ca:{name}"),
                format!("signingAuthority:{name}"),
                "tsa:keyshare"
            ]),
            "{name}"
        );
    }
    // Only the self-signed TSA certificate: notation's tsa stores hold roots.
    assert_eq!(
        store_files(dir.path(), "tsa", "keyshare"),
        BTreeSet::from([format!("{}.pem", sha256_of_pem(&root))])
    );
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("tsa `not-a-root`") && w.contains("not self-signed")),
        "{:#?}",
        summary.warnings
    );
    assert!(summary
        .files
        .iter()
        .any(|f| f.starts_with("truststore/x509/tsa/keyshare")));
}
