//! `keyshare admin ...`: one subcommand per admin API endpoint
//! (`docs/cli.md`, `docs/server.md`).

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use keyshare_client::admin::{
    AdminClient, AuditQuery, KeyMaterial, NewIdentity, NewKey, NewNamespace,
    NewNamespaceRevocation, NewRevocation, NewSubDelegation, PeerRoot, PeerSpec, RevokedSubject,
    TokenExpiry, TokenKind,
};
use keyshare_client::blocking::Verifier;
use keyshare_client::Options;
use keyshare_policy::audit::Head;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::{Envelope, Timestamp};

use super::output;
use super::{duration_arg, read_public, read_text, rfc3339_arg, Error, OutputFormat, Public};

/// Environment variable holding the token.
pub(crate) const TOKEN_ENV: &str = "KEYSHARE_TOKEN";

/// A token from the command line; never shown by `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Base URL of the keyshare server.
    #[arg(
        long,
        global = true,
        env = "KEYSHARE_SERVER",
        default_value = "http://127.0.0.1:8439",
        value_name = "URL"
    )]
    server: String,
    /// Bearer token [env: KEYSHARE_TOKEN]. Prefer --token-file or the
    /// environment: command lines are visible to other local users.
    #[arg(long, global = true, value_name = "TOKEN", allow_hyphen_values = true)]
    token: Option<Secret>,
    /// File holding the bearer token (surrounding whitespace is ignored).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for an HTTPS server, in addition
    /// to the system's.
    #[arg(long, global = true, env = "KEYSHARE_SERVER_CA", value_name = "FILE")]
    server_ca: Option<PathBuf>,
    /// Output: a short summary for people, or the server's JSON.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Namespaces: create, list, show, delete, set the threshold.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Signing keys of a namespace.
    #[command(subcommand)]
    Key(KeyCommand),
    /// X.509 identities of a namespace.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Sub-delegations of a namespace.
    #[command(subcommand)]
    SubDelegation(SubDelegationCommand),
    /// Revoked keys and certificates.
    #[command(subcommand)]
    Revocation(RevocationCommand),
    /// Peer keyshare services.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// X.509 roots the organization trusts.
    #[command(subcommand)]
    Root(RootCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Who answers for an artifact name: a namespace or a peer.
    Resolve {
        /// Artifact name, e.g. registry.acme.io/team-a/app.
        artifact: String,
    },
}

#[derive(Debug, Subcommand)]
enum NamespaceCommand {
    /// Create a namespace.
    Create {
        /// Namespace name ([a-z0-9][a-z0-9-]{0,62}).
        name: String,
        /// Artifact pattern the namespace owns (repeatable).
        #[arg(long = "scope", value_name = "PATTERN", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Maintainer label (repeatable).
        #[arg(long = "maintainer", value_name = "M", num_args = 1..)]
        maintainers: Vec<String>,
        /// Create it even if a scope overlaps another namespace's (without
        /// it the server refuses, naming the namespaces and who would win).
        #[arg(long)]
        allow_overlap: bool,
    },
    /// Widen a namespace: add artifact patterns to its scopes (org admins).
    AddScope {
        /// Namespace.
        name: String,
        /// Artifact pattern to add (repeatable).
        #[arg(long = "scope", value_name = "PATTERN", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Add it even if it overlaps another namespace's scope.
        #[arg(long)]
        allow_overlap: bool,
    },
    /// List namespaces.
    List,
    /// Show a namespace with its keys (and how each stands: revoked, when
    /// and why; expired; expiring soon), identities, sub-delegations and its
    /// own revocations.
    Show {
        name: String,
        /// Flag keys whose not_after is at most this far ahead (`30d`,
        /// `12h`; server default 30d).
        #[arg(long, value_name = "DURATION")]
        expiring_within: Option<String>,
    },
    /// Delete a namespace.
    Delete { name: String },
    /// Set how many keys/identities must sign.
    Threshold { name: String, threshold: u32 },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Add a signing key to a namespace.
    #[command(group(ArgGroup::new("material").required(true).args(["key_file", "key_json"])))]
    Add {
        /// Namespace.
        ns: String,
        /// PEM public key (SubjectPublicKeyInfo): Ed25519, ECDSA P-256 or RSA.
        #[arg(long, value_name = "PEM_PUBLIC_KEY")]
        key_file: Option<PathBuf>,
        /// A TUF key object (JSON: keytype, scheme, keyval).
        #[arg(long, value_name = "FILE")]
        key_json: Option<PathBuf>,
        /// Key id (default: the TUF key id the server computes).
        #[arg(long)]
        id: Option<String>,
        /// RFC 3339 time; signatures made before it are untrusted.
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        not_before: Option<String>,
        /// RFC 3339 time; signatures made at or after it are untrusted.
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        not_after: Option<String>,
        /// Free text (who holds the key, what it is for).
        #[arg(long, value_name = "D")]
        description: Option<String>,
    },
    /// Remove a signing key from a namespace.
    Remove { ns: String, key_id: String },
    /// Revoke a key of a namespace in that namespace only (maintainers of
    /// the namespace may): its signatures made from --revoked-at on stop
    /// counting for the namespace's artifacts; other namespaces listing the
    /// same key are not affected. For every namespace, use `revocation add`
    /// (org admins).
    Revoke {
        /// Namespace.
        ns: String,
        /// The id the key is listed under in the namespace (its own keys or
        /// a sub-delegation's).
        key_id: String,
        /// Why (required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// RFC 3339 time from which signatures are untrusted (default: now).
        #[arg(long, value_name = "T")]
        revoked_at: Option<String>,
    },
    /// Withdraw a namespace's revocation of a key (org admins only).
    Unrevoke {
        /// Namespace.
        ns: String,
        /// The key's fingerprint (`spki_sha256`, as `namespace show` lists it).
        spki_sha256: String,
    },
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Add an X.509 identity (CA certificates + leaf subject) to a namespace.
    Add {
        ns: String,
        name: String,
        /// PEM CA certificate file (repeatable).
        #[arg(long = "ca-cert", value_name = "FILE", required = true, num_args = 1..)]
        ca_certs: Vec<PathBuf>,
        /// Required leaf certificate subject.
        #[arg(long, value_name = "SUBJ")]
        subject: String,
        /// RFC 3339 time.
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        not_before: Option<String>,
        /// RFC 3339 time.
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        not_after: Option<String>,
    },
    /// Remove an identity.
    Remove { ns: String, name: String },
}

