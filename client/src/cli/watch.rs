//! `keyshare watch`: keep the cache fresh within a second of each publish
//! ([`keyshare_client::watch`]), re-export, run a command after each
//! change, and stop cleanly on SIGTERM or SIGINT (`docs/watch.md`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use keyshare_client::export;
use keyshare_client::watch::{watch, Changes, Event, WatchOptions};
use keyshare_client::TrustState;

use super::decisions::{self, Listen, Shared};
use super::{duration_arg, output, Error, OutputFormat};

/// `keyshare watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// After each change, write an export: `notation DIR` (a notation
    /// trust store and trust policy), `pem DIR` (PEM public keys),
    /// `kyverno DIR`, `policy-controller DIR`, `cosign DIR` or
    /// `layout-keys DIR`
    /// (docs/exports.md), as `keyshare export` does. May be given several
    /// times.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "DIR"], action = clap::ArgAction::Append)]
    export: Vec<String>,
    /// After each change (and once at start), run this command with
    /// `sh -c` and wait for it; `KEYSHARE_TIMESTAMP_VERSION` holds the
    /// state's version. Its output goes to stderr.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// How long each wait for the next publish asks the server to hold
    /// the request (at most 60 s on keyshare-server).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    wait: u64,
    /// How often to poll a server that does not wait (a static mirror).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    poll_interval: u64,
    /// Answer decision queries from the always-fresh state on a Unix
    /// socket (`unix:PATH`) or a loopback address (`127.0.0.1:8440`):
    /// `POST /v1/decide` (docs/watch.md).
    #[arg(long, value_name = "unix:PATH|ADDRESS")]
    listen: Option<String>,
    #[command(flatten)]
    common: super::verify::Common,
}

/// An export asked for.
#[derive(Debug, Clone)]
enum Export {
    Notation(PathBuf),
    Pem(PathBuf),
    Kyverno(PathBuf),
    PolicyController(PathBuf),
    Cosign(PathBuf),
    LayoutKeys(PathBuf),
}

impl Export {
    fn parse(pairs: &[String]) -> Result<Vec<Self>, Error> {
        pairs
            .chunks(2)
            .map(|pair| match pair {
                [format, dir] if format == "notation" => Ok(Self::Notation(dir.into())),
                [format, dir] if format == "pem" => Ok(Self::Pem(dir.into())),
                [format, dir] if format == "kyverno" => Ok(Self::Kyverno(dir.into())),
                [format, dir] if format == "policy-controller" => {
                    Ok(Self::PolicyController(dir.into()))
                }
                [format, dir] if format == "cosign" => Ok(Self::Cosign(dir.into())),
                [format, dir] if format == "layout-keys" => Ok(Self::LayoutKeys(dir.into())),
                [format, _] => Err(Error::Input(format!(
                    "--export {format}: the format is `notation`, `pem`, `kyverno`, `policy-controller`, `cosign` or `layout-keys`"
                ))),
                _ => Err(Error::Input(
                    "--export takes a format and a directory".into(),
                )),
            })
            .collect()
    }

    fn write(&self, state: &TrustState) -> Result<usize, String> {
        let (summary, dir) = match self {
            Self::Notation(dir) => (
                export::notation::write(&state.trust_set, &state.tsas, dir),
                dir,
            ),
            Self::Pem(dir) => (export::pem::write(&state.trust_set, dir), dir),
            Self::Kyverno(dir) => (export::kyverno::write(&state.trust_set, dir, now()), dir),
            Self::PolicyController(dir) => (
                export::policy_controller::write(&state.trust_set, dir, now()),
                dir,
            ),
            Self::Cosign(dir) => (export::cosign::write(&state.trust_set, dir, now()), dir),
            Self::LayoutKeys(dir) => (export::layout::write(&state.trust_set, dir, now()), dir),
        };
        summary
            .map(|s| s.files.len())
            .map_err(|e| format!("export to {}: {e}", dir.display()))
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

pub(crate) fn run(a: WatchArgs) -> Result<(), Error> {
    let exports = Export::parse(&a.export)?;
    let listen = a.listen.as_deref().map(Listen::parse).transpose()?;
    let verifier = a.common.verifier()?;
    // Not initialised: say so once, rather than retrying forever.
    verifier.inner().url()?;
    let shared: Shared = Shared::default();
    let _endpoint = match &listen {
        Some(listen) => Some(decisions::start(
            listen,
            shared.clone(),
            verifier.inner().clone(),
        )?),
        None => None,
    };
    let options = WatchOptions {
        wait: Duration::from_secs(a.wait),
        poll_interval: Duration::from_secs(a.poll_interval),
        ..WatchOptions::default()
    };
    let json_lines = a.common.output() == OutputFormat::Json;
    let report = |event: Event<'_>| match event {
        Event::State { state, changes } => {
            // Decisions use the new state from now on.
            *shared.write().unwrap_or_else(PoisonError::into_inner) = Some(state.clone());
            on_state(state, changes, &exports, a.exec.as_deref(), json_lines);
        }
        Event::Problem { error, retry_in } => {
            output::warning(&format!(
                "{error}; keeping the last good state, trying again in {:.1} s",
                retry_in.as_secs_f64()
            ));
        }
    };
    verifier.block_on(watch(verifier.inner(), &options, report, stopped()));
    Ok(())
}

/// The exports and the command, then one line for the change (so the
/// line says everything for that state is done).
fn on_state(
    state: &Arc<TrustState>,
    changes: &Changes,
    exports: &[Export],
    exec: Option<&str>,
    json_lines: bool,
) {
    for export in exports {
        if let Err(e) = export.write(state) {
            output::warning(&e);
        }
    }
    if let Some(cmd) = exec {
        // Its output goes to stderr: stdout is one line per change.
        let status = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::io::stderr())
            .env(
                "KEYSHARE_TIMESTAMP_VERSION",
                state.timestamp_version.to_string(),
            )
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => output::warning(&format!("--exec: the command ended with {s}")),
            Err(e) => output::warning(&format!("--exec: cannot run sh: {e}")),
        }
    }
    if json_lines {
        output::json_line(&json!({
            "timestamp_version": changes.timestamp_version,
            "first": changes.first,
            "namespaces_added": changes.namespaces_added,
            "namespaces_removed": changes.namespaces_removed,
            "namespaces_changed": changes.namespaces_changed,
            "index": changes.index,
            "revocations": changes.revocations,
            "peers": changes.peers,
            "tsas": changes.tsas,
            "roots": changes.roots,
        }));
    } else {
        output::text(&changes.to_string());
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
