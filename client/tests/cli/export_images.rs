#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

//! `keyshare_client::export::{kyverno, policy_controller, cosign}`: a trust
//! set with globs, a 2-of-3 namespace, keys sharing a principal, X.509
//! identities, sub-delegations, a peer, revoked (by the organization and
//! by the namespace), expired, not-yet-valid, ephemeral and RSA-PSS keys
//! exports exactly the expected documents, field by field, with only the
//! fields of the targets' published schemas (`docs/exports.md`); and,
//! matched the way Kyverno and policy-controller match (their matchers
//! written out here), no exported rule covers another owner's names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openssl::pkey::PKey;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

use keyshare_client::export::{cosign, kyverno, policy_controller};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceTrust, Namespaces, Peers, Revocations, TrustSet};

const NOW: OffsetDateTime = datetime!(2030-06-01 00:00 UTC);

fn key_entry(s: &InMemorySigner, extra: Value) -> Value {
    let mut v = json!({"id": s.key_id().as_str(), "key": s.public_key()});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

struct World {
    set: TrustSet,
    keys: BTreeMap<&'static str, InMemorySigner>,
}

impl World {
    fn id(&self, name: &str) -> String {
        self.keys[name].key_id().as_str().to_owned()
    }

    /// The key's public PEM as OpenSSL writes it.
    fn pem(&self, name: &str) -> String {
        let k = &self.keys[name];
        String::from_utf8(
            k.public_key()
                .openssl_key(k.key_id())
                .unwrap()
                .public_key_to_pem()
                .unwrap(),
        )
        .unwrap()
    }
}

/// Namespaces:
/// * team-a, threshold 2 of a1, a2, a3; a4 revoked by the organization, a5
///   expired, a6 ephemeral; identity `release`; a sub-delegation whose
///   scope reaches into team-b's names. Scopes: a recursive glob, a
///   one-segment glob, an exact repository, one shared with a peer, one
///   shared with team-b's more specific scope, and one whose Kyverno
///   look-alike is team-c's.
/// * team-b, threshold 1: b1 (ECDSA), b2 and b3 (one principal), bw (a
///   validity window), b4 (revoked by team-b itself), b5 (not valid yet),
///   bp (RSA-PSS); identity `web`.
/// * team-c: no trust document. team-d: threshold 2 of d1 and d2, which
///   share a principal.
fn world() -> World {
    let names = [
        "a1", "a2", "a3", "a4", "a5", "a6", "sub", "b1", "b2", "b3", "bw", "b4", "b5", "d1", "d2",
    ];
    let mut keys: BTreeMap<&str, InMemorySigner> = names
        .into_iter()
        .map(|n| {
            let scheme = if n == "b1" {
                Scheme::EcdsaP256Sha256
            } else {
                Scheme::Ed25519
            };
            (n, InMemorySigner::generate(scheme).unwrap())
        })
        .collect();
    keys.insert(
        "bp",
        InMemorySigner::generate(Scheme::RsaPssSha256).unwrap(),
    );
    let ca = keyshare_testkit::ca_pem("acme CA");
    let index = json!({
        "format": "keyshare.namespaces/v1",
        "namespaces": [
            {"name": "team-a", "maintainers": [], "scopes": [
                "registry.acme.io/team-a/**",
                "registry.acme.io/team-a-tools/*",
                "registry.acme.io/solo",
                "registry.acme.io/vendor/**",
                "registry.acme.io/shared/**",
                "reg.lookalike.io/app/**",
            ]},
            {"name": "team-b", "maintainers": [], "scopes": [
                "registry.acme.io/shared/web",
                "registry.acme.io/team-b/*",
                "registry.acme.io/team-b-all/**",
            ]},
            {"name": "team-c", "maintainers": [], "scopes": ["reg-lookalike.io/**"]},
            {"name": "team-d", "maintainers": [], "scopes": ["registry.acme.io/team-d/**"]},
        ]
    });
    let identity =
        |name: &str, subject: &str| json!({"name": name, "ca_certs": [ca], "subject": subject});
    let docs = [
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-a", "threshold": 2,
            "keys": [
                key_entry(&keys["a1"], json!({})),
                key_entry(&keys["a2"], json!({})),
                key_entry(&keys["a3"], json!({})),
                key_entry(&keys["a4"], json!({})),
                key_entry(&keys["a5"], json!({"not_after": "2030-01-01T00:00:00Z"})),
                key_entry(&keys["a6"], json!({"ephemeral": true, "not_after": "2030-06-01T00:10:00Z"})),
            ],
            "identities": [identity("release", "C=US, ST=WA, O=acme, OU=team-a")],
            "sub_delegations": [{
                "name": "reach", "scopes": ["registry.acme.io/team-b/**"],
                "threshold": 1, "keys": [key_entry(&keys["sub"], json!({}))]
            }]
        }),
        json!({
            "format": "keyshare.trust/v2", "namespace": "team-b", "threshold": 1,
            "keys": [
                key_entry(&keys["b1"], json!({})),
                key_entry(&keys["b2"], json!({"principal": "alice"})),
                key_entry(&keys["b3"], json!({"principal": "alice"})),
                key_entry(&keys["bw"], json!({"not_after": "2031-01-01T00:00:00Z"})),
                key_entry(&keys["b4"], json!({})),
                key_entry(&keys["b5"], json!({"not_before": "2031-01-01T00:00:00Z"})),
                key_entry(&keys["bp"], json!({})),
            ],
            "identities": [identity("web", "C=US, ST=CA, O=acme, CN=web")],
            "revocations": [{
                "subject": {"spki_sha256": keys["b4"].public_key().fingerprint(keys["b4"].key_id()).unwrap()},
                "revoked_at": "2030-02-01T00:00:00Z", "reason": "laptop lost"
            }]
        }),
        json!({
            "format": "keyshare.trust/v1", "namespace": "team-d", "threshold": 2,
            "keys": [
                key_entry(&keys["d1"], json!({"principal": "ops"})),
                key_entry(&keys["d2"], json!({"principal": "ops"})),
            ],
        }),
    ];
    let revocations = json!({
        "format": "keyshare.revocations/v2",
        "revocations": [
            {"subject": {"spki_sha256": keys["a4"].public_key().fingerprint(keys["a4"].key_id()).unwrap()},
             "revoked_at": "2031-01-01T00:00:00Z", "reason": "retired"},
        ]
    });
    let peers = json!({
        "format": "keyshare.peers/v1",
        "peers": [{"name": "partner", "patterns": ["registry.acme.io/vendor/partner/**"],
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
    World { set, keys }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every object key under `v`, as a dotted path with `[]` for arrays.
fn field_paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                field_paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                field_paths(x, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn assert_fields_within(doc: &Value, allowed: &[&str]) {
    let mut paths = BTreeSet::new();
    field_paths(doc, "", &mut paths);
    let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
    for p in &paths {
        assert!(
            allowed.contains(p.as_str()),
            "`{p}` is not a field of the published schema"
        );
    }
}

fn assert_warned(warnings: &[String], needles: &[String]) {
    for needle in needles {
        assert!(
            warnings.iter().any(|w| w.contains(needle.as_str())),
            "no warning with `{needle}`:\n{warnings:#?}"
        );
    }
    assert_eq!(warnings.len(), needles.len(), "{warnings:#?}");
}

// ---- the targets' matchers, written out ----

/// Kyverno's `ext/wildcard` (github.com/IGLOU-EU/go-wildcard/v2 `Match`):
/// `*` any run (`/` included), `?` one character or none, `.` any one
/// character, over bytes.
fn kyverno_match(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((b'?', rest)) => go(rest, s) || (!s.is_empty() && go(rest, &s[1..])),
            Some((b'.', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// policy-controller's `glob.Compile`: `.` literal, `**` any run, `*` any
/// run without `/`, anchored at both ends.
fn pc_match(glob: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| go(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|i| !s[..*i].contains(&b'/'))
                .any(|i| go(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(glob.as_bytes(), s.as_bytes())
}

/// References (as the targets see them) of names keyshare gives to each
/// owner, and of names it gives to no one.
fn references() -> Vec<(&'static str, &'static str)> {
    vec![
        ("team-a", "registry.acme.io/team-a/app:1.0"),
        ("team-a", "registry.acme.io/team-a/x/y@sha256:00ff"),
        ("team-a", "registry.acme.io/team-a-tools/cli:2"),
        ("team-a", "registry.acme.io/solo:latest"),
        ("team-a", "registry.acme.io/solo@sha256:00ff"),
        ("team-a", "registry.acme.io/shared/other:1"),
        ("team-a", "reg.lookalike.io/app/x:1"),
        ("partner", "registry.acme.io/vendor/partner/tool:1"),
        ("team-b", "registry.acme.io/shared/web:1"),
        ("team-b", "registry.acme.io/team-b/api:1"),
        ("team-b", "registry.acme.io/team-b/api@sha256:00ff"),
        ("team-b", "registry.acme.io/team-b-all/x/y:1"),
        ("team-c", "reg-lookalike.io/app/x:1"),
        ("team-d", "registry.acme.io/team-d/x:1"),
        ("nobody", "registry.acme.io/soloist:1"),
        ("nobody", "registry.acme.io/team-a-tools/cli/sub:1"),
    ]
}

#[test]
fn export_kyverno_writes_cluster_policies_field_by_field() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let summary = kyverno::write(&w.set, dir.path(), NOW).unwrap();
    assert_eq!(summary.files, [Path::new("kyverno.json")]);
    assert_eq!(summary.namespaces, ["team-a", "team-b"]);
    let doc = read_json(&dir.path().join("kyverno.json"));

    let key = |n: &str| json!({"keys": {"publicKeys": w.pem(n), "signatureAlgorithm": "sha256"}});
    let policy = |ns: &str, refs: Value, count: u32, entries: Value| {
        json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": format!("keyshare-{ns}"),
                         "labels": {"app.kubernetes.io/managed-by": "keyshare"}},
            "spec": {
                "validationFailureAction": "Enforce",
                "background": false,
                "rules": [{
                    "name": "verify-signatures",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{
                        "imageReferences": refs,
                        "attestors": [{"count": count, "entries": entries}],
                        "mutateDigest": true,
                        "verifyDigest": true,
                        "required": true,
                    }],
                }],
            },
        })
    };
    let expected = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            policy(
                "team-a",
                json!(["registry.acme.io/team-a/*", "registry.acme.io/solo:*", "registry.acme.io/solo@*"]),
                2,
                json!([key("a1"), key("a2"), key("a3")]),
            ),
            policy(
                "team-b",
                json!([
                    "registry.acme.io/shared/web:*",
                    "registry.acme.io/shared/web@*",
                    "registry.acme.io/team-b-all/*",
                ]),
                1,
                json!([key("b1"), {"attestor": {"count": 1, "entries": [key("b2"), key("b3")]}}, key("bw")]),
            ),
        ]
    });
    assert_eq!(doc, expected);
    // Fields of kyverno.io/v1 ClusterPolicy (api/kyverno/v1
    // spec_types.go, image_verification_types.go) and of a v1 List.
    let spec = "items[].spec";
    let rule = "items[].spec.rules[]";
    let iv = "items[].spec.rules[].verifyImages[]";
    let set = "items[].spec.rules[].verifyImages[].attestors[]";
    let allowed: Vec<String> = [
        "apiVersion",
        "kind",
        "items",
        "items[].apiVersion",
        "items[].kind",
        "items[].metadata",
        "items[].metadata.name",
        "items[].metadata.labels",
        "items[].metadata.labels.app.kubernetes.io/managed-by",
        "items[].spec",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        format!("{spec}.validationFailureAction"),
        format!("{spec}.background"),
        format!("{spec}.rules"),
        format!("{rule}.name"),
        format!("{rule}.match"),
        format!("{rule}.match.any"),
        format!("{rule}.match.any[].resources"),
        format!("{rule}.match.any[].resources.kinds"),
        format!("{rule}.verifyImages"),
        format!("{iv}.imageReferences"),
        format!("{iv}.attestors"),
        format!("{iv}.mutateDigest"),
        format!("{iv}.verifyDigest"),
        format!("{iv}.required"),
        format!("{set}.count"),
        format!("{set}.entries"),
        format!("{set}.entries[].keys"),
        format!("{set}.entries[].keys.publicKeys"),
        format!("{set}.entries[].keys.signatureAlgorithm"),
        format!("{set}.entries[].attestor"),
        format!("{set}.entries[].attestor.count"),
        format!("{set}.entries[].attestor.entries"),
        format!("{set}.entries[].attestor.entries[].keys"),
        format!("{set}.entries[].attestor.entries[].keys.publicKeys"),
        format!("{set}.entries[].attestor.entries[].keys.signatureAlgorithm"),
    ])
    .collect();
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    assert_fields_within(&doc, &allowed);
    // Each key PEM parses to the key keyshare trusts.
    for (entry, name) in doc["items"][0]["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]
        ["entries"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["a1", "a2", "a3"])
    {
        let pem = entry["keys"]["publicKeys"].as_str().unwrap();
        let want = w.keys[name]
            .public_key()
            .openssl_key(w.keys[name].key_id())
            .unwrap();
        assert!(PKey::public_key_from_pem(pem.as_bytes())
            .unwrap()
            .public_eq(want));
    }

    let a = |s: &str| format!("team-a: {s}");
    let b = |s: &str| format!("team-b: {s}");
    assert_warned(
        &summary.warnings,
        &[
            a("identity `release`: Kyverno cannot require a certificate subject"),
            a("1 sub-delegation(s) left out"),
            a(&format!("key {}: revoked", w.id("a4"))),
            a(&format!("key {}: expired", w.id("a5"))),
            a(&format!("key {}: ephemeral", w.id("a6"))),
            a("scope `registry.acme.io/team-a-tools/*`: Kyverno's `*` and `?` cross `/`"),
            a("scope `registry.acme.io/vendor/**`: shares names with peer `partner`"),
            a("scope `registry.acme.io/shared/**`: shares names with namespace `team-b`'s more specific scope `registry.acme.io/shared/web`"),
            a("scope `reg.lookalike.io/app/**`: Kyverno reads `.` as any character, so it would also match `reg"),
            b("identity `web`: Kyverno cannot require"),
            b(&format!("key {}: its validity window is not carried", w.id("bw"))),
            b(&format!("key {}: revoked", w.id("b4"))),
            b(&format!("key {}: not valid yet", w.id("b5"))),
            b(&format!("key {}: RSA-PSS", w.id("bp"))),
            b("scope `registry.acme.io/team-b/*`: Kyverno's `*`"),
            "team-c: no trust document, no policy".into(),
            "team-d: threshold 2 but 1 key holder(s) Kyverno can be given, no policy".into(),
        ],
    );
}

#[test]
fn export_policy_controller_writes_cluster_image_policies_field_by_field() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let summary = policy_controller::write(&w.set, dir.path(), NOW).unwrap();
    assert_eq!(summary.files, [Path::new("policy-controller.json")]);
    assert_eq!(summary.namespaces, ["team-b"]);
    let doc = read_json(&dir.path().join("policy-controller.json"));
    let authority =
        |n: &str| json!({"name": w.id(n), "key": {"data": w.pem(n), "hashAlgorithm": "sha256"}});
    let expected = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [{
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "keyshare-team-b",
                         "labels": {"app.kubernetes.io/managed-by": "keyshare"}},
            "spec": {
                "images": [{"glob": "registry.acme.io/team-b/*"}, {"glob": "registry.acme.io/team-b-all/**"}],
                "authorities": [authority("b1"), authority("b2"), authority("b3"), authority("bw")],
                "mode": "enforce",
            },
        }]
    });
    assert_eq!(doc, expected);
    // Fields of policy.sigstore.dev/v1beta1 ClusterImagePolicy
    // (pkg/apis/policy/v1beta1/clusterimagepolicy_types.go).
    assert_fields_within(
        &doc,
        &[
            "apiVersion",
            "kind",
            "items",
            "items[].apiVersion",
            "items[].kind",
            "items[].metadata",
            "items[].metadata.name",
            "items[].metadata.labels",
            "items[].metadata.labels.app.kubernetes.io/managed-by",
            "items[].spec",
            "items[].spec.images",
            "items[].spec.images[].glob",
            "items[].spec.authorities",
            "items[].spec.authorities[].name",
            "items[].spec.authorities[].key",
            "items[].spec.authorities[].key.data",
            "items[].spec.authorities[].key.hashAlgorithm",
            "items[].spec.mode",
        ],
    );
    let b = |s: &str| format!("team-b: {s}");
    assert_warned(
        &summary.warnings,
        &[
            "team-a: threshold 2: policy-controller's authorities are alternatives".into(),
            b("identity `web`: policy-controller cannot require"),
            b(&format!(
                "key {}: its validity window is not carried",
                w.id("bw")
            )),
            b(&format!("key {}: revoked", w.id("b4"))),
            b(&format!("key {}: not valid yet", w.id("b5"))),
            b(&format!("key {}: RSA-PSS", w.id("bp"))),
            b("scope `registry.acme.io/shared/web`: an exact repository"),
            "team-c: no trust document, no policy".into(),
            "team-d: threshold 2: policy-controller's authorities are alternatives".into(),
        ],
    );
}