#[derive(Debug, Subcommand)]
enum SubDelegationCommand {
    /// Add a sub-delegation: keys trusted for a part of the namespace.
    Add {
        ns: String,
        name: String,
        /// Artifact pattern inside the namespace's scopes (repeatable).
        #[arg(long = "scope", value_name = "P", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// How many of the keys must sign.
        #[arg(long)]
        threshold: u32,
        /// PEM public key, or JSON (a TUF key object or a trusted-key entry) (repeatable).
        #[arg(long = "key-file", value_name = "F", required = true, num_args = 1..)]
        key_files: Vec<PathBuf>,
    },
    /// Remove a sub-delegation.
    Remove { ns: String, name: String },
}

// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum RevocationCommand {
    /// Revoke a key (by its material, wherever it is listed) or a certificate.
    #[command(group(ArgGroup::new("subject").required(true).args([
        "key_id", "key_file", "key_json", "spki_sha256", "certificate", "certificate_sha256"
    ])))]
    Add {
        /// The key listed under this id (add --namespace when several
        /// namespaces use the id); the server revokes its material.
        #[arg(long, value_name = "ID")]
        key_id: Option<String>,
        /// The namespace whose --key-id is meant (the revocation still
        /// counts everywhere; `key revoke` revokes in one namespace only).
        #[arg(long, value_name = "NS", requires = "key_id")]
        namespace: Option<String>,
        /// The key itself: a PEM public key (SubjectPublicKeyInfo).
        #[arg(long, value_name = "PEM_PUBLIC_KEY")]
        key_file: Option<PathBuf>,
        /// The key itself: a TUF key object (JSON).
        #[arg(long, value_name = "FILE")]
        key_json: Option<PathBuf>,
        /// The key's fingerprint: SHA-256 (hex) of its DER SubjectPublicKeyInfo.
        #[arg(long, value_name = "HEX")]
        spki_sha256: Option<String>,
        /// A certificate (PEM file).
        #[arg(long, value_name = "PEM")]
        certificate: Option<PathBuf>,
        /// SHA-256 (hex) of the certificate's DER encoding.
        #[arg(long, value_name = "HEX")]
        certificate_sha256: Option<String>,
        /// Why (required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// RFC 3339 time from which signatures are untrusted (default: now).
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        revoked_at: Option<String>,
    },
    /// List revocations.
    List,
}

