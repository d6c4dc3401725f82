//! The hash chain of the audit log.
//!
//! Record `n` stores `prev_hash` (the `hash` of record `n - 1`, 64 zeros for
//! record 1) and
//! `hash = SHA-256(canonical JSON of ["keyshare.audit/v1", seq, time, actor, action, subject, details, prev_hash])`,
//! with canonical JSON as TUF signs it (sorted keys, no insignificant
//! whitespace, no floats): [`keyshare_policy::audit::Record::hash`]. Editing
//! any field of a record changes its hash; deleting a record leaves a gap in
//! `seq`; moving records changes the `seq` they are hashed with; and every
//! later record's `prev_hash` pins the one before it. What the chain alone
//! cannot show is a rewrite by someone who also recomputes every later
//! hash, or records removed from the end: [`verify`] also checks the chain
//! against heads published elsewhere (the heads in signed timestamps, see
//! `crate::published_heads`) with [`keyshare_policy::audit::ChainCheck`].

use std::collections::BTreeSet;

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use keyshare_policy::audit::{ChainCheck, ChainError, Head, Record, GENESIS};

use super::db::{self, Db};
use super::error::{Error, Result};
use super::records::{AuditHead, AuditRecord};
use super::{parse_time, time_text};

/// SHA-256 of a record's canonical bytes, hex.
fn record_hash(
    seq: i64,
    time: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
    prev_hash: &str,
) -> Result<String> {
    let seq = u64::try_from(seq).map_err(|e| Error::invalid("seq", e.to_string()))?;
    Record {
        seq,
        time,
        actor,
        action,
        subject,
        details,
        prev_hash,
    }
    .hash()
    .map_err(|e| Error::invalid("details", e.to_string()))
}

/// A row as stored, before checking.
struct Row {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    subject: String,
    details: String,
    prev_hash: String,
    hash: String,
}

const SELECT: &str =
    "SELECT seq, time, actor, action, subject, details, prev_hash, hash FROM audit_log";

fn row(r: &db::Row<'_>) -> Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        time: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        details: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

fn to_record(r: Row) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.seq,
        time: parse_time("audit_log", &r.time)?,
        details: serde_json::from_str(&r.details).map_err(|e| Error::corrupt("audit_log", e))?,
        actor: r.actor,
        action: r.action,
        subject: r.subject,
        prev_hash: r.prev_hash,
        hash: r.hash,
    })
}

/// The last record's sequence number and hash, without verifying.
pub(crate) fn head(conn: &Db<'_>) -> Result<AuditHead> {
    let last = conn.row(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    );
    match last? {
        Some((records, hash)) => Ok(AuditHead { records, hash }),
        None => Ok(AuditHead {
            records: 0,
            hash: GENESIS.to_owned(),
        }),
    }
}

/// Appends a record after the current head.
pub(crate) fn append(
    conn: &Db<'_>,
    time: time::OffsetDateTime,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<AuditRecord> {
    for (field, value) in [("actor", actor), ("action", action)] {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
    }
    let prev = head(conn)?;
    let seq = prev.records + 1;
    let time_s = time_text(time);
    let hash = record_hash(seq, &time_s, actor, action, subject, details, &prev.hash)?;
    let details_text = canonical_text(details)?;
    conn.exec(
        "INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        (
            seq,
            &time_s,
            actor,
            action,
            subject,
            &details_text,
            &prev.hash,
            &hash,
        ),
    )?;
    index_namespaces(conn, seq, action, subject, details)?;
    Ok(AuditRecord {
        seq,
        time: parse_time("audit_log", &time_s)?,
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        details: details.clone(),
        prev_hash: prev.hash,
        hash,
    })
}

/// The details as stored: compact JSON (keys sorted, as `Value` keeps
/// them). Not canonical JSON, whose unescaped control characters (the
/// newlines of a PEM key) are not JSON a parser reads back; the hash is
/// computed over the canonical form of the parsed value either way.
fn canonical_text(details: &Value) -> Result<String> {
    serde_json::to_string(details).map_err(|e| Error::invalid("details", e.to_string()))
}

/// Records with `seq > after`, oldest first, at most `limit`.
pub(crate) fn records(conn: &Db<'_>, after: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    let filter = AuditFilter {
        after: Some(after),
        limit,
        ..AuditFilter::default()
    };
    query(conn, &filter)
}

