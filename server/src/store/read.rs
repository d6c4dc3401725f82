//! Queries, over any connection (a read transaction of [`super::Store`] or
//! a write transaction of [`super::Tx`]).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use serde::de::DeserializeOwned;

use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{
    CaCert, NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, Peer, PeerUrl, Peers,
    PinnedRoot, Principal, Revocation, Revocations, RevocationsFormat, RevokedSubject, Sha256Hex,
    SubDelegation, SubjectName, TrustFormat, TrustedKey, X509Identity, NAMESPACES_PATH, PEERS_PATH,
    REVOCATIONS_PATH,
};
use keyshare_policy::trust::{
    NamespacesFormat, PeersFormat, TrustedTsa, Tsas, TsasFormat, TSAS_PATH,
};

use super::db::{tuple_row, Db, Params, Row};
use super::error::{Error, Result};
use super::records::{
    AuditHead, AuditRecord, CiOwner, IdentityRecord, KeyRecord, LastPublished, Listing,
    NamespaceRecord, NamespaceRevocationRecord, OrgRoot, PeerRecord, PublishedFile,
    RevocationRecord, ScopeOverlap, ScopeOverlaps, SubDelegationRecord, TimestampRecord, Token,
    TokenKind, TokenState, TsaRecord,
};
use super::{audit, parse_time};

/// Parses a JSON column.
pub(crate) fn json<T: DeserializeOwned>(table: &'static str, column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::corrupt(table, format!("{column}: {e}")))
}

fn opt_time(table: &'static str, s: Option<String>) -> Result<Option<time::OffsetDateTime>> {
    s.map(|s| parse_time(table, &s)).transpose()
}

fn threshold(table: &'static str, n: i64) -> Result<NonZeroU32> {
    u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| Error::corrupt(table, format!("threshold {n}")))
}

fn namespace_name(table: &'static str, s: &str) -> Result<NamespaceName> {
    NamespaceName::parse(s).map_err(|e| Error::corrupt(table, e))
}

/// Collects rows through a fallible conversion.
fn collect<R, T>(
    conn: &Db<'_>,
    sql: &str,
    params: impl Params,
    mut raw: impl FnMut(&Row<'_>) -> Result<R>,
    convert: impl Fn(R) -> Result<T>,
) -> Result<Vec<T>> {
    conn.rows(sql, params, |r| convert(raw(r)?))
}

// ---- namespaces ----

type NamespaceRow = (String, String, String, i64, String);

const NAMESPACE_COLUMNS: &str =
    "SELECT name, scopes, maintainers, threshold, created_at FROM namespaces";

fn namespace_record(
    (name, scopes, maintainers, t, created): NamespaceRow,
) -> Result<NamespaceRecord> {
    const T: &str = "namespaces";
    Ok(NamespaceRecord {
        entry: NamespaceEntry {
            name: namespace_name(T, &name)?,
            scopes: json(T, "scopes", &scopes)?,
            maintainers: json(T, "maintainers", &maintainers)?,
        },
        threshold: threshold(T, t)?,
        created_at: parse_time(T, &created)?,
    })
}

pub(crate) fn namespaces(conn: &Db<'_>) -> Result<Vec<NamespaceRecord>> {
    collect(
        conn,
        &format!("{NAMESPACE_COLUMNS} ORDER BY name"),
        [],
        tuple_row,
        namespace_record,
    )
}

pub(crate) fn namespace(conn: &Db<'_>, name: &str) -> Result<NamespaceRecord> {
    let row = conn
        .row(
            &format!("{NAMESPACE_COLUMNS} WHERE name = ?1"),
            [name],
            tuple_row,
        )?
        .ok_or_else(|| Error::not_found("namespace", name))?;
    namespace_record(row)
}

/// Fails with `NotFound` unless namespace `name` exists.
pub(crate) fn require_namespace(conn: &Db<'_>, name: &str) -> Result<()> {
    let found: Option<i64> = conn.row("SELECT 1 FROM namespaces WHERE name = ?1", [name], |r| {
        r.get(0)
    })?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::not_found("namespace", name))
}

// ---- scope overlaps ----

