//! Who answers for an artifact name: namespace scopes and peer patterns
//! indexed by their literal prefix.

use std::collections::HashMap;

use crate::pattern::ArtifactPattern;
use crate::trust::namespaces::NamespaceEntry;
use crate::trust::peers::Peer;

/// Who answers for an artifact name ([`TrustSet::owner`](super::TrustSet::owner)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// A namespace of the organization, by its most specific matching scope.
    Namespace {
        /// The namespace's entry in the namespace index.
        entry: &'a NamespaceEntry,
        /// The scope that matched.
        scope: &'a ArtifactPattern,
    },
    /// A peer keyshare service.
    Peer(&'a Peer),
}

#[derive(Clone, Copy, Debug)]
pub(super) enum OwnerIndex {
    Namespace(usize),
    Peer(usize),
}

/// Patterns indexed by their literal prefix (the text before the first
/// wildcard): a lookup lists the artifact name's prefixes and glob-matches
/// only the patterns filed under one of them, so its cost grows with the
/// length of the name, not with the number of patterns.
#[derive(Debug, Default)]
pub(super) struct PatternIndex {
    buckets: HashMap<String, Vec<IndexEntry>>,
}

#[derive(Debug)]
struct IndexEntry {
    owner: usize,
    pattern: ArtifactPattern,
    specificity: (usize, usize),
}

impl PatternIndex {
    pub(super) fn insert(&mut self, owner: usize, pattern: &ArtifactPattern) {
        let src = pattern.as_str();
        let literal_end = src.find(['*', '?', '[']).unwrap_or(src.len());
        let literal = src.get(..literal_end).unwrap_or_default();
        self.buckets
            .entry(literal.to_owned())
            .or_default()
            .push(IndexEntry {
                owner,
                pattern: pattern.clone(),
                specificity: pattern.specificity(),
            });
    }

    /// The owner of the most specific matching pattern, ties to the smallest name.
    pub(super) fn best<'a>(
        &self,
        artifact: &str,
        name: impl Fn(usize) -> &'a str,
    ) -> Option<usize> {
        let prefixes = artifact
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(artifact.len()))
            .filter_map(|i| artifact.get(..i));
        let mut best: Option<&IndexEntry> = None;
        for prefix in prefixes {
            let Some(bucket) = self.buckets.get(prefix) else {
                continue;
            };
            for entry in bucket {
                let better = match best {
                    None => true,
                    Some(b) => crate::pattern::outranks(
                        entry.specificity,
                        name(entry.owner),
                        b.specificity,
                        name(b.owner),
                    ),
                };
                if better && entry.pattern.matches(artifact) {
                    best = Some(entry);
                }
            }
        }
        best.map(|e| e.owner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn index_finds_the_most_specific_matching_pattern() {
        let mut index = PatternIndex::default();
        let names = ["broad", "team-a", "exact", "other"];
        for (owner, p) in [
            (0, "registry.acme.io/**"),
            (1, "registry.acme.io/team-a/**"),
            (2, "registry.acme.io/team-a/app"),
            (3, "*.example/**"),
        ] {
            index.insert(owner, &ArtifactPattern::parse(p).unwrap());
        }
        let name = |i: usize| names[i];
        assert_eq!(index.best("registry.acme.io/team-a/app", name), Some(2));
        assert_eq!(index.best("registry.acme.io/team-a/x/y", name), Some(1));
        assert_eq!(index.best("registry.acme.io/team-b/app", name), Some(0));
        assert_eq!(index.best("r.example/app", name), Some(3));
        assert_eq!(index.best("elsewhere.io/app", name), None);
    }
}