/// Which audit records to list
/// ([`Store::audit_query`](super::Store::audit_query)): every condition
/// given must hold. Each is served by an index (`seq`, `time`, `action`,
/// `actor`, `audit_namespaces`), so a page costs at most a walk over the
/// records one condition selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records with a larger sequence number.
    pub after: Option<i64>,
    /// Only records with a smaller sequence number.
    pub before: Option<i64>,
    /// Only records written at or after this time (to the second).
    pub since: Option<time::OffsetDateTime>,
    /// Only this action (`key.add`), or, ending in `.*`, every action
    /// with that prefix (`key.*`).
    pub action: Option<String>,
    /// Only this actor (`token:tok-...`, `system`, `oidc:...`).
    pub actor: Option<String>,
    /// Only records about this namespace (see [`namespaces_of`]).
    pub namespace: Option<String>,
    /// Newest first (else oldest first).
    pub newest_first: bool,
    /// At most this many.
    pub limit: u32,
}

/// The records `filter` selects, in its order.
pub(crate) fn query(conn: &Db<'_>, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(after) = filter.after {
        conditions.push("seq > ?");
        params.push(SqlValue::Integer(after));
    }
    if let Some(before) = filter.before {
        conditions.push("seq < ?");
        params.push(SqlValue::Integer(before));
    }
    if let Some(since) = filter.since {
        // Stored times are RFC 3339 in UTC, `...:SS[.fraction]Z`: every
        // time within or after second S sorts at or after `...:SS`.
        let second = since.replace_nanosecond(0).unwrap_or(since);
        let text = time_text(second);
        conditions.push("time >= ?");
        params.push(SqlValue::Text(
            text.strip_suffix('Z').unwrap_or(&text).to_owned(),
        ));
    }
    if let Some(action) = &filter.action {
        match action.strip_suffix('*') {
            // `key.*`: `key.` <= action < `key/` (`/` follows `.`).
            Some(prefix) if prefix.ends_with('.') => {
                conditions.push("action >= ? AND action < ?");
                let mut upper = prefix.strip_suffix('.').unwrap_or(prefix).to_owned();
                upper.push('/');
                params.push(SqlValue::Text(prefix.to_owned()));
                params.push(SqlValue::Text(upper));
            }
            _ => {
                conditions.push("action = ?");
                params.push(SqlValue::Text(action.clone()));
            }
        }
    }
    if let Some(actor) = &filter.actor {
        conditions.push("actor = ?");
        params.push(SqlValue::Text(actor.clone()));
    }
    if let Some(ns) = &filter.namespace {
        conditions.push("seq IN (SELECT seq FROM audit_namespaces WHERE namespace = ?)");
        params.push(SqlValue::Text(ns.clone()));
    }
    let mut sql = SELECT.to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(if filter.newest_first {
        " ORDER BY seq DESC LIMIT ?"
    } else {
        " ORDER BY seq LIMIT ?"
    });
    params.push(SqlValue::Integer(i64::from(filter.limit)));
    conn.rows(&sql, params, |r| to_record(row(r)?))
}

/// The namespaces an audit record is about, for `--namespace` filters:
/// the namespace named by the subject of a namespace, key, identity or
/// sub-delegation record (`team-a`, `team-a/<id>`); the namespaces a
/// revocation found the key listed in (`named_as`, `listed_in`); a token's
/// namespaces; the namespaces of the keys an expiry sweep removed
/// (`removed`); and a `namespace` field of the details.
pub fn namespaces_of(action: &str, subject: &str, details: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |v: Option<&Value>| {
        if let Some(ns) = v.and_then(Value::as_str) {
            if keyshare_policy::trust::NamespaceName::is_well_formed(ns) {
                found.insert(ns.to_owned());
            }
        }
    };
    let kind = action.split_once('.').map_or(action, |(k, _)| k);
    if matches!(
        kind,
        "namespace" | "key" | "identity" | "sub_delegation" | "namespace_revocation"
    ) {
        let ns = subject.split_once('/').map_or(subject, |(ns, _)| ns);
        add(Some(&Value::String(ns.to_owned())));
    }
    add(details.get("namespace"));
    add(details.get("named_as").and_then(|n| n.get("namespace")));
    for list in ["listed_in", "removed"] {
        for item in details
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(item.get("namespace"));
        }
    }
    // The namespaces whose names an allowed overlap shares.
    for ns in details
        .get("overlaps")
        .and_then(|o| o.get("namespaces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(Some(ns));
    }
    if action == "token.create" {
        for ns in details
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(Some(ns));
        }
    }
    found
}

