//! Glob patterns: TUF delegation `paths` and artifact-name scopes.
//!
//! Both are matched with the `glob` crate, with `*` and `?` never crossing `/`.
//!
//! * [`PathPattern`] follows the TUF specification and python-tuf exactly:
//!   pattern and target path are split on `/`, must have the same number of
//!   segments, and each segment is matched as an `fnmatch` pattern. So
//!   `namespaces/*/trust.json` matches `namespaces/a/trust.json` but not
//!   `namespaces/a/b/trust.json`, and `**` is the same as `*`.
//!   A segment the glob crate cannot compile (for example an unclosed `[`)
//!   matches nothing: the delegation fails closed.
//! * [`ArtifactPattern`] is for artifact names such as
//!   `registry.acme.io/team-a/**`: `*` and `?` stay within a segment, `**` as a
//!   whole segment matches any number of segments (at least one when it ends
//!   the pattern), `[...]` is a character class. Invalid patterns are refused
//!   when the document holding them is parsed.

use std::fmt;

use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One pattern of a delegated role's `paths`.
#[derive(Clone, Debug)]
pub struct PathPattern {
    source: String,
    /// One compiled pattern per `/`-separated segment; `None` if one fails to compile.
    segments: Option<Vec<Pattern>>,
}

impl PathPattern {
    /// Compiles a TUF path pattern. Never fails; see the module docs.
    pub fn new(source: &str) -> Self {
        let segments = source
            .split('/')
            .map(|seg| Pattern::new(&collapse_stars(seg)).ok())
            .collect();
        Self {
            source: source.to_owned(),
            segments,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `target_path` matches, segment by segment.
    pub fn matches(&self, target_path: &str) -> bool {
        let Some(segments) = &self.segments else {
            return false;
        };
        let mut parts = target_path.split('/');
        for pattern in segments {
            match parts.next() {
                Some(part) if pattern.matches_with(part, OPTIONS) => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PathPattern {}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::new(&s))
    }
}

/// Within one segment `fnmatch` treats `**` like `*`; the glob crate refuses a
/// `**` that is not a whole path component, so runs of `*` become one.
fn collapse_stars(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut previous_star = false;
    for c in segment.chars() {
        if c == '*' && previous_star {
            continue;
        }
        previous_star = c == '*';
        out.push(c);
    }
    out
}

/// A glob over artifact names (a namespace scope or a peer's name pattern).
#[derive(Clone, Debug)]
pub struct ArtifactPattern {
    source: String,
    pattern: Pattern,
}

impl ArtifactPattern {
    /// Compiles a pattern, refusing empty or malformed ones.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("empty pattern".to_owned());
        }
        if source.split('/').any(str::is_empty) {
            return Err(format!("pattern `{source}` has an empty segment"));
        }
        let pattern = Pattern::new(source).map_err(|e| format!("bad pattern `{source}`: {e}"))?;
        Ok(Self {
            source: source.to_owned(),
            pattern,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the artifact name matches.
    pub fn matches(&self, artifact: &str) -> bool {
        self.pattern.matches_with(artifact, OPTIONS)
    }

    /// How specific the pattern is, for choosing among overlapping patterns:
    /// the number of literal characters before the first wildcard, then the
    /// total number of literal characters. Higher is more specific.
    pub fn specificity(&self) -> (usize, usize) {
        let is_wild = |c: char| matches!(c, '*' | '?' | '[' | ']');
        let prefix = self.source.chars().take_while(|c| !is_wild(*c)).count();
        let literal = self.source.chars().filter(|c| !is_wild(*c)).count();
        (prefix, literal)
    }
}

impl PartialEq for ArtifactPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ArtifactPattern {}

impl fmt::Display for ArtifactPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for ArtifactPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for ArtifactPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_star_does_not_cross_slash() {
        let p = PathPattern::new("namespaces/*/trust.json");
        assert!(p.matches("namespaces/a/trust.json"));
        assert!(!p.matches("namespaces/a/b/trust.json"));
        assert!(!p.matches("namespaces/trust.json"));
    }

    #[test]
    fn path_question_mark_and_classes() {
        let p = PathPattern::new("bin/file?.[ab]x");
        assert!(p.matches("bin/file1.ax"));
        assert!(!p.matches("bin/file12.ax"));
        assert!(!p.matches("bin/file1.cx"));
        assert!(PathPattern::new("f[!a]").matches("fb"));
        assert!(!PathPattern::new("f[!a]").matches("fa"));
    }

    #[test]
    fn path_double_star_is_single_segment() {
        let p = PathPattern::new("a/**/c");
        assert!(p.matches("a/b/c"));
        assert!(!p.matches("a/b/b/c"));
        assert!(PathPattern::new("a**b").matches("axxb"));
    }

    #[test]
    fn uncompilable_path_pattern_matches_nothing() {
        let p = PathPattern::new("a/[b");
        assert!(!p.matches("a/[b"));
        assert!(!p.matches("a/b"));
    }

    #[test]
    fn artifact_double_star_is_recursive() {
        let p = ArtifactPattern::parse("registry.acme.io/team-a/**").unwrap();
        assert!(p.matches("registry.acme.io/team-a/app"));
        assert!(p.matches("registry.acme.io/team-a/x/y/app"));
        assert!(!p.matches("registry.acme.io/team-b/app"));
        let one = ArtifactPattern::parse("registry.acme.io/team-a/*").unwrap();
        assert!(one.matches("registry.acme.io/team-a/app"));
        assert!(!one.matches("registry.acme.io/team-a/x/app"));
    }

    #[test]
    fn bad_artifact_patterns_are_refused() {
        assert!(ArtifactPattern::parse("").is_err());
        assert!(ArtifactPattern::parse("a//b").is_err());
        assert!(ArtifactPattern::parse("a/[b").is_err());
        assert!(ArtifactPattern::parse("a/b**").is_err());
    }

    #[test]
    fn specificity_prefers_longer_literal_prefix() {
        let broad = ArtifactPattern::parse("registry.acme.io/**").unwrap();
        let narrow = ArtifactPattern::parse("registry.acme.io/team-a/**").unwrap();
        assert!(narrow.specificity() > broad.specificity());
    }
}