#[test]
fn export_cosign_writes_key_files_and_a_scope_map_field_by_field() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    // A stale key file of an earlier export goes.
    std::fs::create_dir_all(dir.path().join("team-a")).unwrap();
    std::fs::write(dir.path().join("team-a/stale.pub"), "x").unwrap();
    let summary = cosign::write(&w.set, dir.path(), NOW).unwrap();
    assert_eq!(summary.namespaces, ["team-a", "team-b", "team-d"]);
    let file = |ns: &str, n: &str| format!("{ns}/{}.pub", w.id(n));
    let mut files: Vec<String> = [
        ("team-a", "a1"),
        ("team-a", "a2"),
        ("team-a", "a3"),
        ("team-b", "b1"),
        ("team-b", "b2"),
        ("team-b", "b3"),
        ("team-b", "bw"),
        ("team-d", "d1"),
        ("team-d", "d2"),
    ]
    .iter()
    .map(|(ns, n)| file(ns, n))
    .chain(["cosign.json".to_owned()])
    .collect();
    files.sort();
    let got: Vec<String> = summary
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(got, files);
    assert!(!dir.path().join("team-a/stale.pub").exists());
    for f in files.iter().filter(|f| f.ends_with(".pub")) {
        let name = w
            .keys
            .keys()
            .find(|n| f.ends_with(&format!("{}.pub", w.id(n))))
            .unwrap();
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            w.pem(name),
            "{f}"
        );
        let want = w.keys[name]
            .public_key()
            .openssl_key(w.keys[name].key_id())
            .unwrap();
        assert!(PKey::public_key_from_pem(&bytes).unwrap().public_eq(want));
    }

    let doc = read_json(&dir.path().join("cosign.json"));
    let k = |ns: &str, n: &str| json!({"id": w.id(n), "file": file(ns, n)});
    let kp =
        |ns: &str, n: &str, p: &str| json!({"id": w.id(n), "file": file(ns, n), "principal": p});
    let a = json!({"namespace": "team-a", "threshold": 2,
                   "keys": [k("team-a", "a1"), k("team-a", "a2"), k("team-a", "a3")]});
    let b = json!({"namespace": "team-b", "threshold": 1,
                   "keys": [k("team-b", "b1"), kp("team-b", "b2", "alice"), kp("team-b", "b3", "alice"), k("team-b", "bw")]});
    let d = json!({"namespace": "team-d", "threshold": 2,
                   "keys": [kp("team-d", "d1", "ops"), kp("team-d", "d2", "ops")]});
    let expected = json!({
        "registry.acme.io/team-a/**": a,
        "registry.acme.io/team-a-tools/*": a,
        "registry.acme.io/solo": a,
        "reg.lookalike.io/app/**": a,
        "registry.acme.io/shared/web": b,
        "registry.acme.io/team-b/*": b,
        "registry.acme.io/team-b-all/**": b,
        "registry.acme.io/team-d/**": d,
    });
    assert_eq!(doc, expected);

    let a = |s: &str| format!("team-a: {s}");
    let b = |s: &str| format!("team-b: {s}");
    assert_warned(
        &summary.warnings,
        &[
            a("identity `release`: a key file cannot require"),
            a("1 sub-delegation(s) left out"),
            a(&format!("key {}: revoked", w.id("a4"))),
            a(&format!("key {}: expired", w.id("a5"))),
            a(&format!("key {}: ephemeral", w.id("a6"))),
            a("scope `registry.acme.io/vendor/**`: shares names with peer `partner`"),
            a("scope `registry.acme.io/shared/**`: shares names with namespace `team-b`"),
            b("identity `web`: a key file cannot require"),
            b(&format!(
                "key {}: its validity window is not carried",
                w.id("bw")
            )),
            b(&format!("key {}: revoked", w.id("b4"))),
            b(&format!("key {}: not valid yet", w.id("b5"))),
            b(&format!("key {}: RSA-PSS", w.id("bp"))),
            "team-c: no trust document, nothing exported".into(),
            "team-d: threshold 2 but 1 key holder(s) exported".into(),
        ],
    );
}