#[derive(Debug, Subcommand)]
enum PeerCommand {
    /// Add or replace a peer service.
    #[command(group(ArgGroup::new("root").required(true).args(["root_sha256", "root_keyid"])))]
    Put {
        name: String,
        /// Artifact pattern the peer answers for (repeatable).
        #[arg(long = "pattern", value_name = "P", required = true, num_args = 1..)]
        patterns: Vec<String>,
        /// The peer's base URL.
        #[arg(long)]
        url: String,
        /// SHA-256 (hex) of the peer's root metadata file.
        #[arg(long, value_name = "HEX")]
        root_sha256: Option<String>,
        /// Root key id of the peer (repeatable; with --root-threshold).
        #[arg(long = "root-keyid", value_name = "ID", num_args = 1.., requires = "root_threshold")]
        root_keyid: Vec<String>,
        /// How many of the root key ids must sign the peer's root.
        #[arg(long, value_name = "N", requires = "root_keyid")]
        root_threshold: Option<u32>,
        /// The peer owns its patterns before any namespace.
        #[arg(long)]
        terminating: bool,
    },
    /// List peers.
    List,
    /// Remove a peer.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum RootCommand {
    /// Add or replace an organization root certificate.
    Put {
        name: String,
        /// PEM certificate file.
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
    },
    /// List organization root certificates.
    List,
    /// Remove an organization root certificate.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    #[command(group(ArgGroup::new("kind").required(true).args(["org_admin", "maintainer", "ci"])))]
    Create {
        /// An org-admin token (everything).
        #[arg(long)]
        org_admin: bool,
        /// A maintainer token of this namespace.
        #[arg(long, value_name = "NS")]
        maintainer: Option<String>,
        /// A CI token of these namespaces (repeatable).
        #[arg(long, value_name = "NS", num_args = 1..)]
        ci: Vec<String>,
        /// Free text.
        #[arg(long, value_name = "D")]
        description: Option<String>,
        /// The token expires this long after it is created: `90d`, `12h`,
        /// `30m`, `45s` (at most ten years). Default: never.
        #[arg(long, value_name = "DURATION", value_parser = duration_arg, conflicts_with = "expires_at")]
        expires_in: Option<u64>,
        /// The token expires at this RFC 3339 time.
        #[arg(long, value_name = "T", value_parser = rfc3339_arg)]
        expires_at: Option<String>,
    },
    /// List tokens (never their secrets): state (active, expired,
    /// revoked), expiry and last use.
    List,
    /// Revoke a token.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// List audit records, newest first, with their details.
    List(AuditListArgs),
    /// Verify the audit log: fetch every record and check the hash chain
    /// here, check it against every published chain head available (the
    /// server's current timestamp, verified through the TUF workflow when
    /// the verifier cache pins a root; the heads the verifier cache
    /// remembered; each --head), then ask the server's own check. Exit 1
    /// naming the record on any mismatch.
    Verify {
        /// A head written down earlier (`SEQ:HASH`, as this command prints
        /// it), e.g. in a ticket or a ceremony log; repeatable.
        #[arg(long = "head", value_name = "SEQ:HASH", allow_hyphen_values = true)]
        heads: Vec<String>,
        /// The verifier cache whose pinned root verifies the published
        /// timestamp and whose remembered heads are checked (default
        /// `$XDG_CACHE_HOME/keyshare`, else `~/.cache/keyshare`).
        #[arg(long, env = "KEYSHARE_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

/// `keyshare admin audit list`.
#[derive(Debug, Args)]
struct AuditListArgs {
    /// Only records after this sequence number.
    #[arg(long, value_name = "SEQ")]
    after: Option<i64>,
    /// Only records before this sequence number (the next page, newest
    /// first: the smallest SEQ shown).
    #[arg(long, value_name = "SEQ")]
    before: Option<i64>,
    /// Only records written since this RFC 3339 time, or this long ago
    /// (`30m`, `12h`, `7d`).
    #[arg(long, value_name = "T|DURATION")]
    since: Option<String>,
    /// Only this action (`key.add`), or a prefix (`key.*`).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only records about this namespace (its keys, identities,
    /// sub-delegations, tokens, revocations of keys listed in it, expired
    /// CI keys swept from it).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this actor (`token:<id>`, `system`, `oidc:<issuer>#<subject>`).
    #[arg(long, value_name = "ACTOR")]
    actor: Option<String>,
    /// Oldest first (default: newest first).
    #[arg(long)]
    oldest_first: bool,
    /// At most this many records (default 100; the server's cap is 1000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Print the newest matching records (oldest first), then keep
    /// polling and print new ones as they are written, until interrupted
    /// or stdout is closed. Text mode prints one line per record, JSON
    /// mode one JSON object per line.
    #[arg(long, conflicts_with_all = ["before", "oldest_first"])]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, value_name = "SECS", default_value_t = 2, requires = "follow")]
    interval: u64,
}

/// Runs `keyshare admin ...`.
pub(crate) fn run(args: AdminArgs) -> Result<(), Error> {
    let token = token(&args)?;
    let client = match &args.server_ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            AdminClient::with_server_ca(&args.server, &token, &pem)?
        }
        None => AdminClient::new(&args.server, &token)?,
    };
    let out = args.output;
    match args.command {
        AdminCommand::Namespace(c) => namespace(&client, c, out),
        AdminCommand::Key(c) => key(&client, c, out),
        AdminCommand::Identity(c) => identity(&client, c, out),
        AdminCommand::SubDelegation(c) => sub_delegation(&client, c, out),
        AdminCommand::Revocation(c) => revocation(&client, c, out),
        AdminCommand::Peer(c) => peer(&client, c, out),
        AdminCommand::Root(c) => root(&client, c, out),
        AdminCommand::Token(c) => token_command(&client, c, out),
        AdminCommand::Audit(c) => audit(&client, c, args.server_ca.as_deref(), out),
        AdminCommand::Resolve { artifact } => {
            let v = client.resolve(&artifact)?;
            emit(out, &v, || match v.get("kind").and_then(Value::as_str) {
                Some("peer") => format!(
                    "{artifact} -> peer {} ({})",
                    field(&v, "peer"),
                    field(&v, "url")
                ),
                _ => format!(
                    "{artifact} -> namespace {} (scope {})",
                    field(&v, "namespace"),
                    field(&v, "scope")
                ),
            });
            Ok(())
        }
    }
}

/// The token: `--token-file`, else `--token`, else `KEYSHARE_TOKEN`.
fn token(args: &AdminArgs) -> Result<String, Error> {
    resolve_token(args.token.clone(), args.token_file.clone())
}

/// The token from `--token-file`, else `--token`, else `KEYSHARE_TOKEN`.
pub(crate) fn resolve_token(
    token: Option<Secret>,
    token_file: Option<PathBuf>,
) -> Result<String, Error> {
    if let Some(path) = &token_file {
        let t = read_text(path)?.trim().to_owned();
        if t.is_empty() {
            return Err(Error::Input(format!("{} is empty", path.display())));
        }
        return Ok(t);
    }
    if let Some(Secret(t)) = token {
        return Ok(t);
    }
    match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(Error::Input(format!(
            "no token: give --token-file FILE or --token TOKEN, or set {TOKEN_ENV}"
        ))),
    }
}

// ---- printing helpers ----

/// Prints `value` as JSON, or `text()` as text.
fn emit(out: OutputFormat, value: &Value, text: impl FnOnce() -> String) {
    match out {
        OutputFormat::Json => output::json(value),
        OutputFormat::Text => output::text(&text()),
    }
}

/// For 204 answers: nothing in JSON mode (the exit status says it), a line
/// in text mode.
fn done(out: OutputFormat, message: String) {
    if out == OutputFormat::Text {
        output::text(&message);
    }
}

/// A field as text: strings as they are, `-` when absent or null.
fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// The array at `key` (empty when absent).
fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn rows(list: &[Value], keys: &[&str]) -> Vec<Vec<String>> {
    list.iter()
        .map(|item| keys.iter().map(|k| field(item, k)).collect())
        .collect()
}

// ---- namespaces ----

