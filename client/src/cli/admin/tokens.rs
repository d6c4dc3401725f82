//! `keyshare admin token ...`.

use clap::{ArgGroup, Subcommand};

use keyshare_client::admin::{AdminClient, TokenExpiry, TokenKind};

use super::{done, emit, field, items};
use crate::cli::output;
use crate::cli::{duration_arg, rfc3339_arg, Error, OutputFormat};

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
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

pub(super) fn token_command(
    client: &AdminClient,
    c: TokenCommand,
    out: OutputFormat,
) -> Result<(), Error> {
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
