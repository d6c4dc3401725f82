//! Parsing the trust documents: every bad document is refused at parse time
//! with the document and the offending field named; good ones round-trip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::support::*;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    Counted, Decision, KeyRef, NamespaceTrust, Namespaces, Peers, PinnedRoot, Reason, Revocations,
    RevokedSubject, SignerRef, SubjectAttr, TrustRule, TrustSet,
};
use keyshare_policy::Error;
use serde_json::{json, Value};

const WHAT: &str = "namespaces/team-a/trust.json";

fn key_json(s: &InMemorySigner) -> Value {
    serde_json::to_value(s.public_key()).unwrap()
}

/// A valid namespace document with one key and one sub-delegation.
fn namespace_json() -> Value {
    let a = signer();
    let b = signer();
    json!({
        "format": "keyshare.trust/v1",
        "namespace": "team-a",
        "threshold": 1,
        "keys": [{"id": a.key_id().as_str(), "key": key_json(&a)}],
        "sub_delegations": [{
            "name": "nightly",
            "scopes": ["registry.acme.io/team-a/nightly/**"],
            "threshold": 1,
            "keys": [{"id": b.key_id().as_str(), "key": key_json(&b)}]
        }]
    })
}

fn parse_ns(v: &Value) -> Result<NamespaceTrust, Error> {
    NamespaceTrust::from_slice(&serde_json::to_vec(v).unwrap())
}

/// Asserts the namespace document is refused with `path` named.
fn refused_at(v: &Value, path: &str) {
    let (what, got) = malformed(parse_ns(v));
    assert_eq!(what, WHAT);
    assert_eq!(got, path);
}

fn put(v: &mut Value, pointer: &str, new: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = new;
}

#[test]
fn valid_namespace_document_parses_and_round_trips() {
    let v = namespace_json();
    let doc = parse_ns(&v).unwrap();
    assert_eq!(doc.namespace.as_str(), "team-a");
    let again = NamespaceTrust::from_slice(&doc.to_vec().unwrap()).unwrap();
    assert_eq!(again, doc);
}

#[test]
fn unknown_top_level_field_is_refused() {
    let mut v = namespace_json();
    v["colour"] = json!("blue");
    let err = parse_ns(&v).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    refused_at(&v, "colour");
}

#[test]
fn unknown_field_in_a_key_entry_is_refused() {
    let mut v = namespace_json();
    v["keys"][0]["expires"] = json!("2030-01-01T00:00:00Z");
    refused_at(&v, "keys[0].expires");
}

#[test]
fn unknown_field_inside_a_key_object_is_refused() {
    let mut v = namespace_json();
    v["keys"][0]["key"]["keyid_hash_algorithms"] = json!(["sha256"]);
    refused_at(&v, "keys[0].key.keyid_hash_algorithms");
}

#[test]
fn wrong_format_string_is_refused() {
    let mut v = namespace_json();
    v["format"] = json!("keyshare.trust/v4");
    refused_at(&v, "format");
    let err = parse_ns(&v).unwrap_err().to_string();
    assert!(
        err.contains("a newer format needs a newer verifier"),
        "{err}"
    );
    let (what, path) = malformed(Revocations::from_slice(
        br#"{"format":"keyshare.trust/v1","revocations":[]}"#,
    ));
    assert_eq!(
        (what.as_str(), path.as_str()),
        ("org/revocations.json", "format")
    );
    let (what, path) = malformed(Peers::from_slice(
        br#"{"format":"keyshare.peer/v1","peers":[]}"#,
    ));
    assert_eq!((what.as_str(), path.as_str()), ("org/peers.json", "format"));
}

/// A namespace's own revocation, as in a `keyshare.trust/v2` document.
fn namespace_revocation(spki: &str) -> Value {
    json!({
        "subject": {"spki_sha256": spki},
        "revoked_at": "2030-03-04T10:00:00Z",
        "reason": "laptop stolen"
    })
}

#[test]
fn a_namespace_document_with_revocations_is_format_v2_and_round_trips() {
    let mut v = namespace_json();
    v["format"] = json!("keyshare.trust/v2");
    v["revocations"] = json!([namespace_revocation(&"ab".repeat(32))]);
    let doc = parse_ns(&v).unwrap();
    assert_eq!(doc.format, keyshare_policy::trust::TrustFormat::V2);
    assert_eq!(doc.revocations.len(), 1);
    let again = NamespaceTrust::from_slice(&doc.to_vec().unwrap()).unwrap();
    assert_eq!(again, doc);
    // A v2 document need not revoke anything; a v1 one never carries the field.
    v["revocations"] = json!([]);
    assert!(parse_ns(&v).unwrap().revocations.is_empty());
    let v1 = serde_json::to_value(parse_ns(&namespace_json()).unwrap()).unwrap();
    assert!(v1.get("revocations").is_none(), "{v1}");
}

