//! The audit log's hash chain, and the chain heads keyshare publishes.
//!
//! The server keeps an append-only audit log. Record `n` stores
//! `prev_hash` (the `hash` of record `n - 1`, [`GENESIS`] for record 1) and
//! `hash = hex(SHA-256(canonical JSON of ["keyshare.audit/v1", seq, time,
//! actor, action, subject, details, prev_hash]))` ([`Record::hash`]), with
//! canonical JSON as TUF signs it. A chain alone is unkeyed: whoever can
//! write the log can rewrite a record and recompute every later hash. So
//! every timestamp the server signs also carries the chain's **head** as of
//! that publish (the last record's sequence number and hash, including the
//! records of the publish itself), in the timestamp's `signed` object:
//!
//! ```json
//! "x-keyshare-audit": {"seq": 42, "hash": "3f1c…"}
//! ```
//!
//! ([`TIMESTAMP_FIELD`], [`Head::from_timestamp`], [`Head::timestamp_fields`]).
//! TUF clients keep and ignore fields they do not know, and the field is
//! covered by the timestamp key's signature, so a head that verifiers,
//! auditors or the store already hold pins every record up to its `seq`:
//! rewriting any of them changes the hash at `seq`.
//!
//! [`ChainCheck`] walks records in order, checks every link and every head
//! it was given, and names the first sequence number where something does
//! not match ([`ChainError`]). Both the server (its own store) and the
//! `keyshare admin audit verify` client (records fetched over HTTP) use it.
//! Pure: no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::metadata::{Timestamp, Unrecognized};

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tag hashed into every record, so a record hash cannot be mistaken for
/// another digest.
pub const RECORD_FORMAT: &str = "keyshare.audit/v1";

/// The field of a timestamp's `signed` object that carries the chain head.
pub const TIMESTAMP_FIELD: &str = "x-keyshare-audit";

/// The fields of one audit record that its hash covers.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Sequence number: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// The time as stored (RFC 3339 text).
    pub time: &'a str,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub subject: &'a str,
    /// Anything else (no floating-point numbers).
    pub details: &'a Value,
    /// The hash of the record before.
    pub prev_hash: &'a str,
}

impl Record<'_> {
    /// The canonical bytes the record's hash covers.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        let tuple = json!([
            RECORD_FORMAT,
            self.seq,
            self.time,
            self.actor,
            self.action,
            self.subject,
            self.details,
            self.prev_hash
        ]);
        crate::cjson::to_canonical(&tuple, "audit record")
    }

    /// SHA-256 of [`canonical_bytes`](Self::canonical_bytes), lowercase hex.
    pub fn hash(&self) -> Result<String> {
        Ok(crate::hash::sha256_hex(&self.canonical_bytes()?))
    }
}

/// A chain head: the last record's sequence number and hash (`0` and
/// [`GENESIS`] for an empty log).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Head {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash, 64 lowercase hex digits.
    pub hash: String,
}

fn malformed(what: &str, path: &str, message: impl Into<String>) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Head {
    /// A head; `hash` must be 64 hex digits (stored lowercase).
    pub fn new(seq: u64, hash: &str) -> Result<Self> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(
                "audit head",
                ".hash",
                "must be 64 hex digits (a SHA-256)",
            ));
        }
        Ok(Self {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }

    /// The head of an empty log.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    /// The head a timestamp carries in [`TIMESTAMP_FIELD`]; `None` when it
    /// carries none (a repository that does not publish heads).
    pub fn from_timestamp(timestamp: &Timestamp) -> Result<Option<Self>> {
        let Some(value) = timestamp.unrecognized.get(TIMESTAMP_FIELD) else {
            return Ok(None);
        };
        let what = format!("timestamp v{}", timestamp.version);
        let path = format!(".signed.{TIMESTAMP_FIELD}");
        let seq = value
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(&what, &path, "`seq` must be a non-negative integer"))?;
        let hash = value
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&what, &path, "`hash` must be a string"))?;
        Self::new(seq, hash)
            .map(Some)
            .map_err(|_| malformed(&what, &path, "`hash` must be 64 hex digits"))
    }

    /// The fields to add to a timestamp's `signed` object to publish this head.
    pub fn timestamp_fields(&self) -> Unrecognized {
        Unrecognized::from([(
            TIMESTAMP_FIELD.to_owned(),
            json!({"seq": self.seq, "hash": self.hash}),
        )])
    }
}

impl fmt::Display for Head {
    /// `SEQ:HASH`, the form [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl FromStr for Head {
    type Err = Error;

