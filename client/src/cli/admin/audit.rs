//! `keyshare admin audit ...`: list the log, and verify it against the heads the server published.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use keyshare_client::admin::{AdminClient, AuditQuery};
use keyshare_client::blocking::Verifier;
use keyshare_client::Options;
use keyshare_policy::api::admin::AuditVerification;
use keyshare_policy::audit::Head;
use keyshare_policy::metadata::{Envelope, Timestamp};

use super::{emit, field, items};
use crate::cli::output;
use crate::cli::{duration_arg, Error, OutputFormat};

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// List audit records, newest first, with their details.
    List(AuditListArgs),
    /// Verify the audit log: fetch every record and check the hash chain
    /// here, check it against every published chain head available (the
    /// server's current timestamp, verified through the TUF workflow when
    /// the verifier cache pins a root; the heads the verifier cache
    /// remembered; each --head), then ask the server's own check. Exit 1
    /// naming the record on any mismatch.
    Verify {
        /// A head written down earlier (`SEQ:HASH`, as this command prints
        /// it), e.g. in a ticket or a ceremony log; repeatable.
        #[arg(long = "head", value_name = "SEQ:HASH", allow_hyphen_values = true)]
        heads: Vec<String>,
        /// The verifier cache whose pinned root verifies the published
        /// timestamp and whose remembered heads are checked (default
        /// `$XDG_CACHE_HOME/keyshare`, else `~/.cache/keyshare`).
        #[arg(long, env = "KEYSHARE_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

/// `keyshare admin audit list`.
#[derive(Debug, Args)]
pub(super) struct AuditListArgs {
    /// Only records after this sequence number.
    #[arg(long, value_name = "SEQ")]
    after: Option<i64>,
    /// Only records before this sequence number (the next page, newest
    /// first: the smallest SEQ shown).
    #[arg(long, value_name = "SEQ")]
    before: Option<i64>,
    /// Only records written since this RFC 3339 time, or this long ago
    /// (`30m`, `12h`, `7d`).
    #[arg(long, value_name = "T|DURATION")]
    since: Option<String>,
    /// Only this action (`key.add`), or a prefix (`key.*`).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only records about this namespace (its keys, identities,
    /// sub-delegations, tokens, revocations of keys listed in it, expired
    /// CI keys swept from it).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this actor (`token:<id>`, `system`, `oidc:<issuer>#<subject>`).
    #[arg(long, value_name = "ACTOR")]
    actor: Option<String>,
    /// Oldest first (default: newest first).
    #[arg(long)]
    oldest_first: bool,
    /// At most this many records (default 100; the server's cap is 1000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Print the newest matching records (oldest first), then keep
    /// polling and print new ones as they are written, until interrupted
    /// or stdout is closed. Text mode prints one line per record, JSON
    /// mode one JSON object per line.
    #[arg(long, conflicts_with_all = ["before", "oldest_first"])]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, value_name = "SECS", default_value_t = 2, requires = "follow")]
    interval: u64,
}

pub(super) fn audit(
    client: &AdminClient,
    c: AuditCommand,
    server_ca: Option<&Path>,
    out: OutputFormat,
) -> Result<(), Error> {
    match c {
        AuditCommand::List(a) => audit_list(client, a, out)?,
        AuditCommand::Verify { heads, cache_dir } => {
            audit_verify(client, &heads, cache_dir, server_ca, out)?;
        }
    }
    Ok(())
}

/// The columns of an audit record in text mode: every field but the
/// hashes, the details as compact JSON.
fn audit_row(r: &Value) -> Vec<String> {
    let details = match r.get("details") {
        None | Some(Value::Null) => "-".to_owned(),
        Some(d) => d.to_string(),
    };
    vec![
        field(r, "seq"),
        field(r, "time"),
        field(r, "actor"),
        field(r, "action"),
        field(r, "subject"),
        details,
    ]
}

const AUDIT_COLUMNS: [&str; 6] = ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"];

/// `keyshare admin audit list`: see [`AuditListArgs`].
fn audit_list(client: &AdminClient, a: AuditListArgs, out: OutputFormat) -> Result<(), Error> {
    let since = match &a.since {
        None => None,
        Some(t) if crate::cli::parse_rfc3339(t).is_ok() => Some(t.clone()),
        Some(t) => {
            let secs = duration_arg(t).map_err(|_| {
                Error::Input(format!(
                    "--since `{t}`: {}, or a duration (30m, 12h, 7d)",
                    crate::cli::RFC3339_EXAMPLE
                ))
            })?;
            let ago = i64::try_from(secs)
                .ok()
                .and_then(|secs| {
                    time::OffsetDateTime::now_utc().checked_sub(time::Duration::seconds(secs))
                })
                .ok_or_else(|| Error::Input(format!("--since `{t}`: too long ago")))?;
            Some(keyshare_policy::datetime::rfc3339(ago))
        }
    };
    let mut query = AuditQuery {
        after: a.after,
        before: a.before,
        since,
        action: a.action,
        actor: a.actor,
        namespace: a.namespace,
        newest_first: !a.oldest_first,
        limit: a.limit,
    };
    if !a.follow {
        let v = client.audit_query(&query)?;
        match out {
            OutputFormat::Json => output::json(&v),
            OutputFormat::Text => {
                let rows: Vec<Vec<String>> = items(&v, "records").iter().map(audit_row).collect();
                output::table(&AUDIT_COLUMNS, &rows);
            }
        }
        return Ok(());
    }
    // --follow: the newest matching records, printed oldest first, then
    // every record written after the last one printed.
    query.newest_first = true;
    query.limit = Some(a.limit.unwrap_or(10));
    let first = client.audit_query(&query)?;
    let mut last = a.after.unwrap_or(0);
    let print = |records: &[Value], last: &mut i64| {
        for r in records {
            match out {
                OutputFormat::Json => output::json_line(r),
                OutputFormat::Text => output::text(&audit_row(r).join("  ")),
            }
            if let Some(seq) = r.get("seq").and_then(Value::as_i64) {
                *last = (*last).max(seq);
            }
        }
    };
    if out == OutputFormat::Text {
        output::text(&AUDIT_COLUMNS.join("  "));
    }
    let mut newest: Vec<Value> = items(&first, "records").to_vec();
    newest.reverse();
    print(&newest, &mut last);
    query.newest_first = false;
    query.limit = Some(keyshare_client::admin::AUDIT_PAGE);
    let interval = std::time::Duration::from_secs(a.interval.max(1));
    while !output::stdout_closed() {
        query.after = Some(last);
        let page = client.audit_query(&query)?;
        let records = items(&page, "records");
        print(records, &mut last);
        if records.len() < keyshare_client::admin::AUDIT_PAGE as usize {
            std::thread::sleep(interval);
        }
    }
    Ok(())
}

/// The head of the server's current timestamp, and how it was obtained.
struct PublishedHead {
    head: Option<Head>,
    timestamp_version: u64,
    /// `verified` or why not.
    how: String,
    verified: bool,
}

/// `keyshare admin audit verify`: see [`AuditCommand::Verify`].
fn audit_verify(
    client: &AdminClient,
    given: &[String],
    cache_dir: Option<PathBuf>,
    server_ca: Option<&Path>,
    out: OutputFormat,
) -> Result<(), Error> {
    let mut heads: Vec<(Head, String)> = Vec::new();
    for g in given {
        let head: Head = g
            .parse()
            .map_err(|_| Error::Input(format!("--head `{g}`: expected SEQ:HASH (a sequence number and the 64 hex digits of that record's hash)")))?;
        heads.push((head, "given with --head".to_owned()));
    }
    let cache = verifier_cache(cache_dir, server_ca, client.base_url())?;
    let published = match &cache {
        Cache::Pinned { verifier, .. } => {
            let state = verifier.refresh()?;
            PublishedHead {
                head: state.audit_head,
                timestamp_version: state.timestamp_version,
                how: format!(
                    "verified against the root pinned in {}",
                    verifier.inner().options().cache_dir.display()
                ),
                verified: true,
            }
        }
        Cache::None(why) => {
            let bytes = client.published_timestamp()?;
            let url = format!("{}/metadata/timestamp.json", client.base_url());
            let envelope = Envelope::<Timestamp>::parse("timestamp", &bytes)
                .map_err(|e| Error::Input(format!("{url}: {e}")))?;
            PublishedHead {
                head: Head::from_timestamp(&envelope.signed)
                    .map_err(|e| Error::Input(format!("{url}: {e}")))?,
                timestamp_version: envelope.signed.version,
                how: format!("unverified: {why}"),
                verified: false,
            }
        }
    };
    if let Some(head) = &published.head {
        let label = if published.verified {
            format!("published in timestamp v{}", published.timestamp_version)
        } else {
            format!(
                "published in timestamp v{} (unverified)",
                published.timestamp_version
            )
        };
        heads.push((head.clone(), label));
    }
    let mut remembered = 0;
    if let Cache::Pinned { verifier, dir } = &cache {
        for h in verifier.inner().remembered_heads()? {
            let Ok(head) = Head::new(h.seq, &h.hash) else {
                continue;
            };
            if published.head.as_ref() == Some(&head) {
                continue;
            }
            remembered += 1;
            heads.push((
                head,
                format!(
                    "remembered in the verifier cache {} (timestamp v{})",
                    dir.display(),
                    h.timestamp_version
                ),
            ));
        }
    }
    let checked = heads.len();
    let summary = match client.check_audit_log(heads)? {
        Ok(summary) => summary,
        Err(e) => {
            if out == OutputFormat::Json {
                output::json(&json!({
                    "ok": false,
                    "first_bad_seq": e.first_bad_seq(),
                    "reason": e.to_string(),
                }));
            }
            return Err(Error::Failed(e.to_string()));
        }
    };
    // The server's own check also covers the timestamps it still stores.
    let server = client.verify_audit()?;
    let failed = |message: String| {
        if out == OutputFormat::Json {
            output::json(&server);
        }
        Err(Error::Failed(message))
    };
    let published_heads = match serde_json::from_value::<AuditVerification>(server.clone()) {
        Ok(AuditVerification::Intact(intact)) if intact.ok => intact.published_heads,
        Ok(AuditVerification::HeadMismatch(m)) => {
            return failed(format!("the server's check: {}", m.reason))
        }
        Ok(AuditVerification::Broken(b)) => {
            return failed(format!(
                "audit chain broken at record {}: {}",
                b.first_bad_seq, b.reason
            ))
        }
        Ok(AuditVerification::Intact(_)) => {
            return failed("the server's check did not say ok".to_owned())
        }
        Err(e) => return failed(format!("the server's check answered something else: {e}")),
    };
    let value = json!({
        "ok": true,
        "records": summary.head.seq,
        "hash": summary.head.hash,
        "heads_checked": checked,
        "published_head": published.head.as_ref().map(|h| json!({
            "seq": h.seq,
            "hash": h.hash,
            "timestamp_version": published.timestamp_version,
            "verified": published.verified,
        })),
        "remembered_heads": remembered,
        "given_heads": given.len(),
        "server": server,
    });
    emit(out, &value, || {
        let mut against = vec![match &published.head {
            Some(h) => format!(
                "the head of timestamp v{} (record {}; {})",
                published.timestamp_version, h.seq, published.how
            ),
            None => format!(
                "no head: timestamp v{} carries none ({})",
                published.timestamp_version, published.how
            ),
        }];
        if remembered > 0 {
            against.push(format!(
                "{remembered} head(s) remembered by the verifier cache"
            ));
        }
        if !given.is_empty() {
            against.push(format!("{} head(s) given with --head", given.len()));
        }
        format!(
            "audit chain ok: {} records, head {}\nagrees with: {}; the server's own check agrees ({} published heads)",
            summary.head.seq,
            summary.head.hash,
            against.join(", "),
            published_heads,
        )
    });
    Ok(())
}

/// The verifier cache `audit verify` uses.
enum Cache {
    /// It pins the root of this server.
    Pinned {
        verifier: Box<Verifier>,
        dir: PathBuf,
    },
    /// None usable, and why.
    None(String),
}

/// The verifier cache at `dir` (or the default), if it pins the root of
/// the repository at `server`.
fn verifier_cache(
    dir: Option<PathBuf>,
    server_ca: Option<&Path>,
    server: &str,
) -> Result<Cache, Error> {
    let Some(dir) = dir.or_else(keyshare_client::default_cache_dir) else {
        return Ok(Cache::None("no verifier cache directory".into()));
    };
    let mut options = Options::new(dir.clone());
    if let Some(ca) = server_ca {
        options.server_ca = Some(std::fs::read(ca).map_err(|source| Error::Read {
            path: ca.to_owned(),
            source,
        })?);
    }
    let verifier = Verifier::new(options)?;
    match verifier.inner().url() {
        Ok(url) if url.trim_end_matches('/') == server.trim_end_matches('/') => Ok(Cache::Pinned {
            verifier: Box::new(verifier),
            dir,
        }),
        Ok(url) => Ok(Cache::None(format!(
            "the verifier cache {} pins {url}, not this server",
            dir.display()
        ))),
        Err(keyshare_client::Error::NotInitialized { .. }) => Ok(Cache::None(format!(
            "no root pinned in {}; run `keyshare init` to verify it",
            dir.display()
        ))),
        Err(e) => Err(e.into()),
    }
}