#[test]
fn a_layout_root_key_needs_format_v3_and_round_trips() {
    use keyshare_policy::trust::TrustFormat;
    let mut v = namespace_json();
    v["keys"][0]["layout_root"] = json!(true);
    // v1 and v2 cannot carry it: an older verifier would not know the key
    // is a layout key, and refuses the newer format by name instead.
    refused_at(&v, "keys[0].layout_root");
    v["format"] = json!("keyshare.trust/v2");
    refused_at(&v, "keys[0].layout_root");
    v["format"] = json!("keyshare.trust/v3");
    let doc = parse_ns(&v).unwrap();
    assert_eq!(doc.format, TrustFormat::V3);
    assert!(doc.keys[0].layout_root);
    let again = NamespaceTrust::from_slice(&doc.to_vec().unwrap()).unwrap();
    assert_eq!(again, doc);
    let written = serde_json::to_value(&doc).unwrap();
    assert_eq!(written["keys"][0]["layout_root"], json!(true));
    assert_eq!(
        TrustFormat::for_contents(&doc.revocations, &doc.keys),
        TrustFormat::V3
    );
    // v3 carries revocations as v2 does.
    v["revocations"] = json!([namespace_revocation(&"ab".repeat(32))]);
    assert_eq!(parse_ns(&v).unwrap().revocations.len(), 1);

    // Never on an ephemeral key, nor on a sub-delegation's.
    let mut e = v.clone();
    e["keys"][0]["ephemeral"] = json!(true);
    e["keys"][0]["not_after"] = json!("2030-01-01T00:00:00Z");
    refused_at(&e, "keys[0].layout_root");
    let mut s = v.clone();
    s["keys"][0]["layout_root"] = json!(false);
    s["sub_delegations"][0]["keys"][0]["layout_root"] = json!(true);
    refused_at(&s, "sub_delegations[0].keys[0].layout_root");
}

/// Documents that mark no layout-root key keep their canonical bytes (what
/// TUF hashes and verifiers compare): the field is never written when
/// false, and their format stays `v1` / `v2`.
#[test]
fn documents_without_layout_root_keys_keep_their_bytes_and_format() {
    use keyshare_policy::cjson::to_canonical;
    use keyshare_policy::trust::TrustFormat;
    let mut v2 = namespace_json();
    v2["format"] = json!("keyshare.trust/v2");
    v2["revocations"] = json!([namespace_revocation(&"cd".repeat(32))]);
    for mut v in [namespace_json(), v2] {
        let doc = parse_ns(&v).unwrap();
        // As written before layout-root keys existed: the input, with the
        // (always written) empty `identities`.
        v["identities"] = json!([]);
        assert_eq!(
            to_canonical(&doc, "doc").unwrap(),
            to_canonical(&v, "doc").unwrap()
        );
        assert!(!String::from_utf8(doc.to_vec().unwrap())
            .unwrap()
            .contains("layout_root"));
        assert_eq!(
            TrustFormat::for_contents(&doc.revocations, &doc.keys),
            doc.format
        );
    }
    // An explicit `false` is the default: accepted, and not written back.
    let mut f = namespace_json();
    f["keys"][0]["layout_root"] = json!(false);
    let doc = parse_ns(&f).unwrap();
    assert!(!doc.keys[0].layout_root);
    assert_eq!(
        to_canonical(&doc, "doc").unwrap(),
        to_canonical(
            &{
                let mut g = f.clone();
                g["keys"][0].as_object_mut().unwrap().remove("layout_root");
                g["identities"] = json!([]);
                g
            },
            "doc"
        )
        .unwrap()
    );
}

#[test]
fn bad_namespace_revocations_are_refused_naming_the_field() {
    let cert = json!({
        "subject": {"certificate_sha256": "cd".repeat(32)},
        "revoked_at": "2030-03-04T10:00:00Z",
        "reason": "x"
    });
    let mut empty_reason = namespace_revocation(&"ab".repeat(32));
    empty_reason["reason"] = json!(" ");
    let mut unknown = namespace_revocation(&"ab".repeat(32));
    unknown["namespace"] = json!("team-b");
    // (format, revocations, the field named)
    let table = [
        // Revocations a verifier that knows only v1 could not apply: v2 only.
        (
            "keyshare.trust/v1",
            json!([namespace_revocation(&"ab".repeat(32))]),
            "revocations",
        ),
        // Certificates are revoked organization-wide only.
        ("keyshare.trust/v2", json!([cert]), "revocations[0].subject"),
        (
            "keyshare.trust/v2",
            json!([
                namespace_revocation(&"ab".repeat(32)),
                namespace_revocation(&"ab".repeat(32))
            ]),
            "revocations[1].subject",
        ),
        (
            "keyshare.trust/v2",
            json!([empty_reason]),
            "revocations[0].reason",
        ),
        (
            "keyshare.trust/v2",
            json!([unknown]),
            "revocations[0].namespace",
        ),
        (
            "keyshare.trust/v2",
            json!([namespace_revocation("AB")]),
            "revocations[0].subject.spki_sha256",
        ),
    ];
    for (format, revocations, path) in table {
        let mut v = namespace_json();
        v["format"] = json!(format);
        v["revocations"] = revocations;
        refused_at(&v, path);
    }
}

