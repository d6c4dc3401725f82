//! `keyshare-server migrate-store --to URL`: the data directory's store
//! copied into an empty PostgreSQL database (docs/operations/postgres.md).

use std::io::Write;
use std::path::Path;

use super::{lock_data_dir, open_store, report, require_repository, CliError, OutputFormat};
use crate::config::{Config, Flags};
use crate::data_dir::DataDir;
use crate::store::{PostgresUrl, Store};

/// `migrate-store --to URL [--output json]`: copies every row of the store
/// (`Store::copy_into`, verified by its audit head) into the empty
/// PostgreSQL database at `to`, with the data directory locked (no server
/// may write meanwhile). The configuration is not changed: set `store.url`
/// to use the copy.
pub fn migrate_store_cmd(
    dir: &Path,
    to: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::load(dir, &Flags::default())?;
    require_repository(dir, &config)?;
    let _lock = lock_data_dir(
        dir,
        "migrate-store",
        "stop it first: the copy must not miss a write",
    )?;
    let to = PostgresUrl::parse(to).map_err(|e| CliError::Other(format!("--to: {e}")))?;
    let source = open_store(&DataDir::new(dir).db(), &config)?;
    let mut dest = Store::open_postgres(&to).map_err(|e| match e {
        e @ crate::store::Error::Connect { .. } => CliError::Other(e.to_string()),
        source => CliError::Store {
            path: to.redacted().into(),
            source,
        },
    })?;
    let copied = source
        .copy_into(&mut dest)
        .map_err(|source| CliError::Store {
            path: to.redacted().into(),
            source,
        })?;
    let total: u64 = copied.rows.iter().map(|(_, n)| n).sum();
    let rows: serde_json::Map<String, serde_json::Value> = copied
        .rows
        .iter()
        .map(|(table, n)| ((*table).to_owned(), (*n).into()))
        .collect();
    let value = serde_json::json!({
        "to": to.redacted(),
        "rows": rows,
        "audit_head": {
            "records": copied.audit_head.records,
            "hash": copied.audit_head.hash,
        },
    });
    report(out, format, &value, || {
        format!(
            "copied {total} rows into {} (audit log: {} records, head {}); set store.url in \
             keyshare.toml to use it",
            to.redacted(),
            copied.audit_head.records,
            copied.audit_head.hash
        )
    })
}
