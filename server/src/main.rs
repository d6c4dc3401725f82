//! `keyshare-server`: parses the command line and calls
//! [`keyshare_server::commands`]. Errors are one line on stderr and exit 1,
//! usage errors included; `--help` and `--version` go to stdout, exit 0.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use keyshare_server::commands::generate::{self, Shell};
use keyshare_server::commands::{self, airgap, CliError, OutputFormat};
use keyshare_server::config::Flags;

/// The organization's keyshare service (see docs/server.md).
#[derive(Debug, Parser)]
#[command(name = "keyshare-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DataDir {
    /// The data directory [default: $XDG_DATA_HOME/keyshare or
    /// ~/.local/share/keyshare].
    #[arg(long, env = "KEYSHARE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// `--output text|json`, as the commands that print a result take it.
#[derive(Debug, clap::Args)]
struct Output {
    /// Output mode: a short summary for people, or one JSON document.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository: configuration, keys, database, version 1
    /// of everything; prints an org-admin token once.
    Init {
        #[command(flatten)]
        data_dir: DataDir,
        /// Make an air-gap replica instead, pinned to --root (docs/airgap.md).
        #[arg(long, requires = "root")]
        replica: bool,
        /// Start from this root version 1 made in the offline ceremony
        /// (docs/operations/root-ceremony.md) instead of generating a local
        /// root key; with --replica, the organization's root
        /// (`metadata/N.root.json`) the replica pins.
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// How many hashed bins the namespaces' trust documents are spread
        /// over: 256, or 1024 or 4096 for very large organizations
        /// (docs/server.md#hashed-bins); fixed for the repository's life.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 256,
            conflicts_with = "replica"
        )]
        bins: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Serve the TUF repository and the admin API until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        data_dir: DataDir,
        /// Address to serve on (overrides `listen` and KEYSHARE_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// TLS certificate chain (PEM, leaf first); with --tls-key, serve HTTPS only.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<String>,
        /// TLS private key (PEM, unencrypted) matching --tls-cert.
        #[arg(long, value_name = "FILE")]
        tls_key: Option<String>,
        /// `text` or `json`.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<String>,
        /// Serve an air-gap replica's imported state, read-only.
        #[arg(long)]
        replica: bool,
        /// How the address is announced on stdout once bound: `listening
        /// on URL`, or one JSON line `{"listening", "address", "tls"}`.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Write the current consistent-snapshot tree into OUT for a static
    /// file server (timestamp.json last).
    Publish {
        #[command(flatten)]
        data_dir: DataDir,
        /// The output directory.
        #[arg(long, value_name = "OUT")]
        to: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Write a signed air-gap bundle of the current state (docs/airgap.md).
    Export {
        #[command(flatten)]
        data_dir: DataDir,
        /// The bundle file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The bundle's validity window, e.g. `30d` [default: airgap.valid_for].
        #[arg(long, value_name = "DURATION")]
        valid_for: Option<String>,
        /// Replace FILE if it exists (otherwise an existing FILE is refused).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Verify a bundle against the replica's pinned root and make it the
    /// served state.
    Import {
        #[command(flatten)]
        data_dir: DataDir,
        /// The bundle file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Copy the store into an empty PostgreSQL database, verified by its
    /// audit head (docs/operations/postgres.md); then set store.url.
    MigrateStore {
        #[command(flatten)]
        data_dir: DataDir,
        /// The PostgreSQL database, `postgres://user:password@host/db`
        /// (or KEYSHARE_MIGRATE_TO, which keeps a password out of the
        /// process list).
        #[arg(
            long,
            value_name = "URL",
            env = "KEYSHARE_MIGRATE_TO",
            hide_env_values = true
        )]
        to: String,
        #[command(flatten)]
        output: Output,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell), generated from these definitions.
    Completions {
        /// The shell to write a completion script for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write man pages for keyshare-server and each subcommand into DIR,
    /// generated from these definitions.
    Man {
        /// The directory to write the pages into (created if missing):
        /// `keyshare-server.1`, `keyshare-server-serve.1`, ...
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the OpenAPI 3.1 document of the API under /api/v1/ (the one
    /// `GET /api/v1/openapi.json` serves and docs/openapi.json holds).
    Openapi,
}

fn run(cli: Cli) -> Result<(), CliError> {
    let mut stdout = io::stdout();
    match cli.command {
        Command::Init {
            data_dir,
            replica: true,
            root: Some(root),
            output,
            ..
        } => airgap::init_replica(
            &commands::data_dir(data_dir.data_dir)?,
            &root,
            output.output,
            &mut stdout,
        ),
        Command::Init {
            data_dir,
            root,
            bins,
            output,
            ..
        } => commands::init::init_with_bins(
            &commands::data_dir(data_dir.data_dir)?,
            root.as_deref(),
            bins,
            output.output,
            &mut stdout,
        ),
        Command::Serve {
            data_dir,
            listen,
            tls_cert,
            tls_key,
            log_format,
            replica,
            output,
        } => {
            let flags = Flags {
                listen,
                tls_cert,
                tls_key,
                log_format,
            };
            let dir = commands::data_dir(data_dir.data_dir)?;
            if replica {
                airgap::serve_replica(&dir, &flags, output, &mut stdout)
            } else {
                commands::serve(&dir, &flags, output, &mut stdout)
            }
        }
        Command::Export {
            data_dir,
            out,
            valid_for,
            force,
            output,
        } => airgap::export_cmd(
            &commands::data_dir(data_dir.data_dir)?,
            &out,
            valid_for.as_deref(),
            force,
            output.output,
            &mut stdout,
        ),
        Command::Import {
            data_dir,
            file,
            output,
        } => airgap::import_cmd(
            &commands::data_dir(data_dir.data_dir)?,
            &file,
            output.output,
            &mut stdout,
        ),
        Command::Publish {
            data_dir,
            to,
            output,
        } => commands::publish::publish_cmd(
            &commands::data_dir(data_dir.data_dir)?,
            &to,
            output.output,
            &mut stdout,
        ),
        Command::MigrateStore {
            data_dir,
            to,
            output,
        } => commands::migrate_store::migrate_store_cmd(
            &commands::data_dir(data_dir.data_dir)?,
            &to,
            output.output,
            &mut stdout,
        ),
        Command::Completions { shell } => {
            generate::completions(Cli::command(), "keyshare-server", shell, &mut stdout)
        }
        Command::Openapi => stdout
            .write_all(keyshare_server::http::openapi_json().as_bytes())
            .map_err(|source| CliError::Io {
                path: "<stdout>".into(),
                source,
            }),
        Command::Man { dir } => {
            let written = generate::man_pages(Cli::command(), &dir)?;
            writeln!(
                stdout,
                "wrote {} man pages to {} (keyshare-server.1 and one per subcommand)",
                written.len(),
                dir.display()
            )
            .map_err(|source| CliError::Io {
                path: "<stdout>".into(),
                source,
            })
        }
    }
}

/// A clap outcome that is not a command line to run: help and version go
/// to stdout with exit 0; the help shown for a missing subcommand goes to
/// stderr with exit 1; a usage error is one line `error: ... (see --help)`
/// on stderr with exit 1, as every other error.
fn usage(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let rendered = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = io::stdout().write_all(rendered.as_bytes());
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = io::stderr().write_all(rendered.as_bytes());
            return ExitCode::FAILURE;
        }
        _ => {}
    }
    // clap renders "error: ...", details on further lines, then a usage
    // section: keep what comes before the usage, on one line.
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = parts.join(" ");
    let message = joined.strip_prefix("error:").unwrap_or(&joined).trim();
    let _ = writeln!(io::stderr(), "error: {message} (see --help)");
    ExitCode::FAILURE
}

/// The allocator: mimalloc rather than glibc's (docs/architecture.md,
/// "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}