/// The scopes of other namespaces that the scopes of `entry` overlap,
/// leaving out the scopes in `already` (those the namespace has now:
/// only a new scope can take names from another namespace).
///
/// Two scopes can overlap only if the literal text before the first
/// wildcard of one starts with that of the other, so the candidates
/// are found with index range lookups on `namespace_scopes` (one range
/// per character of the new scope's literal prefix, and one for the
/// scopes under it), not a scan; only a scope starting with a wildcard
/// (`**/x`, `*.example/**`) must be compared with every other. Each
/// candidate is then compared exactly
/// (`ArtifactPattern::common_match`).
pub(crate) fn scope_overlaps(
    conn: &Db<'_>,
    entry: &NamespaceEntry,
    already: &[ArtifactPattern],
) -> Result<ScopeOverlaps> {
    let mut found = OverlapCollector::default();
    let name = entry.name.as_str();
    for scope in entry.scopes.iter().filter(|s| !already.contains(s)) {
        let prefix = scope.literal_prefix();
        let mut compare = |other_scope: String, other_ns: String| -> Result<()> {
            let other = ArtifactPattern::parse(&other_scope)
                .map_err(|e| Error::corrupt("namespace_scopes", e))?;
            if let Some(overlap) = scope.common_match(&other) {
                let winner = if scope.outranks(name, &other, &other_ns) {
                    name.to_owned()
                } else {
                    other_ns.clone()
                };
                found.add(ScopeOverlap {
                    scope: scope.to_string(),
                    namespace: other_ns,
                    other_scope,
                    example: overlap.example().map(str::to_owned),
                    winner,
                });
            }
            Ok(())
        };
        // Scopes whose literal prefix starts with this one's.
        {
            conn.each(
                "SELECT scope, namespace FROM namespace_scopes
                 WHERE scope >= ?1 AND (?2 IS NULL OR scope < ?2) AND namespace <> ?3",
                (prefix, successor(prefix), name),
                |row| compare(row.get(0)?, row.get(1)?),
            )?;
        }
        // Scopes whose literal prefix is a shorter prefix of this one's:
        // that prefix alone, or followed by a wildcard.
        const SHORTER: &str =
            "SELECT scope, namespace FROM namespace_scopes WHERE scope = ?1 AND namespace <> ?2
             UNION ALL
             SELECT scope, namespace FROM namespace_scopes
              WHERE scope >= ?1 || '*' AND scope < ?1 || '+' AND namespace <> ?2
             UNION ALL
             SELECT scope, namespace FROM namespace_scopes
              WHERE scope >= ?1 || '?' AND scope < ?1 || '@' AND namespace <> ?2
             UNION ALL
             SELECT scope, namespace FROM namespace_scopes
              WHERE scope >= ?1 || '[' AND scope < ?1 || '\\' AND namespace <> ?2";
        for (end, _) in prefix.char_indices() {
            let shorter = prefix.get(..end).unwrap_or_default();
            conn.each(SHORTER, (shorter, name), |row| {
                compare(row.get(0)?, row.get(1)?)
            })?;
        }
    }
    Ok(found.finish())
}

/// Gathers overlapping pairs into a bounded [`ScopeOverlaps`].
#[derive(Default)]
struct OverlapCollector {
    namespaces: BTreeSet<String>,
    pairs: usize,
    sample: Vec<ScopeOverlap>,
}

impl OverlapCollector {
    fn add(&mut self, pair: ScopeOverlap) {
        self.pairs += 1;
        let new_namespace = self.namespaces.insert(pair.namespace.clone());
        if new_namespace && self.sample.len() < ScopeOverlaps::SAMPLE {
            self.sample.push(pair);
        }
    }

    fn finish(self) -> ScopeOverlaps {
        ScopeOverlaps {
            namespace_count: self.namespaces.len(),
            namespaces: self
                .namespaces
                .into_iter()
                .take(ScopeOverlaps::NAMES)
                .collect(),
            pair_count: self.pairs,
            sample: self.sample,
        }
    }
}

/// The least string greater than every string that starts with `prefix`
/// (in SQLite's binary order, which is code point order): `prefix` with its
/// last character incremented. `None` when there is none (an empty prefix).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

// ---- keys ----

type KeyRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    String,
    Option<String>,
    bool,
);

const KEY_COLUMNS: &str = "SELECT namespace, key_id, key, not_before, not_after, ephemeral, description, added_at, principal, layout_root FROM keys";

fn key_record(
    (ns, id, key, not_before, not_after, ephemeral, description, added, principal, layout_root): KeyRow,
) -> Result<KeyRecord> {
    const T: &str = "keys";
    Ok(KeyRecord {
        namespace: namespace_name(T, &ns)?,
        key: TrustedKey {
            id: KeyId::new(id),
            key: json::<Key>(T, "key", &key)?,
            not_before: opt_time(T, not_before)?,
            not_after: opt_time(T, not_after)?,
            ephemeral,
            description,
            principal: principal
                .map(|p| Principal::parse(&p).map_err(|e| Error::corrupt(T, e)))
                .transpose()?,
            layout_root,
        },
        added_at: parse_time(T, &added)?,
    })
}

pub(crate) fn keys(conn: &Db<'_>, namespace: &str) -> Result<Vec<KeyRecord>> {
    require_namespace(conn, namespace)?;
    collect(
        conn,
        &format!("{KEY_COLUMNS} WHERE namespace = ?1 ORDER BY key_id"),
        [namespace],
        tuple_row,
        key_record,
    )
}

pub(crate) fn key(conn: &Db<'_>, namespace: &str, key_id: &str) -> Result<KeyRecord> {
    require_namespace(conn, namespace)?;
    let row = conn
        .row(
            &format!("{KEY_COLUMNS} WHERE namespace = ?1 AND key_id = ?2"),
            [namespace, key_id],
            tuple_row,
        )?
        .ok_or_else(|| Error::not_found("key", format!("{namespace}/{key_id}")))?;
    key_record(row)
}

pub(crate) fn ci_owner(conn: &Db<'_>, namespace: &str, key_id: &str) -> Result<Option<CiOwner>> {
    const T: &str = "ci_delegations";
    let row: Option<(Option<String>, Option<String>, Option<String>)> = conn.row(
        "SELECT issuer, subject, token_id FROM ci_delegations
             WHERE namespace = ?1 AND key_id = ?2",
        [namespace, key_id],
        tuple_row,
    )?;
    row.map(|row| match row {
        (Some(issuer), Some(subject), None) => Ok(CiOwner::Oidc { issuer, subject }),
        (None, None, Some(id)) => Ok(CiOwner::Token { id }),
        _ => Err(Error::corrupt(
            T,
            format!("delegation {namespace}/{key_id} has no single owner"),
        )),
    })
    .transpose()
}