    /// `SEQ:HASH`: a sequence number and 64 hex digits.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            malformed(
                "audit head",
                ".",
                format!(
                    "`{s}` is not SEQ:HASH (a sequence number, a colon, and the 64 hex digits of \
                     that record's hash)"
                ),
            )
        };
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        Self::new(seq, hash).map_err(|_| bad())
    }
}

/// Where an audit log does not match its chain or a head it was checked
/// against. Each variant names the first sequence number concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain itself is broken at record `seq`: that record, or one
    /// before it, was edited, deleted or moved.
    #[error("audit chain broken at record {seq}: {reason}")]
    Broken {
        /// The first sequence number that does not verify.
        seq: u64,
        /// What does not match.
        reason: String,
    },
    /// The chain verifies, but its hash at `seq` is not the one a head
    /// published: a record at or before `seq` was rewritten (and the later
    /// hashes recomputed).
    #[error(
        "audit log contradicts the head {published_in} at record {seq}: published hash \
         {expected}, the log has {found}"
    )]
    Contradicted {
        /// The head's sequence number.
        seq: u64,
        /// Where the head came from (`published in timestamp v12`, …).
        published_in: String,
        /// The hash the head published.
        expected: String,
        /// The log's hash at `seq`.
        found: String,
    },
    /// A head names a record the log no longer has: records were cut off
    /// the end.
    #[error(
        "audit log contradicts the head {published_in} at record {seq}: published hash \
         {expected}, the log ends at record {records}"
    )]
    Truncated {
        /// The head's sequence number.
        seq: u64,
        /// Where the head came from.
        published_in: String,
        /// The hash the head published.
        expected: String,
        /// The log's last sequence number.
        records: u64,
    },
}

impl ChainError {
    /// The first sequence number that does not match: the broken record,
    /// the contradicted head's record, or the first record missing at the end.
    pub fn first_bad_seq(&self) -> u64 {
        match self {
            Self::Broken { seq, .. } | Self::Contradicted { seq, .. } => *seq,
            Self::Truncated { records, .. } => records.saturating_add(1),
        }
    }
}

/// What [`ChainCheck::finish`] found: an intact chain agreeing with every head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// The chain's head (the last record).
    pub head: Head,
    /// How many heads it was checked against.
    pub heads_checked: usize,
}

/// A head to check and where it came from.
#[derive(Clone, Debug)]
struct Expected {
    hash: String,
    published_in: String,
}

/// Checks records fed in sequence order against the chain rules and a set
/// of heads. Memory is proportional to the number of heads, not records.
#[derive(Clone, Debug)]
pub struct ChainCheck {
    next: u64,
    prev_hash: String,
    heads: BTreeMap<u64, Vec<Expected>>,
    checked: usize,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self::new(std::iter::empty::<(Head, String)>())
    }
}

impl ChainCheck {
    /// A check of a whole log (from record 1) against `heads`, each with
    /// where it came from (`published in timestamp v12`, `given with
    /// --head`; used in [`ChainError`] messages).
    pub fn new<S: Into<String>>(heads: impl IntoIterator<Item = (Head, S)>) -> Self {
        let mut map: BTreeMap<u64, Vec<Expected>> = BTreeMap::new();
        for (head, published_in) in heads {
            map.entry(head.seq).or_default().push(Expected {
                hash: head.hash,
                published_in: published_in.into(),
            });
        }
        Self {
            next: 1,
            prev_hash: GENESIS.to_owned(),
            heads: map,
            checked: 0,
        }
    }

    /// The sequence number the next record must have.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Checks the next record, whose stored hash is `hash`.
    pub fn push(&mut self, record: &Record<'_>, hash: &str) -> std::result::Result<(), ChainError> {
        self.heads_at(0, GENESIS)?;
        let seq = self.next;
        let broken = |reason: String| ChainError::Broken { seq, reason };
        if record.seq != seq {
            return Err(broken(if record.seq > seq {
                format!("record missing (the next record is {})", record.seq)
            } else {
                format!("unexpected sequence number {}", record.seq)
            }));
        }
        if record.prev_hash != self.prev_hash {
            return Err(broken(
                "prev_hash is not the hash of the previous record".into(),
            ));
        }
        let computed = record.hash().map_err(|e| broken(e.to_string()))?;
        if computed != hash {
            return Err(broken("hash does not match the record's content".into()));
        }
        self.heads_at(seq, hash)?;
        hash.clone_into(&mut self.prev_hash);
        self.next = seq.saturating_add(1);
        Ok(())
    }

