//! `keyshare admin ...`: one subcommand per admin API endpoint
//! (`docs/cli.md`, `docs/server.md`), a file per resource; the
//! arguments, the token and the printing helpers they share here.

mod audit;
mod keys;
mod namespaces;
mod peers;
mod revocations;
mod roots;
mod tokens;
mod tsas;

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Subcommand};
use serde_json::Value;

use keyshare_client::admin::AdminClient;

use audit::AuditCommand;
use keys::{IdentityCommand, KeyCommand, SubDelegationCommand};
use namespaces::NamespaceCommand;
use peers::PeerCommand;
use revocations::RevocationCommand;
use roots::RootCommand;
use tokens::TokenCommand;
use tsas::TsaCommand;

use super::output;
use super::{read_text, Error, OutputFormat};

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
    /// Timestamp authorities the organization trusts (org/tsas.json).
    #[command(subcommand)]
    Tsa(TsaCommand),
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
        AdminCommand::Namespace(c) => namespaces::namespace(&client, c, out),
        AdminCommand::Key(c) => keys::key(&client, c, out),
        AdminCommand::Identity(c) => keys::identity(&client, c, out),
        AdminCommand::SubDelegation(c) => keys::sub_delegation(&client, c, out),
        AdminCommand::Revocation(c) => revocations::revocation(&client, c, out),
        AdminCommand::Peer(c) => peers::peer(&client, c, out),
        AdminCommand::Root(c) => roots::root(&client, c, out),
        AdminCommand::Tsa(c) => tsas::tsa(&client, c, out),
        AdminCommand::Token(c) => tokens::token_command(&client, c, out),
        AdminCommand::Audit(c) => audit::audit(&client, c, args.server_ca.as_deref(), out),
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
