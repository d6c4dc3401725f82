//! The namespace index (`org/namespaces.json`, or shards
//! `org/namespaces/<shard>.json`): the namespaces, the artifact names each
//! owns and who maintains it.
//!
//! A large organization publishes the index in shards, `org/namespaces/<shard>.json`
//! (see [`is_index_path`]), each a [`Namespaces`] document holding part of the
//! namespaces; a reader loads every shard the top-level `targets` role lists
//! and joins them with [`Namespaces::merge`], which enforces the rules across
//! shards (a name listed once, a scope granted once).
//!
//! keyshare-server always publishes the shards: shard `xx` holds the
//! namespaces whose trust document path hashes (first 8 bits of SHA-256,
//! [`namespace_shard`], [`shard_path`]) to `xx`, whatever the repository's
//! bin count, so creating one namespace re-signs one shard, not the whole
//! index; only non-empty shards are published.
//!
//! Signed by the organization's top-level `targets` role. It is the only
//! source of namespace scopes: a namespace's own `trust.json` is signed by
//! the namespace's role (which a team may hold offline) and so cannot be
//! trusted to say which names the team was given.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::bins::shard_layout;
use super::check::{check_label, check_scopes, parse_json, problem_to_error, to_json, Problem};
use super::format::NamespacesFormat;
use super::namespace::NamespaceName;
use super::{NAMESPACES_PATH, NAMESPACES_SHARD_DIR};
use crate::error::Result;
use crate::metadata::SuccinctRoles;
use crate::pattern::ArtifactPattern;

/// One namespace, as the organization grants it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceEntry {
    /// The namespace; its trust document is `namespaces/<name>/trust.json`.
    pub name: NamespaceName,
    /// Artifact-name patterns the namespace owns: at least one, no
    /// duplicates, and no pattern granted to two namespaces.
    pub scopes: Vec<ArtifactPattern>,
    /// Who maintains the namespace (free text, e.g. e-mail addresses), for
    /// people and for messages; not used to decide.
    #[serde(default)]
    pub maintainers: Vec<String>,
}

impl NamespaceEntry {
    /// Checks the entry alone as the index would (at least one scope, no
    /// duplicates, usable maintainer labels); the error names the field.
    pub fn check(&self) -> Result<()> {
        Namespaces {
            format: NamespacesFormat,
            namespaces: vec![self.clone()],
        }
        .check()
        .map_err(|(path, message)| {
            problem_to_error(
                "namespace",
                (path.replacen("namespaces[0].", "", 1), message),
            )
        })
    }
}

/// `org/namespaces.json`: every namespace of the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// Always `keyshare.namespaces/v1`.
    pub format: NamespacesFormat,
    /// The namespaces (each name at most once).
    pub namespaces: Vec<NamespaceEntry>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            format: NamespacesFormat,
            namespaces: Vec::new(),
        }
    }
}

