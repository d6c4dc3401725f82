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
//!
//! Two artifact patterns **overlap** when some artifact name matches both
//! ([`ArtifactPattern::common_match`]); the more specific one then wins that
//! name ([`ArtifactPattern::outranks`]). The check is exact: each pattern is
//! read into the tokens the `glob` crate matches with (the same parse,
//! checked against `glob` by the tests), seen as a small automaton, and the
//! product of the two automata is searched for a name both accept. Should a
//! search grow past [`OVERLAP_SEARCH_LIMIT`] states (only long patterns full
//! of wildcards get near it), the two patterns are taken to overlap: the
//! answer may then err towards "overlap", never towards "no overlap".

use std::collections::{HashMap, VecDeque};
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
    /// The pattern as `glob` reads it, for [`ArtifactPattern::common_match`].
    tokens: Vec<Token>,
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
        // `glob` accepted it, so this parse (the same) does too; should they
        // ever disagree, the pattern is refused rather than misread.
        let tokens = tokenize(source)
            .ok_or_else(|| format!("bad pattern `{source}`: cannot be analysed"))?;
        Ok(Self {
            source: source.to_owned(),
            pattern,
            tokens,
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

    /// The text before the first wildcard (`*`, `?`, `[`): every name the
    /// pattern matches starts with it.
    pub fn literal_prefix(&self) -> &str {
        let end = self
            .source
            .find(['*', '?', '['])
            .unwrap_or(self.source.len());
        self.source.get(..end).unwrap_or_default()
    }

    /// Whether this pattern, granted to `owner`, wins an artifact name it
    /// shares with `other`, granted to `other_owner`: the more specific
    /// pattern wins ([`ArtifactPattern::specificity`]), and on a tie the
    /// owner whose name sorts first. This is the rule by which a trust
    /// decision picks the namespace (or peer) that owns a name.
    pub fn outranks(&self, owner: &str, other: &Self, other_owner: &str) -> bool {
        outranks(self.specificity(), owner, other.specificity(), other_owner)
    }

    /// An artifact name both patterns match, if there is one: `Some` exactly
    /// when the patterns overlap (see the module docs). The name is an
    /// example, made of readable characters where the patterns allow.
    pub fn common_match(&self, other: &Self) -> Option<Overlap> {
        let (a, b) = (self.literal_prefix(), other.literal_prefix());
        if !a.starts_with(b) && !b.starts_with(a) {
            return None;
        }
        Product::new(&self.tokens, &other.tokens).search()
    }
}

/// Two patterns that overlap ([`ArtifactPattern::common_match`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// This artifact name matches both.
    Example(String),
    /// The search was cut off at [`OVERLAP_SEARCH_LIMIT`] states before it
    /// decided: taken as an overlap, without an example.
    Undecided,
}

impl Overlap {
    /// The example name, when the search found one.
    pub fn example(&self) -> Option<&str> {
        match self {
            Self::Example(s) => Some(s),
            Self::Undecided => None,
        }
    }
}

/// `(specificity, name)` ordering of [`ArtifactPattern::outranks`]: higher
/// specificity first, then the smaller name.
pub(crate) fn outranks(
    specificity: (usize, usize),
    owner: &str,
    other_specificity: (usize, usize),
    other_owner: &str,
) -> bool {
    specificity > other_specificity || (specificity == other_specificity && owner < other_owner)
}

/// Most states (pairs of positions in the two patterns) one overlap search
/// visits before it gives up and answers [`Overlap::Undecided`].
pub const OVERLAP_SEARCH_LIMIT: usize = 200_000;

/// One token of an artifact pattern, as `glob::Pattern::new` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// That character (`/` included).
    Char(char),
    /// `?`: one character but `/`.
    AnyChar,
    /// `*`: any run of characters without `/`.
    AnySequence,
    /// `**` (with the `/` after it): empty, or any run of characters that
    /// ends with `/`; at the end of the input, any run at all (when what
    /// follows can match nothing).
    AnyRecursive,
    /// `[...]` / `[!...]`: one character but `/`, in (or, negated, not in)
    /// the listed characters and inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token accepts `c` (false for the
    /// sequence tokens, which the automaton handles itself).
    fn accepts(&self, c: char) -> bool {
        match self {
            Self::Char(d) => c == *d,
            Self::AnyChar => c != '/',
            Self::Class { negated, ranges } => {
                c != '/' && ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
            Self::AnySequence | Self::AnyRecursive => false,
        }
    }

    /// Characters at which the token's answer may change: the starts of the
    /// cells of a partition of all characters on which it is constant.
    fn boundaries(&self, out: &mut Vec<u32>) {
        match self {
            Self::Char(d) => out.extend([u32::from(*d), u32::from(*d) + 1]),
            Self::Class { ranges, .. } => {
                for (lo, hi) in ranges {
                    out.extend([u32::from(*lo), u32::from(*hi) + 1]);
                }
            }
            Self::AnyChar | Self::AnySequence | Self::AnyRecursive => {}
        }
    }
}