#[test]
fn missing_format_is_refused() {
    let mut v = namespace_json();
    v.as_object_mut().unwrap().remove("format");
    let err = parse_ns(&v).unwrap_err();
    assert!(err.to_string().contains("format"), "{err}");
}

#[test]
fn namespace_document_cannot_state_its_own_scopes() {
    // An old-style document, or one claiming another team's artifact: the
    // field does not exist, so the document is refused, naming it and where
    // scopes come from.
    for scopes in [
        json!(["registry.acme.io/team-a/**"]),
        json!(["registry.acme.io/team-b/app"]),
    ] {
        let mut v = namespace_json();
        v["scopes"] = scopes;
        refused_at(&v, "scopes");
        let err = parse_ns(&v).unwrap_err().to_string();
        assert!(err.contains("namespace index (org/namespaces/)"), "{err}");
        let bytes = serde_json::to_vec(&v).unwrap();
        let (what, path) = malformed(NamespaceTrust::from_target(WHAT, &bytes));
        assert_eq!((what.as_str(), path.as_str()), (WHAT, "scopes"));
    }
}

#[test]
fn namespace_document_cannot_state_its_own_maintainers() {
    let mut v = namespace_json();
    v["maintainers"] = json!(["lead@acme.example"]);
    refused_at(&v, "maintainers");
    let err = parse_ns(&v).unwrap_err().to_string();
    assert!(err.contains("namespace index (org/namespaces/)"), "{err}");
}

#[test]
fn threshold_zero_is_refused() {
    let mut v = namespace_json();
    v["threshold"] = json!(0);
    refused_at(&v, "threshold");
}

#[test]
fn namespace_threshold_above_its_keys_parses() {
    // The expiry sweep may leave fewer keys than the threshold: the
    // document stays valid (decisions then say the threshold is not met).
    let mut v = namespace_json();
    v["threshold"] = json!(2);
    let doc = parse_ns(&v).unwrap();
    assert_eq!(doc.threshold.get(), 2);
    assert_eq!(doc.keys.len() + doc.identities.len(), 1);
}

#[test]
fn sub_delegation_threshold_above_its_keys_is_refused() {
    let mut v = namespace_json();
    v["sub_delegations"][0]["threshold"] = json!(3);
    refused_at(&v, "sub_delegations[0].threshold");
}

#[test]
fn namespace_listing_nothing_yet_parses() {
    // A namespace just created has no keys: it trusts no one, and that is
    // a valid document, whatever its threshold.
    let mut v = namespace_json();
    v["keys"] = json!([]);
    v["identities"] = json!([]);
    v["sub_delegations"] = json!([]);
    v["threshold"] = json!(2);
    let doc = parse_ns(&v).unwrap();
    assert!(doc.keys.is_empty() && doc.identities.is_empty());
}

#[test]
fn ephemeral_key_without_not_after_is_refused() {
    let mut v = namespace_json();
    v["keys"][0]["ephemeral"] = json!(true);
    refused_at(&v, "keys[0].not_after");
}

#[test]
fn not_before_after_not_after_is_refused() {
    let mut v = namespace_json();
    v["keys"][0]["not_before"] = json!("2030-01-02T00:00:00Z");
    v["keys"][0]["not_after"] = json!("2030-01-01T00:00:00Z");
    refused_at(&v, "keys[0].not_after");
}

#[test]
fn time_that_is_not_rfc3339_is_refused() {
    let mut v = namespace_json();
    v["keys"][0]["not_after"] = json!("2030-01-01");
    refused_at(&v, "keys[0].not_after");
}

#[test]
fn bad_key_material_is_refused() {
    let mut v = namespace_json();
    put(&mut v, "/keys/0/key/keyval/public", json!("abcd"));
    refused_at(&v, "keys[0].key.keyval.public");
    let mut v = namespace_json();
    put(
        &mut v,
        "/sub_delegations/0/keys/0/key/keyval/public",
        json!("not hex at all"),
    );
    refused_at(&v, "sub_delegations[0].keys[0].key.keyval.public");
}

