//! `keyshare admin peer ...`.

use clap::{ArgGroup, Subcommand};
use serde_json::Value;

use keyshare_client::admin::{AdminClient, PeerRoot, PeerSpec};

use super::{done, emit, field, items};
use crate::cli::output;
use crate::cli::{Error, OutputFormat};

#[derive(Debug, Subcommand)]
pub(super) enum PeerCommand {
    /// Add or replace a peer service.
    #[command(group(ArgGroup::new("root").required(true).args(["root_sha256", "root_keyid"])))]
    Put {
        name: String,
        /// Artifact pattern the peer answers for (repeatable).
        #[arg(long = "pattern", value_name = "P", required = true, num_args = 1..)]
        patterns: Vec<String>,
        /// The peer's base URL.
        #[arg(long)]
        url: String,
        /// SHA-256 (hex) of the peer's root metadata file.
        #[arg(long, value_name = "HEX")]
        root_sha256: Option<String>,
        /// Root key id of the peer (repeatable; with --root-threshold).
        #[arg(long = "root-keyid", value_name = "ID", num_args = 1.., requires = "root_threshold")]
        root_keyid: Vec<String>,
        /// How many of the root key ids must sign the peer's root.
        #[arg(long, value_name = "N", requires = "root_keyid")]
        root_threshold: Option<u32>,
        /// The peer owns its patterns before any namespace.
        #[arg(long)]
        terminating: bool,
    },
    /// List peers.
    List,
    /// Remove a peer.
    Delete { name: String },
}

pub(super) fn peer(client: &AdminClient, c: PeerCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        PeerCommand::Put {
            name,
            patterns,
            url,
            root_sha256,
            root_keyid,
            root_threshold,
            terminating,
        } => {
            let root = match (root_sha256, root_threshold) {
                (Some(h), _) => PeerRoot::Sha256(h),
                (None, Some(threshold)) => PeerRoot::Keys {
                    keyids: root_keyid,
                    threshold,
                },
                (None, None) => {
                    return Err(Error::Input(
                        "give --root-sha256, or --root-keyid with --root-threshold".into(),
                    ))
                }
            };
            let v = client.put_peer(
                &name,
                &PeerSpec {
                    patterns,
                    url,
                    root,
                    terminating,
                },
            )?;
            emit(out, &v, || {
                format!(
                    "peer {}: {} -> {}{}",
                    field(&v, "name"),
                    field(&v, "patterns"),
                    field(&v, "url"),
                    if v.get("terminating") == Some(&Value::Bool(true)) {
                        " (terminating)"
                    } else {
                        ""
                    }
                )
            });
        }
        PeerCommand::List => {
            let v = client.peers()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = items(&v, "peers")
                        .iter()
                        .map(|p| {
                            let root = p.get("root").cloned().unwrap_or(Value::Null);
                            let root = if root.get("sha256").is_some() {
                                format!("sha256 {}", field(&root, "sha256"))
                            } else {
                                format!(
                                    "{} of {}",
                                    field(&root, "threshold"),
                                    field(&root, "keyids")
                                )
                            };
                            vec![
                                field(p, "name"),
                                field(p, "patterns"),
                                field(p, "url"),
                                root,
                                field(p, "terminating"),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "PATTERNS", "URL", "ROOT", "TERMINATING"], &rows);
                }
            }
        }
        PeerCommand::Delete { name } => {
            client.delete_peer(&name)?;
            done(out, format!("deleted peer {name}"));
        }
    }
    Ok(())
}