pub(crate) fn expired_ephemeral_keys(
    conn: &Db<'_>,
    at: time::OffsetDateTime,
) -> Result<Vec<(String, String)>> {
    let rows = collect(
        conn,
        "SELECT namespace, key_id, not_after FROM keys WHERE ephemeral = 1
         ORDER BY namespace, key_id",
        [],
        tuple_row,
        // A row whose time does not parse is not due: it belongs to a
        // namespace whose document cannot be built, and must not stop the
        // sweep of the others.
        |(ns, id, not_after): (String, String, Option<String>)| {
            Ok((ns, id, opt_time("keys", not_after).ok().flatten()))
        },
    )?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, not_after)| not_after.is_some_and(|t| t <= at))
        .map(|(ns, id, _)| (ns, id))
        .collect())
}

// ---- identities ----

type IdentityRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

fn identity_record(
    (ns, name, ca_certs, subject, not_before, not_after, added): IdentityRow,
) -> Result<IdentityRecord> {
    const T: &str = "identities";
    let pems: Vec<String> = json(T, "ca_certs", &ca_certs)?;
    let ca_certs = pems
        .iter()
        .map(|p| CaCert::parse(p).map_err(|e| Error::corrupt(T, format!("ca_certs: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(IdentityRecord {
        namespace: namespace_name(T, &ns)?,
        identity: X509Identity {
            name,
            ca_certs,
            subject: SubjectName::parse(&subject)
                .map_err(|e| Error::corrupt(T, format!("subject: {e}")))?,
            not_before: opt_time(T, not_before)?,
            not_after: opt_time(T, not_after)?,
        },
        added_at: parse_time(T, &added)?,
    })
}

pub(crate) fn identities(conn: &Db<'_>, namespace: &str) -> Result<Vec<IdentityRecord>> {
    require_namespace(conn, namespace)?;
    collect(
        conn,
        "SELECT namespace, name, ca_certs, subject, not_before, not_after, added_at
         FROM identities WHERE namespace = ?1 ORDER BY name",
        [namespace],
        tuple_row,
        identity_record,
    )
}

// ---- sub-delegations ----

pub(crate) fn sub_delegations(conn: &Db<'_>, namespace: &str) -> Result<Vec<SubDelegationRecord>> {
    const T: &str = "sub_delegations";
    require_namespace(conn, namespace)?;
    collect(
        conn,
        "SELECT namespace, name, scopes, threshold, keys, updated_at
         FROM sub_delegations WHERE namespace = ?1 ORDER BY name",
        [namespace],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        },
        |(ns, name, scopes, t, keys, updated)| {
            Ok(SubDelegationRecord {
                namespace: namespace_name(T, &ns)?,
                sub_delegation: SubDelegation {
                    name,
                    scopes: json(T, "scopes", &scopes)?,
                    threshold: threshold(T, t)?,
                    keys: json(T, "keys", &keys)?,
                },
                updated_at: parse_time(T, &updated)?,
            })
        },
    )
}

// ---- revocations ----

type RevocationRow = (
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

const REVOCATION_COLUMNS: &str = "SELECT spki_sha256, certificate_sha256, revoked_at, reason, \
     recorded_at, namespace, key_id FROM revocations";

fn revocation_record(
    (spki, cert, revoked_at, reason, recorded, namespace, key_id): RevocationRow,
) -> Result<RevocationRecord> {
    const T: &str = "revocations";
    let hash = |h: String| Sha256Hex::parse(&h).map_err(|e| Error::corrupt(T, e));
    let subject = match (spki, cert) {
        (Some(h), None) => RevokedSubject::Key(hash(h)?),
        (None, Some(h)) => RevokedSubject::Certificate(hash(h)?),
        _ => {
            return Err(Error::corrupt(
                T,
                "neither or both of spki_sha256 and certificate_sha256",
            ))
        }
    };
    Ok(RevocationRecord {
        revocation: Revocation {
            subject,
            revoked_at: parse_time(T, &revoked_at)?,
            reason,
        },
        recorded_at: parse_time(T, &recorded)?,
        listed_as: match (namespace, key_id) {
            (Some(namespace), Some(key_id)) => Some(Listing {
                namespace,
                sub_delegation: None,
                key_id,
            }),
            _ => None,
        },
    })
}

pub(crate) fn revocations(conn: &Db<'_>) -> Result<Vec<RevocationRecord>> {
    collect(
        conn,
        &format!("{REVOCATION_COLUMNS} ORDER BY id"),
        [],
        tuple_row,
        revocation_record,
    )
}

pub(crate) fn revocation(
    conn: &Db<'_>,
    subject: &RevokedSubject,
) -> Result<Option<RevocationRecord>> {
    let (column, hash) = match subject {
        RevokedSubject::Key(h) => ("spki_sha256", h),
        RevokedSubject::Certificate(h) => ("certificate_sha256", h),
    };
    let mut found = collect(
        conn,
        &format!("{REVOCATION_COLUMNS} WHERE {column} = ?1"),
        [hash.as_str()],
        tuple_row,
        revocation_record,
    )?;
    Ok(found.pop())
}

// ---- namespace revocations ----

const NAMESPACE_REVOCATION_COLUMNS: &str = "SELECT namespace, spki_sha256, revoked_at, reason, \
     recorded_at, key_id FROM namespace_revocations";

type NamespaceRevocationRow = (String, String, String, String, String, Option<String>);

fn namespace_revocation_record(
    (ns, spki, revoked_at, reason, recorded, key_id): NamespaceRevocationRow,
) -> Result<NamespaceRevocationRecord> {
    const T: &str = "namespace_revocations";
    Ok(NamespaceRevocationRecord {
        namespace: namespace_name(T, &ns)?,
        revocation: Revocation {
            subject: RevokedSubject::Key(
                Sha256Hex::parse(&spki).map_err(|e| Error::corrupt(T, e))?,
            ),
            revoked_at: parse_time(T, &revoked_at)?,
            reason,
        },
        recorded_at: parse_time(T, &recorded)?,
        key_id,
    })
}

pub(crate) fn namespace_revocations(
    conn: &Db<'_>,
    namespace: &str,
) -> Result<Vec<NamespaceRevocationRecord>> {
    require_namespace(conn, namespace)?;
    collect(
        conn,
        &format!(
            "{NAMESPACE_REVOCATION_COLUMNS} WHERE namespace = ?1 ORDER BY recorded_at, spki_sha256"
        ),
        [namespace],
        tuple_row,
        namespace_revocation_record,
    )
}

pub(crate) fn namespace_revocation(
    conn: &Db<'_>,
    namespace: &str,
    fingerprint: &Sha256Hex,
) -> Result<Option<NamespaceRevocationRecord>> {
    let mut found = collect(
        conn,
        &format!("{NAMESPACE_REVOCATION_COLUMNS} WHERE namespace = ?1 AND spki_sha256 = ?2"),
        [namespace, fingerprint.as_str()],
        tuple_row,
        namespace_revocation_record,
    )?;
    Ok(found.pop())
}

pub(crate) fn timestamp_record(conn: &Db<'_>, serial: &str) -> Result<Option<TimestampRecord>> {
    const T: &str = "timestamps";
    let row: Option<(String, String, String, String, String, String)> = conn
        .row(
            "SELECT serial, gen_time, hash_alg, hash, policy, tsa_cert FROM timestamps WHERE serial = ?1",
            [serial],
            tuple_row,
        )?;
    row.map(|(serial, gen_time, hash_alg, hash, policy, tsa_cert)| {
        Ok(TimestampRecord {
            serial,
            gen_time: parse_time(T, &gen_time)?,
            hash_alg,
            hash,
            policy,
            tsa_cert,
        })
    })
    .transpose()
}

pub(crate) fn timestamp_count(conn: &Db<'_>) -> Result<u64> {
    let n: i64 = conn.one("SELECT count(*) FROM timestamps", [], |r| r.get(0))?;
    u64::try_from(n).map_err(|_| Error::corrupt("timestamps", format!("count {n}")))
}

pub(crate) fn ephemeral_namespaces(
    conn: &Db<'_>,
    fingerprint: &Sha256Hex,
    limit: u32,
) -> Result<Vec<String>> {
    collect(
        conn,
        "SELECT namespace FROM keys WHERE spki_sha256 = ?1 AND ephemeral = 1
         ORDER BY namespace LIMIT ?2",
        (fingerprint.as_str(), limit),
        |r| r.get(0),
        Ok,
    )
}

pub(crate) fn listings(conn: &Db<'_>, fingerprint: &Sha256Hex) -> Result<Vec<Listing>> {
    let mut out = collect(
        conn,
        "SELECT namespace, key_id FROM keys WHERE spki_sha256 = ?1 ORDER BY namespace, key_id",
        [fingerprint.as_str()],
        tuple_row,
        |(namespace, key_id): (String, String)| {
            Ok(Listing {
                namespace,
                sub_delegation: None,
                key_id,
            })
        },
    )?;
    for (namespace, name, key) in sub_delegation_keys(conn)? {
        if key.key.fingerprint(&key.id).ok().as_ref() == Some(fingerprint) {
            out.push(Listing {
                namespace,
                sub_delegation: Some(name),
                key_id: key.id.as_str().to_owned(),
            });
        }
    }
    Ok(out)
}

pub(crate) fn listed_under(
    conn: &Db<'_>,
    namespace: Option<&str>,
    key_id: &str,
) -> Result<Vec<(Sha256Hex, Listing)>> {
    const T: &str = "keys";
    let mut out = collect(
        conn,
        "SELECT namespace, key_id, key, spki_sha256 FROM keys
         WHERE key_id = ?1 AND (?2 IS NULL OR namespace = ?2) ORDER BY namespace",
        (key_id, namespace),
        tuple_row,
        |(ns, id, key, fp): (String, String, String, Option<String>)| {
            let fp = match fp {
                Some(fp) => Sha256Hex::parse(&fp).map_err(|e| Error::corrupt(T, e))?,
                None => json::<Key>(T, "key", &key)?
                    .fingerprint(&KeyId::new(&id))
                    .map_err(|e| Error::corrupt(T, e))?,
            };
            Ok((
                fp,
                Listing {
                    namespace: ns,
                    sub_delegation: None,
                    key_id: id,
                },
            ))
        },
    )?;
    for (ns, name, key) in sub_delegation_keys(conn)? {
        if key.id.as_str() != key_id || namespace.is_some_and(|n| n != ns) {
            continue;
        }
        if let Ok(fp) = key.key.fingerprint(&key.id) {
            out.push((
                fp,
                Listing {
                    namespace: ns,
                    sub_delegation: Some(name),
                    key_id: key_id.to_owned(),
                },
            ));
        }
    }
    Ok(out)
}

/// Every key of every sub-delegation: `(namespace, sub-delegation, key)`.
fn sub_delegation_keys(conn: &Db<'_>) -> Result<Vec<(String, String, TrustedKey)>> {
    const T: &str = "sub_delegations";
    let rows = collect(
        conn,
        "SELECT namespace, name, keys FROM sub_delegations ORDER BY namespace, name",
        [],
        tuple_row,
        |(ns, name, keys): (String, String, String)| {
            Ok((ns, name, json::<Vec<TrustedKey>>(T, "keys", &keys)?))
        },
    )?;
    Ok(rows
        .into_iter()
        .flat_map(|(ns, name, keys)| keys.into_iter().map(move |k| (ns.clone(), name.clone(), k)))
        .collect())
}

// ---- peers ----

type PeerRow = (String, String, String, String, bool, String);

const PEER_COLUMNS: &str = "SELECT name, patterns, url, root, terminating, updated_at FROM peers";

fn peer_record((name, patterns, url, root, terminating, updated): PeerRow) -> Result<PeerRecord> {
    const T: &str = "peers";
    Ok(PeerRecord {
        peer: Peer {
            name,
            patterns: json(T, "patterns", &patterns)?,
            url: PeerUrl::parse(&url).map_err(|e| Error::corrupt(T, e))?,
            root: json::<PinnedRoot>(T, "root", &root)?,
            terminating,
        },
        updated_at: parse_time(T, &updated)?,
    })
}

pub(crate) fn peers(conn: &Db<'_>) -> Result<Vec<PeerRecord>> {
    collect(
        conn,
        &format!("{PEER_COLUMNS} ORDER BY name"),
        [],
        tuple_row,
        peer_record,
    )
}

pub(crate) fn peer(conn: &Db<'_>, name: &str) -> Result<PeerRecord> {
    let row = conn
        .row(
            &format!("{PEER_COLUMNS} WHERE name = ?1"),
            [name],
            tuple_row,
        )?
        .ok_or_else(|| Error::not_found("peer", name))?;
    peer_record(row)
}

// ---- organization roots ----

type RootRow = (String, String, String, String);

const ROOT_COLUMNS: &str = "SELECT name, pem, sha256, added_at FROM org_roots";

fn root_record((name, pem, sha256, added): RootRow) -> Result<OrgRoot> {
    Ok(OrgRoot {
        name,
        pem,
        sha256,
        added_at: parse_time("org_roots", &added)?,
    })
}

pub(crate) fn org_roots(conn: &Db<'_>) -> Result<Vec<OrgRoot>> {
    collect(
        conn,
        &format!("{ROOT_COLUMNS} ORDER BY name"),
        [],
        tuple_row,
        root_record,
    )
}

pub(crate) fn org_root(conn: &Db<'_>, name: &str) -> Result<OrgRoot> {
    let row = conn
        .row(
            &format!("{ROOT_COLUMNS} WHERE name = ?1"),
            [name],
            tuple_row,
        )?
        .ok_or_else(|| Error::not_found("org root", name))?;
    root_record(row)
}

// ---- trusted timestamp authorities ----

type TsaRow = (String, String, Option<String>, String);

const TSA_COLUMNS: &str = "SELECT name, pem, description, added_at FROM tsas";

fn tsa_record((name, pem, description, added): TsaRow) -> Result<TsaRecord> {
    const T: &str = "tsas";
    Ok(TsaRecord {
        tsa: TrustedTsa {
            name,
            certificate: CaCert::parse(&pem).map_err(|e| Error::corrupt(T, e))?,
            description,
        },
        added_at: parse_time(T, &added)?,
    })
}

pub(crate) fn tsas(conn: &Db<'_>) -> Result<Vec<TsaRecord>> {
    collect(
        conn,
        &format!("{TSA_COLUMNS} ORDER BY name"),
        [],
        tuple_row,
        tsa_record,
    )
}

pub(crate) fn tsa(conn: &Db<'_>, name: &str) -> Result<TsaRecord> {
    let row = conn
        .row(&format!("{TSA_COLUMNS} WHERE name = ?1"), [name], tuple_row)?
        .ok_or_else(|| Error::not_found("TSA", name))?;
    tsa_record(row)
}

pub(crate) fn tsas_document(conn: &Db<'_>) -> Result<Tsas> {
    let doc = Tsas {
        format: TsasFormat,
        tsas: tsas(conn)?.into_iter().map(|t| t.tsa).collect(),
    };
    checked(TSAS_PATH, &doc, Tsas::to_vec, Tsas::from_slice)
}

// ---- tokens ----

type TokenRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

const TOKEN_COLUMNS: &str =
    "SELECT id, kind, description, created_at, revoked_at, expires_at, last_used_at FROM tokens";

fn token_record(
    conn: &Db<'_>,
    (id, kind, description, created, revoked, expires, last_used): TokenRow,
) -> Result<Token> {
    const T: &str = "tokens";
    let namespaces = collect(
        conn,
        "SELECT namespace FROM token_namespaces WHERE token_id = ?1 ORDER BY namespace",
        [&id],
        |r| r.get::<_, String>(0),
        |s| namespace_name("token_namespaces", &s),
    )?;
    let kind = match (kind.as_str(), namespaces.as_slice()) {
        ("org-admin", []) => TokenKind::OrgAdmin,
        ("maintainer", [ns]) => TokenKind::Maintainer(ns.clone()),
        ("ci", [_, ..]) => TokenKind::Ci(namespaces),
        (kind, list) => {
            return Err(Error::corrupt(
                T,
                format!(
                    "token `{id}` of kind `{kind}` has {} namespace(s)",
                    list.len()
                ),
            ))
        }
    };
    Ok(Token {
        id,
        kind,
        description,
        created_at: parse_time(T, &created)?,
        revoked_at: opt_time(T, revoked)?,
        expires_at: opt_time(T, expires)?,
        last_used_at: opt_time(T, last_used)?,
    })
}

pub(crate) fn tokens(conn: &Db<'_>) -> Result<Vec<Token>> {
    let rows = collect(
        conn,
        &format!("{TOKEN_COLUMNS} ORDER BY rowid"),
        [],
        tuple_row,
        Ok,
    )?;
    rows.into_iter().map(|r| token_record(conn, r)).collect()
}

pub(crate) fn token(conn: &Db<'_>, id: &str) -> Result<Token> {
    let row = conn
        .row(&format!("{TOKEN_COLUMNS} WHERE id = ?1"), [id], tuple_row)?
        .ok_or_else(|| Error::not_found("token", id))?;
    token_record(conn, row)
}

/// SHA-256 of a token secret, hex: the only form in which secrets reach the database.
pub(crate) fn secret_hash(secret: &str) -> String {
    keyshare_policy::hash::sha256_hex(secret.as_bytes())
}

pub(crate) fn token_by_secret(conn: &Db<'_>, secret: &str) -> Result<Option<Token>> {
    // The lookup is by SHA-256 of the presented secret through an index, so
    // no comparison of secret bytes happens here and there is nothing to make
    // constant-time: the timing of the index search depends on the hash of
    // what the caller presented, which the caller already knows, and tells
    // nothing about stored secrets (finding a secret from its hash, or a
    // presented value whose hash shares a long prefix with a stored one, is
    // infeasible for 256-bit random secrets).
    let hash = secret_hash(secret);
    let row = conn.row(
        &format!("{TOKEN_COLUMNS} WHERE secret_sha256 = ?1 AND revoked_at IS NULL"),
        [&hash],
        tuple_row,
    )?;
    row.map(|r| token_record(conn, r)).transpose()
}

/// `id, kind, revoked_at, expires_at, last_used_at` of `tokens`.
type TokenStateRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn token_state_by_secret(conn: &Db<'_>, secret: &str) -> Result<Option<TokenState>> {
    // As `token_by_secret`: looked up by the hash of the presented secret.
    const T: &str = "tokens";
    let hash = secret_hash(secret);
    let row: Option<TokenStateRow> = conn.row(
        "SELECT id, kind, revoked_at, expires_at, last_used_at FROM tokens
         WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
        [&hash],
        tuple_row,
    )?;
    let Some((id, kind, revoked, expires, last_used)) = row else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "org-admin" => "org-admin",
        "maintainer" => "maintainer",
        "ci" => "ci",
        other => {
            return Err(Error::corrupt(
                T,
                format!("token `{id}` has unknown kind `{other}`"),
            ))
        }
    };
    Ok(Some(TokenState {
        id,
        kind,
        revoked_at: opt_time(T, revoked)?,
        expires_at: opt_time(T, expires)?,
        last_used_at: opt_time(T, last_used)?,
    }))
}

pub(crate) fn token_covers(conn: &Db<'_>, token_id: &str, namespace: &str) -> Result<bool> {
    Ok(conn
        .row(
            "SELECT 1 FROM token_namespaces WHERE token_id = ?1 AND namespace = ?2",
            (token_id, namespace),
            |_| Ok(()),
        )?
        .is_some())
}

pub(crate) fn token_scope_sample(
    conn: &Db<'_>,
    token_id: &str,
    limit: u32,
) -> Result<(Vec<NamespaceName>, u64)> {
    let names = collect(
        conn,
        "SELECT namespace FROM token_namespaces WHERE token_id = ?1 ORDER BY namespace LIMIT ?2",
        (token_id, limit),
        |r| r.get::<_, String>(0),
        |s| namespace_name("token_namespaces", &s),
    )?;
    let count: i64 = conn.one(
        "SELECT count(*) FROM token_namespaces WHERE token_id = ?1",
        [token_id],
        |r| r.get(0),
    )?;
    Ok((names, u64::try_from(count).unwrap_or(0)))
}

// ---- published files ----

const PUBLISHED_COLUMNS: &str =
    "SELECT id, path, role, version, bytes, sha256, immutable, created_at FROM published_files";

type PublishedRow = (
    i64,
    String,
    Option<String>,
    Option<i64>,
    Vec<u8>,
    String,
    bool,
    String,
);

fn published_record(
    (id, path, role, version, bytes, sha256, immutable, created): PublishedRow,
) -> Result<PublishedFile> {
    const T: &str = "published_files";
    Ok(PublishedFile {
        id,
        path,
        role,
        version: version
            .map(|v| u64::try_from(v).map_err(|e| Error::corrupt(T, e)))
            .transpose()?,
        bytes,
        sha256,
        immutable,
        created_at: parse_time(T, &created)?,
    })
}

pub(crate) fn latest_published(conn: &Db<'_>, path: &str) -> Result<Option<PublishedFile>> {
    conn.row(
        &format!("{PUBLISHED_COLUMNS} WHERE path = ?1 ORDER BY id DESC LIMIT 1"),
        [path],
        tuple_row,
    )?
    .map(published_record)
    .transpose()
}

/// The file at `path` when it is the current version of its lineage (no
/// newer one was published in its place).
pub(crate) fn current_published(conn: &Db<'_>, path: &str) -> Result<Option<PublishedFile>> {
    conn.row(
        "SELECT f.id, f.path, f.role, f.version, f.bytes, f.sha256, f.immutable, f.created_at
         FROM published_current c JOIN published_files f ON f.id = c.id
         WHERE c.lineage = ?1 AND f.path = ?2",
        (super::lineage(path), path),
        tuple_row,
    )?
    .map(published_record)
    .transpose()
}

pub(crate) fn published_file(conn: &Db<'_>, path: &str) -> Result<PublishedFile> {
    latest_published(conn, path)?.ok_or_else(|| Error::not_found("published file", path))
}

pub(crate) fn published_history(conn: &Db<'_>, path: &str) -> Result<Vec<PublishedFile>> {
    collect(
        conn,
        &format!("{PUBLISHED_COLUMNS} WHERE path = ?1 ORDER BY id"),
        [path],
        tuple_row,
        published_record,
    )
}

/// `signed.meta[<file>].version` of a published metadata file.
fn listed_version(what: &str, bytes: &[u8], file: &str) -> Result<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt("published_files", format!("{what}: {e}")))?;
    value
        .pointer(&format!(
            "/signed/meta/{}",
            file.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(|m| m.get("version"))
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Error::corrupt("published_files", format!("{what} does not list {file}")))
}

