//! Small builders every crate's tests write alike: a fresh in-memory
//! signer, a namespace name, a settable clock, and the Python that has
//! python-tuf for the interoperability tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use keyshare_policy::keys::Scheme;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;
use keyshare_policy::trust::NamespaceName;
use time::OffsetDateTime;

/// A fresh Ed25519 key in memory, as the repository builder takes it.
pub fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).expect("generate an Ed25519 key"))
}

/// `name` as a namespace name (it must be a valid one).
pub fn ns(name: &str) -> NamespaceName {
    NamespaceName::parse(name).expect("a valid namespace name")
}

/// A settable clock, to whole seconds: [`TestClock::clock`] gives the
/// server's clock type (`Arc<dyn Fn() -> OffsetDateTime + Send + Sync>`),
/// and every clone reads and sets the same time.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// A clock that reads `t` until set.
    pub fn at(t: OffsetDateTime) -> Self {
        Self(Arc::new(AtomicI64::new(t.unix_timestamp())))
    }

    /// Sets the time every clock made from this one reads.
    pub fn set(&self, t: OffsetDateTime) {
        self.0.store(t.unix_timestamp(), Ordering::SeqCst);
    }

    /// The clock to inject.
    pub fn clock(&self) -> Arc<dyn Fn() -> OffsetDateTime + Send + Sync> {
        let t = self.0.clone();
        Arc::new(move || {
            OffsetDateTime::from_unix_timestamp(t.load(Ordering::SeqCst)).expect("a valid time")
        })
    }
}

/// The Python with python-tuf: `KEYSHARE_PYTHON`, else `target/pyenv`
/// (created by `scripts/test`). Either must exist.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYSHARE_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "KEYSHARE_PYTHON={} does not exist (it must be a Python with python-tuf)",
            p.display()
        );
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "python-tuf is needed: run scripts/test once (it creates target/pyenv) or set \
         KEYSHARE_PYTHON"
    );
    venv
}

/// `man -l PAGE` at 80 columns, as plain text with its whitespace
/// collapsed (overstrike sequences removed). `man` comes with the packages
/// `scripts/test` installs (man-db); without it this panics saying so, so a
/// test of the pages fails rather than passing unchecked.
#[allow(clippy::panic)]
pub fn render_man_page(page: &std::path::Path) -> String {
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg("-P")
        .arg("cat")
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
        .unwrap_or_else(|e| {
            panic!("`man` cannot run ({e}): install man-db (scripts/test does) to check the pages")
        });
    assert!(
        out.status.success(),
        "man -l {} failed: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        plain.push(c);
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sends SIGTERM to `child` (as an operator or systemd stops a service)
/// and waits for it to exit, at most `within`; its exit status. Panics
/// naming `what` when the signal cannot be sent or the process is still
/// running after `within` (it is killed then, so the test ends).
#[allow(clippy::panic)]
pub fn sigterm_and_wait(
    child: &mut std::process::Child,
    within: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "cannot send SIGTERM to {what}");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("{what} did not stop within {within:?} of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
