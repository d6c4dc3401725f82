//! PostgreSQL: the database URL (never shown with its password), the
//! connection, and transactions (a write transaction takes the advisory
//! lock [`PUBLISH_LOCK`] before anything else, so writers across every
//! process sharing the database run one at a time, as SQLite's do).

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;

use super::db::PgConn;
use super::error::{Error, Result};

/// The key of the transaction-scoped advisory lock
/// (`pg_advisory_xact_lock`) every write transaction takes first: the
/// bytes of `keyshare` as a big-endian integer. Two keyshare-server
/// processes sharing a database never write at once, so they can never
/// both publish the same next version.
pub const PUBLISH_LOCK: i64 = 0x6b65_7973_6861_7265;

/// The channel a publish notifies (`NOTIFY`) with the transaction that
/// records its timestamp: PostgreSQL delivers it at that commit, and never
/// for a transaction rolled back.
pub const PUBLISHED_CHANNEL: &str = "keyshare_published";

/// A connection of its own that listens on [`PUBLISHED_CHANNEL`], so a
/// server learns at once that another one sharing the database published
/// (`serve`'s follow task).
pub struct PublishListener {
    client: super::db::Client,
    database: String,
}

impl fmt::Debug for PublishListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishListener")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PublishListener {
    /// Connects to the database at `url` and listens.
    pub fn connect(url: &PostgresUrl) -> Result<Self> {
        let mut client = super::db::Client::new(url.connect()?);
        client.batch_execute(&format!("LISTEN {PUBLISHED_CHANNEL}"))?;
        Ok(Self {
            client,
            database: url.redacted().to_owned(),
        })
    }

    /// Waits until a publish is notified (`true`; every notification that
    /// came meanwhile is taken with it, so many publishes make one wake)
    /// or `at_most` has passed (`false`). A lost connection is an error:
    /// listen again with a new one.
    pub fn wait(&mut self, at_most: Duration) -> Result<bool> {
        use postgres::fallible_iterator::FallibleIterator;
        let notified = {
            let mut notifications = self.client.notifications();
            let notified = notifications.timeout_iter(at_most).next()?.is_some();
            if notified {
                while notifications.iter().next()?.is_some() {}
            }
            notified
        };
        if self.client.is_closed() {
            // The iterator ends as for a timeout: a query names the loss.
            self.client.batch_execute("SELECT 1")?;
        }
        Ok(notified)
    }
}

/// How long connecting waits when the URL does not say (`connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `postgres://` (or `postgresql://`) URL. It may hold a password: it
/// is shown (`Display`, `Debug`, errors) only as [`PostgresUrl::redacted`].
#[derive(Clone)]
pub struct PostgresUrl {
    config: postgres::Config,
    redacted: String,
}

impl PostgresUrl {
    /// Parses a URL; the error never repeats it (it may hold a password).
    pub fn parse(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid(
                "store url",
                "must start with postgres:// or postgresql://",
            ));
        }
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| Error::invalid("store url", format!("not a PostgreSQL URL ({e})")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyshare-server");
        }
        let redacted = redact(&config);
        Ok(Self { config, redacted })
    }

    /// The URL without its password: user, hosts, ports and database.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Connects (without TLS: a Unix socket, loopback or a private network).
    pub(crate) fn connect(&self) -> Result<postgres::Client> {
        self.config
            .connect(postgres::NoTls)
            .map_err(|source| Error::Connect {
                database: self.redacted.clone(),
                source,
            })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl").field(&self.redacted).finish()
    }
}

/// `postgres://user@host:port,host2/dbname`, from what the URL says;
/// a Unix socket directory is shown percent-encoded as the host.
fn redact(config: &postgres::Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(user);
        out.push('@');
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) => dir.display().to_string().replace('/', "%2F"),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    out.push_str(&hosts.join(","));
    out.push('/');
    if let Some(db) = config.get_dbname() {
        out.push_str(db);
    }
    out
}

/// An open PostgreSQL transaction on the store's connection; rolled back
/// when dropped without [`PgTx::commit`].
pub(crate) struct PgTx<'a> {
    pub(crate) conn: &'a RefCell<PgConn>,
    open: bool,
}

impl<'a> PgTx<'a> {
    /// A write transaction: `BEGIN` (read committed), then the advisory
    /// lock [`PUBLISH_LOCK`], held until commit or rollback. Every writer
    /// takes it first, so what the transaction reads after it is what the
    /// last writer committed, and no other writer commits until it ends.
    pub(crate) fn begin_write(conn: &'a RefCell<PgConn>) -> Result<Self> {
        let tx = Self::begin(conn, "BEGIN ISOLATION LEVEL READ COMMITTED")?;
        conn.borrow_mut()
            .batch(&format!("SELECT pg_advisory_xact_lock({PUBLISH_LOCK})"))?;
        Ok(tx)
    }

    /// A read transaction: one snapshot for all its queries.
    pub(crate) fn begin_read(conn: &'a RefCell<PgConn>) -> Result<Self> {
        Self::begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    }

    fn begin(conn: &'a RefCell<PgConn>, sql: &str) -> Result<Self> {
        let mut c = conn.borrow_mut();
        c.reconnect_if_closed()?;
        c.batch(sql)?;
        c.failed = false;
        Ok(Self { conn, open: true })
    }

    /// Commits. A transaction in which a statement failed (and no
    /// savepoint undid it) is rolled back instead, with an error:
    /// PostgreSQL would have ignored everything after the failure.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        let mut c = self.conn.borrow_mut();
        if c.failed {
            if let Err(e) = c.batch("SELECT 1") {
                let _ = c.batch("ROLLBACK");
                return Err(e);
            }
        }
        c.batch("COMMIT")
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Ok(mut c) = self.conn.try_borrow_mut() {
                if let Err(e) = c.batch("ROLLBACK") {
                    tracing::warn!(error = %e, "rolling back a PostgreSQL transaction failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::PostgresUrl;

    #[test]
    fn the_password_is_never_shown() {
        let url = PostgresUrl::parse("postgres://keyshare:s3cret@db.example:5433/ks").unwrap();
        assert_eq!(url.redacted(), "postgres://keyshare@db.example:5433/ks");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let url =
            PostgresUrl::parse("postgresql://ks@localhost/ks?password=s3cret&sslmode=disable")
                .unwrap();
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let err = PostgresUrl::parse("postgres://ks:s3cret@host:notaport/x").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(PostgresUrl::parse("mysql://x").is_err());
    }
}
