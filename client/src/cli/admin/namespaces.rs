//! `keyshare admin namespace ...` and the text view of a namespace.

use clap::Subcommand;
use serde_json::Value;

use keyshare_client::admin::{AdminClient, NewNamespace};

use super::{done, emit, field, items, rows};
use crate::cli::output;
use crate::cli::{Error, OutputFormat};

#[derive(Debug, Subcommand)]
pub(super) enum NamespaceCommand {
    /// Create a namespace.
    Create {
        /// Namespace name (`[a-z0-9][a-z0-9-]{0,62}`).
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

pub(super) fn namespace(
    client: &AdminClient,
    c: NamespaceCommand,
    out: OutputFormat,
) -> Result<(), Error> {
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