#[test]
fn unsupported_keytype_is_refused() {
    let mut v = namespace_json();
    put(&mut v, "/keys/0/key/keytype", json!("ed448"));
    put(&mut v, "/keys/0/key/scheme", json!("ed448"));
    refused_at(&v, "keys[0].key.keytype");
}

#[test]
fn small_rsa_key_is_refused() {
    let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
    let pem = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
    let mut v = namespace_json();
    put(
        &mut v,
        "/keys/0/key",
        json!({"keytype": "rsa", "scheme": "rsassa-pss-sha256", "keyval": {"public": pem}}),
    );
    refused_at(&v, "keys[0].key.keyval.public");
}

#[test]
fn duplicate_key_id_is_refused() {
    let mut v = namespace_json();
    let other = signer();
    let mut second = json!({"id": "", "key": key_json(&other)});
    second["id"] = v["keys"][0]["id"].clone();
    v["keys"].as_array_mut().unwrap().push(second);
    refused_at(&v, "keys[1].id");
}

#[test]
fn same_key_under_two_ids_is_refused() {
    let mut v = namespace_json();
    let mut second = v["keys"][0].clone();
    second["id"] = json!("alias");
    v["keys"].as_array_mut().unwrap().push(second);
    refused_at(&v, "keys[1].key");
}

#[test]
fn bad_namespace_name_is_refused() {
    for bad in ["Team-A", "-team", "team_a", "", &"a".repeat(64)] {
        let mut v = namespace_json();
        v["namespace"] = json!(bad);
        let (_, path) = malformed(parse_ns(&v));
        assert_eq!(path, "namespace", "{bad}");
    }
}

#[test]
fn document_published_under_another_namespaces_path_is_refused() {
    let bytes = serde_json::to_vec(&namespace_json()).unwrap();
    assert!(NamespaceTrust::from_target(WHAT, &bytes).is_ok());
    let (what, path) = malformed(NamespaceTrust::from_target(
        "namespaces/team-b/trust.json",
        &bytes,
    ));
    assert_eq!(
        (what.as_str(), path.as_str()),
        ("namespaces/team-b/trust.json", "namespace")
    );
}

#[test]
fn duplicate_sub_delegation_name_is_refused() {
    let mut v = namespace_json();
    let copy = v["sub_delegations"][0].clone();
    v["sub_delegations"].as_array_mut().unwrap().push(copy);
    refused_at(&v, "sub_delegations[1].name");
}

#[test]
fn sub_delegation_without_scopes_is_refused() {
    let mut v = namespace_json();
    v["sub_delegations"][0]["scopes"] = json!([]);
    refused_at(&v, "sub_delegations[0].scopes");
}

