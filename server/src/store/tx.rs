//! Writes: one [`Tx`] is one SQLite transaction.

use std::fmt;
use std::num::NonZeroU32;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use keyshare_policy::repo::File;
use keyshare_policy::trust::{
    check_tsa_certificate, CaCert, NamespaceEntry, NamespaceName, Peer, Principal, Revocation,
    RevokedSubject, Sha256Hex, SubDelegation, TrustedKey, TrustedTsa, X509Identity, MAX_TSAS,
    MAX_TSA_DESCRIPTION,
};

use super::db::{Backend, Db};
use super::error::{Error, Result};
use super::pg::PgTx;
use super::read::{self, require_namespace, secret_hash};
use super::records::{
    AuditRecord, CiOwner, Listing, NewToken, RevocationRecord, ScopeOverlaps, SingleUse,
    TimestampRecord, Token, TokenKind, TokenSecret,
};
use super::{audit, time_text};

/// One write transaction, given to the closure of [`super::Store::transaction`].
///
/// Every method writes inside the transaction; nothing is visible to other
/// connections, or durable, until the closure returns `Ok` and the
/// transaction commits. Read methods (the same as [`super::Store`]'s) see
/// the transaction's own writes.
pub struct Tx<'a> {
    tx: TxConn<'a>,
    now: OffsetDateTime,
}

/// The open transaction under a [`Tx`].
pub(super) enum TxConn<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(PgTx<'a>),
}

impl fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

fn to_json<T: Serialize + ?Sized>(field: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid(field, e.to_string()))
}

fn opt_text(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(time_text)
}

/// Maps a uniqueness violation to `AlreadyExists`.
fn exists_on_conflict(kind: &'static str, name: impl Into<String>) -> impl FnOnce(Error) -> Error {
    let name = name.into();
    move |e| {
        if e.is_unique_violation() {
            Error::exists(kind, name)
        } else {
            e
        }
    }
}

/// 32 bytes from OpenSSL's CSPRNG, as 64 lowercase hex digits.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks an organization root's name: it becomes `org/roots/<name>.pem`.
fn check_root_name(name: &str) -> Result<()> {
    if NamespaceName::is_well_formed(name) {
        return Ok(());
    }
    Err(Error::invalid(
        "name",
        format!("`{name}` is not a root name (1 to 63 of a-z, 0-9 and `-`, not starting with `-`)"),
    ))
}

/// Role and version of a metadata file, from its path and its bytes.
fn metadata_role_version(path: &str, bytes: &[u8]) -> Result<(Option<String>, Option<u64>)> {
    let Some(name) = path.strip_prefix("metadata/") else {
        return Ok((None, None));
    };
    let invalid = |m: String| Error::invalid(format!("published file {path}"), m);
    let stem = name
        .strip_suffix(".json")
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| invalid("not a metadata file name".into()))?;
    let (path_version, role) = match stem.split_once('.') {
        Some((v, role)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => (
            Some(v.parse::<u64>().map_err(|e| invalid(e.to_string()))?),
            role,
        ),
        _ => (None, stem),
    };
    // Only `signed.version` is read; the rest is skipped without building
    // values (a snapshot lists every role: this runs on every publish).
    #[derive(serde::Deserialize)]
    struct Envelope {
        signed: Option<VersionOnly>,
    }
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        version: Option<u64>,
    }
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON metadata: {e}")))?;
    let version = envelope
        .signed
        .and_then(|s| s.version)
        .ok_or_else(|| invalid("no signed.version".into()))?;
    if path_version.is_some_and(|v| v != version) {
        return Err(invalid(format!(
            "file name says version {}, the metadata says {version}",
            path_version.unwrap_or_default()
        )));
    }
    Ok((Some(role.to_owned()), Some(version)))
}

impl<'a> Tx<'a> {
    pub(super) fn new(tx: TxConn<'a>, now: OffsetDateTime) -> Self {
        Self { tx, now }
    }

    pub(super) fn commit(self) -> Result<()> {
        match self.tx {
            TxConn::Sqlite(tx) => Ok(tx.commit()?),
            TxConn::Postgres(tx) => tx.commit(),
        }
    }

