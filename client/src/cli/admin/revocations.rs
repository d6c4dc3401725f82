//! `keyshare admin revocation ...`.

use std::path::PathBuf;

use clap::{ArgGroup, Subcommand};
use serde_json::Value;

use keyshare_client::admin::{AdminClient, KeyMaterial, NewRevocation, RevokedSubject};

use super::keys::read_public_json;
use super::{emit, field, items};
use crate::cli::output;
use crate::cli::{read_public, rfc3339_arg, Error, OutputFormat, Public};

// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(super) enum RevocationCommand {
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

pub(super) fn revocation(
    client: &AdminClient,
    c: RevocationCommand,
    out: OutputFormat,
) -> Result<(), Error> {
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
