//! `keyshare admin root ...`: the X.509 roots the organization trusts.

use std::path::PathBuf;

use clap::Subcommand;

use keyshare_client::admin::AdminClient;

use super::{done, emit, field, items, rows};
use crate::cli::output;
use crate::cli::{read_public, Error, OutputFormat, Public};

#[derive(Debug, Subcommand)]
pub(super) enum RootCommand {
    /// Add or replace an organization root certificate.
    Put {
        name: String,
        /// PEM certificate file.
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
    },
    /// List organization root certificates.
    List,
    /// Remove an organization root certificate.
    Delete { name: String },
}

pub(super) fn root(client: &AdminClient, c: RootCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        RootCommand::Put { name, pem } => {
            let v = client.put_root(&name, &read_public(&pem, Public::Certificate)?)?;
            emit(out, &v, || {
                format!(
                    "root {}: sha256 {} (published as {})",
                    field(&v, "name"),
                    field(&v, "sha256"),
                    field(&v, "target")
                )
            });
        }
        RootCommand::List => {
            let v = client.roots()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => output::table(
                    &["NAME", "SHA256", "ADDED"],
                    &rows(items(&v, "roots"), &["name", "sha256", "added_at"]),
                ),
            }
        }
        RootCommand::Delete { name } => {
            client.delete_root(&name)?;
            done(out, format!("deleted root {name}"));
        }
    }
    Ok(())
}
