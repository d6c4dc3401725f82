//! `keyshare tuf ...`: a standard TUF client of any TUF 1.0 repository,
//! with the command line of the tuf-conformance test suite's
//! client-under-test protocol (`docs/cli.md`). The work is
//! [`keyshare_client::tuf`]; this module only parses and prints.
//!
//! Every option goes before the subcommand:
//! `keyshare tuf --metadata-dir M init ROOT`,
//! `keyshare tuf --metadata-url U --metadata-dir M refresh`,
//! `keyshare tuf --metadata-url U --metadata-dir M --target-name T
//! --target-dir D --target-base-url B download`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use time::OffsetDateTime;

use keyshare_client::tuf::{self, Client, Downloaded};

use super::{output, Error, OutputFormat};

#[derive(Debug, Args)]
pub(crate) struct TufArgs {
    /// Directory of the trusted metadata (`root.json`, `timestamp.json`, ...).
    #[arg(long, value_name = "DIR")]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata (refresh, download).
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// Target path to download; repeat for several (download).
    #[arg(long = "target-name", value_name = "PATH")]
    target_names: Vec<String>,
    /// Directory the verified targets are written to (download).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets (download).
    #[arg(long, value_name = "URL")]
    target_base_url: Option<String>,
    /// Output: a line per result for people, or one JSON document.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    command: TufCommand,
}

#[derive(Debug, Subcommand)]
enum TufCommand {
    /// Trusts ROOT_FILE (a root signed by its own keys) as the initial
    /// root; makes no network request.
    Init {
        /// The root metadata file trusted out of band.
        root_file: PathBuf,
    },
    /// Updates the trusted metadata from the repository (TUF client workflow).
    Refresh,
    /// Refreshes, then downloads and verifies each --target-name into --target-dir.
    Download,
}

/// Runs `keyshare tuf ...`. A panic, which should not happen, is reported
/// as a failure too, so the exit status stays 1.
pub(crate) fn run(args: TufArgs) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(|| run_inner(args)))
        .unwrap_or_else(|_| Err(Error::Failed("internal error (panic)".into())))
}

fn run_inner(args: TufArgs) -> Result<(), Error> {
    let dir = &args.metadata_dir;
    let json = args.output == OutputFormat::Json;
    match args.command {
        TufCommand::Init { root_file } => {
            tuf::init(dir, &root_file).map_err(failed)?;
            if json {
                output::json(&json!({"metadata_dir": dir, "root": root_file}));
            } else {
                output::text(&format!("initialized {}", dir.display()));
            }
        }
        TufCommand::Refresh => {
            let client = client(dir, args.metadata_url.as_deref())?;
            let updater = client.refresh(OffsetDateTime::now_utc()).map_err(failed)?;
            let trusted = updater.trusted();
            let version = trusted.timestamp().map_or(0, |t| t.version);
            if json {
                output::json(&json!({
                    "metadata_dir": dir,
                    "root_version": trusted.root().version,
                    "timestamp_version": version,
                    "snapshot_version": trusted.snapshot().map(|s| s.version),
                    "targets_version": trusted.targets("targets").map(|t| t.version),
                }));
            } else {
                output::text(&format!("refreshed: timestamp version {version}"));
            }
        }
        TufCommand::Download => {
            if args.target_names.is_empty() {
                return Err(Error::Input("download needs --target-name".into()));
            }
            let target_dir = args
                .target_dir
                .ok_or_else(|| Error::Input("download needs --target-dir".into()))?;
            let base = args
                .target_base_url
                .ok_or_else(|| Error::Input("download needs --target-base-url".into()))?;
            let client = client(dir, args.metadata_url.as_deref())?;
            let mut updater = client.refresh(OffsetDateTime::now_utc()).map_err(failed)?;
            let mut targets = Vec::new();
            for name in &args.target_names {
                let done = client
                    .download(&mut updater, name, &target_dir, &base)
                    .map_err(failed)?;
                let (how, status) = match &done {
                    Downloaded::Fetched(_) => ("downloaded", "downloaded"),
                    Downloaded::Cached(_) => ("already present", "already_present"),
                };
                if json {
                    targets.push(json!({"name": name, "status": status, "path": done.path()}));
                } else {
                    output::text(&format!("{name}: {how} ({})", done.path().display()));
                }
            }
            if json {
                output::json(&json!({"target_dir": target_dir, "targets": targets}));
            }
        }
    }
    Ok(())
}

fn client(dir: &std::path::Path, url: Option<&str>) -> Result<Client, Error> {
    let url = url.ok_or_else(|| Error::Input("this command needs --metadata-url".into()))?;
    Client::new(dir, url).map_err(failed)
}

fn failed(e: tuf::Error) -> Error {
    Error::Failed(e.to_string())
}
