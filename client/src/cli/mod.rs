//! The `keyshare` command line: one clap enum, one module per subcommand.
//!
//! Every failure ends as one line `error: <message>` on stderr and exit
//! status 1 (usage errors included); success is exit 0. `decide` alone
//! exits 0 trusted, 1 untrusted, 2 on error. Secrets given on the command
//! line or in the environment are masked out of that line.

mod admin;
mod blob;
mod ci;
mod decisions;
mod generate;
mod output;
mod root;
mod tuf;
mod verify;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use keyshare_client::admin::Error as AdminError;
use keyshare_policy::datetime::{parse_duration_as, DurationSyntax};

/// keyshare: the organization's key-sharing and trust-distribution client.
#[derive(Debug, Parser)]
#[command(name = "keyshare", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Pin the organization's root: `--root FILE` or `--root-sha256 HEX`.
    Init(verify::InitArgs),
    /// Refresh the trust state from the server (TUF), into the cache.
    Refresh(verify::RefreshArgs),
    /// Is a signer trusted for an artifact? Exit 0 trusted, 1 untrusted, 2 error.
    Decide(verify::DecideArgs),
    /// List the namespaces of the cached trust state.
    List(verify::ListArgs),
    /// Write the cached trust state for other tools: a notation trust
    /// store and trust policy, PEM public keys, Kyverno or policy-controller
    /// admission policies, or cosign key files.
    Export(verify::ExportArgs),
    /// Keep the cache fresh within a second of each publish (the server's
    /// long poll), re-export and run a command after each change; until
    /// SIGTERM.
    Watch(watch::WatchArgs),
    /// Administer a keyshare server (namespaces, keys, revocations, peers,
    /// roots, tokens, audit) through its admin API.
    Admin(admin::AdminArgs),
    /// The offline root ceremony: generate keys, create, sign, merge,
    /// rotate, verify and submit root metadata.
    Root(root::RootArgs),
    /// A standard TUF client of any TUF repository (init, refresh,
    /// download), as the tuf-conformance test suite drives it.
    Tuf(tuf::TufArgs),
    /// CI: get an ephemeral signing delegation for a key generated here.
    Ci(ci::CiArgs),
    /// Write a detached signature over a file.
    SignBlob(blob::SignArgs),
    /// Check a detached signature and whether its key is trusted for an
    /// artifact name (exit 1 when not).
    VerifyBlob(blob::VerifyArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell), generated from these definitions.
    Completions(generate::CompletionsArgs),
    /// Write man pages for keyshare and each subcommand into DIR,
    /// generated from these definitions.
    Man(generate::ManArgs),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A short summary for people (tables for lists).
    Text,
    /// One JSON document, pretty-printed (for admin commands the server's
    /// answer; one object per line for streams); errors stay one line of
    /// text on stderr (docs/cli.md#json-output).
    Json,
}

/// Why a command failed: its `Display` is the one line printed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The admin API call failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A verifier operation failed.
    #[error(transparent)]
    Verifier(#[from] keyshare_client::Error),
    /// A local file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A local input was unusable.
    #[error("{0}")]
    Input(String),
    /// The command ran but the answer means failure (a broken audit chain).
    #[error("{0}")]
    Failed(String),
}

/// Reads a file as UTF-8 text.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// What a file given to a command must hold: never a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Public {
    /// A public key (PEM SubjectPublicKeyInfo or a TUF key object).
    Key,
    /// Certificates (PEM).
    Certificate,
    /// A document with public keys in it (a root).
    Document,
}

/// Reads a file that must hold only public material: a file with a
/// private key in it (a key pair where the public key belongs, a
/// certificate with its key appended) is refused here, before anything is
/// sent, with how to extract the public part. The message names the file,
/// never its content.
pub(crate) fn read_public(path: &std::path::Path, what: Public) -> Result<String, Error> {
    let text = read_text(path)?;
    let Some(found) = keyshare_client::admin::private_key_in(&text) else {
        return Ok(text);
    };
    let p = path.display();
    let fix = match (what, found.contains("keyval.private")) {
        (Public::Document, _) => {
            "remove it: only public keys belong there (`openssl pkey -in KEY -pubout`)".to_owned()
        }
        (_, true) => "give the key object without `keyval.private`".to_owned(),
        (Public::Key, false) => {
            format!("give its public key instead: `openssl pkey -in {p} -pubout -out {p}.pub`")
        }
        (Public::Certificate, false) => format!(
            "give the certificate alone: `openssl x509 -in {p} -out {p}.crt` (repeat for each certificate)"
        ),
    };
    Err(Error::Input(format!(
        "{p} holds {found}: {fix}; nothing was sent (a private key never leaves this machine)"
    )))
}