/// From the attacker's side: team-a's maintainers (who write team-a's
/// trust document, here with a sub-delegation reaching into team-b) get no
/// Kyverno, policy-controller or cosign rule that covers a name keyshare
/// gives to team-b, team-c, team-d or the peer, matched the way each tool
/// matches; and no threshold of 2 becomes a count of 1.
#[test]
fn export_image_policies_never_cover_another_owners_names_nor_lower_a_threshold() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    kyverno::write(&w.set, dir.path(), NOW).unwrap();
    policy_controller::write(&w.set, dir.path(), NOW).unwrap();
    cosign::write(&w.set, dir.path(), NOW).unwrap();

    let ky = read_json(&dir.path().join("kyverno.json"));
    for policy in ky["items"].as_array().unwrap() {
        let ns = policy["metadata"]["name"]
            .as_str()
            .unwrap()
            .strip_prefix("keyshare-")
            .unwrap();
        let iv = &policy["spec"]["rules"][0]["verifyImages"][0];
        let patterns: Vec<&str> = iv["imageReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for (owner, reference) in references() {
            let matched = patterns.iter().any(|p| kyverno_match(p, reference));
            if owner != ns {
                assert!(!matched, "{ns}'s Kyverno rule covers {owner}'s {reference}");
            }
        }
        let threshold = w.set.document(ns).unwrap().threshold.get();
        assert_eq!(iv["attestors"][0]["count"], json!(threshold), "{ns}");
        // Nested attestors of one principal count once.
        for entry in iv["attestors"][0]["entries"].as_array().unwrap() {
            if let Some(nested) = entry.get("attestor") {
                assert_eq!(nested["count"], json!(1));
            }
        }
    }
    // Every reference of an exported team-a scope is covered, by digest too.
    let a = &ky["items"][0]["spec"]["rules"][0]["verifyImages"][0]["imageReferences"];
    for reference in [
        "registry.acme.io/team-a/app:1.0",
        "registry.acme.io/team-a/x/y@sha256:00ff",
        "registry.acme.io/solo:latest",
        "registry.acme.io/solo@sha256:00ff",
    ] {
        assert!(
            a.as_array()
                .unwrap()
                .iter()
                .any(|p| kyverno_match(p.as_str().unwrap(), reference)),
            "{reference}"
        );
    }
    // Kyverno's `.` is any character: the look-alike scope is not exported.
    assert!(!a
        .as_array()
        .unwrap()
        .iter()
        .any(|p| kyverno_match(p.as_str().unwrap(), "reg-lookalike.io/app/x:1")));

    let pc = read_json(&dir.path().join("policy-controller.json"));
    for policy in pc["items"].as_array().unwrap() {
        let ns = policy["metadata"]["name"]
            .as_str()
            .unwrap()
            .strip_prefix("keyshare-")
            .unwrap();
        // Authorities are alternatives: only namespaces of threshold 1.
        assert_eq!(w.set.document(ns).unwrap().threshold.get(), 1, "{ns}");
        let globs: Vec<&str> = policy["spec"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["glob"].as_str().unwrap())
            .collect();
        for (owner, reference) in references() {
            let matched = globs.iter().any(|g| pc_match(g, reference));
            if owner != ns {
                assert!(!matched, "{ns}'s policy covers {owner}'s {reference}");
            }
        }
    }
    assert!(!pc["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == "keyshare-team-a"
            || p["metadata"]["name"] == "keyshare-team-d"));

    // cosign.json: no scope of one namespace shares a name with another's,
    // and none is the sub-delegation's.
    let map = read_json(&dir.path().join("cosign.json"));
    let scopes: Vec<(String, String)> = map
        .as_object()
        .unwrap()
        .iter()
        .map(|(s, v)| (s.clone(), v["namespace"].as_str().unwrap().to_owned()))
        .collect();
    for (s, ns) in &scopes {
        let p = keyshare_policy::pattern::ArtifactPattern::parse(s).unwrap();
        for (t, other) in &scopes {
            if ns != other {
                let q = keyshare_policy::pattern::ArtifactPattern::parse(t).unwrap();
                assert!(p.common_match(&q).is_none(), "{s} ({ns}) and {t} ({other})");
            }
        }
        for (owner, reference) in references() {
            let name = reference.split(['@']).next().unwrap();
            let name = name.rsplit_once(':').map_or(name, |(n, _)| n);
            if p.matches(name) {
                assert_eq!(owner, ns.as_str(), "{s} matches {reference}");
            }
        }
    }
    assert_eq!(map["registry.acme.io/team-a/**"]["threshold"], json!(2));
    assert_eq!(map["registry.acme.io/team-d/**"]["threshold"], json!(2));
}