pub(crate) fn timestamp_version(conn: &Db<'_>) -> Result<Option<u64>> {
    let version: Option<Option<i64>> = conn.row(
        "SELECT version FROM published_files WHERE path = 'metadata/timestamp.json'
         ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )?;
    version
        .flatten()
        .map(|v| {
            u64::try_from(v)
                .map_err(|_| Error::corrupt("published_files", format!("timestamp version {v}")))
        })
        .transpose()
}

pub(crate) fn last_published(conn: &Db<'_>) -> Result<Option<LastPublished>> {
    let Some(mut last) = last_published_head(conn)? else {
        return Ok(None);
    };
    let listed: serde_json::Value = serde_json::from_slice(&last.snapshot)
        .map_err(|e| Error::corrupt("published_files", format!("snapshot: {e}")))?;
    let files = listed
        .pointer("/signed/meta")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for file in files {
        let Some(role) = file.strip_suffix(".json") else {
            continue;
        };
        let v = listed_version("snapshot", &last.snapshot, &file)?;
        // A missing file is left for `Repository::restore` to report.
        if let Some(bytes) = published_role(conn, role, v)? {
            last.targets.insert(role.to_owned(), bytes);
        }
    }
    Ok(Some(last))
}

/// Version `version` of targets role `role` as published, if recorded.
pub(crate) fn published_role(conn: &Db<'_>, role: &str, version: u64) -> Result<Option<Vec<u8>>> {
    let path = format!(
        "metadata/{version}.{}.json",
        keyshare_policy::layout::encode_role(role)
    );
    Ok(latest_published(conn, &path)?.map(|f| f.bytes))
}