/// What an RFC 3339 time argument looks like, for error messages.
pub(crate) const RFC3339_EXAMPLE: &str = "expected an RFC 3339 time, e.g. 2030-01-01T00:00:00Z";

/// Parses an RFC 3339 time argument; the error says what is expected
/// (not the parser's internals).
pub(crate) fn parse_rfc3339(text: &str) -> Result<time::OffsetDateTime, String> {
    keyshare_policy::datetime::parse_rfc3339(text).map_err(|_| RFC3339_EXAMPLE.to_owned())
}

/// clap value parser: an RFC 3339 time, kept as the text given.
pub(crate) fn rfc3339_arg(text: &str) -> Result<String, String> {
    parse_rfc3339(text).map(|_| text.to_owned())
}

/// clap value parser: a duration, `90` (seconds), `45s`, `30m`, `12h`,
/// `90d`, `2w` or `1d12h` ([`DurationSyntax::SECONDS_OR_UNITS`]), in
/// seconds (at least 1).
pub(crate) fn duration_arg(text: &str) -> Result<u64, String> {
    let d = parse_duration_as(text, DurationSyntax::SECONDS_OR_UNITS)?;
    u64::try_from(d.whole_seconds())
        .map_err(|_| DurationSyntax::SECONDS_OR_UNITS.expected.to_owned())
}

/// Parses the command line, runs it, prints the outcome, and returns the
/// exit status.
pub(crate) fn main() -> ExitCode {
    let secrets = secrets_of_environment();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let command = command_name(&args);
            let code = match misplaced_option(&args, command, e.kind()) {
                Some(message) => {
                    output::error(&message, &secrets);
                    ExitCode::FAILURE
                }
                None => output::clap_error(&e, &secrets),
            };
            // `decide` keeps 1 for "untrusted": its usage errors are 2.
            let decide = command == Some("decide");
            return if decide && code != ExitCode::SUCCESS {
                ExitCode::from(2)
            } else {
                code
            };
        }
    };
    let result = match cli.command {
        Command::Decide(args) => return verify::decide(args),
        Command::Init(args) => verify::init(args),
        Command::Refresh(args) => verify::refresh(args),
        Command::List(args) => verify::list(args),
        Command::Export(args) => verify::export(args),
        Command::Watch(args) => watch::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Root(args) => root::run(args),
        Command::Tuf(args) => tuf::run(args),
        Command::Ci(args) => ci::run(args),
        Command::SignBlob(args) => blob::sign(args),
        Command::VerifyBlob(args) => blob::verify(args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e.to_string(), &secrets);
            ExitCode::FAILURE
        }
    }
}

/// The subcommands' names, as typed.
const COMMANDS: [&str; 14] = [
    "init",
    "refresh",
    "decide",
    "list",
    "export",
    "watch",
    "admin",
    "root",
    "tuf",
    "ci",
    "sign-blob",
    "verify-blob",
    "completions",
    "man",
];

/// Options that belong to the commands (after the command's name), which
/// people may put before it as if they were global.
const COMMAND_OPTIONS: [&str; 7] = [
    "--cache-dir",
    "--server-ca",
    "--timeout",
    "--output",
    "--allow-private-peers",
    "--server",
    "--token-file",
];

/// The first argument that names a subcommand.
fn command_name(args: &[String]) -> Option<&'static str> {
    args.iter()
        .find_map(|a| COMMANDS.iter().find(|c| **c == a.as_str()).copied())
}

/// For an option of the commands given before the command's name
/// (`keyshare --cache-dir DIR refresh`), a message that says where it
/// goes, instead of clap's "unexpected argument".
fn misplaced_option(
    args: &[String],
    command: Option<&str>,
    kind: clap::error::ErrorKind,
) -> Option<String> {
    if kind != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let first = args.first()?;
    let option = first.split_once('=').map_or(first.as_str(), |(o, _)| o);
    if !COMMAND_OPTIONS.contains(&option) {
        return None;
    }
    let command = command.unwrap_or("refresh");
    Some(format!(
        "{option} is an option of the command, not of keyshare: put it after the command's name, e.g. `keyshare {command} {option} ...` (see keyshare {command} --help)"
    ))
}

/// Token values from the raw arguments and the environment, to mask them
/// from error lines (clap's own messages can quote a mistyped argument).
fn secrets_of_environment() -> Vec<String> {
    let mut secrets = Vec::new();
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--token" {
            if let Some(v) = args.next() {
                secrets.push(v);
            }
        } else if let Some(v) = a.strip_prefix("--token=") {
            secrets.push(v.to_owned());
        }
    }
    if let Ok(v) = std::env::var(admin::TOKEN_ENV) {
        secrets.push(v);
    }
    secrets.retain(|s| !s.trim().is_empty());
    secrets
}
