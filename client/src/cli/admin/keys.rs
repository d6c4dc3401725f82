//! `keyshare admin key|identity|sub-delegation ...`: what a namespace trusts.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Subcommand};
use serde_json::{json, Value};

use keyshare_client::admin::{
    AdminClient, KeyMaterial, NewIdentity, NewKey, NewNamespaceRevocation, NewSubDelegation,
};

use keyshare_policy::keys::Key;

use super::{done, emit, field, items};
use crate::cli::{read_public, rfc3339_arg, Error, OutputFormat, Public};

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
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
        /// Also trust the key to sign the namespace's in-toto layouts
        /// (`keyshare export layout-keys`; the document becomes
        /// `keyshare.trust/v3`).
        #[arg(long)]
        layout_root: bool,
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
pub(super) enum IdentityCommand {
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
pub(super) enum SubDelegationCommand {
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

pub(super) fn key(client: &AdminClient, c: KeyCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        KeyCommand::Add {
            ns,
            key_file,
            key_json,
            id,
            not_before,
            not_after,
            description,
            layout_root,
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
                    layout_root,
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

pub(super) fn identity(
    client: &AdminClient,
    c: IdentityCommand,
    out: OutputFormat,
) -> Result<(), Error> {
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

pub(super) fn sub_delegation(
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
pub(super) fn read_public_json(path: &Path) -> Result<Value, Error> {
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