    /// The transaction's connection.
    pub(super) fn db(&self) -> Db<'_> {
        match &self.tx {
            TxConn::Sqlite(tx) => Db::Sqlite(tx),
            TxConn::Postgres(tx) => Db::Postgres(tx.conn),
        }
    }

    pub(super) fn with_conn<T>(&self, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<T> {
        f(&self.db())
    }

    /// The transaction's time: every row and the audit record it writes carry it.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    fn now_text(&self) -> String {
        time_text(self.now)
    }

    // ---- namespaces ----

    /// Creates a namespace. `AlreadyExists` if the name is taken; `Invalid`
    /// if one of its scopes is already granted to another namespace;
    /// `ScopeOverlap` if one overlaps another namespace's scope
    /// ([`Tx::create_namespace_with`] can allow that).
    pub fn create_namespace(
        &mut self,
        entry: &NamespaceEntry,
        threshold: NonZeroU32,
    ) -> Result<()> {
        self.create_namespace_with(entry, threshold, OverlapRule::Refuse)
            .map(drop)
    }

    /// [`Tx::create_namespace`], with overlapping scopes refused or
    /// allowed by `rule`; returns the overlaps (empty when none).
    pub fn create_namespace_with(
        &mut self,
        entry: &NamespaceEntry,
        threshold: NonZeroU32,
        rule: OverlapRule,
    ) -> Result<ScopeOverlaps> {
        entry
            .check()
            .map_err(|e| Error::invalid("namespace", e.to_string()))?;
        self.check_scopes_free(entry)?;
        let overlaps = read::scope_overlaps(&self.db(), entry, &[])?;
        rule.check(entry, &overlaps)?;
        self.db()
            .exec(
                "INSERT INTO namespaces (name, scopes, maintainers, threshold, created_at, bin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    entry.name.as_str(),
                    to_json("scopes", &entry.scopes)?,
                    to_json("maintainers", &entry.maintainers)?,
                    threshold.get(),
                    self.now_text(),
                    i64::try_from(super::namespace_shard(&entry.name)).unwrap_or(i64::MAX),
                ),
            )
            .map_err(exists_on_conflict("namespace", entry.name.as_str()))?;
        self.set_scopes(entry)?;
        Ok(overlaps)
    }

    /// Makes `namespace_scopes` hold exactly the scopes of `entry`.
    fn set_scopes(&mut self, entry: &NamespaceEntry) -> Result<()> {
        let name = entry.name.as_str();
        self.db()
            .exec("DELETE FROM namespace_scopes WHERE namespace = ?1", [name])?;
        for scope in &entry.scopes {
            self.db().exec(
                "INSERT INTO namespace_scopes (scope, namespace) VALUES (?1, ?2)",
                (scope.as_str(), name),
            )?;
        }
        Ok(())
    }

    /// Replaces a namespace's scopes, maintainers and threshold. `NotFound`
    /// if it does not exist; `ScopeOverlap` if a scope it did not have
    /// before overlaps another namespace's scope
    /// ([`Tx::update_namespace_with`] can allow that).
    pub fn update_namespace(
        &mut self,
        entry: &NamespaceEntry,
        threshold: NonZeroU32,
    ) -> Result<()> {
        self.update_namespace_with(entry, threshold, OverlapRule::Refuse)
            .map(drop)
    }

    /// [`Tx::update_namespace`], with new scopes that overlap refused or
    /// allowed by `rule`; returns the overlaps of the new scopes.
    pub fn update_namespace_with(
        &mut self,
        entry: &NamespaceEntry,
        threshold: NonZeroU32,
        rule: OverlapRule,
    ) -> Result<ScopeOverlaps> {
        let current = read::namespace(&self.db(), entry.name.as_str())?;
        self.check_scopes_free(entry)?;
        let overlaps = read::scope_overlaps(&self.db(), entry, &current.entry.scopes)?;
        rule.check(entry, &overlaps)?;
        self.db().exec(
            "UPDATE namespaces SET scopes = ?2, maintainers = ?3, threshold = ?4 WHERE name = ?1",
            (
                entry.name.as_str(),
                to_json("scopes", &entry.scopes)?,
                to_json("maintainers", &entry.maintainers)?,
                threshold.get(),
            ),
        )?;
        self.set_scopes(entry)?;
        Ok(overlaps)
    }

    /// Sets a namespace's threshold. `NotFound` if it does not exist.
    pub fn set_threshold(&mut self, namespace: &str, threshold: NonZeroU32) -> Result<()> {
        require_namespace(&self.db(), namespace)?;
        self.db().exec(
            "UPDATE namespaces SET threshold = ?2 WHERE name = ?1",
            (namespace, threshold.get()),
        )?;
        Ok(())
    }

    /// Refuses a scope another namespace already has (the index would not parse).
    /// One index lookup per scope (`namespace_scopes`), not a scan.
    fn check_scopes_free(&self, entry: &NamespaceEntry) -> Result<()> {
        for scope in &entry.scopes {
            let owner: Option<String> = self.db().row(
                "SELECT namespace FROM namespace_scopes WHERE scope = ?1 AND namespace <> ?2",
                (scope.as_str(), entry.name.as_str()),
                |r| r.get(0),
            )?;
            if let Some(owner) = owner {
                return Err(Error::invalid(
                    "scopes",
                    format!("`{scope}` is already granted to namespace `{owner}`"),
                ));
            }
        }
        Ok(())
    }

    /// Deletes a namespace with its keys, identities and sub-delegations,
    /// and revokes every token scoped to it (so re-creating the name later
    /// grants nothing to old tokens). Returns how many tokens were revoked.
    pub fn delete_namespace(&mut self, name: &str) -> Result<usize> {
        require_namespace(&self.db(), name)?;
        let revoked = self.db().exec(
            "UPDATE tokens SET revoked_at = ?2
             WHERE revoked_at IS NULL
               AND id IN (SELECT token_id FROM token_namespaces WHERE namespace = ?1)",
            (name, self.now_text()),
        )?;
        self.db()
            .exec("DELETE FROM namespaces WHERE name = ?1", [name])?;
        Ok(revoked)
    }

    // ---- keys ----

    /// Adds a signing key to a namespace. `NotFound` for a missing
    /// namespace, `AlreadyExists` if the key id is already listed there.
    ///
    /// `Revoked` if the key's material is revoked, whatever its id.
    pub fn add_key(&mut self, namespace: &NamespaceName, key: &TrustedKey) -> Result<()> {
        require_namespace(&self.db(), namespace.as_str())?;
        let fingerprint =
            self.refuse_revoked_key(namespace, &format!("{namespace}/{}", key.id), key)?;
        self.db().exec(
                "INSERT INTO keys (namespace, key_id, key, not_before, not_after, ephemeral, description, added_at, spki_sha256, principal, layout_root)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                (
                    namespace.as_str(),
                    key.id.as_str(),
                    to_json("key", &key.key)?,
                    opt_text(key.not_before),
                    opt_text(key.not_after),
                    key.ephemeral,
                    key.description.as_deref(),
                    self.now_text(),
                    fingerprint.as_str(),
                    key.principal.as_ref().map(Principal::as_str),
                    key.layout_root,
                ),
            )
            .map_err(exists_on_conflict("key", format!("{namespace}/{}", key.id)))?;
        Ok(())
    }

    /// The key's fingerprint; `Revoked` if it is revoked, `RevokedInNamespace`
    /// if `namespace` revoked it, `Invalid` if the key cannot be used.
    /// `what` names the listing in the error.
    fn refuse_revoked_key(
        &self,
        namespace: &NamespaceName,
        what: &str,
        key: &TrustedKey,
    ) -> Result<Sha256Hex> {
        let fingerprint = key
            .key
            .fingerprint(&key.id)
            .map_err(|e| Error::invalid("key", e.to_string()))?;
        self.refuse_revoked_material(namespace, &format!("key {what}"), &fingerprint)?;
        Ok(fingerprint)
    }

    /// `Revoked` if key material `fingerprint` is revoked, `RevokedInNamespace`
    /// if `namespace` revoked it. `what` names the listing in the error.
    fn refuse_revoked_material(
        &self,
        namespace: &NamespaceName,
        what: &str,
        fingerprint: &Sha256Hex,
    ) -> Result<()> {
        let subject = RevokedSubject::Key(fingerprint.clone());
        if let Some(r) = self.revocation(&subject)? {
            return Err(revoked(format!("{what} ({subject})"), &r));
        }
        if let Some(r) = self.namespace_revocation(namespace.as_str(), fingerprint)? {
            return Err(Error::RevokedInNamespace {
                what: format!("{what} ({subject})"),
                namespace: namespace.to_string(),
                revoked_at: r.revocation.revoked_at,
                reason: r.revocation.reason,
            });
        }
        Ok(())
    }

    /// Removes a key from a namespace. `NotFound` if either is missing.
    pub fn remove_key(&mut self, namespace: &str, key_id: &str) -> Result<()> {
        require_namespace(&self.db(), namespace)?;
        let n = self.db().exec(
            "DELETE FROM keys WHERE namespace = ?1 AND key_id = ?2",
            [namespace, key_id],
        )?;
        if n == 0 {
            return Err(Error::not_found("key", format!("{namespace}/{key_id}")));
        }
        Ok(())
    }

    /// Removes the ephemeral keys whose `not_after` is at or before `at`
    /// in every namespace at once; returns `(namespace, key id)` of each.
    /// (The expiry sweep goes namespace by namespace, from
    /// [`Tx::expired_ephemeral_keys`].)
    pub fn remove_expired_ephemeral_keys(
        &mut self,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, String)>> {
        let expired = read::expired_ephemeral_keys(&self.db(), at)?;
        for (ns, id) in &expired {
            self.db().exec(
                "DELETE FROM keys WHERE namespace = ?1 AND key_id = ?2",
                [ns, id],
            )?;
        }
        Ok(expired)
    }

    // ---- CI delegations ----

    /// Records who asked for CI key `key_id` of `namespace` (which must be
    /// listed). `AlreadyExists` if it already has an owner.
    pub fn set_ci_owner(
        &mut self,
        namespace: &NamespaceName,
        key_id: &str,
        owner: &CiOwner,
    ) -> Result<()> {
        let (issuer, subject, token_id) = match owner {
            CiOwner::Oidc { issuer, subject } => {
                (Some(issuer.as_str()), Some(subject.as_str()), None)
            }
            CiOwner::Token { id } => (None, None, Some(id.as_str())),
        };
        self.db()
            .exec(
                "INSERT INTO ci_delegations (namespace, key_id, issuer, subject, token_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                (namespace.as_str(), key_id, issuer, subject, token_id),
            )
            .map_err(exists_on_conflict(
                "CI delegation",
                format!("{namespace}/{key_id}"),
            ))?;
        Ok(())
    }

    /// Records `value` as used; false (and nothing written) when it was
    /// recorded before and has not expired.
    pub fn use_once(&mut self, value: &SingleUse) -> Result<bool> {
        let expires_at = value.expires_at.unix_timestamp();
        let added = self.db().exec(
            "INSERT INTO ci_used (kind, digest, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, digest) DO UPDATE SET expires_at = excluded.expires_at
             WHERE ci_used.expires_at <= ?4",
            (
                value.kind.name(),
                value.digest.as_str(),
                expires_at,
                self.now.unix_timestamp(),
            ),
        )?;
        Ok(added == 1)
    }

    /// Deletes the records of used values that expired at or before `at`;
    /// returns how many.
    pub fn prune_used(&mut self, at: OffsetDateTime) -> Result<usize> {
        self.db().exec(
            "DELETE FROM ci_used WHERE expires_at <= ?1",
            [at.unix_timestamp()],
        )
    }

    // ---- savepoints ----

    /// Runs `f` inside a savepoint: what it writes is kept (as part of this
    /// transaction) when it returns `Ok`, and undone when it returns `Err`,
    /// leaving the rest of the transaction as it was. Savepoints nest.
    pub fn savepoint<T, E>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        self.db().control("SAVEPOINT keyshare_change")?;
        match f(self) {
            Ok(value) => {
                self.db().control("RELEASE keyshare_change")?;
                Ok(value)
            }
            Err(e) => {
                self.db()
                    .control("ROLLBACK TO keyshare_change")
                    .and_then(|()| self.db().control("RELEASE keyshare_change"))?;
                Err(e)
            }
        }
    }

    // ---- identities ----

    /// Adds an X.509 identity to a namespace. `NotFound` for a missing
    /// namespace, `AlreadyExists` if the name is taken there.
    pub fn add_identity(
        &mut self,
        namespace: &NamespaceName,
        identity: &X509Identity,
    ) -> Result<()> {
        require_namespace(&self.db(), namespace.as_str())?;
        for (i, ca) in identity.ca_certs.iter().enumerate() {
            let what = format!(
                "CA certificate {i} of identity {namespace}/{}",
                identity.name
            );
            let key = ca
                .cert()
                .public_key()
                .ok()
                .and_then(|k| keyshare_policy::keys::public_key_fingerprint(&k).ok());
            let subject = RevokedSubject::Certificate(ca.sha256().clone());
            if let Some(r) = self.revocation(&subject)? {
                return Err(revoked(format!("{what} ({subject})"), &r));
            }
            if let Some(key) = &key {
                self.refuse_revoked_material(namespace, &what, key)?;
            }
        }
        let pems: Vec<&str> = identity.ca_certs.iter().map(CaCert::pem).collect();
        self.db().exec(
                "INSERT INTO identities (namespace, name, ca_certs, subject, not_before, not_after, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    namespace.as_str(),
                    &identity.name,
                    to_json("ca_certs", &pems)?,
                    identity.subject.as_str(),
                    opt_text(identity.not_before),
                    opt_text(identity.not_after),
                    self.now_text(),
                ),
            )
            .map_err(exists_on_conflict("identity", format!("{namespace}/{}", identity.name)))?;
        Ok(())
    }

    /// Removes an identity. `NotFound` if it (or the namespace) is missing.
    pub fn remove_identity(&mut self, namespace: &str, name: &str) -> Result<()> {
        require_namespace(&self.db(), namespace)?;
        let n = self.db().exec(
            "DELETE FROM identities WHERE namespace = ?1 AND name = ?2",
            [namespace, name],
        )?;
        if n == 0 {
            return Err(Error::not_found("identity", format!("{namespace}/{name}")));
        }
        Ok(())
    }

    // ---- sub-delegations ----

    /// Adds a sub-delegation. `NotFound` for a missing namespace,
    /// `AlreadyExists` if the name is taken there.
    pub fn add_sub_delegation(
        &mut self,
        namespace: &NamespaceName,
        sub: &SubDelegation,
    ) -> Result<()> {
        require_namespace(&self.db(), namespace.as_str())?;
        for key in &sub.keys {
            self.refuse_revoked_key(
                namespace,
                &format!("{namespace}/{} of sub-delegation `{}`", key.id, sub.name),
                key,
            )?;
        }
        self.db()
            .exec(
                "INSERT INTO sub_delegations (namespace, name, scopes, threshold, keys, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    namespace.as_str(),
                    &sub.name,
                    to_json("scopes", &sub.scopes)?,
                    sub.threshold.get(),
                    to_json("keys", &sub.keys)?,
                    self.now_text(),
                ),
            )
            .map_err(exists_on_conflict(
                "sub-delegation",
                format!("{namespace}/{}", sub.name),
            ))?;
        Ok(())
    }

    /// Removes a sub-delegation. `NotFound` if it (or the namespace) is missing.
    pub fn remove_sub_delegation(&mut self, namespace: &str, name: &str) -> Result<()> {
        require_namespace(&self.db(), namespace)?;
        let n = self.db().exec(
            "DELETE FROM sub_delegations WHERE namespace = ?1 AND name = ?2",
            [namespace, name],
        )?;
        if n == 0 {
            return Err(Error::not_found(
                "sub-delegation",
                format!("{namespace}/{name}"),
            ));
        }
        Ok(())
    }

    // ---- revocations ----

    /// Records a revocation; `listed_as` notes where the key was listed
    /// (for people, never published). `AlreadyExists` if the subject is
    /// already revoked; `Invalid` for an empty reason.
    pub fn add_revocation(
        &mut self,
        revocation: &Revocation,
        listed_as: Option<&Listing>,
    ) -> Result<()> {
        if revocation.reason.trim().is_empty() {
            return Err(Error::invalid("reason", "must say why (not empty)"));
        }
        let (spki, cert) = match &revocation.subject {
            RevokedSubject::Key(h) => (Some(h.as_str()), None),
            RevokedSubject::Certificate(h) => (None, Some(h.as_str())),
        };
        self.db().exec(
                "INSERT INTO revocations (spki_sha256, certificate_sha256, revoked_at, reason, recorded_at, namespace, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    spki,
                    cert,
                    time_text(revocation.revoked_at),
                    &revocation.reason,
                    self.now_text(),
                    listed_as.map(|l| l.namespace.as_str()),
                    listed_as.map(|l| l.key_id.as_str()),
                ),
            )
            .map_err(exists_on_conflict("revocation", revocation.subject.to_string()))?;
        Ok(())
    }

    /// Removes a revocation (one recorded by mistake). `NotFound` if absent.
    pub fn remove_revocation(&mut self, subject: &RevokedSubject) -> Result<()> {
        let n = match subject {
            RevokedSubject::Key(h) => self.db().exec(
                "DELETE FROM revocations WHERE spki_sha256 = ?1",
                [h.as_str()],
            )?,
            RevokedSubject::Certificate(h) => self.db().exec(
                "DELETE FROM revocations WHERE certificate_sha256 = ?1",
                [h.as_str()],
            )?,
        };
        if n == 0 {
            return Err(Error::not_found("revocation", subject.to_string()));
        }
        Ok(())
    }

    // ---- namespace revocations ----

    /// Records that `namespace` revoked a key (`revocation.subject`, by
    /// fingerprint) for its own artifacts; `key_id` notes the id it was
    /// listed under (for people, never published). `NotFound` for a
    /// missing namespace, `AlreadyExists` if the namespace already revoked
    /// it, `Invalid` for a certificate subject or an empty reason.
    pub fn add_namespace_revocation(
        &mut self,
        namespace: &NamespaceName,
        revocation: &Revocation,
        key_id: Option<&str>,
    ) -> Result<()> {
        require_namespace(&self.db(), namespace.as_str())?;
        let RevokedSubject::Key(fingerprint) = &revocation.subject else {
            return Err(Error::invalid(
                "subject",
                "a namespace revokes keys only; certificates are revoked organization-wide",
            ));
        };
        if revocation.reason.trim().is_empty() {
            return Err(Error::invalid("reason", "must say why (not empty)"));
        }
        self.db().exec(
                "INSERT INTO namespace_revocations (namespace, spki_sha256, revoked_at, reason, recorded_at, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    namespace.as_str(),
                    fingerprint.as_str(),
                    time_text(revocation.revoked_at),
                    &revocation.reason,
                    self.now_text(),
                    key_id,
                ),
            )
            .map_err(exists_on_conflict(
                "revocation",
                format!("{namespace}/{}", revocation.subject),
            ))?;
        Ok(())
    }

    /// Withdraws `namespace`'s own revocation of the key with fingerprint
    /// `fingerprint`. `NotFound` if the namespace or the revocation is missing.
    pub fn remove_namespace_revocation(
        &mut self,
        namespace: &str,
        fingerprint: &Sha256Hex,
    ) -> Result<()> {
        require_namespace(&self.db(), namespace)?;
        let n = self.db().exec(
            "DELETE FROM namespace_revocations WHERE namespace = ?1 AND spki_sha256 = ?2",
            [namespace, fingerprint.as_str()],
        )?;
        if n == 0 {
            return Err(Error::not_found(
                "revocation",
                format!("{namespace}/key with SPKI SHA-256 {fingerprint}"),
            ));
        }
        Ok(())
    }

    // ---- peers ----

    /// Adds or replaces a peer; true when it was new.
    pub fn put_peer(&mut self, peer: &Peer) -> Result<bool> {
        if peer.name.trim().is_empty()
            || peer.name.chars().count() > 200
            || peer.name.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "name",
                "must be 1 to 200 characters without control characters",
            ));
        }
        if peer.patterns.is_empty() {
            return Err(Error::invalid("patterns", "must list at least one pattern"));
        }
        let existed = match read::peer(&self.db(), &peer.name) {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        self.db().exec(
            "INSERT INTO peers (name, patterns, url, root, terminating, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET patterns = excluded.patterns, url = excluded.url,
                 root = excluded.root, terminating = excluded.terminating,
                 updated_at = excluded.updated_at",
            (
                &peer.name,
                to_json("patterns", &peer.patterns)?,
                peer.url.as_str(),
                to_json("root", &peer.root)?,
                peer.terminating,
                self.now_text(),
            ),
        )?;
        Ok(!existed)
    }

    /// Removes a peer. `NotFound` if absent.
    pub fn remove_peer(&mut self, name: &str) -> Result<()> {
        let n = self
            .db()
            .exec("DELETE FROM peers WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::not_found("peer", name));
        }
        Ok(())
    }

    // ---- organization roots ----

    /// Adds or replaces (by name) an X.509 root certificate, exactly one PEM
    /// certificate; true when the name was new. `AlreadyExists` (kind
    /// `org root certificate`) if the same certificate is there under
    /// another name.
    pub fn put_org_root(&mut self, name: &str, pem: &str) -> Result<bool> {
        check_root_name(name)?;
        let cert = CaCert::parse(pem).map_err(|e| Error::invalid("pem", e))?;
        if let Some(other) = self.db().row(
            "SELECT name FROM org_roots WHERE sha256 = ?1 AND name <> ?2",
            [cert.sha256().as_str(), name],
            |r| r.get::<_, String>(0),
        )? {
            return Err(Error::exists("org root certificate", other));
        }
        let existed = match read::org_root(&self.db(), name) {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        self.db().exec(
            "INSERT INTO org_roots (name, pem, sha256, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET pem = excluded.pem, sha256 = excluded.sha256,
                 added_at = excluded.added_at",
            (name, pem, cert.sha256().as_str(), self.now_text()),
        )?;
        Ok(!existed)
    }

    /// Removes an X.509 root. `NotFound` if absent.
    pub fn remove_org_root(&mut self, name: &str) -> Result<()> {
        let n = self
            .db()
            .exec("DELETE FROM org_roots WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::not_found("org root", name));
        }
        Ok(())
    }

    // ---- trusted timestamp authorities ----

    /// Adds or replaces (by name) a trusted TSA; true when the name was
    /// new. The certificate must be fit to be a TSA trust anchor
    /// ([`check_tsa_certificate`]). `AlreadyExists` (kind `TSA
    /// certificate`) if the same certificate is listed under another name.
    pub fn put_tsa(&mut self, tsa: &TrustedTsa) -> Result<bool> {
        if tsa.name.trim().is_empty()
            || tsa.name.chars().count() > 200
            || tsa.name.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "name",
                "must be 1 to 200 characters without control characters",
            ));
        }
        check_tsa_certificate(tsa.certificate.pem())
            .map_err(|e| Error::invalid("certificate", e))?;
        if tsa
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_TSA_DESCRIPTION)
        {
            return Err(Error::invalid(
                "description",
                format!("must be at most {MAX_TSA_DESCRIPTION} characters"),
            ));
        }
        let sha256 = tsa.certificate.sha256().as_str();
        if let Some(other) = self.db().row(
            "SELECT name FROM tsas WHERE sha256 = ?1 AND name <> ?2",
            [sha256, tsa.name.as_str()],
            |r| r.get::<_, String>(0),
        )? {
            return Err(Error::exists("TSA certificate", other));
        }
        let existed = match read::tsa(&self.db(), &tsa.name) {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if !existed && read::tsas(&self.db())?.len() >= MAX_TSAS {
            return Err(Error::invalid(
                "name",
                format!(
                    "the organization already trusts {MAX_TSAS} TSAs, the most org/tsas.json lists"
                ),
            ));
        }
        self.db().exec(
            "INSERT INTO tsas (name, pem, sha256, description, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET pem = excluded.pem, sha256 = excluded.sha256,
                 description = excluded.description, added_at = excluded.added_at",
            (
                tsa.name.as_str(),
                tsa.certificate.pem(),
                sha256,
                tsa.description.as_deref(),
                self.now_text(),
            ),
        )?;
        Ok(!existed)
    }

    /// Removes a trusted TSA. `NotFound` if absent.
    pub fn remove_tsa(&mut self, name: &str) -> Result<()> {
        let n = self.db().exec("DELETE FROM tsas WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::not_found("TSA", name));
        }
        Ok(())
    }

    // ---- tokens ----

    /// Creates a token and returns it with its secret, the only time the
    /// secret exists outside its holder: only its SHA-256 is stored.
    /// `NotFound` if a namespace of `kind` does not exist; `Invalid` for a
    /// CI token without namespaces.
    pub fn create_token(
        &mut self,
        kind: &TokenKind,
        description: Option<&str>,
    ) -> Result<NewToken> {
        self.create_token_expiring(kind, description, None)
    }

    /// [`Tx::create_token`], with an expiry: from `expires_at` on, the
    /// token is refused like a revoked one. `Invalid` (`expires_at`) for
    /// an expiry not after the transaction's time.
    pub fn create_token_expiring(
        &mut self,
        kind: &TokenKind,
        description: Option<&str>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<NewToken> {
        let expires_at = expires_at.map(|t| t.to_offset(time::UtcOffset::UTC));
        if let Some(t) = expires_at {
            if t <= self.now {
                return Err(Error::invalid(
                    "expires_at",
                    format!("{} is not in the future", time_text(t)),
                ));
            }
        }
        if let TokenKind::Ci(list) = kind {
            if list.is_empty() {
                return Err(Error::invalid(
                    "namespaces",
                    "a CI token needs at least one namespace",
                ));
            }
        }
        for ns in kind.namespaces() {
            require_namespace(&self.db(), ns.as_str())?;
        }
        let id = format!("tok-{}", random_hex(8)?);
        let secret = TokenSecret(format!("ks_{}", random_hex(32)?));
        self.db().exec(
            "INSERT INTO tokens (id, kind, secret_sha256, description, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                &id,
                kind.name(),
                secret_hash(secret.expose()),
                description,
                self.now_text(),
                expires_at.map(time_text),
            ),
        )?;
        for ns in kind.namespaces() {
            self.db()
                .exec(
                    "INSERT INTO token_namespaces (token_id, namespace) VALUES (?1, ?2)",
                    [id.as_str(), ns.as_str()],
                )
                .map_err(exists_on_conflict("token namespace", ns.as_str()))?;
        }
        let token = Token {
            id,
            kind: kind.clone(),
            description: description.map(str::to_owned),
            created_at: super::parse_time("tokens", &self.now_text())?,
            revoked_at: None,
            expires_at: expires_at
                .map(|t| super::parse_time("tokens", &time_text(t)))
                .transpose()?,
            last_used_at: None,
        };
        Ok(NewToken { token, secret })
    }

    /// Records that token `id` was accepted at the transaction's time,
    /// unless a use at most [`super::LAST_USED_RESOLUTION`] earlier is
    /// already recorded (so two requests racing write once). Returns
    /// whether it wrote. Not audited: a use changes nothing.
    pub fn touch_token(&mut self, id: &str) -> Result<bool> {
        // Whole seconds, so the texts compare as the times do.
        let now = self.now.replace_nanosecond(0).unwrap_or(self.now);
        let cutoff = time_text(now - super::LAST_USED_RESOLUTION);
        let n = self.db().exec(
            "UPDATE tokens SET last_used_at = ?2
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
            (id, time_text(now), cutoff),
        )?;
        Ok(n > 0)
    }

    /// Revokes a token. `NotFound` if absent, `AlreadyExists` (kind
    /// `token revocation`) if it was already revoked.
    pub fn revoke_token(&mut self, id: &str) -> Result<()> {
        let token = read::token(&self.db(), id)?;
        if !token.is_active() {
            return Err(Error::exists("token revocation", id));
        }
        self.db().exec(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
            (id, self.now_text()),
        )?;
        Ok(())
    }

    // ---- timestamp tokens ----

    /// Records a timestamp token the server is about to hand out.
    /// `AlreadyExists` (kind `timestamp serial`) if its serial was issued
    /// before: a serial is never used twice.
    pub fn record_timestamp(&mut self, record: &TimestampRecord) -> Result<()> {
        self.db()
            .exec(
                "INSERT INTO timestamps (serial, gen_time, hash_alg, hash, policy, tsa_cert)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    &record.serial,
                    time_text(record.gen_time),
                    &record.hash_alg,
                    &record.hash,
                    &record.policy,
                    &record.tsa_cert,
                ),
            )
            .map_err(exists_on_conflict(
                "timestamp serial",
                record.serial.clone(),
            ))?;
        Ok(())
    }

    // ---- audit ----

    /// Appends an audit record, chained to the previous one.
    /// `details` must be JSON without floating-point numbers.
    pub fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
    ) -> Result<AuditRecord> {
        audit::append(&self.db(), self.now, actor, action, subject, details)
    }

    // ---- published files ----

    /// Records files the publisher produced (from
    /// [`keyshare_policy::repo::Repository::commit`] or `set_target`).
    ///
    /// An immutable path is recorded once: the same bytes again are
    /// skipped, different bytes are refused (`AlreadyExists`), since a
    /// consistent-snapshot file must never change. A mutable path
    /// (`metadata/timestamp.json`) gets a new row each time, and its version
    /// must go up. Paths are `metadata/...` or `targets/...`. Returns how
    /// many rows were added.
    pub fn record_published(&mut self, files: &[File]) -> Result<usize> {
        let mut added = 0;
        for file in files {
            let path = file.path.as_str();
            let field = || format!("published file {path}");
            if !(path.starts_with("metadata/") || path.starts_with("targets/"))
                || path
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return Err(Error::invalid(field(), "not a metadata/ or targets/ path"));
            }
            let (role, version) = metadata_role_version(path, &file.bytes)?;
            let sha256 = keyshare_policy::hash::sha256_hex(&file.bytes);
            if let Some(latest) = read::latest_published(&self.db(), path)? {
                if file.immutable || latest.immutable {
                    if latest.sha256 == sha256 && latest.immutable == file.immutable {
                        // Published again (a target back to earlier
                        // content): current again.
                        self.supersede(&super::lineage(path), latest.id)?;
                        continue;
                    }
                    return Err(Error::exists("published file", path));
                }
                if version <= latest.version {
                    return Err(Error::invalid(
                        field(),
                        format!(
                            "version {} is not newer than the published version {}",
                            version.unwrap_or_default(),
                            latest.version.unwrap_or_default()
                        ),
                    ));
                }
            }
            let version = version
                .map(i64::try_from)
                .transpose()
                .map_err(|e| Error::invalid(field(), e.to_string()))?;
            let lineage = super::lineage(path);
            const INSERT: &str = "INSERT INTO published_files
                     (path, role, version, bytes, sha256, immutable, created_at, lineage)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
            let row = (
                path,
                role,
                version,
                &file.bytes[..],
                &sha256,
                file.immutable,
                self.now_text(),
                &lineage,
            );
            let id = match &self.tx {
                TxConn::Sqlite(tx) => {
                    self.db().exec(INSERT, row)?;
                    tx.last_insert_rowid()
                }
                TxConn::Postgres(_) => {
                    self.db()
                        .one(&format!("{INSERT} RETURNING id"), row, |r| r.get(0))?
                }
            };
            // The row just inserted is current; the one before it is not.
            self.supersede_others(&lineage, id)?;
            added += 1;
            if path == "metadata/timestamp.json" && matches!(self.tx, TxConn::Postgres(_)) {
                // Delivered at commit: other servers sharing the database
                // catch up at once instead of at their next poll.
                self.db()
                    .batch(&format!("NOTIFY {}", super::PUBLISHED_CHANNEL))?;
            }
        }
        Ok(added)
    }

    /// Makes row `id` the current version of `lineage`: the row current
    /// before (if another) is superseded now, row `id` is not.
    fn supersede(&mut self, lineage: &str, id: i64) -> Result<()> {
        self.supersede_others(lineage, id)?;
        self.db()
            .exec("DELETE FROM published_superseded WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Makes row `id`, just inserted, the current version of `lineage`, and
    /// marks the row that was current (if any) superseded now. Neither
    /// touches the files' rows (`published_current` and
    /// `published_superseded` hold which is current and since when the
    /// others are not; schema version 11).
    fn supersede_others(&mut self, lineage: &str, id: i64) -> Result<()> {
        self.db().exec(
            "INSERT INTO published_superseded (id, superseded_at)
             SELECT id, ?3 FROM published_current WHERE lineage = ?1 AND id <> ?2",
            (lineage, id, self.now_text()),
        )?;
        self.db().exec(
            "INSERT INTO published_current (lineage, id) VALUES (?1, ?2)
             ON CONFLICT (lineage) DO UPDATE SET id = excluded.id",
            (lineage, id),
        )?;
        Ok(())
    }

    /// Deletes published files superseded at or before `cutoff` (never a
    /// root, never a current file: the schema's triggers refuse both), the
    /// oldest first and at most `limit` of them (`None`: all). Returns how
    /// many rows were deleted.
    pub fn prune_superseded(
        &mut self,
        cutoff: OffsetDateTime,
        limit: Option<usize>,
    ) -> Result<usize> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        // No limit: -1 to SQLite, NULL to PostgreSQL.
        let limit = match self.db().backend() {
            Backend::Sqlite => Some(limit.unwrap_or(-1)),
            Backend::Postgres => limit,
        };
        self.db().exec(
            "DELETE FROM published_files WHERE id IN (
                 SELECT s.id FROM published_superseded s
                 JOIN published_files f ON f.id = s.id
                 WHERE s.superseded_at <= ?1 AND f.role IS NOT 'root'
                 ORDER BY s.superseded_at LIMIT ?2)",
            (time_text(cutoff), limit),
        )
    }
}

/// The `Revoked` error for listing `what`, revoked by `r`.
/// Whether a change may give a namespace scopes that overlap other
/// namespaces' scopes ([`Tx::create_namespace_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlapRule {
    /// Refuse with `ScopeOverlap` (the default).
    Refuse,
    /// Allow it: an admin said so explicitly.
    Allow,
}

impl OverlapRule {
    fn check(self, entry: &NamespaceEntry, overlaps: &ScopeOverlaps) -> Result<()> {
        if self == Self::Refuse && !overlaps.is_empty() {
            return Err(Error::ScopeOverlap {
                namespace: entry.name.to_string(),
                overlaps: Box::new(overlaps.clone()),
            });
        }
        Ok(())
    }
}

fn revoked(what: String, r: &RevocationRecord) -> Error {
    Error::Revoked {
        what,
        revoked_at: time_text(r.revocation.revoked_at),
        reason: r.revocation.reason.clone(),
    }
}
