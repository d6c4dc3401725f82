//! `keyshare-server`: parses the command line and calls
//! [`keyshare_server::commands`]. Errors are one line on stderr and exit 1.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use keyshare_server::commands::{self, airgap, CliError};
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
    },
    /// Write the current consistent-snapshot tree into OUT for a static
    /// file server (timestamp.json last).
    Publish {
        #[command(flatten)]
        data_dir: DataDir,
        /// The output directory.
        #[arg(long, value_name = "OUT")]
        to: PathBuf,
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
    },
    /// Verify a bundle against the replica's pinned root and make it the
    /// served state.
    Import {
        #[command(flatten)]
        data_dir: DataDir,
        /// The bundle file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
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
            ..
        } => airgap::init_replica(&commands::data_dir(data_dir.data_dir)?, &root, &mut stdout),
        Command::Init {
            data_dir,
            root,
            bins,
            ..
        } => commands::init::init_with_bins(
            &commands::data_dir(data_dir.data_dir)?,
            root.as_deref(),
            bins,
            &mut stdout,
        ),
        Command::Serve {
            data_dir,
            listen,
            tls_cert,
            tls_key,
            log_format,
            replica,
        } => {
            let flags = Flags {
                listen,
                tls_cert,
                tls_key,
                log_format,
            };
            let dir = commands::data_dir(data_dir.data_dir)?;
            if replica {
                airgap::serve_replica(&dir, &flags, &mut stdout)
            } else {
                commands::serve(&dir, &flags, &mut stdout)
            }
        }
        Command::Export {
            data_dir,
            out,
            valid_for,
            force,
        } => airgap::export_cmd(
            &commands::data_dir(data_dir.data_dir)?,
            &out,
            valid_for.as_deref(),
            force,
            &mut stdout,
        ),
        Command::Import { data_dir, file } => {
            airgap::import_cmd(&commands::data_dir(data_dir.data_dir)?, &file, &mut stdout)
        }
        Command::Openapi => stdout
            .write_all(keyshare_server::http::openapi_json().as_bytes())
            .map_err(|source| CliError::Io {
                path: "<stdout>".into(),
                source,
            }),
        Command::Publish { data_dir, to } => {
            let published = commands::publish(&commands::data_dir(data_dir.data_dir)?, &to)?;
            writeln!(
                stdout,
                "published to {}: {} file(s) written, {} unchanged",
                to.display(),
                published.written,
                published.unchanged
            )
            .map_err(|source| CliError::Io {
                path: "<stdout>".into(),
                source,
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}
