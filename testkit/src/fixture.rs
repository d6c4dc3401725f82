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