impl Namespaces {
    /// Parses `org/namespaces.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let doc: Self = parse_json(NAMESPACES_PATH, bytes)?;
        doc.check()
            .map_err(|p| problem_to_error(NAMESPACES_PATH, p))?;
        Ok(doc)
    }

    /// The document as JSON (parses back to an equal value).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        to_json(NAMESPACES_PATH, self)
    }

    /// Joins index shards into one index, checking every rule across them.
    ///
    /// `shards` pairs each document with the target path it was read from,
    /// which errors name.
    pub fn merge<'a>(shards: impl IntoIterator<Item = (&'a str, Namespaces)>) -> Result<Self> {
        let mut seen: BTreeMap<NamespaceName, &'a str> = BTreeMap::new();
        let mut granted: BTreeMap<String, (&'a str, NamespaceName)> = BTreeMap::new();
        let mut merged = Self::default();
        for (path, shard) in shards {
            for entry in shard.namespaces {
                if let Some(other) = seen.insert(entry.name.clone(), path) {
                    return Err(problem_to_error(
                        path,
                        (
                            "namespaces".into(),
                            format!("namespace `{}` is also listed in {other}", entry.name),
                        ),
                    ));
                }
                for scope in &entry.scopes {
                    if let Some((other, owner)) =
                        granted.insert(scope.as_str().to_owned(), (path, entry.name.clone()))
                    {
                        return Err(problem_to_error(
                            path,
                            (
                                "namespaces".into(),
                                format!(
                                    "`{scope}` of namespace `{}` is already granted to namespace `{owner}` in {other}",
                                    entry.name
                                ),
                            ),
                        ));
                    }
                }
                merged.namespaces.push(entry);
            }
        }
        merged.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(merged)
    }

    /// The entry of namespace `name`, if the organization lists it.
    pub fn get(&self, name: &str) -> Option<&NamespaceEntry> {
        self.namespaces.iter().find(|e| e.name.as_str() == name)
    }

    /// Checks the rules serde cannot express.
    pub(super) fn check(&self) -> std::result::Result<(), Problem> {
        let mut names = BTreeSet::new();
        let mut granted: BTreeMap<&str, &NamespaceName> = BTreeMap::new();
        for (i, entry) in self.namespaces.iter().enumerate() {
            let at = |field: &str| format!("namespaces[{i}].{field}");
            if !names.insert(&entry.name) {
                return Err((
                    at("name"),
                    format!("namespace `{}` is listed twice", entry.name),
                ));
            }
            check_scopes(&at("scopes"), &entry.scopes)?;
            for (j, scope) in entry.scopes.iter().enumerate() {
                if let Some(other) = granted.insert(scope.as_str(), &entry.name) {
                    return Err((
                        format!("namespaces[{i}].scopes[{j}]"),
                        format!("`{scope}` is already granted to namespace `{other}`"),
                    ));
                }
            }
            let mut maintainers = BTreeSet::new();
            for (j, m) in entry.maintainers.iter().enumerate() {
                let path = || format!("namespaces[{i}].maintainers[{j}]");
                check_label(path, m)?;
                if !maintainers.insert(m.as_str()) {
                    return Err((path(), format!("`{m}` is listed twice")));
                }
            }
        }
        Ok(())
    }
}

/// The bin of namespace `ns` under `bins`: the bin its trust document
/// `namespaces/<ns>/trust.json` hashes to, exactly as a TUF client
/// following `bins` looks it up.
pub fn namespace_bin(bins: &SuccinctRoles, ns: &NamespaceName) -> u64 {
    bins.bin_for_target(&ns.target_path())
}

/// The index shard (0–255) of namespace `ns`: the first
/// [`super::SHARD_BITS`] bits of SHA-256 of its trust document's path,
/// whatever the repository's bin count.
pub fn namespace_shard(ns: &NamespaceName) -> u64 {
    namespace_bin(&shard_layout(), ns)
}

/// The target path of index shard `shard` (0–255):
/// `org/namespaces/<two hex digits>.json` (`org/namespaces/3a.json`).
pub fn shard_path(shard: u64) -> String {
    format!(
        "{NAMESPACES_SHARD_DIR}{}.json",
        shard_layout().bin_suffix(shard)
    )
}

