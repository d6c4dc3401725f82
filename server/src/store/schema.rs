//! Schema migrations.
//!
//! `schema_version` holds one row per applied migration. Each migration runs
//! in its own transaction together with the insertion of its row, so a
//! database is always exactly at one version. A database whose newest
//! version is above [`CURRENT_VERSION`] was written by a newer build and is
//! refused rather than guessed at.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;

use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{Sha256Hex, TrustedKey};

use super::db::Db;
use super::error::{Error, Result};
use super::time_text;

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = 11;

/// One migration: SQL, or code for what SQL cannot do.
enum Migration {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> Result<()>),
}

/// Migration `i` brings the database from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(V1),
    Migration::Sql(V2),
    Migration::Code(v3_revocations_by_key_material),
    Migration::Sql(V4_CI_DELEGATION_STATE),
    Migration::Sql(V5_TOKEN_EXPIRY_AND_USE),
    Migration::Code(v6_audit_filters),
    Migration::Sql(V7_NAMESPACE_REVOCATIONS),
    Migration::Sql(V8_TSAS),
    Migration::Sql(V9_TIMESTAMPS),
    Migration::Sql(V10_LAYOUT_ROOT_KEYS),
    Migration::Sql(V11_SUPERSEDED_BESIDE_THE_FILE),
];

const V1: &str = r#"
CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY,
    scopes      TEXT NOT NULL,              -- JSON array of artifact patterns
    maintainers TEXT NOT NULL,              -- JSON array of strings
    threshold   INTEGER NOT NULL CHECK (threshold >= 1),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE keys (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    key         TEXT NOT NULL,              -- TUF key object, JSON
    not_before  TEXT,
    not_after   TEXT,
    ephemeral   INTEGER NOT NULL CHECK (ephemeral IN (0, 1)),
    description TEXT,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (namespace, key_id)
) STRICT;