#[test]
fn the_matchers_written_out_agree_with_the_tools_documented_examples() {
    // policy-controller's glob_test.go.
    assert!(pc_match("ghcr.io/*/*", "ghcr.io/foo/bar:latest"));
    assert!(!pc_match("ghcr.io/*/*", "ghcr.io/foo:latest"));
    assert!(pc_match("ghcr.io/**", "ghcr.io/foo:latest"));
    assert!(!pc_match("ghcr.io/foo", "ghcr.io/foo-suffix"));
    // go-wildcard v2: `.` is any one character, `*` crosses `/`.
    assert!(kyverno_match(
        "registry.acme.io/*",
        "registryxacme.io/a/b:1"
    ));
    assert!(kyverno_match("a*", "a/b/c"));
    assert!(kyverno_match("ab?", "ab"));
    assert!(!kyverno_match("abc", "ab"));
}

/// The PEM export leaves out a key the namespace revoked itself, as it
/// does one the organization revoked.
#[test]
fn export_pem_leaves_out_keys_the_namespace_revoked() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let summary = keyshare_client::export::pem::write(&w.set, dir.path()).unwrap();
    for (ns, name) in [("team-b", "b4"), ("team-a", "a4")] {
        assert!(
            !dir.path().join(format!("{ns}/{}.pem", w.id(name))).exists(),
            "{name}"
        );
        let needle = format!("{ns}: key {}: revoked", w.id(name));
        assert!(
            summary.warnings.iter().any(|x| x.contains(&needle)),
            "{needle}: {:#?}",
            summary.warnings
        );
    }
    assert!(dir
        .path()
        .join(format!("team-b/{}.pem", w.id("b1")))
        .exists());
}

