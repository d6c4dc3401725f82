//! A throwaway PostgreSQL cluster for tests: one per test binary, started
//! on first use, listening on a Unix socket only (no TCP port), with
//! `fsync=off`; each test gets a fresh database ([`Cluster::database`]).
//! Benchmarks take [`Cluster::durable`], with PostgreSQL's durable
//! settings.
//!
//! The binaries are found in `KEYSHARE_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package),
//! else on `PATH`. `initdb` refuses to run as root: as root, the cluster
//! runs as the `postgres` user (which the package creates), through
//! `setpriv`. A small shell watchdog stops the server and removes its
//! directory when the test binary exits.
//!
//! When PostgreSQL is not installed, [`Cluster::shared`] fails the test,
//! unless `KEYSHARE_TEST_POSTGRES=skip`, when it returns `None` (the test
//! then passes without running). `scripts/test` sets
//! `KEYSHARE_TEST_POSTGRES=required` and installs PostgreSQL: there a
//! missing PostgreSQL is always a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    databases: AtomicUsize,
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DURABLE: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// Settings of the test cluster: no fsync (tests need no durability).
const TEST_SETTINGS: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
];

/// Settings of the benchmarks' cluster: PostgreSQL's durable defaults
/// (a commit returns once its WAL is flushed), as the SQLite store's
/// `synchronous=FULL`.
const DURABLE_SETTINGS: &[&str] = &["fsync=on", "synchronous_commit=on"];

impl Cluster {
    /// The test binary's cluster, started on first use; `None` only when
    /// PostgreSQL is not installed and `KEYSHARE_TEST_POSTGRES=skip`.
    ///
    /// # Panics
    ///
    /// When the cluster cannot be started (or PostgreSQL is missing and
    /// skipping is not allowed).
    #[allow(clippy::panic, clippy::print_stderr)]
    pub fn shared() -> Option<&'static Cluster> {
        let mode = std::env::var("KEYSHARE_TEST_POSTGRES").unwrap_or_default();
        let Some(bin) = find_bin() else {
            if mode == "skip" {
                eprintln!("PostgreSQL is not installed: skipped (KEYSHARE_TEST_POSTGRES=skip)");
                return None;
            }
            panic!(
                "PostgreSQL is not installed (no initdb in KEYSHARE_PG_BIN, \
                 /usr/lib/postgresql/*/bin or PATH): install Debian's `postgresql`, \
                 or set KEYSHARE_TEST_POSTGRES=skip to skip the PostgreSQL tests"
            );
        };
        match SHARED.get_or_init(|| Cluster::start(bin, TEST_SETTINGS)) {
            Ok(cluster) => Some(cluster),
            Err(e) => panic!("starting a PostgreSQL cluster for the tests: {e}"),
        }
    }

    /// A cluster with PostgreSQL's durable settings (`fsync`,
    /// `synchronous_commit`), for benchmarks that compare with SQLite's
    /// `synchronous=FULL`; started on first use, one per process.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is not installed or the cluster cannot be started.
    #[allow(clippy::panic)]
    pub fn durable() -> &'static Cluster {
        let Some(bin) = find_bin() else {
            panic!("PostgreSQL is not installed (Debian: apt-get install postgresql)");
        };
        match DURABLE.get_or_init(|| Cluster::start(bin, DURABLE_SETTINGS)) {
            Ok(cluster) => cluster,
            Err(e) => panic!("starting a PostgreSQL cluster: {e}"),
        }
    }

    fn start(bin: PathBuf, settings: &[&str]) -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        // Short: the socket's path must fit in 107 bytes.
        let dir = std::env::temp_dir().join(format!("ks-pg-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let root = is_root();
        if root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        run(as_postgres(root, &bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .current_dir(&dir)
            .arg(&data))?;
        let log = std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?;
        if root {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.join("log")))?;
        }
        // The watchdog: runs the server, and stops it and removes the
        // directory once this process is gone.
        let script = r#"
            dir=$1; parent=$2; shift 2
            "$@" &
            pg=$!
            while kill -0 "$parent" 2>/dev/null && kill -0 "$pg" 2>/dev/null; do sleep 0.5; done
            kill -INT "$pg" 2>/dev/null
            wait "$pg"
            rm -rf "$dir"
        "#;
        let mut server = Command::new("sh");
        server
            .arg("-c")
            .arg(script)
            .arg("keyshare-pg-watchdog")
            .arg(&dir)
            .arg(std::process::id().to_string());
        if root {
            server.args([
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]);
        }
        server
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "", "-c", "max_connections=200"])
            .args(settings.iter().flat_map(|s| ["-c", s]))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        server.spawn().map_err(|e| format!("sh: {e}"))?;
        let cluster = Cluster {
            bin,
            dir,
            databases: AtomicUsize::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(cluster.bin.join("pg_isready"))
                .arg("-h")
                .arg(&cluster.dir)
                .args(["-U", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                return Err(format!("not ready after 30 s; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty database (UTF-8, C collation): its name, and its URL
    /// (`postgres://postgres@<socket dir>/<name>`).
    ///
    /// # Panics
    ///
    /// When `createdb` fails.
    #[allow(clippy::panic)]
    pub fn database(&self) -> (String, String) {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("ks_{n}");
        if let Err(e) = run(Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", "-T", "template0", &name]))
        {
            panic!("createdb {name}: {e}");
        }
        let url = self.url(&name);
        (name, url)
    }

    /// `pg_dump` of database `name` (every byte of what it holds, as SQL).
    ///
    /// # Panics
    ///
    /// When `pg_dump` fails.
    #[allow(clippy::panic)]
    pub fn dump(&self, name: &str) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", name])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("pg_dump: {e}"));
        if !out.status.success() {
            panic!("pg_dump {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.stdout
    }

    /// The URL of database `name` of the cluster.
    pub fn url(&self, name: &str) -> String {
        let host = self.dir.display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}/{name}")
    }
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYSHARE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn as_postgres(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
