//! Copying a whole store into another, empty one (SQLite into PostgreSQL,
//! say): every row of every table, with its ids and sequence numbers, in
//! one transaction of the destination; the audit chain is verified on the
//! copy against the source's head before it commits.

use rusqlite::types::Value;

use super::db::{Backend, Db};
use super::error::{Error, Result};
use super::records::AuditHead;
use super::Store;

/// Every table at schema version 11 and the columns copied, in an order
/// that satisfies the foreign keys. `tokens` is read in creation order
/// (SQLite's row id; PostgreSQL's `rowid` column), which the copy keeps.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "namespaces",
        "name, scopes, maintainers, threshold, created_at, bin",
        "name",
    ),
    ("namespace_scopes", "scope, namespace", "scope"),
    (
        "keys",
        "namespace, key_id, key, not_before, not_after, ephemeral, description, added_at, \
         spki_sha256, principal, layout_root",
        "namespace, key_id",
    ),
    (
        "ci_delegations",
        "namespace, key_id, issuer, subject, token_id",
        "namespace, key_id",
    ),
    ("ci_used", "kind, digest, expires_at", "kind, digest"),
    (
        "identities",
        "namespace, name, ca_certs, subject, not_before, not_after, added_at",
        "namespace, name",
    ),
    (
        "sub_delegations",
        "namespace, name, scopes, threshold, keys, updated_at",
        "namespace, name",
    ),
    (
        "revocations",
        "id, spki_sha256, certificate_sha256, revoked_at, reason, recorded_at, namespace, key_id",
        "id",
    ),
    (
        "revocations_unresolved",
        "key_id, revoked_at, reason, recorded_at",
        "recorded_at, key_id",
    ),
    (
        "namespace_revocations",
        "namespace, spki_sha256, revoked_at, reason, recorded_at, key_id",
        "namespace, spki_sha256",
    ),
    (
        "peers",
        "name, patterns, url, root, terminating, updated_at",
        "name",
    ),
    ("org_roots", "name, pem, sha256, added_at", "name"),
    ("tsas", "name, pem, sha256, description, added_at", "name"),
    (
        "tokens",
        "id, kind, secret_sha256, description, created_at, revoked_at, expires_at, last_used_at",
        "rowid",
    ),
    (
        "token_namespaces",
        "token_id, namespace",
        "token_id, namespace",
    ),
    (
        "timestamps",
        "serial, gen_time, hash_alg, hash, policy, tsa_cert",
        "serial",
    ),
    (
        "published_files",
        "id, path, role, version, bytes, sha256, immutable, created_at, lineage",
        "id",
    ),
    ("published_current", "lineage, id", "lineage"),
    ("published_superseded", "id, superseded_at", "id"),
    (
        "audit_log",
        "seq, time, actor, action, subject, details, prev_hash, hash",
        "seq",
    ),
    ("audit_namespaces", "namespace, seq", "namespace, seq"),
];

/// The identity columns PostgreSQL numbers by itself, moved past the
/// copied ids.
const IDENTITIES: &[(&str, &str)] = &[("revocations", "id"), ("published_files", "id")];

/// What [`Store::copy_into`] copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows copied, by table, in the order copied.
    pub rows: Vec<(&'static str, u64)>,
    /// The audit chain's head, the same in both stores.
    pub audit_head: AuditHead,
}

impl Store {
    /// Copies every row of this store into `dest`, which must be empty (a
    /// store just created, at the same schema version), in one transaction
    /// of `dest`: nothing is left half-copied. The audit chain is verified
    /// on the copy, and must end at this store's head, before it commits.
    /// This store is only read (one snapshot).
    pub fn copy_into(&self, dest: &mut Store) -> Result<CopyReport> {
        let source_version = self.schema_version()?;
        let dest_version = dest.schema_version()?;
        if source_version != dest_version {
            return Err(Error::invalid(
                "copy",
                format!(
                    "the source is at schema version {source_version}, the destination at \
                     {dest_version}"
                ),
            ));
        }
        let head = self.verify_audit_chain()?;
        self.with_conn(|src| {
            dest.transaction(|tx| {
                let to = tx.db();
                for (table, _, _) in TABLES {
                    let n: i64 =
                        to.one(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                    if n != 0 {
                        return Err(Error::invalid(
                            "copy",
                            format!("the destination is not empty ({n} rows in `{table}`)"),
                        ));
                    }
                }
                let mut rows = Vec::with_capacity(TABLES.len());
                for &(table, columns, order) in TABLES {
                    rows.push((table, copy_table(src, &to, table, columns, order)?));
                }
                if to.backend() == Backend::Postgres {
                    for (table, column) in IDENTITIES {
                        to.one(
                            &format!(
                                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                                 COALESCE(max({column}), 1), max({column}) IS NOT NULL) \
                                 FROM {table}"
                            ),
                            [],
                            |_| Ok(()),
                        )?;
                    }
                }
                let copied = super::audit::verify(&to, &[])?;
                if copied != head {
                    return Err(Error::AuditChain {
                        seq: copied.records,
                        reason: format!(
                            "the copy's audit head ({}, {}) is not the source's ({}, {})",
                            copied.records, copied.hash, head.records, head.hash
                        ),
                    });
                }
                Ok(CopyReport {
                    rows,
                    audit_head: head,
                })
            })
        })
    }
}

fn copy_table(src: &Db<'_>, to: &Db<'_>, table: &str, columns: &str, order: &str) -> Result<u64> {
    let n = columns.split(',').count();
    let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        placeholders.join(", ")
    );
    let mut copied = 0u64;
    src.each(
        &format!("SELECT {columns} FROM {table} ORDER BY {order}"),
        [],
        |row| {
            let values = (0..n)
                .map(|i| row.get::<usize, Value>(i))
                .collect::<Result<Vec<Value>>>()?;
            to.exec(&insert, values)?;
            copied += 1;
            Ok(())
        },
    )?;
    Ok(copied)
}