fn namespace(client: &AdminClient, c: NamespaceCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        NamespaceCommand::Create {
            name,
            scopes,
            maintainers,
            allow_overlap,
        } => {
            let v = client.create_namespace(&NewNamespace {
                name,
                scopes,
                maintainers,
                allow_overlap,
            })?;
            emit(out, &v, || {
                format!(
                    "created namespace {} (scopes: {}; threshold {}){}",
                    field(&v, "name"),
                    field(&v, "scopes"),
                    field(&v, "threshold"),
                    overlaps_text(&v)
                )
            });
        }
        NamespaceCommand::AddScope {
            name,
            scopes,
            allow_overlap,
        } => {
            let v = client.add_scopes(&name, &scopes, allow_overlap)?;
            emit(out, &v, || {
                format!(
                    "namespace {}: scopes {}{}",
                    field(&v, "name"),
                    field(&v, "scopes"),
                    overlaps_text(&v)
                )
            });
        }
        NamespaceCommand::List => {
            let v = client.namespaces()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => output::table(
                    &["NAME", "SCOPES", "THRESHOLD", "MAINTAINERS", "CREATED"],
                    &rows(
                        items(&v, "namespaces"),
                        &["name", "scopes", "threshold", "maintainers", "created_at"],
                    ),
                ),
            }
        }
        NamespaceCommand::Show {
            name,
            expiring_within,
        } => {
            let v = client.namespace_expiring_within(&name, expiring_within.as_deref())?;
            emit(out, &v, || namespace_text(&v));
        }
        NamespaceCommand::Delete { name } => {
            client.delete_namespace(&name)?;
            done(out, format!("deleted namespace {name}"));
        }
        NamespaceCommand::Threshold { name, threshold } => {
            let v = client.set_threshold(&name, threshold)?;
            emit(out, &v, || {
                format!(
                    "namespace {}: threshold {}",
                    field(&v, "name"),
                    field(&v, "threshold")
                )
            });
        }
    }
    Ok(())
}

fn namespace_text(v: &Value) -> String {
    let mut s = format!(
        "namespace:   {}\nscopes:      {}\nmaintainers: {}\nthreshold:   {}\ncreated:     {}\n",
        field(v, "name"),
        field(v, "scopes"),
        field(v, "maintainers"),
        field(v, "threshold"),
        field(v, "created_at"),
    );
    let keys: Vec<Vec<String>> = items(v, "keys")
        .iter()
        .map(|k| {
            let key = k.get("key").cloned().unwrap_or(Value::Null);
            vec![
                field(k, "id"),
                field(&key, "keytype"),
                key_state(k),
                field(k, "not_before"),
                field(k, "not_after"),
                key_revocation(k),
                field(k, "description"),
            ]
        })
        .collect();
    s.push_str(&format!(
        "\nkeys (expiring within {} flagged):\n",
        seconds_text(v.get("expiring_within_seconds"))
    ));
    s.push_str(&output::render_table(
        &[
            "ID",
            "TYPE",
            "STATE",
            "NOT_BEFORE",
            "NOT_AFTER",
            "REVOCATION",
            "DESCRIPTION",
        ],
        &keys,
    ));
    let ids: Vec<Vec<String>> = items(v, "identities")
        .iter()
        .map(|i| {
            vec![
                field(i, "name"),
                field(i, "subject"),
                items(i, "ca_certs").len().to_string(),
            ]
        })
        .collect();
    s.push_str("\nidentities:\n");
    s.push_str(&output::render_table(
        &["NAME", "SUBJECT", "CA_CERTS"],
        &ids,
    ));
    let subs: Vec<Vec<String>> = items(v, "sub_delegations")
        .iter()
        .map(|d| {
            vec![
                field(d, "name"),
                field(d, "scopes"),
                field(d, "threshold"),
                items(d, "keys").len().to_string(),
            ]
        })
        .collect();
    s.push_str("\nsub-delegations:\n");
    s.push_str(&output::render_table(
        &["NAME", "SCOPES", "THRESHOLD", "KEYS"],
        &subs,
    ));
    let sub_keys: Vec<Vec<String>> = items(v, "sub_delegations")
        .iter()
        .flat_map(|d| {
            items(d, "keys").iter().map(move |k| {
                vec![
                    field(d, "name"),
                    field(k, "id"),
                    key_state(k),
                    field(k, "not_after"),
                    key_revocation(k),
                ]
            })
        })
        .collect();
    if !sub_keys.is_empty() {
        s.push_str("\nsub-delegation keys:\n");
        s.push_str(&output::render_table(
            &["SUB_DELEGATION", "ID", "STATE", "NOT_AFTER", "REVOCATION"],
            &sub_keys,
        ));
    }
    let own: Vec<Vec<String>> = items(v, "revocations")
        .iter()
        .map(|r| {
            let subject = r.get("subject").cloned().unwrap_or(Value::Null);
            vec![
                field(r, "key_id"),
                field(&subject, "spki_sha256"),
                field(r, "revoked_at"),
                field(r, "reason"),
            ]
        })
        .collect();
    s.push_str("\nrevoked by this namespace (in it only):\n");
    s.push_str(&output::render_table(
        &["KEY_ID", "SPKI_SHA256", "REVOKED_AT", "REASON"],
        &own,
    ));
    s.trim_end().to_owned()
}

/// A key's `state` as a word for people (`revoked`, `expires soon`, ...).
fn key_state(k: &Value) -> String {
    field(k, "state").replace('_', " ")
}

/// A key's `revocation` for people: `by namespace at T: reason`, with
/// `(not yet)` when it takes effect later; `-` when none.
fn key_revocation(k: &Value) -> String {
    match k.get("revocation") {
        Some(r) if r.get("in_effect") == Some(&Value::Bool(false)) => format!(
            "by {} from {} (not yet in effect): {}",
            field(r, "by"),
            field(r, "revoked_at"),
            field(r, "reason")
        ),
        Some(r) if r.is_object() => format!(
            "by {} at {}: {}",
            field(r, "by"),
            field(r, "revoked_at"),
            field(r, "reason")
        ),
        _ => "-".into(),
    }
}

/// Seconds as `30d`, `12h` or `90s`; `the server's horizon` when absent.
fn seconds_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_i64) {
        Some(s) if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        Some(s) if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        Some(s) => format!("{s}s"),
        None => "the server's horizon".into(),
    }
}

/// `; overlaps allowed: ...` for an answer with `overlaps` (namespaces and
/// a sample of who wins), else nothing.
fn overlaps_text(v: &Value) -> String {
    let Some(o) = v.get("overlaps").filter(|o| !o.is_null()) else {
        return String::new();
    };
    let names = field(o, "namespaces");
    if names == "-" {
        return String::new();
    }
    let sample: Vec<String> = items(o, "sample")
        .iter()
        .map(|p| {
            format!(
                "`{}` vs `{}` of {}: {} wins {}",
                field(p, "scope"),
                field(p, "other_scope"),
                field(p, "namespace"),
                field(p, "winner"),
                field(p, "example"),
            )
        })
        .collect();
    format!(
        "; overlap allowed with {} namespace(s) ({names}){}",
        field(o, "namespace_count"),
        if sample.is_empty() {
            String::new()
        } else {
            format!(": {}", sample.join("; "))
        }
    )
}