#[test]
fn identity_with_bad_certificate_or_subject_is_refused() {
    let base = namespace_json();
    let mut v = base.clone();
    v["identities"] = json!([{"name": "ci", "ca_certs": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"], "subject": "CN=x"}]);
    refused_at(&v, "identities[0].ca_certs[0]");
    let mut v = base.clone();
    v["identities"] = json!([{"name": "ci", "ca_certs": [], "subject": "CN=x"}]);
    refused_at(&v, "identities[0].ca_certs");
    let mut v = base;
    v["identities"] = json!([{"name": "ci", "ca_certs": [], "subject": "Common Name=x"}]);
    refused_at(&v, "identities[0].subject");
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = serde_json::to_vec(&namespace_json()).unwrap();
    bytes.extend_from_slice(b" {}");
    let (_, path) = malformed(NamespaceTrust::from_slice(&bytes));
    assert_eq!(path, ".");
}

#[test]
fn unparsable_document_is_named_by_its_namespace_when_readable() {
    let mut v = namespace_json();
    v["threshold"] = json!("one");
    let (what, _) = malformed(parse_ns(&v));
    assert_eq!(what, WHAT);
    let (what, _) = malformed(NamespaceTrust::from_slice(b"[]"));
    assert_eq!(what, "namespaces/<unknown>/trust.json");
}

// ---- org/namespaces.json ---------------------------------------------------

const INDEX: &str = "org/namespaces.json";

/// A valid namespaces document with two namespaces.
fn namespaces_json() -> Value {
    json!({
        "format": "keyshare.namespaces/v1",
        "namespaces": [
            {
                "name": "team-a",
                "scopes": ["registry.acme.io/team-a/**", "ghcr.io/acme/team-a-*"],
                "maintainers": ["team-a-leads@acme.example"]
            },
            {
                "name": "team-b",
                "scopes": ["registry.acme.io/team-b/**"]
            }
        ]
    })
}

/// Asserts the namespaces document is refused with `path` named.
fn index_refused_at(v: &Value, path: &str) {
    let (what, got) = malformed(Namespaces::from_slice(&serde_json::to_vec(v).unwrap()));
    assert_eq!((what.as_str(), got.as_str()), (INDEX, path), "{v}");
}

#[test]
fn valid_namespaces_document_parses_and_round_trips() {
    let doc = Namespaces::from_slice(&serde_json::to_vec(&namespaces_json()).unwrap()).unwrap();
    assert_eq!(doc.namespaces.len(), 2);
    let a = doc.get("team-a").unwrap();
    assert_eq!(a.scopes.len(), 2);
    assert_eq!(a.maintainers, ["team-a-leads@acme.example"]);
    assert!(doc.get("team-b").unwrap().maintainers.is_empty());
    assert!(doc.get("team-c").is_none());
    assert_eq!(Namespaces::from_slice(&doc.to_vec().unwrap()).unwrap(), doc);
    let empty =
        Namespaces::from_slice(br#"{"format":"keyshare.namespaces/v1","namespaces":[]}"#).unwrap();
    assert_eq!(empty, Namespaces::default());
}

#[test]
fn namespaces_bad_scope_pattern_is_refused() {
    let mut v = namespaces_json();
    v["namespaces"][0]["scopes"] = json!(["registry.acme.io/team-a/**", "registry.acme.io/[oops"]);
    index_refused_at(&v, "namespaces[0].scopes[1]");
    let mut v = namespaces_json();
    v["namespaces"][1]["scopes"] = json!(["registry.acme.io//x"]);
    index_refused_at(&v, "namespaces[1].scopes[0]");
}

#[test]
fn namespaces_empty_or_missing_scopes_are_refused() {
    let mut v = namespaces_json();
    v["namespaces"][1]["scopes"] = json!([]);
    index_refused_at(&v, "namespaces[1].scopes");
    let mut v = namespaces_json();
    v["namespaces"][1].as_object_mut().unwrap().remove("scopes");
    let err = Namespaces::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { what, path, message } if what == INDEX && path.starts_with("namespaces[1]") && message.contains("scopes")),
        "{err}"
    );
}

#[test]
fn namespaces_duplicate_scope_is_refused() {
    let mut v = namespaces_json();
    v["namespaces"][1]["scopes"] =
        json!(["registry.acme.io/team-b/**", "registry.acme.io/team-b/**"]);
    index_refused_at(&v, "namespaces[1].scopes[1]");
    // Nor may one pattern be granted to two namespaces.
    let mut v = namespaces_json();
    v["namespaces"][1]["scopes"] = json!(["registry.acme.io/team-b/**", "ghcr.io/acme/team-a-*"]);
    index_refused_at(&v, "namespaces[1].scopes[1]");
    let err = Namespaces::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("team-a"), "{err}");
}

#[test]
fn namespaces_duplicate_namespace_is_refused() {
    let mut v = namespaces_json();
    v["namespaces"][1]["name"] = json!("team-a");
    index_refused_at(&v, "namespaces[1].name");
    let err = Namespaces::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
}

#[test]
fn namespaces_bad_name_is_refused() {
    for bad in ["Team-A", "-team", "team_a", ""] {
        let mut v = namespaces_json();
        v["namespaces"][0]["name"] = json!(bad);
        index_refused_at(&v, "namespaces[0].name");
    }
}

#[test]
fn namespaces_unknown_field_is_refused() {
    let mut v = namespaces_json();
    v["colour"] = json!("blue");
    index_refused_at(&v, "colour");
    // A team's keys do not belong in the organization's document either.
    let mut v = namespaces_json();
    v["namespaces"][0]["keys"] = json!([]);
    index_refused_at(&v, "namespaces[0].keys");
}

#[test]
fn namespaces_wrong_or_missing_format_is_refused() {
    for format in ["keyshare.trust/v1", "keyshare.namespaces/v2", ""] {
        let mut v = namespaces_json();
        v["format"] = json!(format);
        index_refused_at(&v, "format");
    }
    let mut v = namespaces_json();
    v.as_object_mut().unwrap().remove("format");
    let err = Namespaces::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("format"), "{err}");
}

#[test]
fn namespaces_bad_maintainer_is_refused() {
    for (maintainers, path) in [
        (json!([" "]), "namespaces[0].maintainers[0]"),
        (
            json!(["ok@acme.example", "a\nb"]),
            "namespaces[0].maintainers[1]",
        ),
        (
            json!(["ok@acme.example", "ok@acme.example"]),
            "namespaces[0].maintainers[1]",
        ),
    ] {
        let mut v = namespaces_json();
        v["namespaces"][0]["maintainers"] = maintainers;
        index_refused_at(&v, path);
    }
}