/// Records which namespaces record `seq` is about (`audit_namespaces`,
/// an index beside the chain: not hashed, rebuilt from the records).
pub(crate) fn index_namespaces(
    conn: &Db<'_>,
    seq: i64,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<()> {
    for ns in namespaces_of(action, subject, details) {
        conn.exec(
            "INSERT OR IGNORE INTO audit_namespaces (namespace, seq) VALUES (?1, ?2)",
            (&ns, seq),
        )?;
    }
    Ok(())
}

/// Walks the whole log and checks every link and every one of `heads`
/// (each with where it was published); see the module docs. A broken link
/// is [`Error::AuditChain`], a head the log contradicts
/// [`Error::AuditHead`]; either names the first sequence number concerned.
pub(crate) fn verify(conn: &Db<'_>, heads: &[(Head, String)]) -> Result<AuditHead> {
    let mut check = ChainCheck::new(heads.iter().cloned());
    conn.each(&format!("{SELECT} ORDER BY seq"), [], |r| {
        let r = row(r)?;
        let seq = check.next_seq();
        let broken = |reason: String| chain_error(ChainError::Broken { seq, reason });
        let Ok(record_seq) = u64::try_from(r.seq) else {
            return Err(broken(format!("unexpected sequence number {}", r.seq)));
        };
        let details = match serde_json::from_str::<Value>(&r.details) {
            Ok(details) => details,
            Err(e) if record_seq == seq => {
                return Err(broken(format!("details are not JSON: {e}")));
            }
            // A record out of place: `push` reports its sequence number.
            Err(_) => Value::Null,
        };
        let record = Record {
            seq: record_seq,
            time: &r.time,
            actor: &r.actor,
            action: &r.action,
            subject: &r.subject,
            details: &details,
            prev_hash: &r.prev_hash,
        };
        check.push(&record, &r.hash).map_err(chain_error)
    })?;
    let summary = check.finish().map_err(chain_error)?;
    Ok(AuditHead {
        records: i64::try_from(summary.head.seq).map_err(|e| Error::corrupt("audit_log", e))?,
        hash: summary.head.hash,
    })
}

fn chain_error(e: ChainError) -> Error {
    match e {
        ChainError::Broken { seq, reason } => Error::AuditChain {
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            reason,
        },
        other => Error::AuditHead(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::namespaces_of;

    fn names(action: &str, subject: &str, details: serde_json::Value) -> Vec<String> {
        namespaces_of(action, subject, &details)
            .into_iter()
            .collect()
    }

    #[test]
    fn records_are_indexed_under_the_namespaces_they_are_about() {
        assert_eq!(names("namespace.create", "team-a", json!({})), ["team-a"]);
        assert_eq!(names("key.add", "team-a/k-1", json!({})), ["team-a"]);
        assert_eq!(
            names("sub_delegation.remove", "team-b/s", json!(null)),
            ["team-b"]
        );
        assert_eq!(
            names(
                "revocation.add",
                "key 00ff",
                json!({"named_as": {"namespace": "team-a", "key_id": "k"},
                       "listed_in": [{"namespace": "team-b", "key_id": "k"}]})
            ),
            ["team-a", "team-b"]
        );
        assert_eq!(
            names("token.create", "tok-1", json!({"namespaces": ["team-c"]})),
            ["team-c"]
        );
        assert_eq!(
            names(
                "ci.sweep",
                "repository",
                json!({"removed": [{"namespace": "team-a", "key_id": "x"},
                                   {"namespace": "team-d", "key_id": "y"}],
                       "files": []})
            ),
            ["team-a", "team-d"]
        );
        assert_eq!(
            names("namespace_revocation.add", "team-a/key 00ff", json!({})),
            ["team-a"]
        );
        // An allowed overlap is about the namespaces whose names it shares.
        assert_eq!(
            names(
                "namespace.create",
                "team-d",
                json!({"allow_overlap": true,
                       "overlaps": {"namespace_count": 1, "namespaces": ["team-a"]}})
            ),
            ["team-a", "team-d"]
        );
        // A peer or a root certificate named like a namespace is not one.
        assert!(names("peer.create", "team-a", json!({})).is_empty());
        assert!(names("root_cert.create", "team-a", json!(null)).is_empty());
        // What is not a namespace name is not indexed.
        assert!(names("key.add", "Bad_Name/k", json!({})).is_empty());
    }
}
