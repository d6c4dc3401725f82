#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Property tests: canonical JSON against an independent reference encoder,
//! typed metadata round trips, and glob matching against a reference
//! `fnmatch`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value};

use keyshare_policy::cjson::to_canonical;
use keyshare_policy::metadata::{Envelope, Signed, TargetFile, Targets};
use keyshare_policy::pattern::{ArtifactPattern, PathPattern};
use keyshare_policy::sign::to_bytes;

/// OLPC canonical JSON written from its definition: sorted keys, no
/// whitespace, only `"` and `\` escaped, integers only.
fn reference_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                reference_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                reference_canonical(&Value::String(k.clone()), out);
                out.push(':');
                reference_canonical(&o[k], out);
            }
            out.push('}');
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn has_control_chars(v: &Value) -> bool {
    match v {
        Value::String(s) => s.chars().any(char::is_control),
        Value::Array(a) => a.iter().any(has_control_chars),
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| k.chars().any(char::is_control) || has_control_chars(v)),
        _ => false,
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,8}"
}

fn target_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|s| s.join("/"))
}

/// `fnmatch` for `*` and `?` on one segment, written from its definition.
fn reference_fnmatch(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| reference_fnmatch(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && reference_fnmatch(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_fnmatch(rest, &text[1..]),
    }
}

/// The TUF rule: same number of segments, each matching.
fn reference_path_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = path.split('/').collect();
    p.len() == t.len()
        && p.iter().zip(&t).all(|(p, t)| {
            reference_fnmatch(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_json_matches_the_reference_encoder(v in json_value()) {
        let ours = to_canonical(&v, "value").unwrap();
        let mut reference = String::new();
        reference_canonical(&v, &mut reference);
        prop_assert_eq!(String::from_utf8(ours).unwrap(), reference);
    }

    #[test]
    fn canonical_json_round_trips_through_a_parser(v in json_value()) {
        prop_assume!(!has_control_chars(&v));
        let bytes = to_canonical(&v, "value").unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(to_canonical(&back, "value").unwrap(), bytes);
    }

    #[test]
    fn targets_with_unknown_fields_keep_their_signed_bytes(
        files in prop::collection::btree_map(target_path(), (0u64..1 << 40, "[0-9a-f]{64}"), 0..8),
        extra in prop::collection::btree_map("x-[a-z]{1,6}", json_value(), 0..4),
        file_extra in json_value(),
    ) {
        let mut signed = serde_json::json!({
            "_type": "targets",
            "spec_version": "1.0.31",
            "version": 3,
            "expires": "2031-02-03T04:05:06Z",
            "targets": {},
        });
        for (path, (length, hash)) in &files {
            signed["targets"][path] = serde_json::json!({
                "length": length,
                "hashes": {"sha256": hash},
                "custom": file_extra,
            });
        }
        for (k, v) in &extra {
            signed[k] = v.clone();
        }
        let doc = serde_json::to_vec(&serde_json::json!({"signatures": [], "signed": signed})).unwrap();
        let env = Envelope::<Targets>::parse("targets", &doc).unwrap();
        prop_assert_eq!(to_canonical(&env.signed, "t").unwrap(), to_canonical(&signed, "t").unwrap());
        prop_assert_eq!(env.signed.targets.len(), files.len());
        let written = to_bytes(&Signed { signatures: vec![], signed: env.signed.clone(), unrecognized: BTreeMap::new() }).unwrap();
        let again = Envelope::<Targets>::parse("targets", &written).unwrap();
        prop_assert_eq!(again.canonical, env.canonical);
        let _: Option<&TargetFile> = again.signed.targets.values().next();
    }

    #[test]
    fn path_patterns_match_like_segmentwise_fnmatch(
        pattern in "[ab*?/]{0,10}",
        path in "[ab/]{0,10}",
    ) {
        prop_assert_eq!(
            PathPattern::new(&pattern).matches(&path),
            reference_path_match(&pattern, &path),
            "pattern {:?} path {:?}", pattern, path
        );
    }

    #[test]
    fn star_segments_match_any_name_but_never_cross_a_slash(
        path in target_path(),
        mask in prop::collection::vec(any::<bool>(), 5),
        extra in segment(),
    ) {
        let segments: Vec<&str> = path.split('/').collect();
        let pattern: Vec<&str> = segments
            .iter()
            .zip(&mask)
            .map(|(s, star)| if *star { "*" } else { *s })
            .collect();
        let pattern = PathPattern::new(&pattern.join("/"));
        prop_assert!(pattern.matches(&path));
        let deeper = format!("{path}/{extra}");
        prop_assert!(!pattern.matches(&deeper));
        let last = segments.len() - 1;
        let mut split = segments.clone();
        let joined = format!("{}/{}", split[last], extra);
        split[last] = &joined;
        prop_assert!(!pattern.matches(&split.join("/")));
    }

    #[test]
    fn artifact_double_star_covers_exactly_the_subtree(
        prefix in target_path(),
        below in target_path(),
        other in segment(),
    ) {
        let p = ArtifactPattern::parse(&format!("{prefix}/**")).unwrap();
        let inside = format!("{prefix}/{below}");
        prop_assert!(p.matches(&inside));
        prop_assert!(!p.matches(&prefix));
        let sibling_root = format!("{other}x");
        prop_assume!(prefix.split('/').next() != Some(sibling_root.as_str()));
        let outside = format!("{sibling_root}/{below}");
        prop_assert!(!p.matches(&outside));
        let one = ArtifactPattern::parse(&format!("{prefix}/*")).unwrap();
        prop_assert_eq!(one.matches(&inside), !below.contains('/'));
    }
}
