//! `keyshare admin tsa ...`: the timestamp authorities the organization
//! trusts (`org/tsas.json`).

use std::path::PathBuf;

use clap::Subcommand;

use keyshare_client::admin::AdminClient;
use keyshare_policy::trust::check_tsa_certificate;

use super::{done, emit, field, items, rows};
use crate::cli::output;
use crate::cli::{read_public, Error, OutputFormat, Public};

#[derive(Debug, Subcommand)]
pub(super) enum TsaCommand {
    /// Trust a timestamp authority (or replace the one of that name).
    Add {
        /// Its name in org/tsas.json.
        name: String,
        /// PEM certificate file: the TSA's CA, or the TSA's own certificate.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Free text, for people.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the trusted timestamp authorities.
    List,
    /// Stop trusting a timestamp authority: every token it signed is
    /// refused from then on.
    Remove { name: String },
}

pub(super) fn tsa(client: &AdminClient, c: TsaCommand, out: OutputFormat) -> Result<(), Error> {
    match c {
        TsaCommand::Add {
            name,
            cert,
            description,
        } => {
            let pem = read_public(&cert, Public::Certificate)?;
            // Refused here, in one line, before anything is sent.
            check_tsa_certificate(&pem)
                .map_err(|e| Error::Input(format!("{}: {e}", cert.display())))?;
            let v = client.put_tsa(&name, &pem, description.as_deref())?;
            emit(out, &v, || {
                format!(
                    "tsa {}: {} (sha256 {}), published in org/tsas.json",
                    field(&v, "name"),
                    field(&v, "subject"),
                    field(&v, "sha256"),
                )
            });
        }
        TsaCommand::List => {
            let v = client.tsas()?;
            match out {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Text => output::table(
                    &["NAME", "SUBJECT", "SHA256", "ADDED"],
                    &rows(
                        items(&v, "tsas"),
                        &["name", "subject", "sha256", "added_at"],
                    ),
                ),
            }
        }
        TsaCommand::Remove { name } => {
            client.delete_tsa(&name)?;
            done(out, format!("removed tsa {name}"));
        }
    }
    Ok(())
}