// ---- keys, identities, sub-delegations ----

fn key(client: &AdminClient, c: KeyCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        KeyCommand::Add {
            ns,
            key_file,
            key_json,
            id,
            not_before,
            not_after,
            description,
        } => {
            let material = match (key_file, key_json) {
                (Some(p), _) => KeyMaterial::Pem(read_public(&p, Public::Key)?),
                (None, Some(p)) => KeyMaterial::Tuf(read_public_json(&p)?),
                (None, None) => {
                    return Err(Error::Input("give --key-file or --key-json".into()));
                }
            };
            let v = client.add_key(
                &ns,
                &NewKey {
                    key: material,
                    id,
                    not_before,
                    not_after,
                    description,
                },
            )?;
            emit(out, &v, || {
                format!("added key {} to namespace {ns}", field(&v, "id"))
            });
        }
        KeyCommand::Remove { ns, key_id } => {
            client.remove_key(&ns, &key_id)?;
            done(out, format!("removed key {key_id} from namespace {ns}"));
        }
        KeyCommand::Revoke {
            ns,
            key_id,
            reason,
            revoked_at,
        } => {
            let v = client.revoke_namespace_key(
                &ns,
                &NewNamespaceRevocation {
                    key_id,
                    reason,
                    revoked_at,
                },
            )?;
            emit(out, &v, || {
                format!(
                    "revoked key {} (SPKI SHA-256 {}) in namespace {} only, from {}: {}",
                    field(&v, "key_id"),
                    field(v.get("subject").unwrap_or(&Value::Null), "spki_sha256"),
                    field(&v, "namespace"),
                    field(&v, "revoked_at"),
                    field(&v, "reason")
                )
            });
        }
        KeyCommand::Unrevoke { ns, spki_sha256 } => {
            client.remove_namespace_revocation(&ns, &spki_sha256)?;
            done(
                out,
                format!("withdrew namespace {ns}'s revocation of key {spki_sha256}"),
            );
        }
    }
    Ok(())
}

fn identity(client: &AdminClient, c: IdentityCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        IdentityCommand::Add {
            ns,
            name,
            ca_certs,
            subject,
            not_before,
            not_after,
        } => {
            let ca_certs = ca_certs
                .iter()
                .map(|p| read_public(p, Public::Certificate))
                .collect::<Result<Vec<_>, _>>()?;
            let v = client.add_identity(
                &ns,
                &NewIdentity {
                    name,
                    ca_certs,
                    subject,
                    not_before,
                    not_after,
                },
            )?;
            emit(out, &v, || {
                format!(
                    "added identity {} (subject {}) to namespace {ns}",
                    field(&v, "name"),
                    field(&v, "subject")
                )
            });
        }
        IdentityCommand::Remove { ns, name } => {
            client.remove_identity(&ns, &name)?;
            done(out, format!("removed identity {name} from namespace {ns}"));
        }
    }
    Ok(())
}

fn sub_delegation(
    client: &AdminClient,
    c: SubDelegationCommand,
    out: OutputFormat,
) -> Result<(), Error> {
    match c {
        SubDelegationCommand::Add {
            ns,
            name,
            scopes,
            threshold,
            key_files,
        } => {
            let keys = key_files
                .iter()
                .map(|p| trusted_key(p))
                .collect::<Result<Vec<_>, _>>()?;
            let v = client.add_sub_delegation(
                &ns,
                &NewSubDelegation {
                    name,
                    scopes,
                    threshold,
                    keys,
                },
            )?;
            emit(out, &v, || {
                format!(
                    "added sub-delegation {} to namespace {ns} (scopes: {}; {} of {} keys)",
                    field(&v, "name"),
                    field(&v, "scopes"),
                    field(&v, "threshold"),
                    items(&v, "keys").len()
                )
            });
        }
        SubDelegationCommand::Remove { ns, name } => {
            client.remove_sub_delegation(&ns, &name)?;
            done(
                out,
                format!("removed sub-delegation {name} from namespace {ns}"),
            );
        }
    }
    Ok(())
}

/// A JSON file that must hold only public material ([`read_public`]).
fn read_public_json(path: &Path) -> Result<Value, Error> {
    parse_json(path, &read_public(path, Public::Key)?)
}

fn parse_json(path: &Path, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::Input(format!("{}: not JSON ({e})", path.display())))
}

/// A trusted-key entry (`{"id", "key"}`) from a file holding a PEM public
/// key, a TUF key object, or a trusted-key entry; the id is the TUF key id.
fn trusted_key(path: &Path) -> Result<Value, Error> {
    let text = read_public(path, Public::Key)?;
    let bad = |what: String| Error::Input(format!("{}: {what}", path.display()));
    let key: Key = if text.trim_start().starts_with('{') {
        let v = parse_json(path, &text)?;
        if v.get("key").is_some() {
            return Ok(v);
        }
        serde_json::from_value(v).map_err(|e| bad(format!("not a TUF key object ({e})")))?
    } else {
        Key::from_spki_pem(&text).map_err(|e| match e {
            keyshare_policy::Error::BadKey { message, .. } => bad(message),
            other => bad(other.to_string()),
        })?
    };
    let id = key.key_id().map_err(|e| bad(e.to_string()))?;
    let key = serde_json::to_value(&key).map_err(|e| bad(e.to_string()))?;
    Ok(json!({ "id": id.as_str(), "key": key }))
}

// ---- organization documents ----

