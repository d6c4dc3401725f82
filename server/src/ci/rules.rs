//! Claim rules: which namespaces a verified job may sign for.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use keyshare_policy::trust::NamespaceName;

use crate::config::ci::ClaimRule;

/// The namespaces granted by every rule of `issuer` whose claim patterns
/// all match `claims`; `None` when no rule matches.
pub fn allowed_namespaces(
    rules: &[ClaimRule],
    issuer: &str,
    claims: &Map<String, Value>,
) -> Option<BTreeSet<NamespaceName>> {
    let mut granted: Option<BTreeSet<NamespaceName>> = None;
    for rule in rules.iter().filter(|r| r.issuer == issuer) {
        let matches = rule.claims.iter().all(|(name, pattern)| {
            claim_text(claims.get(name)).is_some_and(|v| glob_match(pattern, &v))
        });
        if matches {
            granted
                .get_or_insert_with(BTreeSet::new)
                .extend(rule.namespaces.iter().cloned());
        }
    }
    granted
}

/// A claim as text: strings as they are, booleans as `true`/`false`,
/// integers in decimal; other shapes never match.
fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters (including `/`), `?` any one
/// character; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point (the last `*`).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("acme/*", "acme/team-a"));
        assert!(glob_match("acme/*", "acme/a/b"));
        assert!(!glob_match("acme/*", "acme"));
        assert!(glob_match("refs/heads/main", "refs/heads/main"));
        assert!(!glob_match("refs/heads/main", "refs/heads/main2"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("v?", "v1"));
        assert!(glob_match("*", ""));
    }

    fn rule(claims: &[(&str, &str)], ns: &[&str]) -> ClaimRule {
        ClaimRule {
            issuer: "https://gitlab.example".into(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            namespaces: ns
                .iter()
                .map(|n| NamespaceName::parse(n).unwrap())
                .collect(),
        }
    }

    #[test]
    fn every_claim_of_a_rule_must_match_and_matching_rules_add_up() {
        let rules = [
            rule(
                &[("project_path", "acme/*"), ("ref_protected", "true")],
                &["a"],
            ),
            rule(&[("project_path", "acme/b")], &["b"]),
        ];
        let claims = |v: Value| v.as_object().unwrap().clone();
        let got = allowed_namespaces(
            &rules,
            "https://gitlab.example",
            &claims(json!({"project_path": "acme/b", "ref_protected": true})),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let got = allowed_namespaces(
            &rules,
            "https://gitlab.example",
            &claims(json!({"project_path": "acme/c", "ref_protected": "false"})),
        );
        assert!(got.is_none());
        let got = allowed_namespaces(
            &rules,
            "https://other.example",
            &claims(json!({"project_path": "acme/b"})),
        );
        assert!(got.is_none(), "rules of another issuer never apply");
    }
}