/// [`last_published`] without the targets roles: every root, the newest
/// timestamp and the snapshot it lists.
pub(crate) fn last_published_head(conn: &Db<'_>) -> Result<Option<LastPublished>> {
    let Some(timestamp) = latest_published(conn, "metadata/timestamp.json")? else {
        return Ok(None);
    };
    // Root by root, each one indexed lookup of its path (a query on the
    // role would read every file ever published).
    let mut roots = Vec::new();
    while let Some(root) =
        latest_published(conn, &format!("metadata/{}.root.json", roots.len() + 1))?
    {
        roots.push(root.bytes);
    }
    let v = listed_version("timestamp", &timestamp.bytes, "snapshot.json")?;
    let snapshot = published_file(conn, &format!("metadata/{v}.snapshot.json"))?.bytes;
    Ok(Some(LastPublished {
        roots,
        timestamp: timestamp.bytes,
        snapshot,
        targets: BTreeMap::new(),
    }))
}

// ---- audit ----

pub(crate) fn audit_records(conn: &Db<'_>, after: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    audit::records(conn, after, limit)
}

pub(crate) fn audit_query(conn: &Db<'_>, filter: &audit::AuditFilter) -> Result<Vec<AuditRecord>> {
    audit::query(conn, filter)
}

pub(crate) fn audit_head(conn: &Db<'_>) -> Result<AuditHead> {
    audit::head(conn)
}