fn revocation(client: &AdminClient, c: RevocationCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        RevocationCommand::Add {
            key_id,
            namespace,
            key_file,
            key_json,
            spki_sha256,
            certificate,
            certificate_sha256,
            reason,
            revoked_at,
        } => {
            let subject = if let Some(id) = key_id {
                RevokedSubject::KeyId { namespace, id }
            } else if let Some(p) = key_file {
                RevokedSubject::Key(KeyMaterial::Pem(read_public(&p, Public::Key)?))
            } else if let Some(p) = key_json {
                RevokedSubject::Key(KeyMaterial::Tuf(read_public_json(&p)?))
            } else if let Some(h) = spki_sha256 {
                RevokedSubject::SpkiSha256(h)
            } else if let Some(p) = certificate {
                RevokedSubject::CertificatePem(read_public(&p, Public::Certificate)?)
            } else if let Some(h) = certificate_sha256 {
                RevokedSubject::CertificateSha256(h)
            } else {
                return Err(Error::Input(
                    "give --key-id, --key-file, --key-json, --spki-sha256, --certificate or --certificate-sha256".into(),
                ));
            };
            let v = client.add_revocation(&NewRevocation {
                subject,
                reason,
                revoked_at,
            })?;
            emit(out, &v, || {
                format!(
                    "revoked {} from {}: {}",
                    revoked_subject(&v),
                    field(&v, "revoked_at"),
                    field(&v, "reason")
                )
            });
        }
        RevocationCommand::List => {
            let v = client.revocations()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = items(&v, "revocations")
                        .iter()
                        .map(|r| {
                            vec![
                                revoked_subject(r),
                                field(r, "revoked_at"),
                                field(r, "reason"),
                            ]
                        })
                        .collect();
                    output::table(&["SUBJECT", "REVOKED_AT", "REASON"], &rows);
                }
            }
        }
    }
    Ok(())
}

/// `key <fingerprint> (listed as ns/id)` or `certificate HEX` of a revocation answer.
fn revoked_subject(v: &Value) -> String {
    let subject = v.get("subject").unwrap_or(v);
    if let Some(h) = subject.get("spki_sha256").and_then(Value::as_str) {
        let named = v.get("named_as").filter(|n| !n.is_null()).map(|n| {
            format!(
                " (listed as {}/{})",
                field(n, "namespace"),
                field(n, "key_id")
            )
        });
        format!("key {h}{}", named.unwrap_or_default())
    } else if let Some(h) = subject.get("certificate_sha256").and_then(Value::as_str) {
        format!("certificate {h}")
    } else {
        field(v, "subject")
    }
}

fn peer(client: &AdminClient, c: PeerCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        PeerCommand::Put {
            name,
            patterns,
            url,
            root_sha256,
            root_keyid,
            root_threshold,
            terminating,
        } => {
            let root = match (root_sha256, root_threshold) {
                (Some(h), _) => PeerRoot::Sha256(h),
                (None, Some(threshold)) => PeerRoot::Keys {
                    keyids: root_keyid,
                    threshold,
                },
                (None, None) => {
                    return Err(Error::Input(
                        "give --root-sha256, or --root-keyid with --root-threshold".into(),
                    ))
                }
            };
            let v = client.put_peer(
                &name,
                &PeerSpec {
                    patterns,
                    url,
                    root,
                    terminating,
                },
            )?;
            emit(out, &v, || {
                format!(
                    "peer {}: {} -> {}{}",
                    field(&v, "name"),
                    field(&v, "patterns"),
                    field(&v, "url"),
                    if v.get("terminating") == Some(&Value::Bool(true)) {
                        " (terminating)"
                    } else {
                        ""
                    }
                )
            });
        }
        PeerCommand::List => {
            let v = client.peers()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = items(&v, "peers")
                        .iter()
                        .map(|p| {
                            let root = p.get("root").cloned().unwrap_or(Value::Null);
                            let root = if root.get("sha256").is_some() {
                                format!("sha256 {}", field(&root, "sha256"))
                            } else {
                                format!(
                                    "{} of {}",
                                    field(&root, "threshold"),
                                    field(&root, "keyids")
                                )
                            };
                            vec![
                                field(p, "name"),
                                field(p, "patterns"),
                                field(p, "url"),
                                root,
                                field(p, "terminating"),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "PATTERNS", "URL", "ROOT", "TERMINATING"], &rows);
                }
            }
        }
        PeerCommand::Delete { name } => {
            client.delete_peer(&name)?;
            done(out, format!("deleted peer {name}"));
        }
    }
    Ok(())
}

fn root(client: &AdminClient, c: RootCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        RootCommand::Put { name, pem } => {
            let v = client.put_root(&name, &read_public(&pem, Public::Certificate)?)?;
            emit(out, &v, || {
                format!(
                    "root {}: sha256 {} (published as {})",
                    field(&v, "name"),
                    field(&v, "sha256"),
                    field(&v, "target")
                )
            });
        }
        RootCommand::List => {
            let v = client.roots()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => output::table(
                    &["NAME", "SHA256", "ADDED"],
                    &rows(items(&v, "roots"), &["name", "sha256", "added_at"]),
                ),
            }
        }
        RootCommand::Delete { name } => {
            client.delete_root(&name)?;
            done(out, format!("deleted root {name}"));
        }
    }
    Ok(())
}

// ---- tokens ----

