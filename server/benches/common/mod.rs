//! What the server's benchmarks share: their command line, a signer and
//! percentiles.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use keyshare_policy::keys::Scheme;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;

/// The value after `name` on the command line, if any.
/// The allocator the binaries use, so the code measured runs as it does
/// there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A new in-memory Ed25519 signer.
pub fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).expect("an Ed25519 key"))
}

/// The `p` quantile (0–1) of `sorted`, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len() - 1))
        .copied()
        .unwrap_or_default()
}

/// A new repository in `dir` (SQLite on disk) with fresh in-memory keys.
pub fn publisher(
    dir: &std::path::Path,
    now: time::OffsetDateTime,
) -> keyshare_server::publisher::Publisher {
    let store = keyshare_server::store::Store::open(dir.join("keyshare.db")).expect("a store");
    let keys = keyshare_server::publisher::OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    keyshare_server::publisher::Publisher::init(
        store,
        keys,
        &[signer()],
        1,
        keyshare_policy::repo::Options::default(),
        now,
    )
    .expect("a new repository")
}

/// `http::run` serving `state` on a loopback port, on a thread of its own.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Served {
    /// Starts serving.
    pub fn start(state: keyshare_server::http::AppState) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                keyshare_server::http::run(listener, state, async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("the server runs");
            });
        });
        Self { base, stop, thread }
    }

    /// Stops serving and waits for the server to end.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("the server thread");
    }
}

/// Copies the store's write-ahead log into the database and empties it,
/// as a server's store is at start: the untimed seeding of a benchmark
/// leaves megabytes of log whose background checkpoint (and its `fsync`s)
/// would otherwise run under the first timed requests.
pub fn checkpoint(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(dir.join("keyshare.db")).expect("the store");
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .expect("a busy timeout");
    // The store's own background checkpoint may be running: try again.
    for _ in 0..100 {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("a checkpoint");
        if busy == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the store's write-ahead log could not be checkpointed");
}