/// Reads `source` exactly as `glob::Pattern::new` does; `None` where it
/// would refuse the pattern.
fn tokenize(source: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '?' => {
                tokens.push(Token::AnyChar);
                i += 1;
            }
            '*' => {
                let start = i;
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                match i - start {
                    1 => tokens.push(Token::AnySequence),
                    2 => {
                        // `**` only as a whole segment: at the start or after
                        // `/`, and followed by `/` (taken with it) or the end.
                        let after_separator = start == 0 || chars.get(start - 1) == Some(&'/');
                        if !after_separator {
                            return None;
                        }
                        match chars.get(i) {
                            Some('/') => i += 1,
                            None => {}
                            Some(_) => return None,
                        }
                        // `glob` collapses `**/**` only when a token precedes.
                        let collapse =
                            tokens.len() > 1 && tokens.last() == Some(&Token::AnyRecursive);
                        if !collapse {
                            tokens.push(Token::AnyRecursive);
                        }
                    }
                    _ => return None,
                }
            }
            '[' => {
                let negated = chars.get(i + 1) == Some(&'!');
                // The first character of the class may be `]`.
                let (first, search_from) = if negated {
                    (i + 2, i + 3)
                } else {
                    (i + 1, i + 2)
                };
                if (negated && i + 4 > chars.len()) || (!negated && i + 3 > chars.len()) {
                    return None;
                }
                let close = chars
                    .get(search_from..)?
                    .iter()
                    .position(|x| *x == ']')
                    .map(|j| search_from + j)?;
                tokens.push(Token::Class {
                    negated,
                    ranges: class_ranges(chars.get(first..close)?),
                });
                i = close + 1;
            }
            c => {
                tokens.push(Token::Char(c));
                i += 1;
            }
        }
    }
    Some(tokens)
}

/// The characters and ranges inside `[...]`, as `glob` reads them: `a-z`
/// is a range, anything else one character.
fn class_ranges(s: &[char]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        match (s.get(i + 1), s.get(i + 2)) {
            (Some('-'), Some(&end)) => {
                out.push((c, end));
                i += 3;
            }
            _ => {
                out.push((c, c));
                i += 1;
            }
        }
    }
    out
}

/// A position in a pattern's automaton: before token `k` (`k` = the number
/// of tokens: everything matched), or inside the `**` at token `k`, having
/// consumed part of a segment run (it may continue only after a `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum State {
    At(usize),
    Inside(usize),
}

/// The automaton of one pattern.
struct Automaton<'a> {
    tokens: &'a [Token],
}

impl Automaton<'_> {
    /// `state` and what it reaches without consuming a character.
    fn closure(&self, state: State, out: &mut Vec<State>) {
        out.push(state);
        if let State::At(mut k) = state {
            while matches!(
                self.tokens.get(k),
                Some(Token::AnySequence | Token::AnyRecursive)
            ) {
                k += 1;
                out.push(State::At(k));
            }
        }
    }

    /// Whether the input may end in `state`.
    fn accepting(&self, state: State) -> bool {
        let rest = match state {
            State::At(k) => k,
            State::Inside(k) => k + 1,
        };
        self.tokens
            .get(rest..)
            .unwrap_or_default()
            .iter()
            .all(|t| matches!(t, Token::AnySequence | Token::AnyRecursive))
    }

    /// The states after consuming `c` in `state` (before closure).
    fn step(&self, state: State, c: char, out: &mut Vec<State>) {
        match state {
            State::At(k) => match self.tokens.get(k) {
                None => {}
                Some(Token::AnySequence) => out.extend((c != '/').then_some(State::At(k))),
                Some(Token::AnyRecursive) => {
                    out.push(State::Inside(k));
                    if c == '/' {
                        out.push(State::At(k + 1));
                    }
                }
                Some(t) => out.extend(t.accepts(c).then_some(State::At(k + 1))),
            },
            State::Inside(k) => {
                out.push(State::Inside(k));
                if c == '/' {
                    out.push(State::At(k + 1));
                }
            }
        }
    }

    /// Where the answers of `step(state, _)` may change (see [`Token::boundaries`]).
    fn boundaries(&self, state: State, out: &mut Vec<u32>) {
        if let State::At(k) = state {
            if let Some(t) = self.tokens.get(k) {
                t.boundaries(out);
            }
        }
    }
}

