//! The canonical JSON of a targets role's `targets` object, kept with the
//! role and updated target by target, so signing a hashed bin that gained
//! one target does not walk, and serialise again, every target it lists.
//!
//! Serialising a bin of forty targets is cheap on its own, but in a
//! publishing server the bins of a publish are cold in the CPU's caches:
//! each target is a map node, a path, a map of hashes and a hash string,
//! each a cache miss. This keeps the canonical bytes of the whole object
//! in one buffer, next to the sorted keys and where each entry ends; a
//! change splices one entry. The bytes are the same as
//! [`to_canonical`](crate::cjson::to_canonical) writes (tests compare
//! them after random changes), and they are used only for roles whose
//! canonical form they fully determine (no delegations, no unknown
//! top-level fields; see [`signed_bytes`]).

use std::collections::BTreeMap;

use crate::cjson::{canonical_entry, to_canonical};
use crate::error::Result;
use crate::metadata::{TargetFile, Targets};

/// `{"path":{...},...}` of a role's targets, in canonical JSON.
#[derive(Clone, Debug)]
pub(super) struct CanonicalTargets {
    /// The object's canonical bytes, braces included.
    bytes: Vec<u8>,
    /// Each entry's key (the target path), sorted as canonical JSON sorts
    /// them (by UTF-8 bytes, as `BTreeMap<String, _>` does).
    keys: Vec<Box<str>>,
    /// Where each entry ends in `bytes` (exclusive). Entry `i` starts one
    /// byte after entry `i - 1` ends (a comma), the first right after `{`.
    ends: Vec<usize>,
    /// How many entries hold a control character, which canonical JSON
    /// leaves unescaped and strict JSON refuses.
    controls: usize,
}

impl CanonicalTargets {
    /// The canonical object of `targets`.
    pub(super) fn new(targets: &BTreeMap<String, TargetFile>) -> Result<Self> {
        let mut memo = Self {
            bytes: Vec::with_capacity(targets.len() * 128 + 2),
            keys: Vec::with_capacity(targets.len()),
            ends: Vec::with_capacity(targets.len()),
            controls: 0,
        };
        memo.bytes.push(b'{');
        for (path, file) in targets {
            if !memo.keys.is_empty() {
                memo.bytes.push(b',');
            }
            let entry = canonical_entry(path, file)?;
            memo.controls += usize::from(has_control(&entry));
            memo.bytes.extend_from_slice(&entry);
            memo.keys.push(path.as_str().into());
            memo.ends.push(memo.bytes.len());
        }
        memo.bytes.push(b'}');
        Ok(memo)
    }

    /// Where entry `i` starts.
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(1, |end| end + 1),
            None => 1,
        }
    }

    /// Adds or replaces the entry of `path`.
    pub(super) fn set(&mut self, path: &str, file: &TargetFile) -> Result<()> {
        let entry = canonical_entry(path, file)?;
        let controls = usize::from(has_control(&entry));
        match self.keys.binary_search_by(|k| (**k).cmp(path)) {
            Ok(i) => {
                let (start, end) = (self.start(i), self.ends.get(i).copied().unwrap_or(1));
                let old = self.bytes.get(start..end).unwrap_or_default();
                self.controls = self.controls - usize::from(has_control(old)) + controls;
                self.bytes.splice(start..end, entry.iter().copied());
                self.shift(i, entry.len() as isize - (end - start) as isize);
            }
            Err(i) => {
                // Written before entry `i` (with the comma after it), or
                // after the last entry (with the comma before it).
                let (at, piece) = if self.keys.is_empty() {
                    (1, entry)
                } else if i == self.keys.len() {
                    let mut piece = Vec::with_capacity(entry.len() + 1);
                    piece.push(b',');
                    piece.extend_from_slice(&entry);
                    (self.bytes.len() - 1, piece)
                } else {
                    let mut piece = entry;
                    piece.push(b',');
                    (self.start(i), piece)
                };
                let len = piece.len();
                self.bytes.splice(at..at, piece);
                let own_end = if i == self.keys.len() {
                    at + len
                } else {
                    at + len - usize::from(!self.keys.is_empty())
                };
                self.keys.insert(i, path.into());
                self.ends.insert(i, own_end);
                self.shift(i + 1, len as isize);
                self.controls += controls;
            }
        }
        Ok(())
    }

    /// Removes the entry of `path`, if there is one.
    pub(super) fn remove(&mut self, path: &str) {
        let Ok(i) = self.keys.binary_search_by(|k| (**k).cmp(path)) else {
            return;
        };
        let (start, end) = (self.start(i), self.ends.get(i).copied().unwrap_or(1));
        let old = self.bytes.get(start..end).unwrap_or_default();
        self.controls -= usize::from(has_control(old));
        // The entry and one comma next to it: the one after it, or the one
        // before the last entry.
        let (from, to) = if self.keys.len() == 1 {
            (start, end)
        } else if i + 1 == self.keys.len() {
            (start - 1, end)
        } else {
            (start, end + 1)
        };
        self.bytes.drain(from..to);
        self.keys.remove(i);
        self.ends.remove(i);
        self.shift(i, -((to - from) as isize));
    }

    /// Moves the ends of entries `from..` by `delta` bytes.
    fn shift(&mut self, from: usize, delta: isize) {
        for end in self.ends.iter_mut().skip(from) {
            *end = end.saturating_add_signed(delta);
        }
    }

    /// How many entries it holds.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The object's canonical bytes.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The canonical bytes of `signed`, with its `targets` object taken from