#[test]
fn namespaces_trailing_bytes_are_refused() {
    let mut bytes = serde_json::to_vec(&namespaces_json()).unwrap();
    bytes.extend_from_slice(b" []");
    let (what, path) = malformed(Namespaces::from_slice(&bytes));
    assert_eq!((what.as_str(), path.as_str()), (INDEX, "."));
}

// ---- revocations -----------------------------------------------------------

const FP: &str = "0c1b2a3948576675849302a1b0c9d8e7f60514233241506f7e8d9cabbac9d8e7";
const CERT: &str = "fa5489414345b44f5e1b15b0142bd73695ff84f302a01ec12f184017633955b3";

#[test]
fn revocations_parse_both_subject_forms() {
    let json = format!(
        r#"{{"format":"keyshare.revocations/v2","revocations":[
        {{"subject":{{"spki_sha256":"{FP}"}},"revoked_at":"2030-01-01T00:00:00Z","reason":"lost"}},
        {{"subject":{{"certificate_sha256":"{CERT}"}},"revoked_at":"2030-01-01T00:00:00+02:00","reason":"compromised"}}]}}"#
    );
    let doc = Revocations::from_slice(json.as_bytes()).unwrap();
    assert!(matches!(&doc.revocations[0].subject, RevokedSubject::Key(k) if k.as_str() == FP));
    assert!(matches!(
        &doc.revocations[1].subject,
        RevokedSubject::Certificate(_)
    ));
    assert_eq!(
        Revocations::from_slice(&doc.to_vec().unwrap()).unwrap(),
        doc
    );
}

#[test]
fn revocations_by_key_id_are_refused_with_a_message_saying_why() {
    // Version 1 named keys by id: a label any maintainer can give any key.
    let json = br#"{"format":"keyshare.revocations/v1","revocations":[
        {"subject":{"key_id":"abc"},"revoked_at":"2030-01-01T00:00:00Z","reason":"lost"}]}"#;
    match Revocations::from_slice(json) {
        Err(Error::Malformed { path, message, .. }) => {
            assert_eq!(path, "format");
            assert!(
                message.contains("by id") && message.contains("upgraded"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nor can a version 2 document name a key by id.
    let json = br#"{"format":"keyshare.revocations/v2","revocations":[
        {"subject":{"key_id":"abc"},"revoked_at":"2030-01-01T00:00:00Z","reason":"lost"}]}"#;
    let (_, path) = malformed(Revocations::from_slice(json));
    assert!(path.starts_with("revocations[0].subject"), "{path}");
}

#[test]
fn revocation_naming_both_a_key_and_a_certificate_is_refused() {
    let json = format!(
        r#"{{"format":"keyshare.revocations/v2","revocations":[
        {{"subject":{{"spki_sha256":"{FP}","certificate_sha256":"{CERT}"}},"revoked_at":"2030-01-01T00:00:00Z","reason":"x"}}]}}"#
    );
    let (_, path) = malformed(Revocations::from_slice(json.as_bytes()));
    assert!(path.starts_with("revocations[0].subject"), "{path}");
}

#[test]
fn revocation_with_bad_hash_or_twice_the_same_subject_is_refused() {
    let json = br#"{"format":"keyshare.revocations/v2","revocations":[
        {"subject":{"certificate_sha256":"FA54"},"revoked_at":"2030-01-01T00:00:00Z","reason":"x"}]}"#;
    let (_, path) = malformed(Revocations::from_slice(json));
    assert_eq!(path, "revocations[0].subject.certificate_sha256");
    let json = br#"{"format":"keyshare.revocations/v2","revocations":[
        {"subject":{"spki_sha256":"abc"},"revoked_at":"2030-01-01T00:00:00Z","reason":"x"}]}"#;
    let (_, path) = malformed(Revocations::from_slice(json));
    assert_eq!(path, "revocations[0].subject.spki_sha256");
    let json = format!(
        r#"{{"format":"keyshare.revocations/v2","revocations":[
        {{"subject":{{"spki_sha256":"{FP}"}},"revoked_at":"2030-01-01T00:00:00Z","reason":"x"}},
        {{"subject":{{"spki_sha256":"{FP}"}},"revoked_at":"2030-02-01T00:00:00Z","reason":"y"}}]}}"#
    );
    let (_, path) = malformed(Revocations::from_slice(json.as_bytes()));
    assert_eq!(path, "revocations[1].subject");
    let json = format!(
        r#"{{"format":"keyshare.revocations/v2","revocations":[
        {{"subject":{{"spki_sha256":"{FP}"}},"revoked_at":"2030-01-01T00:00:00Z","reason":" "}}]}}"#
    );
    let (_, path) = malformed(Revocations::from_slice(json.as_bytes()));
    assert_eq!(path, "revocations[0].reason");
}