pub(crate) fn verify_audit_chain(conn: &Db<'_>) -> Result<AuditHead> {
    audit::verify(conn, &[])
}

pub(crate) fn verify_audit_against(
    conn: &Db<'_>,
    heads: &[(keyshare_policy::audit::Head, String)],
) -> Result<AuditHead> {
    audit::verify(conn, heads)
}

pub(crate) fn published_newest(
    conn: &Db<'_>,
    path: &str,
    limit: u32,
) -> Result<Vec<PublishedFile>> {
    collect(
        conn,
        &format!("{PUBLISHED_COLUMNS} WHERE path = ?1 ORDER BY id DESC LIMIT ?2"),
        (path, limit),
        tuple_row,
        published_record,
    )
}

// ---- documents ----

/// Serialises `doc`, parses it back with the policy parser, and returns
/// the parsed value: the document is exactly one a verifier accepts.
fn checked<T>(
    path: &str,
    doc: &T,
    to_vec: impl Fn(&T) -> keyshare_policy::Result<Vec<u8>>,
    parse: impl Fn(&[u8]) -> keyshare_policy::Result<T>,
) -> Result<T> {
    let document = |source| Error::Document {
        path: path.to_owned(),
        source,
    };
    let bytes = to_vec(doc).map_err(document)?;
    parse(&bytes).map_err(document)
}