/// Layout-root keys: the in-toto key map (keyid the SHA-256 of the key
/// object's canonical JSON) and PEM files, only of keys marked
/// `layout_root`, without revoked or expired ones.
#[test]
fn export_layout_keys_writes_in_toto_key_maps_of_layout_root_keys_only() {
    let names = ["l1", "l2", "l3", "l4", "l5", "m1"];
    let keys: BTreeMap<&str, InMemorySigner> = names
        .into_iter()
        .map(|n| {
            let scheme = if n == "l5" {
                Scheme::EcdsaP256Sha256
            } else {
                Scheme::Ed25519
            };
            (n, InMemorySigner::generate(scheme).unwrap())
        })
        .collect();
    let root = json!({"layout_root": true});
    let index = json!({
        "format": "keyshare.namespaces/v1",
        "namespaces": [
            {"name": "team-l", "maintainers": [], "scopes": ["registry.acme.io/team-l/**"]},
            {"name": "team-m", "maintainers": [], "scopes": ["registry.acme.io/team-m/**"]},
        ]
    });
    let l = json!({
        "format": "keyshare.trust/v3", "namespace": "team-l", "threshold": 1,
        "keys": [
            // Another opaque id than the computed one: the map uses the
            // computed one, the file name keyshare's.
            key_entry(&keys["l1"], json!({"layout_root": true})).as_object().unwrap().clone()
                .into_iter().map(|(k, v)| if k == "id" { (k, json!("release-root")) } else { (k, v) }).collect::<serde_json::Map<_, _>>(),
            key_entry(&keys["l2"], root.clone()).as_object().unwrap().clone(),
            key_entry(&keys["l3"], json!({"layout_root": true, "not_after": "2030-01-01T00:00:00Z"})).as_object().unwrap().clone(),
            key_entry(&keys["l4"], json!({})).as_object().unwrap().clone(),
            key_entry(&keys["l5"], json!({"layout_root": true, "not_after": "2031-01-01T00:00:00Z"})).as_object().unwrap().clone(),
        ],
        "revocations": [{
            "subject": {"spki_sha256": keys["l2"].public_key().fingerprint(keys["l2"].key_id()).unwrap()},
            "revoked_at": "2030-02-01T00:00:00Z", "reason": "rotated"
        }]
    });
    let m = json!({
        "format": "keyshare.trust/v1", "namespace": "team-m", "threshold": 1,
        "keys": [key_entry(&keys["m1"], json!({}))],
    });
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let set = TrustSet::new(
        Namespaces::from_slice(&bytes(&index)).unwrap(),
        [l, m]
            .iter()
            .map(|d| NamespaceTrust::from_slice(&bytes(d)).unwrap())
            .collect(),
        Revocations::from_slice(&bytes(
            &json!({"format": "keyshare.revocations/v2", "revocations": []}),
        ))
        .unwrap(),
        Peers::from_slice(&bytes(&json!({"format": "keyshare.peers/v1", "peers": []}))).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = keyshare_client::export::layout::write(&set, dir.path(), NOW).unwrap();
    assert_eq!(summary.namespaces, ["team-l"]);
    let id = |n: &str| keys[n].key_id().as_str().to_owned();
    let mut files = vec![
        "layout-keys.json".to_owned(),
        "team-l/release-root.pem".to_owned(),
        format!("team-l/{}.pem", id("l5")),
        "witness-publickeys.json".to_owned(),
    ];
    files.sort();
    let got: Vec<String> = summary
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(got, files);
    let object = |n: &str| serde_json::to_value(keys[n].public_key()).unwrap();
    // The in-toto KEYID: hex SHA-256 of the key object's canonical JSON.
    let keyid = |n: &str| {
        let canonical = keyshare_policy::cjson::to_canonical(&object(n), "key").unwrap();
        openssl::sha::sha256(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let doc = read_json(&dir.path().join("layout-keys.json"));
    assert_eq!(
        doc,
        json!({"team-l": {keyid("l1"): object("l1"), keyid("l5"): object("l5")}})
    );
    for (file, n) in [
        ("team-l/release-root.pem".to_owned(), "l1"),
        (format!("team-l/{}.pem", id("l5")), "l5"),
    ] {
        let pem = std::fs::read(dir.path().join(&file)).unwrap();
        let want = keys[n].public_key().openssl_key(keys[n].key_id()).unwrap();
        assert!(
            PKey::public_key_from_pem(&pem).unwrap().public_eq(want),
            "{file}"
        );
    }
    for entry in doc["team-l"].as_object().unwrap().values() {
        let fields: BTreeSet<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(["keytype", "scheme", "keyval"]));
        assert_eq!(entry["keyval"].as_object().unwrap().len(), 1);
    }
    // witness's policy `publickeys`: KEYID the hex SHA-256 of the PEM
    // (cryptoutil.GeneratePublicKeyID), `key` the PEM in base64.
    let witness = read_json(&dir.path().join("witness-publickeys.json"));
    let entry = |n: &str| {
        let pem = String::from_utf8(
            keys[n]
                .public_key()
                .openssl_key(keys[n].key_id())
                .unwrap()
                .public_key_to_pem()
                .unwrap(),
        )
        .unwrap();
        let id: String = openssl::sha::sha256(pem.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (
            id.clone(),
            json!({"keyid": id, "key": openssl::base64::encode_block(pem.as_bytes())}),
        )
    };
    let (w1, e1) = entry("l1");
    let (w5, e5) = entry("l5");
    assert_eq!(witness, json!({"team-l": {w1: e1, w5: e5}}));
    assert_warned(
        &summary.warnings,
        &[
            format!("team-l: layout-root key {}: revoked", id("l2")),
            format!("team-l: layout-root key {}: expired", id("l3")),
            format!("team-l: layout-root key {}: its validity window", id("l5")),
        ],
    );
}