// ---- peers -----------------------------------------------------------------

fn peers_json(url: &str, root: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": "keyshare.peers/v1",
        "peers": [{
            "name": "partner",
            "patterns": ["registry.partner.example/**"],
            "url": url,
            "root": root,
            "terminating": true
        }]
    }))
    .unwrap()
}

#[test]
fn peers_parse_both_root_forms_and_round_trip() {
    let by_keys = Peers::from_slice(&peers_json(
        "https://keyshare.partner.example",
        json!({"keyids": ["k1", "k2"], "threshold": 2}),
    ))
    .unwrap();
    assert!(
        matches!(&by_keys.peers[0].root, PinnedRoot::Keys { keyids, threshold } if keyids.len() == 2 && threshold.get() == 2)
    );
    let by_hash = Peers::from_slice(&peers_json(
        "http://127.0.0.1:8080",
        json!({"sha256": "fa5489414345b44f5e1b15b0142bd73695ff84f302a01ec12f184017633955b3"}),
    ))
    .unwrap();
    assert!(matches!(&by_hash.peers[0].root, PinnedRoot::Sha256(_)));
    for doc in [by_keys, by_hash] {
        assert_eq!(Peers::from_slice(&doc.to_vec().unwrap()).unwrap(), doc);
    }
}

#[test]
fn non_https_peer_url_is_refused() {
    for url in [
        "http://keyshare.partner.example",
        "ftp://keyshare.partner.example",
        "https://user:pw@keyshare.partner.example",
    ] {
        let (what, path) = malformed(Peers::from_slice(&peers_json(
            url,
            json!({"sha256": "fa5489414345b44f5e1b15b0142bd73695ff84f302a01ec12f184017633955b3"}),
        )));
        assert_eq!(
            (what.as_str(), path.as_str()),
            ("org/peers.json", "peers[0].url"),
            "{url}"
        );
    }
}

#[test]
fn pinned_root_must_be_exactly_one_form_with_a_sane_threshold() {
    for (root, path) in [
        (json!({}), "peers[0].root"),
        (
            json!({"keyids": ["k1"], "threshold": 1, "sha256": "fa5489414345b44f5e1b15b0142bd73695ff84f302a01ec12f184017633955b3"}),
            "peers[0].root",
        ),
        (json!({"keyids": ["k1"]}), "peers[0].root"),
        (json!({"keyids": [], "threshold": 1}), "peers[0].root"),
        (json!({"keyids": ["k1"], "threshold": 2}), "peers[0].root"),
        (
            json!({"keyids": ["k1"], "threshold": 0}),
            "peers[0].root.threshold",
        ),
        (
            json!({"keyids": ["k1", "k1"], "threshold": 1}),
            "peers[0].root",
        ),
        (json!({"fingerprint": "x"}), "peers[0].root.fingerprint"),
    ] {
        let (_, got) = malformed(Peers::from_slice(&peers_json(
            "https://p.example",
            root.clone(),
        )));
        assert_eq!(got, path, "{root}");
    }
}

// ---- the examples in docs/trust-model.md -----------------------------------