/// Namespace `namespace`'s trust document as the store holds it (not yet
/// checked).
fn namespace_trust(conn: &Db<'_>, namespace: &str) -> Result<NamespaceTrust> {
    let record = self::namespace(conn, namespace)?;
    let revocations: Vec<Revocation> = namespace_revocations(conn, namespace)?
        .into_iter()
        .map(|r| r.revocation)
        .collect();
    let keys: Vec<TrustedKey> = keys(conn, namespace)?.into_iter().map(|k| k.key).collect();
    Ok(NamespaceTrust {
        format: TrustFormat::for_contents(&revocations, &keys),
        revocations,
        threshold: record.threshold,
        keys,
        identities: identities(conn, namespace)?
            .into_iter()
            .map(|i| i.identity)
            .collect(),
        sub_delegations: sub_delegations(conn, namespace)?
            .into_iter()
            .map(|s| s.sub_delegation)
            .collect(),
        namespace: record.entry.name,
    })
}

pub(crate) fn namespace_document(conn: &Db<'_>, namespace: &str) -> Result<NamespaceTrust> {
    let doc = namespace_trust(conn, namespace)?;
    let path = doc.namespace.target_path();
    checked(&path, &doc, NamespaceTrust::to_vec, |b| {
        NamespaceTrust::from_target(&path, b)
    })
}