fn token_command(client: &AdminClient, c: TokenCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        TokenCommand::Create {
            org_admin,
            maintainer,
            ci,
            description,
            expires_in,
            expires_at,
        } => {
            let kind = match (org_admin, maintainer) {
                (true, _) => TokenKind::OrgAdmin,
                (false, Some(ns)) => TokenKind::Maintainer(ns),
                (false, None) => TokenKind::Ci(ci),
            };
            let expiry = match (expires_in, expires_at) {
                (Some(secs), _) => Some(TokenExpiry::In(secs)),
                (None, Some(t)) => Some(TokenExpiry::At(t)),
                (None, None) => None,
            };
            let v = client.create_token_expiring(&kind, description.as_deref(), expiry.as_ref())?;
            emit(out, &v, || {
                let scope = match field(&v, "namespaces").as_str() {
                    "-" => String::new(),
                    list => format!(" ({list})"),
                };
                let expires = match field(&v, "expires_at").as_str() {
                    "-" => String::new(),
                    t => format!(", expires {t}"),
                };
                format!(
                    "created {} token {}{scope}{expires}\nsecret: {}\nThe secret is shown only this once: store it now.",
                    field(&v, "kind"),
                    field(&v, "id"),
                    field(&v, "secret"),
                )
            });
        }
        TokenCommand::List => {
            let v = client.tokens()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = items(&v, "tokens")
                        .iter()
                        .map(|t| {
                            let state = match (field(t, "state").as_str(), field(t, "revoked_at")) {
                                ("revoked", at) => format!("revoked {at}"),
                                (state, _) => state.to_owned(),
                            };
                            let last_used = match field(t, "last_used_at").as_str() {
                                "-" => "never".to_owned(),
                                at => at.to_owned(),
                            };
                            let expires = match field(t, "expires_at").as_str() {
                                "-" => "never".to_owned(),
                                at => at.to_owned(),
                            };
                            vec![
                                field(t, "id"),
                                field(t, "kind"),
                                field(t, "namespaces"),
                                state,
                                field(t, "created_at"),
                                expires,
                                last_used,
                                field(t, "description"),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "ID",
                            "KIND",
                            "NAMESPACES",
                            "STATE",
                            "CREATED",
                            "EXPIRES",
                            "LAST_USED",
                            "DESCRIPTION",
                        ],
                        &rows,
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id)?;
            done(out, format!("revoked token {id}"));
        }
    }
    Ok(())
}

// ---- audit ----

fn audit(
    client: &AdminClient,
    c: AuditCommand,
    server_ca: Option<&Path>,
    out: OutputFormat,
) -> Result<(), Error> {
    match c {
        AuditCommand::List(a) => audit_list(client, a, out)?,
        AuditCommand::Verify { heads, cache_dir } => {
            audit_verify(client, &heads, cache_dir, server_ca, out)?;
        }
    }
    Ok(())
}

/// The columns of an audit record in text mode: every field but the
/// hashes, the details as compact JSON.
fn audit_row(r: &Value) -> Vec<String> {
    let details = match r.get("details") {
        None | Some(Value::Null) => "-".to_owned(),
        Some(d) => d.to_string(),
    };
    vec![
        field(r, "seq"),
        field(r, "time"),
        field(r, "actor"),
        field(r, "action"),
        field(r, "subject"),
        details,
    ]
}

const AUDIT_COLUMNS: [&str; 6] = ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"];

/// `keyshare admin audit list`: see [`AuditListArgs`].
fn audit_list(client: &AdminClient, a: AuditListArgs, out: OutputFormat) -> Result<(), Error> {
    let since = match &a.since {
        None => None,
        Some(t) if super::parse_rfc3339(t).is_ok() => Some(t.clone()),
        Some(t) => {
            let secs = super::duration_arg(t).map_err(|_| {
                Error::Input(format!(
                    "--since `{t}`: {}, or a duration (30m, 12h, 7d)",
                    super::RFC3339_EXAMPLE
                ))
            })?;
            let ago = i64::try_from(secs)
                .ok()
                .and_then(|secs| {
                    time::OffsetDateTime::now_utc().checked_sub(time::Duration::seconds(secs))
                })
                .ok_or_else(|| Error::Input(format!("--since `{t}`: too long ago")))?;
            Some(
                ago.format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| Error::Input(format!("--since `{t}`: {e}")))?,
            )
        }
    };
    let mut query = AuditQuery {
        after: a.after,
        before: a.before,
        since,
        action: a.action,
        actor: a.actor,
        namespace: a.namespace,
        newest_first: !a.oldest_first,
        limit: a.limit,
    };
    if !a.follow {
        let v = client.audit_query(&query)?;
        match out {
            OutputFormat::Json => output::json(&v),
            OutputFormat::Text => {
                let rows: Vec<Vec<String>> = items(&v, "records").iter().map(audit_row).collect();
                output::table(&AUDIT_COLUMNS, &rows);
            }
        }
        return Ok(());
    }
    // --follow: the newest matching records, printed oldest first, then
    // every record written after the last one printed.
    query.newest_first = true;
    query.limit = Some(a.limit.unwrap_or(10));
    let first = client.audit_query(&query)?;
    let mut last = a.after.unwrap_or(0);
    let print = |records: &[Value], last: &mut i64| {
        for r in records {
            match out {
                OutputFormat::Json => output::json_line(r),
                OutputFormat::Text => output::text(&audit_row(r).join("  ")),
            }
            if let Some(seq) = r.get("seq").and_then(Value::as_i64) {
                *last = (*last).max(seq);
            }
        }
    };
    if out == OutputFormat::Text {
        output::text(&AUDIT_COLUMNS.join("  "));
    }
    let mut newest: Vec<Value> = items(&first, "records").to_vec();
    newest.reverse();
    print(&newest, &mut last);
    query.newest_first = false;
    query.limit = Some(keyshare_client::admin::AUDIT_PAGE);
    let interval = std::time::Duration::from_secs(a.interval.max(1));
    while !output::stdout_closed() {
        query.after = Some(last);
        let page = client.audit_query(&query)?;
        let records = items(&page, "records");
        print(records, &mut last);
        if records.len() < keyshare_client::admin::AUDIT_PAGE as usize {
            std::thread::sleep(interval);
        }
    }
    Ok(())
}

/// The head of the server's current timestamp, and how it was obtained.
struct PublishedHead {
    head: Option<Head>,
    timestamp_version: u64,
    /// `verified` or why not.
    how: String,
    verified: bool,
}