#[test]
fn examples_in_the_trust_model_document_parse_and_round_trip() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/trust-model.md"
    ))
    .unwrap();
    let mut seen = Vec::new();
    let (mut index, mut trust, mut revocations, mut peers) = (None, None, None, None);
    for block in doc.split("```json\n").skip(1) {
        let json = block.split("```").next().unwrap();
        let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let format = value["format"].as_str().unwrap().to_owned();
        match format.as_str() {
            "keyshare.namespaces/v1" => {
                let d = Namespaces::from_slice(json.as_bytes()).unwrap();
                assert_eq!(Namespaces::from_slice(&d.to_vec().unwrap()).unwrap(), d);
                index = Some(d);
            }
            "keyshare.trust/v1" => {
                let d =
                    NamespaceTrust::from_target("namespaces/team-a/trust.json", json.as_bytes())
                        .unwrap();
                assert_eq!(NamespaceTrust::from_slice(&d.to_vec().unwrap()).unwrap(), d);
                let id = &d.identities[0];
                assert_eq!(id.subject.pairs()[0].0, SubjectAttr::Country);
                trust = Some(d);
            }
            "keyshare.trust/v2" => {
                // A namespace's own revocations (another namespace's document).
                let d =
                    NamespaceTrust::from_target("namespaces/team-b/trust.json", json.as_bytes())
                        .unwrap();
                assert_eq!(NamespaceTrust::from_slice(&d.to_vec().unwrap()).unwrap(), d);
                assert_eq!(d.revocations.len(), 1);
                assert!(matches!(d.revocations[0].subject, RevokedSubject::Key(_)));
            }
            "keyshare.revocations/v2" => {
                let d = Revocations::from_slice(json.as_bytes()).unwrap();
                assert_eq!(Revocations::from_slice(&d.to_vec().unwrap()).unwrap(), d);
                revocations = Some(d);
            }
            "keyshare.peers/v1" => {
                let d = Peers::from_slice(json.as_bytes()).unwrap();
                assert_eq!(Peers::from_slice(&d.to_vec().unwrap()).unwrap(), d);
                peers = Some(d);
            }
            "keyshare.tsas/v1" => {
                let d = keyshare_policy::trust::Tsas::from_slice(json.as_bytes()).unwrap();
                assert_eq!(
                    keyshare_policy::trust::Tsas::from_slice(&d.to_vec().unwrap()).unwrap(),
                    d
                );
                assert_eq!(d.tsas[0].name, "acme-tsa");
            }
            other => panic!("unknown format {other}"),
        }
        seen.push(format);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "keyshare.namespaces/v1",
            "keyshare.peers/v1",
            "keyshare.revocations/v2",
            "keyshare.trust/v1",
            "keyshare.trust/v2",
            "keyshare.tsas/v1"
        ]
    );

    // Together, the examples decide as the page says.
    let set = TrustSet::new(
        index.unwrap(),
        vec![trust.unwrap()],
        revocations.unwrap(),
        peers.unwrap(),
    )
    .unwrap();
    let at = time::macros::datetime!(2030-06-01 12:00 UTC);
    let release = || SignerRef::KeyId(KeyId::new("team-a-release-2030"));
    assert_eq!(
        set.decide("registry.acme.io/team-a/app", &[release()], at, at),
        Decision::Trusted {
            namespace: ns_name("team-a"),
            rule: TrustRule::Namespace {
                keys: vec![KeyId::new("team-a-release-2030")],
                identities: vec![],
                principals: vec![Counted::Key(KeyId::new("team-a-release-2030"))],
                threshold: 1,
            },
        }
    );
    let nightly = || SignerRef::KeyId(KeyId::new("nightly-bot"));
    let d = set.decide("registry.acme.io/team-a/nightly/app", &[nightly()], at, at);
    assert!(
        matches!(&d, Decision::Trusted { rule: TrustRule::SubDelegation { name, .. }, .. } if name == "nightly"),
        "{d}"
    );
    // The release key is listed by team-a, but team-b's artifacts are team-b's,
    // which has not published its trust document.
    let r = reason(set.decide("registry.acme.io/team-b/app", &[release()], at, at));
    assert!(
        matches!(&r, Reason::NoTrustDocument { namespace, .. } if namespace.as_str() == "team-b"),
        "{r}"
    );
    let r = reason(set.decide("registry.acme.io/team-a/app", &[nightly()], at, at));
    assert!(
        matches!(&r, Reason::KeyNotListed { key: KeyRef::Id(k), .. } if k.as_str() == "nightly-bot"),
        "{r}"
    );
    assert!(set.unlisted_documents().is_empty());

    // team-b's document could not be read (a newer format): still nothing
    // trusted for team-b, now saying why; team-a is untouched. A namespace
    // with a document, or one the index does not list, is not marked.
    let mut set = set;
    assert!(!set.set_unreadable(&ns_name("team-a"), "not marked"));
    assert!(!set.set_unreadable(&ns_name("team-z"), "not listed"));
    assert!(set.set_unreadable(&ns_name("team-b"), "format v9"));
    let r = reason(set.decide("registry.acme.io/team-b/app", &[release()], at, at));
    assert!(
        matches!(&r, Reason::UnreadableTrustDocument { namespace, why } if namespace.as_str() == "team-b" && why == "format v9"),
        "{r}"
    );
    assert!(
        r.to_string().contains("namespaces/team-b/trust.json"),
        "{r}"
    );
    assert!(set
        .decide("registry.acme.io/team-a/app", &[release()], at, at)
        .is_trusted());
    assert_eq!(
        set.unreadable_documents(),
        vec![(&ns_name("team-b"), "format v9")]
    );
}

#[test]
fn ecdsa_and_rsa_keys_are_accepted() {
    let mut v = namespace_json();
    let ec = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
    let rsa = InMemorySigner::generate(Scheme::RsaPssSha256).unwrap();
    for s in [&ec, &rsa] {
        v["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": s.key_id().as_str(), "key": key_json(s)}));
    }
    v["threshold"] = json!(3);
    assert_eq!(parse_ns(&v).unwrap().keys.len(), 3);
}