/// Is `path` a target path of the namespace index: `org/namespaces.json`
/// or a shard `org/namespaces/<shard>.json` (one path segment)?
pub fn is_index_path(path: &str) -> bool {
    path == NAMESPACES_PATH
        || path
            .strip_prefix(NAMESPACES_SHARD_DIR)
            .and_then(|rest| rest.strip_suffix(".json"))
            .is_some_and(|shard| !shard.is_empty() && !shard.contains('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::num::NonZeroU32;

    use super::*;
    use crate::trust::namespace_bins;

    fn entry(name: &str, scopes: &[&str]) -> NamespaceEntry {
        NamespaceEntry {
            name: NamespaceName::parse(name).unwrap(),
            scopes: scopes
                .iter()
                .map(|s| ArtifactPattern::parse(s).unwrap())
                .collect(),
            maintainers: vec![],
        }
    }

    #[test]
    fn get_finds_a_listed_namespace_only() {
        let index = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-a", &["a/**"]), entry("team-b", &["b/**"])],
        };
        assert!(index.check().is_ok());
        assert_eq!(
            index.get("team-b").map(|e| e.scopes[0].as_str()),
            Some("b/**")
        );
        assert!(index.get("team-c").is_none());
    }

    #[test]
    fn check_refuses_what_parsing_would() {
        let twice = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-a", &["a/**"]), entry("team-a", &["b/**"])],
        };
        assert_eq!(twice.check().unwrap_err().0, "namespaces[1].name");
        let shared = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-a", &["a/**"]), entry("team-b", &["c", "a/**"])],
        };
        assert_eq!(shared.check().unwrap_err().0, "namespaces[1].scopes[1]");
        let empty = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-a", &[])],
        };
        assert_eq!(empty.check().unwrap_err().0, "namespaces[0].scopes");
    }

    #[test]
    fn merge_joins_shards_and_checks_across_them() {
        let a = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-b", &["b/**"])],
        };
        let b = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-a", &["a/**"])],
        };
        let merged = Namespaces::merge([
            ("org/namespaces/00.json", a.clone()),
            ("org/namespaces/01.json", b.clone()),
        ])
        .unwrap();
        let names: Vec<_> = merged.namespaces.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["team-a", "team-b"]);

        let again = Namespaces::merge([
            ("org/namespaces/00.json", a.clone()),
            ("org/namespaces/01.json", a.clone()),
        ])
        .unwrap_err();
        assert!(
            again
                .to_string()
                .contains("team-b` is also listed in org/namespaces/00.json"),
            "{again}"
        );

        let grab = Namespaces {
            format: NamespacesFormat,
            namespaces: vec![entry("team-c", &["c/**", "b/**"])],
        };
        let err = Namespaces::merge([
            ("org/namespaces/00.json", a),
            ("org/namespaces/02.json", grab),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("`b/**` of namespace `team-c` is already granted to namespace `team-b`"),
            "{err}"
        );
    }

    #[test]
    fn a_namespace_bin_is_the_bin_of_its_trust_document() {
        for bits in crate::trust::BIN_BITS {
            let bins = crate::trust::namespace_bins_of(bits, vec![], NonZeroU32::MIN);
            assert_eq!(bins.bin_count(), 1 << bits);
            let ns = NamespaceName::parse("team-a").unwrap();
            let bin = namespace_bin(&bins, &ns);
            // The role a TUF client visits for the trust document.
            assert_eq!(
                bins.role_for_target("namespaces/team-a/trust.json"),
                bins.bin_name(bin)
            );
            assert_eq!(
                bins.bin_name(bin).as_str(),
                format!("bins-{}", bins.bin_suffix(bin))
            );
        }
        let bins = namespace_bins(vec![], NonZeroU32::MIN);
        let ns = NamespaceName::parse("team-a").unwrap();
        // 256 bins: the shard has the bin's number.
        assert_eq!(namespace_shard(&ns), namespace_bin(&bins, &ns));
        let shard = shard_path(namespace_shard(&ns));
        assert_eq!(
            shard,
            format!("org/namespaces/{:02x}.json", namespace_shard(&ns))
        );
        assert!(is_index_path(&shard));
        assert_eq!(shard_path(0), "org/namespaces/00.json");
        assert_eq!(shard_path(255), "org/namespaces/ff.json");
    }

    #[test]
    fn an_entry_is_checked_alone_naming_its_field() {
        assert!(entry("team-a", &["a/**"]).check().is_ok());
        let err = entry("team-a", &[]).check().unwrap_err().to_string();
        assert!(
            err.contains("scopes") && err.contains("at least one pattern"),
            "{err}"
        );
        let err = entry("team-a", &["a/**", "a/**"])
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scopes[1]") && err.contains("listed twice"),
            "{err}"
        );
    }

    #[test]
    fn index_paths() {
        assert!(is_index_path("org/namespaces.json"));
        assert!(is_index_path("org/namespaces/3a.json"));
        assert!(!is_index_path("org/namespaces/.json"));
        assert!(!is_index_path("org/namespaces/a/b.json"));
        assert!(!is_index_path("org/namespaces/3a.pem"));
        assert!(!is_index_path("org/peers.json"));
    }
}
