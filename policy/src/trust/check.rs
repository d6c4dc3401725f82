//! The rules of the trust documents' fields, and the validating
//! constructors that let other crates apply the same rules before a value
//! ever reaches a document ([`Label::parse`], [`Scopes::new`],
//! [`Window::new`]; [`super::TrustedKeys::new`] for keys): one rule, one
//! message, whether a value arrives over the admin API or in a published
//! document.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

use crate::datetime::rfc3339;
use crate::error::{Error, Result};
use crate::pattern::ArtifactPattern;

/// A problem found after deserialisation: JSON path and message.
pub(super) type Problem = (String, String);

/// Parses one JSON document, naming `what` and the JSON path in errors.
///
/// A document that parses is read once, without tracking paths (which
/// allocates every field name read); only one that does not is read again
/// with them, for the error. Both reads accept the same documents.
pub(super) fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| malformed(what, &e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| malformed(what, ".", &e))?;
    Ok(value)
}

pub(super) fn malformed(what: &str, path: &str, e: &dyn fmt::Display) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path: path.to_owned(),
        message: e.to_string(),
    }
}

pub(super) fn problem_to_error(what: &str, (path, message): Problem) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path,
        message,
    }
}

/// Serialises a document as pretty JSON (what keyshare publishes).
pub(super) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| malformed(what, ".", &e))
}

/// Checks a human-chosen name or label: non-empty, at most 200 characters, no control characters.
pub(super) fn check_label(
    path: impl Fn() -> String,
    value: &str,
) -> std::result::Result<(), Problem> {
    if value.trim().is_empty() {
        return Err((path(), "must not be empty".into()));
    }
    if value.chars().count() > 200 {
        return Err((path(), "must be at most 200 characters".into()));
    }
    if value.chars().any(char::is_control) {
        return Err((path(), "must not contain control characters".into()));
    }
    Ok(())
}

/// Checks a list of artifact patterns: at least one, no duplicates.
pub(super) fn check_scopes(
    at: &str,
    scopes: &[ArtifactPattern],
) -> std::result::Result<(), Problem> {
    if scopes.is_empty() {
        return Err((at.to_owned(), "must list at least one pattern".into()));
    }
    let mut seen = BTreeSet::new();
    for (i, s) in scopes.iter().enumerate() {
        if !seen.insert(s.as_str()) {
            return Err((format!("{at}[{i}]"), format!("`{s}` is listed twice")));
        }
    }
    Ok(())
}

/// Checks an optional validity window: `not_before < not_after`.
pub(super) fn check_window(
    path: impl Fn(&str) -> String,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> std::result::Result<(), Problem> {
    if let (Some(nb), Some(na)) = (not_before, not_after) {
        if nb >= na {
            return Err((
                path("not_after"),
                format!("must be later than not_before ({})", rfc3339(nb)),
            ));
        }
    }
    Ok(())
}

/// A value one of the documents' rules refuses: where, relative to the
/// value checked (empty for the value itself, `[1]` for the second item of
/// a list, `[0].key` for a field of one), and why. A caller that checks a
/// field of its own input names it with [`Invalid::field`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The path of the refused part, relative to the value checked.
    pub at: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Invalid {
    /// The refused part's full name under the caller's `prefix`
    /// (`"keys"` → `keys[1].key`; `"maintainer"` → `maintainer`).
    pub fn field(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.at)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for Invalid {}

impl From<Problem> for Invalid {
    fn from((at, message): Problem) -> Self {
        Self { at, message }
    }
}

/// A human-chosen name or label (a maintainer, a description, a peer's
/// name): not empty, at most 200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    /// Checks `value` against the rule for labels.
    pub fn parse(value: &str) -> std::result::Result<Self, Invalid> {
        check_label(String::new, value)?;
        Ok(Self(value.to_owned()))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The artifact patterns a namespace or sub-delegation is granted: at
/// least one, none twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes(Vec<ArtifactPattern>);

impl Scopes {
    /// Checks `patterns` against the rule for scopes.
    pub fn new(patterns: Vec<ArtifactPattern>) -> std::result::Result<Self, Invalid> {
        check_scopes("", &patterns)?;
        Ok(Self(patterns))
    }

    /// The patterns.
    pub fn as_slice(&self) -> &[ArtifactPattern] {
        &self.0
    }

    /// The patterns as a `Vec`.
    pub fn into_vec(self) -> Vec<ArtifactPattern> {
        self.0
    }
}

/// An optional validity window of a key or an identity: `not_before`
/// (inclusive) before `not_after` (exclusive) when both are given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
}

impl Window {
    /// Checks the window; a refusal is `at` `not_after`.
    pub fn new(
        not_before: Option<OffsetDateTime>,
        not_after: Option<OffsetDateTime>,
    ) -> std::result::Result<Self, Invalid> {
        check_window(str::to_owned, not_before, not_after)?;
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// The start, inclusive.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.not_before
    }

    /// The end, exclusive.
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        self.not_after
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn invalid(at: &str, message: &str) -> Invalid {
        Invalid {
            at: at.into(),
            message: message.into(),
        }
    }

    #[test]
    fn labels_that_are_empty_overlong_or_hold_control_characters_are_refused() {
        for (value, message) in [
            ("", "must not be empty"),
            ("  \t ", "must not be empty"),
            (&"x".repeat(201), "must be at most 200 characters"),
            ("ops\nroot: trusted", "must not contain control characters"),
            ("a\u{1b}[31m", "must not contain control characters"),
        ] {
            assert_eq!(Label::parse(value), Err(invalid("", message)), "{value:?}");
        }
        let ok = Label::parse(&"é".repeat(200)).unwrap();
        assert_eq!(ok.as_str().chars().count(), 200);
        assert_eq!(
            invalid("", "must not be empty").field("maintainers[2]"),
            "maintainers[2]"
        );
    }

    #[test]
    fn scopes_must_be_granted_and_never_twice() {
        let p = |s: &str| ArtifactPattern::parse(s).unwrap();
        assert_eq!(
            Scopes::new(vec![]),
            Err(invalid("", "must list at least one pattern"))
        );
        let twice = Scopes::new(vec![p("r/a/**"), p("r/b/**"), p("r/a/**")]).unwrap_err();
        assert_eq!(twice, invalid("[2]", "`r/a/**` is listed twice"));
        assert_eq!(twice.field("scopes"), "scopes[2]");
        assert_eq!(
            Scopes::new(vec![p("r/a/**")]).unwrap().into_vec(),
            vec![p("r/a/**")]
        );
    }

    #[test]
    fn a_window_that_ends_before_it_starts_is_refused_at_not_after() {
        let start = datetime!(2030-01-01 00:00 UTC);
        for end in [start, start - time::Duration::seconds(1)] {
            assert_eq!(
                Window::new(Some(start), Some(end)),
                Err(invalid(
                    "not_after",
                    "must be later than not_before (2030-01-01T00:00:00Z)"
                ))
            );
        }
        let w = Window::new(Some(start), Some(start + time::Duration::seconds(1))).unwrap();
        assert_eq!(w.not_before(), Some(start));
        assert!(Window::new(None, Some(start)).is_ok());
        assert!(Window::new(Some(start), None).is_ok());
    }
}