    /// Ends the check: every head beyond the last record means records
    /// were cut off the end.
    pub fn finish(mut self) -> std::result::Result<ChainSummary, ChainError> {
        self.heads_at(0, GENESIS)?;
        let records = self.next.saturating_sub(1);
        if let Some((&seq, expected)) = self.heads.iter().next() {
            if let Some(e) = expected.first() {
                return Err(ChainError::Truncated {
                    seq,
                    published_in: e.published_in.clone(),
                    expected: e.hash.clone(),
                    records,
                });
            }
        }
        Ok(ChainSummary {
            head: Head {
                seq: records,
                hash: self.prev_hash,
            },
            heads_checked: self.checked,
        })
    }

    /// Checks (and forgets) the heads at `seq` against the log's `hash` there.
    fn heads_at(&mut self, seq: u64, hash: &str) -> std::result::Result<(), ChainError> {
        let Some(expected) = self.heads.remove(&seq) else {
            return Ok(());
        };
        for e in expected {
            if e.hash != hash {
                return Err(ChainError::Contradicted {
                    seq,
                    published_in: e.published_in,
                    expected: e.hash,
                    found: hash.to_owned(),
                });
            }
            self.checked += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::metadata::Role as _;

    /// `n` records: (seq, details) and their hashes.
    fn chain(n: u64) -> Vec<(u64, Value, String, String)> {
        let mut prev = GENESIS.to_owned();
        let mut out = Vec::new();
        for seq in 1..=n {
            let details = json!({ "n": seq });
            let r = Record {
                seq,
                time: "2030-01-01T00:00:00Z",
                actor: "admin",
                action: "key.add",
                subject: "team-a",
                details: &details,
                prev_hash: &prev,
            };
            let hash = r.hash().unwrap();
            out.push((seq, details, prev.clone(), hash.clone()));
            prev = hash;
        }
        out
    }

    fn feed(
        check: &mut ChainCheck,
        records: &[(u64, Value, String, String)],
    ) -> std::result::Result<(), ChainError> {
        for (seq, details, prev, hash) in records {
            let r = Record {
                seq: *seq,
                time: "2030-01-01T00:00:00Z",
                actor: "admin",
                action: "key.add",
                subject: "team-a",
                details,
                prev_hash: prev,
            };
            check.push(&r, hash)?;
        }
        Ok(())
    }

    #[test]
    fn record_hash_is_sha256_of_the_canonical_tuple() {
        let details = json!({"b": 1, "a": "x"});
        let r = Record {
            seq: 7,
            time: "2030-01-01T00:00:00Z",
            actor: "tok-1",
            action: "key.add",
            subject: "team-a/k",
            details: &details,
            prev_hash: GENESIS,
        };
        let bytes = r.canonical_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                r#"["keyshare.audit/v1",7,"2030-01-01T00:00:00Z","tok-1","key.add","team-a/k",{{"a":"x","b":1}},"{GENESIS}"]"#
            )
        );
        assert_eq!(r.hash().unwrap(), crate::hash::sha256_hex(&bytes));
    }

    #[test]
    fn an_intact_chain_agreeing_with_its_heads_passes() {
        let records = chain(4);
        let heads = [
            (Head::genesis(), "empty"),
            (Head::new(2, &records[1].3).unwrap(), "ts 2"),
            (Head::new(4, &records[3].3).unwrap(), "ts 4"),
        ];
        let mut check = ChainCheck::new(heads);
        feed(&mut check, &records).unwrap();
        let summary = check.finish().unwrap();
        assert_eq!(summary.head, Head::new(4, &records[3].3).unwrap());
        assert_eq!(summary.heads_checked, 3);
    }