/// `memo` (which must describe `signed.targets`), and whether they are
/// also strict JSON (no control character anywhere), so the published
/// file may carry them as they are. `None` when `signed` has delegations
/// or unknown top-level fields: their canonical form is then written the
/// usual way.
pub(super) fn signed_bytes(
    signed: &Targets,
    memo: &CanonicalTargets,
) -> Result<Option<(Vec<u8>, bool)>> {
    if signed.delegations.is_some() || !signed.unrecognized.is_empty() {
        return Ok(None);
    }
    let shell = Targets {
        type_: signed.type_.clone(),
        spec_version: signed.spec_version.clone(),
        version: signed.version,
        expires: signed.expires,
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: BTreeMap::new(),
    };
    let shell = to_canonical(&shell, "targets")?;
    // The only unescaped `"targets":{}` is the key's: inside a string a
    // quote is escaped, and no other value here is an object.
    const EMPTY: &[u8] = b"\"targets\":{}";
    let Some(at) = shell.windows(EMPTY.len()).position(|w| w == EMPTY) else {
        return Ok(None);
    };
    let split = at + EMPTY.len() - 2;
    let (head, tail) = shell.split_at(split);
    let tail = tail.get(2..).unwrap_or_default();
    let mut bytes = Vec::with_capacity(shell.len() + memo.bytes.len());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(&memo.bytes);
    bytes.extend_from_slice(tail);
    let strict = memo.controls == 0 && !has_control(&shell);
    Ok(Some((bytes, strict)))
}

/// Whether `bytes` hold a control character (below U+0020).
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::datetime::Expires;
    use proptest::prelude::*;
    use serde_json::json;

    fn file(n: u8, custom: Option<&str>) -> TargetFile {
        let mut f = TargetFile::from_bytes(&[n]);
        if let Some(c) = custom {
            f.unrecognized.insert("custom".into(), json!({ "note": c }));
        }
        f
    }

    fn targets(map: BTreeMap<String, TargetFile>) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: "1.0.31".into(),
            version: 7,
            expires: Expires::new(time::macros::datetime!(2030-01-01 00:00 UTC)),
            targets: map,
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }

    proptest! {
        /// After any sequence of sets and removals, the memo's bytes are
        /// the canonical bytes of the map, and the whole role's bytes are
        /// `to_canonical`'s, strict exactly when there is no control
        /// character.
        #[test]
        fn the_memo_is_what_to_canonical_writes_after_any_changes(
            ops in prop::collection::vec(
                (0u8..12, any::<bool>(), prop::option::of("[a-z\"\\\\\n\u{e9}]{0,3}")),
                0..40,
            ),
            start in prop::collection::btree_map(0u8..12, 0u8..4, 0..6),
        ) {
            let path = |k: u8| format!("namespaces/ns-{k:02}{}/trust.json", if k % 3 == 0 { "\u{e9}" } else { "" });
            let mut map: BTreeMap<String, TargetFile> =
                start.iter().map(|(k, v)| (path(*k), file(*v, None))).collect();
            let mut memo = CanonicalTargets::new(&map).unwrap();
            for (k, set, custom) in ops {
                if set {
                    let f = file(k, custom.as_deref());
                    memo.set(&path(k), &f).unwrap();
                    map.insert(path(k), f);
                } else {
                    memo.remove(&path(k));
                    map.remove(&path(k));
                }
                prop_assert_eq!(memo.bytes(), &to_canonical(&map, "t").unwrap()[..]);
                let role = targets(map.clone());
                let (bytes, strict) = signed_bytes(&role, &memo).unwrap().unwrap();
                let expected = to_canonical(&role, "t").unwrap();
                prop_assert_eq!(&bytes, &expected);
                prop_assert_eq!(strict, !expected.iter().any(|&b| b < 0x20));
            }
        }
    }

    #[test]
    fn roles_with_delegations_or_unknown_fields_are_left_to_the_encoder() {
        let memo = CanonicalTargets::new(&BTreeMap::new()).unwrap();
        let mut role = targets(BTreeMap::new());
        role.unrecognized.insert("a".into(), json!({"targets": {}}));
        assert!(signed_bytes(&role, &memo).unwrap().is_none());
        let mut role = targets(BTreeMap::new());
        role.delegations = Some(crate::metadata::Delegations::new(
            BTreeMap::new(),
            Vec::new(),
        ));
        assert!(signed_bytes(&role, &memo).unwrap().is_none());
    }
}