/// The product of two automata, searched breadth first for a name both accept.
struct Product<'a> {
    a: Automaton<'a>,
    b: Automaton<'a>,
}

/// How the search reached a pair: from which pair, on which cell of characters.
type Parent = Option<((State, State), (u32, u32))>;

impl<'a> Product<'a> {
    fn new(a: &'a [Token], b: &'a [Token]) -> Self {
        Self {
            a: Automaton { tokens: a },
            b: Automaton { tokens: b },
        }
    }

    fn search(&self) -> Option<Overlap> {
        let mut parents: HashMap<(State, State), Parent> = HashMap::new();
        let mut queue = VecDeque::new();
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        self.a.closure(State::At(0), &mut xs);
        self.b.closure(State::At(0), &mut ys);
        for &x in &xs {
            for &y in &ys {
                if parents.insert((x, y), None).is_none() {
                    queue.push_back((x, y));
                }
            }
        }
        let mut cells = Vec::new();
        let (mut next_a, mut next_b) = (Vec::new(), Vec::new());
        // The first name found may be untidy (`r/a/`: a trailing `**`
        // matches nothing); look a little further for one without empty
        // segments, and fall back to the first.
        let mut untidy: Option<String> = None;
        let mut extra = 0usize;
        while let Some((x, y)) = queue.pop_front() {
            if untidy.is_some() {
                extra += 1;
                if extra > TIDY_SEARCH {
                    break;
                }
            }
            if self.a.accepting(x) && self.b.accepting(y) {
                let name = witness(&parents, (x, y));
                if is_tidy(&name) {
                    return Some(Overlap::Example(name));
                }
                untidy.get_or_insert(name);
            }
            cells.clear();
            self.a.boundaries(x, &mut cells);
            self.b.boundaries(y, &mut cells);
            for cell in partition(&mut cells) {
                let Some(c) = char::from_u32(cell.0) else {
                    continue;
                };
                next_a.clear();
                next_b.clear();
                let mut stepped = Vec::new();
                self.a.step(x, c, &mut stepped);
                for s in stepped.drain(..) {
                    self.a.closure(s, &mut next_a);
                }
                self.b.step(y, c, &mut stepped);
                for s in stepped.drain(..) {
                    self.b.closure(s, &mut next_b);
                }
                for &nx in &next_a {
                    for &ny in &next_b {
                        if parents.contains_key(&(nx, ny)) {
                            continue;
                        }
                        if parents.len() >= OVERLAP_SEARCH_LIMIT {
                            return Some(untidy.map_or(Overlap::Undecided, Overlap::Example));
                        }
                        parents.insert((nx, ny), Some(((x, y), cell)));
                        queue.push_back((nx, ny));
                    }
                }
            }
        }
        untidy.map(Overlap::Example)
    }
}

/// States looked at, once a name both patterns match was found, for a
/// tidier one ([`is_tidy`]).
const TIDY_SEARCH: usize = 4096;

/// A name without empty segments.
fn is_tidy(name: &str) -> bool {
    !name.is_empty() && name.split('/').all(|s| !s.is_empty())
}