    #[test]
    fn a_rewritten_record_with_recomputed_hashes_contradicts_the_first_later_head() {
        let good = chain(4);
        // The attacker's chain: record 2 changed, every later hash recomputed.
        let mut prev = good[0].3.clone();
        let mut forged = vec![good[0].clone()];
        for (seq, details, _, _) in &good[1..] {
            let details = if *seq == 2 {
                json!({"n": 99})
            } else {
                details.clone()
            };
            let r = Record {
                seq: *seq,
                time: "2030-01-01T00:00:00Z",
                actor: "admin",
                action: "key.add",
                subject: "team-a",
                details: &details,
                prev_hash: &prev,
            };
            let hash = r.hash().unwrap();
            forged.push((*seq, details.clone(), prev.clone(), hash.clone()));
            prev = hash;
        }
        // The bare chain verifies.
        let mut bare = ChainCheck::default();
        feed(&mut bare, &forged).unwrap();
        bare.finish().unwrap();
        // Heads published before the rewrite do not.
        let heads = [
            (
                Head::new(1, &good[0].3).unwrap(),
                "published in timestamp v2",
            ),
            (
                Head::new(3, &good[2].3).unwrap(),
                "published in timestamp v4",
            ),
        ];
        let mut check = ChainCheck::new(heads);
        let err = feed(&mut check, &forged).unwrap_err();
        assert_eq!(
            err,
            ChainError::Contradicted {
                seq: 3,
                published_in: "published in timestamp v4".into(),
                expected: good[2].3.clone(),
                found: forged[2].3.clone(),
            }
        );
        assert_eq!(err.first_bad_seq(), 3);
        assert!(err
            .to_string()
            .starts_with("audit log contradicts the head published in timestamp v4 at record 3"));
    }

    #[test]
    fn records_cut_off_the_end_contradict_a_head_beyond_it() {
        let records = chain(3);
        let mut check = ChainCheck::new([(Head::new(3, &records[2].3).unwrap(), "ts")]);
        feed(&mut check, &records[..2]).unwrap();
        let err = check.finish().unwrap_err();
        assert!(matches!(
            err,
            ChainError::Truncated {
                seq: 3,
                records: 2,
                ..
            }
        ));
        assert_eq!(err.first_bad_seq(), 3);
    }

    #[test]
    fn broken_links_are_named_at_the_first_bad_record() {
        let records = chain(3);
        // A gap.
        let mut check = ChainCheck::default();
        let err = feed(&mut check, &[records[0].clone(), records[2].clone()]).unwrap_err();
        assert_eq!(
            err,
            ChainError::Broken {
                seq: 2,
                reason: "record missing (the next record is 3)".into()
            }
        );
        // An edited record whose hash was not recomputed.
        let mut edited = records.clone();
        edited[1].1 = json!({"n": 5});
        let err = feed(&mut ChainCheck::default(), &edited).unwrap_err();
        assert_eq!(
            err,
            ChainError::Broken {
                seq: 2,
                reason: "hash does not match the record's content".into()
            }
        );
        // An edited record whose hash was recomputed, but not the next link.
        let mut relinked = records.clone();
        relinked[1].3 = "ab".repeat(32);
        let err = feed(&mut ChainCheck::default(), &relinked).unwrap_err();
        assert_eq!(err.first_bad_seq(), 2);
    }

    #[test]
    fn heads_parse_from_seq_colon_hash_and_refuse_anything_else() {
        let hash = "AB".repeat(32);
        let head: Head = format!("12:{hash}").parse().unwrap();
        assert_eq!(head, Head::new(12, &"ab".repeat(32)).unwrap());
        assert_eq!(head.to_string(), format!("12:{}", "ab".repeat(32)));
        for bad in [
            String::new(),
            "12".into(),
            format!("12{hash}"),
            format!("-1:{hash}"),
            format!("+1:{hash}"),
            format!(":{hash}"),
            format!("12:{}", &hash[1..]),
            format!("12:{}x", &hash[1..]),
            format!("99999999999999999999999:{hash}"),
        ] {
            let err = bad.parse::<Head>().unwrap_err();
            assert!(err.to_string().contains("is not SEQ:HASH"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_head_round_trips_through_a_timestamp_and_a_bad_one_is_malformed() {
        let head = Head::new(3, &"cd".repeat(32)).unwrap();
        let mut ts = Timestamp {
            type_: Timestamp::TYPE.into(),
            spec_version: crate::metadata::SPEC_VERSION.into(),
            version: 9,
            expires: crate::datetime::Expires::new(
                time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
            ),
            meta: BTreeMap::new(),
            unrecognized: Unrecognized::new(),
        };
        assert_eq!(Head::from_timestamp(&ts).unwrap(), None);
        ts.unrecognized = head.timestamp_fields();
        assert_eq!(Head::from_timestamp(&ts).unwrap(), Some(head));
        for bad in [
            json!("3:abc"),
            json!({"seq": -1, "hash": "cd".repeat(32)}),
            json!({"seq": 3}),
            json!({"seq": 3, "hash": "zz"}),
        ] {
            ts.unrecognized = Unrecognized::from([(TIMESTAMP_FIELD.to_owned(), bad.clone())]);
            let err = Head::from_timestamp(&ts).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("timestamp v9: malformed at `.signed.x-keyshare-audit`"),
                "{bad}: {err}"
            );
        }
    }
}
