//! `keyshare ci request` / `keyshare ci end`: ephemeral CI delegations.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use keyshare_client::admin::AdminClient;
use keyshare_policy::datetime::{parse_duration_as, rfc3339, DurationSyntax};
use keyshare_policy::keys::Scheme;

use super::{output, read_text, Error, OutputFormat};

/// `keyshare ci ...`.
#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    #[command(subcommand)]
    command: CiCommand,
}

#[derive(Debug, Subcommand)]
enum CiCommand {
    /// Generate a signing key here, prove possession of it, and get an
    /// ephemeral delegation for it in a namespace. The private key never
    /// leaves this machine: it is written (mode 0600) to --key-out.
    Request(RequestArgs),
    /// End a delegation before it expires.
    End(EndArgs),
}

/// The job's credential.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Credential {
    /// Environment variable holding the job's OIDC ID token (e.g. one the
    /// CI platform provides, such as `KEYSHARE_ID_TOKEN`).
    #[arg(long, value_name = "VAR")]
    oidc_token_env: Option<String>,
    /// File holding the job's OIDC ID token or CI token (first line).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyScheme {
    Ed25519,
    Ecdsa,
    Rsa,
}

#[derive(Debug, Args)]
struct RequestArgs {
    /// The keyshare server (`https://...`).
    #[arg(long, env = "KEYSHARE_SERVER", value_name = "URL")]
    server: String,
    /// The namespace to sign for.
    #[arg(long, value_name = "NS")]
    namespace: String,
    #[command(flatten)]
    credential: Credential,
    /// Lifetime: seconds, or with a unit (`90s`, `5m`, `1h`); at most the
    /// server's `ci.max_ttl` (default: the server's `ci.default_ttl`).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Where to write the private key (PKCS#8 PEM, mode 0600; must not exist).
    #[arg(long, value_name = "FILE", default_value = "keyshare-ci-key.pem")]
    key_out: PathBuf,
    /// Where to write the certificate chain, if the server issues one.
    #[arg(long, value_name = "FILE")]
    cert_out: Option<PathBuf>,
    /// Key type.
    #[arg(long, value_enum, default_value_t = KeyScheme::Ed25519)]
    scheme: KeyScheme,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct EndArgs {
    /// The keyshare server.
    #[arg(long, env = "KEYSHARE_SERVER", value_name = "URL")]
    server: String,
    /// The delegation id (`<namespace>.<key id>`).
    id: String,
    #[command(flatten)]
    credential: Credential,
    /// Output mode: in JSON nothing is printed (the server answers 204;
    /// the exit status says it ended), as for the admin commands.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub(crate) fn run(args: CiArgs) -> Result<(), Error> {
    match args.command {
        CiCommand::Request(a) => request(a),
        CiCommand::End(a) => {
            let client = AdminClient::new(&a.server, &credential(&a.credential)?)?;
            keyshare_client::ci::end(&client, &a.id)?;
            if a.output == OutputFormat::Text {
                output::text(&format!("ended {}", a.id));
            }
            Ok(())
        }
    }
}

fn credential(c: &Credential) -> Result<String, Error> {
    let token = match (&c.oidc_token_env, &c.token_file) {
        (Some(var), _) => std::env::var(var)
            .map_err(|_| Error::Input(format!("environment variable {var} is not set")))?,
        (None, Some(file)) => read_text(file)?,
        (None, None) => return Err(Error::Input("give --oidc-token-env or --token-file".into())),
    };
    let token = token.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(Error::Input("the token is empty".into()));
    }
    Ok(token)
}

/// `90`, `90s`, `5m`, `1h`, `1h30m` → seconds
/// ([`DurationSyntax::SECONDS_TO_HOURS`]).
fn parse_ttl(text: &str) -> Result<u64, Error> {
    let bad = |e: String| Error::Input(format!("--ttl `{text}`: {e}"));
    let d = parse_duration_as(text, DurationSyntax::SECONDS_TO_HOURS).map_err(bad)?;
    u64::try_from(d.whole_seconds())
        .map_err(|_| bad(DurationSyntax::SECONDS_TO_HOURS.expected.to_owned()))
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    keyshare_fsio::write_new(path, bytes, 0o600)
        .map_err(|e| Error::Input(format!("cannot create {}: {}", path.display(), e.source)))
}

fn request(a: RequestArgs) -> Result<(), Error> {
    let ttl = a.ttl.as_deref().map(parse_ttl).transpose()?;
    if a.key_out.exists() {
        return Err(Error::Input(format!(
            "{} already exists; give another --key-out",
            a.key_out.display()
        )));
    }
    let client = AdminClient::new(&a.server, &credential(&a.credential)?)?;
    let scheme = match a.scheme {
        KeyScheme::Ed25519 => Scheme::Ed25519,
        KeyScheme::Ecdsa => Scheme::EcdsaP256Sha256,
        KeyScheme::Rsa => Scheme::RsaPssSha256,
    };
    let granted = keyshare_client::ci::request(&client, &a.namespace, scheme, ttl)?;
    let pem = granted
        .key
        .to_pkcs8_pem()
        .map_err(|e| Error::Input(format!("cannot encode the key: {e}")))?;
    write_private(&a.key_out, &pem)?;
    let d = &granted.delegation;
    let chain = d.certificate_chain_pem.as_deref();
    if let (Some(path), Some(chain)) = (&a.cert_out, chain) {
        std::fs::write(path, chain)
            .map_err(|e| Error::Input(format!("cannot write {}: {e}", path.display())))?;
    }
    match a.output {
        OutputFormat::Json => {
            let mut out = serde_json::to_value(d)
                .map_err(|e| Error::Input(format!("cannot encode the delegation: {e}")))?;
            if let Value::Object(map) = &mut out {
                map.insert("key_file".into(), json!(a.key_out.display().to_string()));
            }
            output::json(&out);
        }
        OutputFormat::Text => {
            output::text(&format!(
                "delegation: {}\nnamespace: {}\nkey id: {}\nkey file: {}\nnot after: {}\ntimestamp version: {}\nnamespace version: {}",
                d.id,
                d.namespace,
                d.key_id,
                a.key_out.display(),
                rfc3339(d.not_after),
                d.timestamp_version,
                d.namespace_version
                    .map_or_else(|| "null".to_owned(), |v| v.to_string()),
            ));
            match (&a.cert_out, chain) {
                (Some(path), Some(_)) => {
                    output::text(&format!("certificate chain: {}", path.display()))
                }
                (None, Some(_)) => {
                    output::text("certificate chain: issued (write it with --cert-out)")
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_ttl;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("5m").unwrap(), 300);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("5d").is_err());
        assert!(parse_ttl("m").is_err());
    }
}