/// The cells `[start, end)` (as code points) that `boundaries` cut the
/// characters into, together with the cell of `/`; each cell as its first
/// valid character and its end. Within a cell every token answers alike.
fn partition(boundaries: &mut Vec<u32>) -> Vec<(u32, u32)> {
    const END: u32 = 0x11_0000;
    boundaries.extend([0, u32::from('/'), u32::from('/') + 1]);
    boundaries.retain(|b| *b < END);
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut cells = Vec::with_capacity(boundaries.len());
    for (i, &start) in boundaries.iter().enumerate() {
        let end = boundaries.get(i + 1).copied().unwrap_or(END);
        // Surrogates are not characters: such a cell starts after them.
        let first = if (0xD800..0xE000).contains(&start) {
            0xE000
        } else {
            start
        };
        if first < end {
            cells.push((first, end));
        }
    }
    // Cells holding the more readable characters first, so that the
    // breadth-first search spells its example with them.
    cells.sort_by_key(|(start, end)| {
        READABLE
            .chars()
            .position(|c| (*start..*end).contains(&u32::from(c)))
            .unwrap_or(READABLE.len())
    });
    cells
}

/// Characters an example name is made of, where the cell allows.
const READABLE: &str = "xyzabcdefghijklmnopqrstuvw0123456789-._";