CREATE TABLE identities (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    ca_certs    TEXT NOT NULL,              -- JSON array of PEM certificates
    subject     TEXT NOT NULL,
    not_before  TEXT,
    not_after   TEXT,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;

CREATE TABLE sub_delegations (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,              -- JSON array of artifact patterns
    threshold   INTEGER NOT NULL CHECK (threshold >= 1),
    keys        TEXT NOT NULL,              -- JSON array of trusted keys
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;

CREATE TABLE revocations (
    id                 INTEGER PRIMARY KEY,
    key_id             TEXT UNIQUE,
    certificate_sha256 TEXT UNIQUE,
    revoked_at         TEXT NOT NULL,
    reason             TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    CHECK ((key_id IS NULL) <> (certificate_sha256 IS NULL))
) STRICT;

CREATE TABLE peers (
    name        TEXT PRIMARY KEY,
    patterns    TEXT NOT NULL,              -- JSON array of artifact patterns
    url         TEXT NOT NULL,
    root        TEXT NOT NULL,              -- pinned root, JSON
    terminating INTEGER NOT NULL CHECK (terminating IN (0, 1)),
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE org_roots (
    name        TEXT PRIMARY KEY,
    pem         TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,       -- of the certificate's DER
    added_at    TEXT NOT NULL
) STRICT;

-- Only the SHA-256 of a token's secret is stored, never the secret.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('org-admin', 'maintainer', 'ci')),
    secret_sha256 TEXT NOT NULL UNIQUE,
    description   TEXT,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
) STRICT;

CREATE TABLE token_namespaces (
    token_id    TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    namespace   TEXT NOT NULL,
    PRIMARY KEY (token_id, namespace)
) STRICT;
CREATE INDEX token_namespaces_by_namespace ON token_namespaces(namespace);

-- Every published file, every version; rows are never changed or removed.
CREATE TABLE published_files (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL,
    role        TEXT,                       -- metadata only
    version     INTEGER,                    -- metadata only
    bytes       BLOB NOT NULL,
    sha256      TEXT NOT NULL,
    immutable   INTEGER NOT NULL CHECK (immutable IN (0, 1)),
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX published_files_by_path ON published_files(path, id);
CREATE UNIQUE INDEX published_files_immutable_path ON published_files(path) WHERE immutable = 1;
CREATE TRIGGER published_files_no_update BEFORE UPDATE ON published_files
BEGIN SELECT RAISE(ABORT, 'published files are immutable'); END;
CREATE TRIGGER published_files_no_delete BEFORE DELETE ON published_files
BEGIN SELECT RAISE(ABORT, 'published files are immutable'); END;

-- Append-only, hash-chained audit log (see docs/operations/store.md).
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,              -- canonical JSON
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// Version 2: the layout that scales (hashed bins, index shards, bounded
/// storage).
///
/// * `namespaces.bin`: the namespace's hashed bin (NULL for rows written
///   before; such stores hold the old layout, which the publisher refuses).
/// * `namespace_scopes`: one row per granted scope, so a create checks a
///   scope with one index lookup instead of reading every namespace.
/// * `published_files.lineage` (what successive versions of one file share)
///   and `superseded_at` (when a newer version of the lineage was
///   published; NULL while current). Superseded rows may be deleted after
///   the retention period; the triggers keep every root and every current
///   file, and allow no other change than setting `superseded_at`.
const V2: &str = r#"
ALTER TABLE namespaces ADD COLUMN bin INTEGER;
CREATE INDEX namespaces_by_bin ON namespaces(bin);

CREATE TABLE namespace_scopes (
    scope       TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE
) STRICT;
CREATE INDEX namespace_scopes_by_namespace ON namespace_scopes(namespace);
INSERT INTO namespace_scopes (scope, namespace)
    SELECT j.value, n.name FROM namespaces n, json_each(n.scopes) j;

ALTER TABLE published_files ADD COLUMN lineage TEXT;
ALTER TABLE published_files ADD COLUMN superseded_at TEXT;
CREATE INDEX published_files_current ON published_files(lineage) WHERE superseded_at IS NULL;
CREATE INDEX published_files_superseded ON published_files(superseded_at)
    WHERE superseded_at IS NOT NULL;
DROP TRIGGER published_files_no_update;
DROP TRIGGER published_files_no_delete;
CREATE TRIGGER published_files_no_update BEFORE UPDATE ON published_files
WHEN NEW.id IS NOT OLD.id OR NEW.path IS NOT OLD.path OR NEW.role IS NOT OLD.role
  OR NEW.version IS NOT OLD.version OR NEW.bytes IS NOT OLD.bytes
  OR NEW.sha256 IS NOT OLD.sha256 OR NEW.immutable IS NOT OLD.immutable
  OR NEW.created_at IS NOT OLD.created_at OR NEW.lineage IS NOT OLD.lineage
BEGIN SELECT RAISE(ABORT, 'published files are immutable'); END;
CREATE TRIGGER published_files_keep_roots BEFORE DELETE ON published_files
WHEN OLD.role = 'root'
BEGIN SELECT RAISE(ABORT, 'root versions are never deleted'); END;
CREATE TRIGGER published_files_keep_current BEFORE DELETE ON published_files
WHEN OLD.superseded_at IS NULL
BEGIN SELECT RAISE(ABORT, 'current published files are never deleted'); END;
"#;

/// Version 3: revocations name key material, not key ids.
///
/// * `keys.spki_sha256`: the fingerprint of each listed key (SHA-256 of its
///   material, [`Key::fingerprint`]), indexed, so "where is this key
///   listed" and "is this key revoked" are lookups.
/// * `revocations` is rebuilt with `spki_sha256` instead of `key_id`;
///   `namespace` and `key_id` stay as notes for people (where the key was
///   listed when it was revoked), never published or used to decide.
/// * A revocation by key id is resolved to the material that was listed
///   under that id *before* the revocation was recorded: the keys added
///   under that id (the `key.add` audit records before its
///   `revocation.add` record) and the keys and sub-delegation keys listed
///   under it now that were added before. Material listed under the id
///   only later (by someone pointing the revoked id at another key) is not
///   revoked. An id that resolves to nothing revoked nothing; it is kept
///   in `revocations_unresolved` for the record.
const V3_SQL: &str = r#"
ALTER TABLE keys ADD COLUMN spki_sha256 TEXT;
CREATE INDEX keys_by_spki ON keys(spki_sha256);

CREATE TABLE revocations_v3 (
    id                 INTEGER PRIMARY KEY,
    spki_sha256        TEXT UNIQUE,         -- a key, by fingerprint
    certificate_sha256 TEXT UNIQUE,         -- a certificate, by SHA-256 of its DER
    revoked_at         TEXT NOT NULL,
    reason             TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    namespace          TEXT,                -- where the key was listed (a note)
    key_id             TEXT,                -- the id it was listed under (a note)
    CHECK ((spki_sha256 IS NULL) <> (certificate_sha256 IS NULL))
) STRICT;
INSERT INTO revocations_v3 (id, certificate_sha256, revoked_at, reason, recorded_at)
    SELECT id, certificate_sha256, revoked_at, reason, recorded_at
    FROM revocations WHERE certificate_sha256 IS NOT NULL;

CREATE TABLE revocations_unresolved (
    key_id      TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at TEXT NOT NULL
) STRICT;
"#;

fn v3_revocations_by_key_material(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(V3_SQL)?;
    let corrupt = |table: &'static str| move |e: String| Error::corrupt(table, e);
    // Fingerprints of the keys listed now.
    let listed: Vec<(String, String, String)> = {
        let mut stmt = tx.prepare("SELECT namespace, key_id, key FROM keys")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (namespace, key_id, key) in &listed {
        let fp = fingerprint_of_json(key, key_id).map_err(corrupt("keys"))?;
        tx.execute(
            "UPDATE keys SET spki_sha256 = ?1 WHERE namespace = ?2 AND key_id = ?3",
            (fp.as_str(), namespace, key_id),
        )?;
    }
    let old: Vec<(i64, String, String, String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT id, key_id, revoked_at, reason, recorded_at FROM revocations
             WHERE key_id IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, key_id, revoked_at, reason, recorded_at) in old {
        // material -> the namespace it was listed in (a note)
        let mut found: BTreeMap<Sha256Hex, String> = BTreeMap::new();
        // The audit record of this revocation, if any: keys added under the
        // id before it.
        let revoked_seq: Option<i64> = tx
            .query_row(
                "SELECT min(seq) FROM audit_log WHERE action = 'revocation.add' AND subject = ?1",
                [format!("key {key_id}")],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        {
            let mut stmt = tx.prepare(
                "SELECT subject, details FROM audit_log
                 WHERE action = 'key.add' AND (?1 IS NULL OR seq < ?1) AND time <= ?2",
            )?;
            let rows = stmt.query_map((revoked_seq, &recorded_at), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (subject, details) = row?;
                let Some((namespace, listed_id)) = subject.split_once('/') else {
                    continue;
                };
                if listed_id != key_id {
                    continue;
                }
                let key = serde_json::from_str::<Value>(&details)
                    .ok()
                    .and_then(|d| d.get("key").cloned())
                    .and_then(|k| serde_json::from_value::<Key>(k).ok());
                if let Some(fp) = key.and_then(|k| k.fingerprint(&KeyId::new(&key_id)).ok()) {
                    found.entry(fp).or_insert_with(|| namespace.to_owned());
                }
            }
        }
        // Keys listed under the id now that were added before the revocation.
        {
            let mut stmt = tx.prepare(
                "SELECT namespace, spki_sha256 FROM keys WHERE key_id = ?1 AND added_at <= ?2",
            )?;
            let rows = stmt.query_map((&key_id, &recorded_at), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            for row in rows {
                let (namespace, fp) = row?;
                if let Some(fp) = fp.and_then(|f| Sha256Hex::parse(&f).ok()) {
                    found.entry(fp).or_insert(namespace);
                }
            }
        }
        {
            let mut stmt =
                tx.prepare("SELECT namespace, keys FROM sub_delegations WHERE updated_at <= ?1")?;
            let rows = stmt.query_map([&recorded_at], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (namespace, keys) = row?;
                let keys: Vec<TrustedKey> = serde_json::from_str(&keys)
                    .map_err(|e| Error::corrupt("sub_delegations", e.to_string()))?;
                for k in keys.iter().filter(|k| k.id.as_str() == key_id) {
                    if let Ok(fp) = k.key.fingerprint(&k.id) {
                        found.entry(fp).or_insert_with(|| namespace.clone());
                    }
                }
            }
        }
        if found.is_empty() {
            tx.execute(
                "INSERT INTO revocations_unresolved (key_id, revoked_at, reason, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)",
                (&key_id, &revoked_at, &reason, &recorded_at),
            )?;
            continue;
        }
        for (fp, namespace) in found {
            // One material revoked twice: the earlier revocation stands.
            let existing: Option<String> = tx
                .query_row(
                    "SELECT revoked_at FROM revocations_v3 WHERE spki_sha256 = ?1",
                    [fp.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            match existing {
                Some(at) if at <= revoked_at => {}
                Some(_) => {
                    tx.execute(
                        "UPDATE revocations_v3 SET revoked_at = ?1, reason = ?2 WHERE spki_sha256 = ?3",
                        (&revoked_at, &reason, fp.as_str()),
                    )?;
                }
                None => {
                    // Keep the first row's id so the order of revocations stays.
                    let row_id = tx
                        .query_row(
                            "SELECT count(*) FROM revocations_v3 WHERE id = ?1",
                            [id],
                            |r| r.get::<_, i64>(0),
                        )
                        .map(|n| (n == 0).then_some(id))?;
                    tx.execute(
                        "INSERT INTO revocations_v3
                             (id, spki_sha256, revoked_at, reason, recorded_at, namespace, key_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        (
                            row_id,
                            fp.as_str(),
                            &revoked_at,
                            &reason,
                            &recorded_at,
                            &namespace,
                            &key_id,
                        ),
                    )?;
                }
            }
        }
    }
    tx.execute_batch(
        "DROP TABLE revocations;
         ALTER TABLE revocations_v3 RENAME TO revocations;",
    )?;
    Ok(())
}

/// The fingerprint of a key stored as a TUF key object (JSON).
fn fingerprint_of_json(key: &str, key_id: &str) -> std::result::Result<Sha256Hex, String> {
    let key: Key = serde_json::from_str(key).map_err(|e| format!("key: {e}"))?;
    key.fingerprint(&KeyId::new(key_id))
        .map_err(|e| e.to_string())
}

/// Version 4: CI delegations as data.
///
/// * `keys.principal`: who holds the key, an opaque id published in the
///   trust document (`ci:<hex>` for CI keys); NULL for a key without one.
/// * `ci_delegations`: who asked for each CI key, exactly (the OIDC issuer
///   and subject, or the CI token's id), which decides who may end the
///   delegation early. Never published; goes with its key.
/// * `ci_used`: nonces and ID tokens already used for a delegation, by
///   SHA-256, until they expire (`expires_at`, Unix seconds), so neither
///   grants a second delegation, across restarts too. Expired rows are
///   pruned by the expiry sweep.
const V4_CI_DELEGATION_STATE: &str = r#"
ALTER TABLE keys ADD COLUMN principal TEXT;

CREATE TABLE ci_delegations (
    namespace   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issuer      TEXT,                       -- OIDC: `iss` and `sub`, exactly
    subject     TEXT,
    token_id    TEXT,                       -- CI token: its id
    PRIMARY KEY (namespace, key_id),
    FOREIGN KEY (namespace, key_id) REFERENCES keys(namespace, key_id) ON DELETE CASCADE,
    CHECK ((issuer IS NULL) = (subject IS NULL)),
    CHECK ((issuer IS NULL) <> (token_id IS NULL))
) STRICT;

CREATE TABLE ci_used (
    kind        TEXT NOT NULL CHECK (kind IN ('nonce', 'token')),
    digest      TEXT NOT NULL,              -- SHA-256 hex
    expires_at  INTEGER NOT NULL,           -- Unix seconds
    PRIMARY KEY (kind, digest)
) STRICT, WITHOUT ROWID;
CREATE INDEX ci_used_by_expiry ON ci_used(expires_at);
"#;

/// Version 5: token expiry and last use.
///
/// * `tokens.expires_at`: from then on the token is refused like a revoked
///   one; NULL for a token that does not expire (every token made before).
/// * `tokens.last_used_at`: when the token was last accepted, written at
///   most once a minute per token (`LAST_USED_RESOLUTION`); NULL if never.
const V5_TOKEN_EXPIRY_AND_USE: &str = r#"
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
"#;

/// Version 6: indexes for filtered audit listings
/// (`GET /api/v1/audit?action=&actor=&since=&namespace=`).
///
/// * indexes on `audit_log` by action, actor and time (each with `seq`, the
///   order of a listing);
/// * `audit_namespaces`: which namespaces each record is about
///   (`audit::namespaces_of`), filled for the records already written and
///   on every append. It is an index beside the hash chain, not part of it.
const V6_SQL: &str = r#"
CREATE INDEX audit_log_by_action ON audit_log(action, seq);
CREATE INDEX audit_log_by_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_by_time ON audit_log(time);
CREATE TABLE audit_namespaces (
    namespace   TEXT NOT NULL,
    seq         INTEGER NOT NULL,               -- audit_log.seq (no foreign key: an index, not part of the chain)
    PRIMARY KEY (namespace, seq)
) STRICT, WITHOUT ROWID;
"#;

fn v6_audit_filters(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(V6_SQL)?;
    let mut stmt =
        tx.prepare("SELECT seq, action, subject, details FROM audit_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (seq, action, subject, details): (i64, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        // A record whose details do not parse is still indexed by subject;
        // `audit verify` reports it.
        let details = serde_json::from_str(&details).unwrap_or(Value::Null);
        super::audit::index_namespaces(&Db::Sqlite(tx), seq, &action, &subject, &details)?;
    }
    Ok(())
}

/// Version 7: keys a namespace revoked itself.
///
/// * `namespace_revocations`: one row per key (by fingerprint) a namespace
///   revoked, published in the namespace's own trust document (format
///   `keyshare.trust/v2`) and applied to that namespace's artifacts only.
///   `key_id` is a note for people (the id the key was listed under). Goes
///   with its namespace.
const V7_NAMESPACE_REVOCATIONS: &str = r#"
CREATE TABLE namespace_revocations (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    spki_sha256 TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    key_id      TEXT,                       -- the id it was listed under (a note)
    PRIMARY KEY (namespace, spki_sha256)
) STRICT;
"#;

/// Version 8: the timestamp authorities the organization trusts, published
///   as `org/tsas.json` (trust anchors: a TSA's CA or its own certificate,
///   PEM; `sha256` of the DER, unique).
const V8_TSAS: &str = r#"
CREATE TABLE tsas (
    name        TEXT PRIMARY KEY,
    pem         TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    description TEXT,
    added_at    TEXT NOT NULL
) STRICT;
"#;

/// Version 9: the RFC 3161 timestamp tokens the server issued
/// (`POST /api/v1/timestamp`, docs/tsa.md), one row per token, for audit:
///
/// * `serial`: the token's serial number, lowercase hex of its unsigned
///   value (128 random bits); unique, so a serial is never issued twice;
/// * `gen_time`: the token's genTime (RFC 3339, whole seconds, UTC), from
///   the server's clock;
/// * `hash_alg`, `hash`: the message imprint (`sha256`, `sha384` or
///   `sha512`; lowercase hex), what was timestamped;
/// * `policy`: the TSA policy OID of the token (dotted);
/// * `tsa_cert`: SHA-256 (hex) of the TSA certificate that signed it.
///
/// The request itself (nonce, extensions) is not kept.
const V9_TIMESTAMPS: &str = r#"
CREATE TABLE timestamps (
    serial      TEXT PRIMARY KEY,
    gen_time    TEXT NOT NULL,
    hash_alg    TEXT NOT NULL,
    hash        TEXT NOT NULL,
    policy      TEXT NOT NULL,
    tsa_cert    TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX timestamps_by_time ON timestamps(gen_time);
"#;

/// Version 10: `keys.layout_root`, whether the namespace also trusts the
///   key to sign in-toto layouts (published as `layout_root: true` in a
///   `keyshare.trust/v3` document); 0 for every key listed before.
const V10_LAYOUT_ROOT_KEYS: &str = r#"
ALTER TABLE keys ADD COLUMN layout_root INTEGER NOT NULL DEFAULT 0 CHECK (layout_root IN (0, 1));
"#;

/// Version 11: which published file is current, and when the others were
/// superseded, kept beside the files instead of in their rows.
///
/// Marking a file superseded used to set `published_files.superseded_at`,
/// which made SQLite write the whole row again, the file's bytes included:
/// every publish wrote the previous version of each file it replaced a
/// second time. Now:
///
/// * `published_current`: the current row of each lineage (one per
///   lineage: what `superseded_at IS NULL` was).
/// * `published_superseded`: when each superseded row was superseded (what
///   `superseded_at` was), removed with its file (`ON DELETE CASCADE`).
/// * `published_files` loses `superseded_at` and takes no `UPDATE` at all;
///   a file that is not superseded (every current file, and rows from
///   before lineages existed) still cannot be deleted, nor can a root.
///
/// Rows that were current although a newer row of their lineage was too
/// (which no build wrote) are superseded now.
const V11_SUPERSEDED_BESIDE_THE_FILE: &str = r#"
CREATE TABLE published_current (
    lineage     TEXT PRIMARY KEY,
    id          INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE published_superseded (
    id             INTEGER PRIMARY KEY REFERENCES published_files(id) ON DELETE CASCADE,
    superseded_at  TEXT NOT NULL
) STRICT;
CREATE INDEX published_superseded_by_time ON published_superseded(superseded_at);

INSERT INTO published_current (lineage, id)
    SELECT lineage, max(id) FROM published_files
    WHERE lineage IS NOT NULL AND superseded_at IS NULL GROUP BY lineage;
INSERT INTO published_superseded (id, superseded_at)
    SELECT id, superseded_at FROM published_files WHERE superseded_at IS NOT NULL;
INSERT INTO published_superseded (id, superseded_at)
    SELECT f.id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM published_files f
    WHERE f.lineage IS NOT NULL AND f.superseded_at IS NULL
      AND f.id <> (SELECT c.id FROM published_current c WHERE c.lineage = f.lineage);

DROP TRIGGER published_files_no_update;
DROP TRIGGER published_files_keep_current;
DROP INDEX published_files_current;
DROP INDEX published_files_superseded;
ALTER TABLE published_files DROP COLUMN superseded_at;
CREATE TRIGGER published_files_no_update BEFORE UPDATE ON published_files
BEGIN SELECT RAISE(ABORT, 'published files are immutable'); END;
CREATE TRIGGER published_files_keep_current BEFORE DELETE ON published_files
WHEN NOT EXISTS (SELECT 1 FROM published_superseded s WHERE s.id = OLD.id)
BEGIN SELECT RAISE(ABORT, 'current published files are never deleted'); END;
"#;

/// Brings the database to [`CURRENT_VERSION`], refusing a newer one.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         ) STRICT;",
    )?;
    loop {
        // IMMEDIATE: two processes opening a fresh database at once must not
        // both apply the same migration; the second waits, then sees it done.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = current(&Db::Sqlite(&tx))?;
        if version > CURRENT_VERSION {
            return Err(Error::SchemaTooNew {
                found: version,
                supported: CURRENT_VERSION,
            });
        }
        let Some(migration) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return if version == CURRENT_VERSION {
                Ok(())
            } else {
                Err(Error::Schema {
                    message: format!("recorded schema version {version} is not valid"),
                })
            };
        };
        match migration {
            Migration::Sql(sql) => tx.execute_batch(sql)?,
            Migration::Code(run) => run(&tx)?,
        }
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            (version + 1, time_text(super::now())),
        )?;
        tx.commit()?;
    }
}

/// The newest applied version, 0 for an empty database.
pub(crate) fn current(conn: &Db<'_>) -> Result<i64> {
    let v: Option<i64> = conn
        .row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?
        .flatten();
    Ok(v.unwrap_or(0))
}

/// The schema at [`CURRENT_VERSION`] in PostgreSQL's dialect: the tables,
/// constraints, indexes and triggers SQLite reaches through migrations 1 to
/// 11, made at once. The differences, all here:
///
/// * `INTEGER` is `BIGINT` (SQLite's integers are 64-bit); `BLOB` is
///   `BYTEA`; there is no `STRICT` (PostgreSQL's columns are typed) and no
///   `WITHOUT ROWID`.
/// * Every `TEXT` column compares and sorts by code point (`COLLATE "C"`),
///   as SQLite's do: scope lookups are ranges over that order.
/// * SQLite's `INTEGER PRIMARY KEY` row ids that the store lets the
///   database choose (`revocations.id`, `published_files.id`) are identity
///   columns; `audit_log.seq` is chosen by the store, as in SQLite.
///   `tokens.rowid` stands for SQLite's implicit row id (tokens are listed
///   in creation order).
/// * Triggers are PL/pgSQL functions raising the same messages.
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY,
    scopes      TEXT NOT NULL,
    maintainers TEXT NOT NULL,
    threshold   BIGINT NOT NULL CHECK (threshold >= 1),
    created_at  TEXT NOT NULL,
    bin         BIGINT
);
CREATE INDEX namespaces_by_bin ON namespaces(bin);

CREATE TABLE namespace_scopes (
    scope       TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE
);
CREATE INDEX namespace_scopes_by_namespace ON namespace_scopes(namespace);

CREATE TABLE keys (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    not_before  TEXT,
    not_after   TEXT,
    ephemeral   BIGINT NOT NULL CHECK (ephemeral IN (0, 1)),
    description TEXT,
    added_at    TEXT NOT NULL,
    spki_sha256 TEXT,
    principal   TEXT,
    layout_root BIGINT NOT NULL DEFAULT 0 CHECK (layout_root IN (0, 1)),
    PRIMARY KEY (namespace, key_id)
);
CREATE INDEX keys_by_spki ON keys(spki_sha256);

CREATE TABLE ci_delegations (
    namespace   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    issuer      TEXT,
    subject     TEXT,
    token_id    TEXT,
    PRIMARY KEY (namespace, key_id),
    FOREIGN KEY (namespace, key_id) REFERENCES keys(namespace, key_id) ON DELETE CASCADE,
    CHECK ((issuer IS NULL) = (subject IS NULL)),
    CHECK ((issuer IS NULL) <> (token_id IS NULL))
);

CREATE TABLE ci_used (
    kind        TEXT NOT NULL CHECK (kind IN ('nonce', 'token')),
    digest      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, digest)
);
CREATE INDEX ci_used_by_expiry ON ci_used(expires_at);

CREATE TABLE identities (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    ca_certs    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    not_before  TEXT,
    not_after   TEXT,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE sub_delegations (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    threshold   BIGINT NOT NULL CHECK (threshold >= 1),
    keys        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE revocations (
    id                 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    spki_sha256        TEXT UNIQUE,
    certificate_sha256 TEXT UNIQUE,
    revoked_at         TEXT NOT NULL,
    reason             TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    namespace          TEXT,
    key_id             TEXT,
    CHECK ((spki_sha256 IS NULL) <> (certificate_sha256 IS NULL))
);

CREATE TABLE revocations_unresolved (
    key_id      TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

CREATE TABLE namespace_revocations (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    spki_sha256 TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    key_id      TEXT,
    PRIMARY KEY (namespace, spki_sha256)
);

CREATE TABLE peers (
    name        TEXT PRIMARY KEY,
    patterns    TEXT NOT NULL,
    url         TEXT NOT NULL,
    root        TEXT NOT NULL,
    terminating BIGINT NOT NULL CHECK (terminating IN (0, 1)),
    updated_at  TEXT NOT NULL
);

CREATE TABLE org_roots (
    name        TEXT PRIMARY KEY,
    pem         TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    added_at    TEXT NOT NULL
);

CREATE TABLE tsas (
    name        TEXT PRIMARY KEY,
    pem         TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    description TEXT,
    added_at    TEXT NOT NULL
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('org-admin', 'maintainer', 'ci')),
    secret_sha256 TEXT NOT NULL UNIQUE,
    description   TEXT,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    expires_at    TEXT,
    last_used_at  TEXT,
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);

CREATE TABLE token_namespaces (
    token_id    TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    namespace   TEXT NOT NULL,
    PRIMARY KEY (token_id, namespace)
);
CREATE INDEX token_namespaces_by_namespace ON token_namespaces(namespace);

CREATE TABLE timestamps (
    serial      TEXT PRIMARY KEY,
    gen_time    TEXT NOT NULL,
    hash_alg    TEXT NOT NULL,
    hash        TEXT NOT NULL,
    policy      TEXT NOT NULL,
    tsa_cert    TEXT NOT NULL
);
CREATE INDEX timestamps_by_time ON timestamps(gen_time);

CREATE TABLE published_files (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    path        TEXT NOT NULL,
    role        TEXT,
    version     BIGINT,
    bytes       BYTEA NOT NULL,
    sha256      TEXT NOT NULL,
    immutable   BIGINT NOT NULL CHECK (immutable IN (0, 1)),
    created_at  TEXT NOT NULL,
    lineage     TEXT
);
CREATE INDEX published_files_by_path ON published_files(path, id);
CREATE UNIQUE INDEX published_files_immutable_path ON published_files(path) WHERE immutable = 1;

CREATE TABLE published_current (
    lineage     TEXT PRIMARY KEY,
    id          BIGINT NOT NULL
);
CREATE TABLE published_superseded (
    id             BIGINT PRIMARY KEY REFERENCES published_files(id) ON DELETE CASCADE,
    superseded_at  TEXT NOT NULL
);
CREATE INDEX published_superseded_by_time ON published_superseded(superseded_at);

CREATE FUNCTION keyshare_published_files_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'published files are immutable'; END $$;
CREATE TRIGGER published_files_no_update BEFORE UPDATE ON published_files
FOR EACH ROW EXECUTE FUNCTION keyshare_published_files_no_update();
CREATE FUNCTION keyshare_published_files_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'root' THEN
        RAISE EXCEPTION 'root versions are never deleted';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM published_superseded s WHERE s.id = OLD.id) THEN
        RAISE EXCEPTION 'current published files are never deleted';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER published_files_keep BEFORE DELETE ON published_files
FOR EACH ROW EXECUTE FUNCTION keyshare_published_files_keep();
CREATE TRIGGER published_files_no_truncate BEFORE TRUNCATE ON published_files
FOR EACH STATEMENT EXECUTE FUNCTION keyshare_published_files_no_update();

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    time        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_by_action ON audit_log(action, seq);
CREATE INDEX audit_log_by_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_by_time ON audit_log(time);
CREATE FUNCTION keyshare_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION keyshare_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION keyshare_audit_log_append_only();

CREATE TABLE audit_namespaces (
    namespace   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (namespace, seq)
);
"#;

/// Drops every object [`create_postgres`] made (its tables, with their
/// rows, indexes and triggers, and its functions), leaving the database as
/// it was before: for an `init` that failed after creating it.
pub(crate) fn drop_postgres(db: &Db<'_>) -> Result<()> {
    let named = |what: &str| -> Vec<&str> {
        POSTGRES_SCHEMA
            .lines()
            .filter_map(|l| l.strip_prefix(what))
            .filter_map(|rest| rest.split([' ', '(']).next())
            .collect()
    };
    let mut tables = named("CREATE TABLE ");
    tables.push("schema_version");
    db.batch(&format!(
        "DROP TABLE IF EXISTS {} CASCADE; DROP FUNCTION IF EXISTS {} CASCADE",
        tables.join(", "),
        named("CREATE FUNCTION ").join(", ")
    ))
}

/// Creates the schema in an empty PostgreSQL database, directly at
/// [`CURRENT_VERSION`] (one `schema_version` row), or checks the version of
/// one that has it: a newer one is refused ([`Error::SchemaTooNew`]), as
/// SQLite's is. Runs under the write lock, so two servers starting on one
/// empty database do not both create it.
pub(crate) fn create_postgres(conn: &std::cell::RefCell<super::db::PgConn>) -> Result<()> {
    let db = Db::Postgres(conn);
    // A database at the current version is not changed: no need to wait
    // for the lock (and for another server's publish) to see that.
    let made: bool = db.one(
        "SELECT to_regclass('schema_version') IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    if made && current(&db)? == CURRENT_VERSION {
        return Ok(());
    }
    let tx = super::pg::PgTx::begin_write(conn)?;
    db.batch(
        r#"CREATE TABLE IF NOT EXISTS schema_version (
               version    BIGINT PRIMARY KEY,
               applied_at TEXT COLLATE "C" NOT NULL
           )"#,
    )?;
    let version = current(&db)?;
    if version > CURRENT_VERSION {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    if version == 0 {
        db.batch(&POSTGRES_SCHEMA.replace(" TEXT", " TEXT COLLATE \"C\""))?;
        db.exec(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            (CURRENT_VERSION, time_text(super::now())),
        )?;
    } else if version < CURRENT_VERSION {
        // Every PostgreSQL store so far was made at the current version;
        // migrations start with the first schema change after it.
        return Err(Error::Schema {
            message: format!(
                "recorded schema version {version} is older than version {CURRENT_VERSION}, \
                 and no PostgreSQL store was ever made at it"
            ),
        });
    }
    tx.commit()
}