/// `keyshare admin audit verify`: see [`AuditCommand::Verify`].
fn audit_verify(
    client: &AdminClient,
    given: &[String],
    cache_dir: Option<PathBuf>,
    server_ca: Option<&Path>,
    out: OutputFormat,
) -> Result<(), Error> {
    let mut heads: Vec<(Head, String)> = Vec::new();
    for g in given {
        let head: Head = g
            .parse()
            .map_err(|_| Error::Input(format!("--head `{g}`: expected SEQ:HASH (a sequence number and the 64 hex digits of that record's hash)")))?;
        heads.push((head, "given with --head".to_owned()));
    }
    let cache = verifier_cache(cache_dir, server_ca, client.base_url())?;
    let published = match &cache {
        Cache::Pinned { verifier, .. } => {
            let state = verifier.refresh()?;
            PublishedHead {
                head: state.audit_head,
                timestamp_version: state.timestamp_version,
                how: format!(
                    "verified against the root pinned in {}",
                    verifier.inner().options().cache_dir.display()
                ),
                verified: true,
            }
        }
        Cache::None(why) => {
            let bytes = client.published_timestamp()?;
            let url = format!("{}/metadata/timestamp.json", client.base_url());
            let envelope = Envelope::<Timestamp>::parse("timestamp", &bytes)
                .map_err(|e| Error::Input(format!("{url}: {e}")))?;
            PublishedHead {
                head: Head::from_timestamp(&envelope.signed)
                    .map_err(|e| Error::Input(format!("{url}: {e}")))?,
                timestamp_version: envelope.signed.version,
                how: format!("unverified: {why}"),
                verified: false,
            }
        }
    };
    if let Some(head) = &published.head {
        let label = if published.verified {
            format!("published in timestamp v{}", published.timestamp_version)
        } else {
            format!(
                "published in timestamp v{} (unverified)",
                published.timestamp_version
            )
        };
        heads.push((head.clone(), label));
    }
    let mut remembered = 0;
    if let Cache::Pinned { verifier, dir } = &cache {
        for h in verifier.inner().remembered_heads()? {
            let Ok(head) = Head::new(h.seq, &h.hash) else {
                continue;
            };
            if published.head.as_ref() == Some(&head) {
                continue;
            }
            remembered += 1;
            heads.push((
                head,
                format!(
                    "remembered in the verifier cache {} (timestamp v{})",
                    dir.display(),
                    h.timestamp_version
                ),
            ));
        }
    }
    let checked = heads.len();
    let summary = match client.check_audit_log(heads)? {
        Ok(summary) => summary,
        Err(e) => {
            if out == OutputFormat::Json {
                output::json(&json!({
                    "ok": false,
                    "first_bad_seq": e.first_bad_seq(),
                    "reason": e.to_string(),
                }));
            }
            return Err(Error::Failed(e.to_string()));
        }
    };
    // The server's own check also covers the timestamps it still stores.
    let server = client.verify_audit()?;
    if server.get("ok") != Some(&Value::Bool(true)) {
        if out == OutputFormat::Json {
            output::json(&server);
        }
        return Err(Error::Failed(if server.get("published_in").is_some() {
            format!("the server's check: {}", field(&server, "reason"))
        } else {
            format!(
                "audit chain broken at record {}: {}",
                field(&server, "first_bad_seq"),
                field(&server, "reason")
            )
        }));
    }
    let value = json!({
        "ok": true,
        "records": summary.head.seq,
        "hash": summary.head.hash,
        "heads_checked": checked,
        "published_head": published.head.as_ref().map(|h| json!({
            "seq": h.seq,
            "hash": h.hash,
            "timestamp_version": published.timestamp_version,
            "verified": published.verified,
        })),
        "remembered_heads": remembered,
        "given_heads": given.len(),
        "server": server,
    });
    emit(out, &value, || {
        let mut against = vec![match &published.head {
            Some(h) => format!(
                "the head of timestamp v{} (record {}; {})",
                published.timestamp_version, h.seq, published.how
            ),
            None => format!(
                "no head: timestamp v{} carries none ({})",
                published.timestamp_version, published.how
            ),
        }];
        if remembered > 0 {
            against.push(format!(
                "{remembered} head(s) remembered by the verifier cache"
            ));
        }
        if !given.is_empty() {
            against.push(format!("{} head(s) given with --head", given.len()));
        }
        format!(
            "audit chain ok: {} records, head {}\nagrees with: {}; the server's own check agrees ({} published heads)",
            summary.head.seq,
            summary.head.hash,
            against.join(", "),
            field(&server, "published_heads"),
        )
    });
    Ok(())
}

/// The verifier cache `audit verify` uses.
enum Cache {
    /// It pins the root of this server.
    Pinned {
        verifier: Box<Verifier>,
        dir: PathBuf,
    },
    /// None usable, and why.
    None(String),
}

/// The verifier cache at `dir` (or the default), if it pins the root of
/// the repository at `server`.
fn verifier_cache(
    dir: Option<PathBuf>,
    server_ca: Option<&Path>,
    server: &str,
) -> Result<Cache, Error> {
    let Some(dir) = dir.or_else(keyshare_client::default_cache_dir) else {
        return Ok(Cache::None("no verifier cache directory".into()));
    };
    let mut options = Options::new(dir.clone());
    if let Some(ca) = server_ca {
        options.server_ca = Some(std::fs::read(ca).map_err(|source| Error::Read {
            path: ca.to_owned(),
            source,
        })?);
    }
    let verifier = Verifier::new(options)?;
    match verifier.inner().url() {
        Ok(url) if url.trim_end_matches('/') == server.trim_end_matches('/') => Ok(Cache::Pinned {
            verifier: Box::new(verifier),
            dir,
        }),
        Ok(url) => Ok(Cache::None(format!(
            "the verifier cache {} pins {url}, not this server",
            dir.display()
        ))),
        Err(keyshare_client::Error::NotInitialized { .. }) => Ok(Cache::None(format!(
            "no root pinned in {}; run `keyshare init` to verify it",
            dir.display()
        ))),
        Err(e) => Err(e.into()),
    }
}