/// The name spelled by the path to `at`, choosing readable characters.
fn witness(parents: &HashMap<(State, State), Parent>, mut at: (State, State)) -> String {
    let mut chars = Vec::new();
    while let Some(Some((from, (start, end)))) = parents.get(&at) {
        let readable = READABLE
            .chars()
            .find(|c| (*start..*end).contains(&u32::from(*c)));
        let c = readable
            .or_else(|| char::from_u32(*start))
            .unwrap_or('\u{fffd}');
        chars.push(c);
        at = *from;
    }
    chars.iter().rev().collect()
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

    fn pat(s: &str) -> ArtifactPattern {
        ArtifactPattern::parse(s).unwrap()
    }

    /// Matching by the automaton `common_match` searches, for comparing
    /// with `glob`.
    fn automaton_matches(p: &ArtifactPattern, name: &str) -> bool {
        let a = Automaton { tokens: &p.tokens };
        let mut states = Vec::new();
        a.closure(State::At(0), &mut states);
        for c in name.chars() {
            let mut next = Vec::new();
            for s in &states {
                let mut stepped = Vec::new();
                a.step(*s, c, &mut stepped);
                for t in stepped {
                    a.closure(t, &mut next);
                }
            }
            next.sort_by_key(|s| format!("{s:?}"));
            next.dedup();
            states = next;
        }
        states.iter().any(|s| a.accepting(*s))
    }

    #[test]
    fn overlapping_scopes_are_found_with_an_example_both_match() {
        // (a, b, overlap?)
        let table = [
            (
                "registry.acme.io/team-a/app",
                "registry.acme.io/team-a/**",
                true,
            ),
            ("registry.acme.io/**", "registry.acme.io/team-a/**", true),
            ("registry.acme.io/**", "registry.acme.io", false),
            ("registry.acme.io/*/app", "registry.acme.io/team-a/*", true),
            (
                "registry.acme.io/team-?/app",
                "registry.acme.io/team-ab/app",
                false,
            ),
            (
                "registry.acme.io/team-[ab]/x",
                "registry.acme.io/team-c/x",
                false,
            ),
            (
                "registry.acme.io/team-[!ab]/x",
                "registry.acme.io/team-c/x",
                true,
            ),
            (
                "registry.acme.io/team-[!ab]/x",
                "registry.acme.io/team-b/x",
                false,
            ),
            (
                "registry.acme.io/team-a/**",
                "registry.acme.io/team-b/**",
                false,
            ),
            (
                "registry.acme.io/team-a*/**",
                "registry.acme.io/team-ab/x",
                true,
            ),
            ("*.example/**", "registry.acme.io/**", false),
            ("*.example/**", "r.example/app", true),
            ("**/app", "registry.acme.io/*/app", true),
            ("**/app", "registry.acme.io/app/x", false),
            // `*` never crosses `/`, `**` needs whole segments.
            ("r/*", "r/a/b", false),
            ("r/**", "r/a/b", true),
            ("r/**/b", "r/b", true),
            ("r/a*", "r/*b", true),
            ("r/[a-c]x", "r/[c-e]x", true),
            ("r/[a-b]x", "r/[c-e]x", false),
            ("r/[/]", "r/*", false),
        ];
        for (a, b, overlap) in table {
            for (x, y) in [(pat(a), pat(b)), (pat(b), pat(a))] {
                let found = x.common_match(&y);
                assert_eq!(found.is_some(), overlap, "{x} and {y}: {found:?}");
                if let Some(found) = found {
                    let example = found.example().unwrap();
                    assert!(
                        x.matches(example) && y.matches(example),
                        "{x} {y} {example}"
                    );
                }
            }
        }
        assert_eq!(
            pat("registry.acme.io/team-a/app")
                .common_match(&pat("registry.acme.io/**"))
                .unwrap(),
            Overlap::Example("registry.acme.io/team-a/app".into())
        );
        assert_eq!(
            pat("registry.acme.io/**")
                .common_match(&pat("registry.acme.io/team-?/**"))
                .unwrap(),
            Overlap::Example("registry.acme.io/team-x/x".into())
        );
    }

    #[test]
    fn the_winner_of_an_overlap_is_the_more_specific_pattern_then_the_first_name() {
        let exact = pat("registry.acme.io/team-a/app");
        let team = pat("registry.acme.io/team-a/**");
        assert!(exact.outranks("team-d", &team, "team-a"));
        assert!(!team.outranks("team-a", &exact, "team-d"));
        // A tie goes to the name that sorts first.
        let other = pat("registry.acme.io/team-a/*");
        assert_eq!(team.specificity(), other.specificity());
        assert!(team.outranks("a", &other, "b"));
        assert!(!other.outranks("b", &team, "a"));
    }

    #[test]
    fn a_search_past_its_limit_is_taken_as_an_overlap() {
        // Two long runs of wildcards: the product has far more states than
        // the limit, and no name matches both (the literal tails differ).
        let a = pat(&format!("{}x", "?*".repeat(400)));
        let b = pat(&format!("{}y", "*?".repeat(400)));
        assert_eq!(a.common_match(&b), Some(Overlap::Undecided));
    }

    /// Patterns over a tiny alphabet: segments of literals, `?`, `*`,
    /// classes, or a whole `**`.
    fn small_pattern() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let atom = prop_oneof![
            Just("a"),
            Just("b"),
            Just("?"),
            Just("*"),
            Just("[ab]"),
            Just("[!a]"),
            Just("[a-b]"),
            Just("[]a]"),
        ];
        let segment = prop_oneof![
            1 => Just("**".to_owned()),
            4 => proptest::collection::vec(atom, 1..4).prop_map(|v| v.concat()),
        ];
        proptest::collection::vec(segment, 1..4).prop_map(|v| v.join("/"))
    }

    fn small_names(max_len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max_len {
            let mut next = Vec::new();
            for s in &last {
                for c in ['a', 'b', ']', '/'] {
                    next.push(format!("{s}{c}"));
                }
            }
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(300))]

        /// The automaton `common_match` searches accepts exactly what `glob`
        /// matches, so an overlap found or ruled out is one of the real matcher.
        #[test]
        fn the_automaton_matches_exactly_what_glob_matches(p in small_pattern()) {
            if let Ok(p) = ArtifactPattern::parse(&p) {
                for name in small_names(6) {
                    proptest::prop_assert_eq!(
                        automaton_matches(&p, &name),
                        p.matches(&name),
                        "{} on {:?}", p, name
                    );
                }
            }
        }

        /// No overlap is missed (every name both match is seen), and every
        /// example given is matched by both.
        #[test]
        fn common_match_misses_no_overlap(a in small_pattern(), b in small_pattern()) {
            let (Ok(a), Ok(b)) = (ArtifactPattern::parse(&a), ArtifactPattern::parse(&b)) else {
                return Ok(());
            };
            let found = a.common_match(&b);
            let brute = small_names(6).into_iter().find(|n| a.matches(n) && b.matches(n));
            if let Some(name) = brute {
                proptest::prop_assert!(found.is_some(), "{} and {} both match {:?}", a, b, name);
            }
            match found {
                Some(Overlap::Example(name)) => {
                    proptest::prop_assert!(a.matches(&name) && b.matches(&name), "{} {} {:?}", a, b, name);
                }
                Some(Overlap::Undecided) => proptest::prop_assert!(false, "undecided for {} {}", a, b),
                None => {}
            }
        }
    }

    #[test]
    fn specificity_prefers_longer_literal_prefix() {
        let broad = ArtifactPattern::parse("registry.acme.io/**").unwrap();
        let narrow = ArtifactPattern::parse("registry.acme.io/team-a/**").unwrap();
        assert!(narrow.specificity() > broad.specificity());
    }
}