pub(crate) fn namespace_document_bytes(conn: &Db<'_>, namespace: &str) -> Result<Vec<u8>> {
    let doc = namespace_trust(conn, namespace)?;
    let path = doc.namespace.target_path();
    let document = |source| Error::Document {
        path: path.clone(),
        source,
    };
    // What is published is what the policy parser read back, as
    // `namespace_document(..).to_vec()` is.
    let bytes = doc.to_vec().map_err(document)?;
    NamespaceTrust::from_target(&path, &bytes)
        .and_then(|parsed| parsed.to_vec())
        .map_err(document)
}

pub(crate) fn namespaces_index(conn: &Db<'_>) -> Result<Namespaces> {
    let doc = Namespaces {
        format: NamespacesFormat,
        namespaces: namespaces(conn)?.into_iter().map(|n| n.entry).collect(),
    };
    checked(
        NAMESPACES_PATH,
        &doc,
        Namespaces::to_vec,
        Namespaces::from_slice,
    )
}

pub(crate) fn namespaces_shard(conn: &Db<'_>, bin: u64) -> Result<Namespaces> {
    let bin = i64::try_from(bin).map_err(|e| Error::invalid("bin", e.to_string()))?;
    let doc = Namespaces {
        format: NamespacesFormat,
        namespaces: collect(
            conn,
            &format!("{NAMESPACE_COLUMNS} WHERE bin = ?1 ORDER BY name"),
            [bin],
            tuple_row,
            namespace_record,
        )?
        .into_iter()
        .map(|n| n.entry)
        .collect(),
    };
    checked(
        NAMESPACES_PATH,
        &doc,
        Namespaces::to_vec,
        Namespaces::from_slice,
    )
}

pub(crate) fn revocations_document(conn: &Db<'_>) -> Result<Revocations> {
    let doc = Revocations {
        format: RevocationsFormat,
        revocations: revocations(conn)?
            .into_iter()
            .map(|r| r.revocation)
            .collect(),
    };
    checked(
        REVOCATIONS_PATH,
        &doc,
        Revocations::to_vec,
        Revocations::from_slice,
    )
}

pub(crate) fn peers_document(conn: &Db<'_>) -> Result<Peers> {
    let doc = Peers {
        format: PeersFormat,
        peers: peers(conn)?.into_iter().map(|p| p.peer).collect(),
    };
    checked(PEERS_PATH, &doc, Peers::to_vec, Peers::from_slice)
}
