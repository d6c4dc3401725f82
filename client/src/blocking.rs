//! The blocking facade of [`crate::Verifier`]: the same operations, each
//! run to completion on a private single-threaded tokio runtime.

use time::OffsetDateTime;

use keyshare_policy::trust::SignerRef;

use crate::verifier::{self, Error, Options, Pinned, RootPin, TrustState, Verdict};

/// A blocking verifier.
#[derive(Debug)]
pub struct Verifier {
    inner: verifier::Verifier,
    runtime: tokio::runtime::Runtime,
}

impl Verifier {
    /// A verifier with these options.
    pub fn new(options: Options) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Input(format!("cannot start the I/O runtime: {e}")))?;
        // reqwest's client must be built inside a runtime context.
        let inner = {
            let _guard = runtime.enter();
            verifier::Verifier::new(options)?
        };
        Ok(Self { inner, runtime })
    }

    /// The async verifier inside.
    pub fn inner(&self) -> &verifier::Verifier {
        &self.inner
    }

    /// Runs `future` (async work with [`Self::inner`], such as
    /// [`crate::watch::watch`]) to completion on this verifier's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// See [`verifier::Verifier::init`].
    pub fn init(&self, url: &str, pin: RootPin, force: bool) -> Result<Pinned, Error> {
        self.runtime.block_on(self.inner.init(url, pin, force))
    }

    /// See [`verifier::Verifier::refresh`].
    pub fn refresh(&self) -> Result<TrustState, Error> {
        self.runtime.block_on(self.inner.refresh())
    }

    /// See [`verifier::Verifier::refresh_from_bundle`].
    pub fn refresh_from_bundle(&self, bundle: std::fs::File) -> Result<TrustState, Error> {
        self.runtime
            .block_on(self.inner.refresh_from_bundle(bundle))
    }

    /// See [`verifier::Verifier::trust_state`].
    pub fn trust_state(&self) -> Result<TrustState, Error> {
        self.runtime.block_on(self.inner.trust_state())
    }

    /// See [`verifier::Verifier::decide`].
    pub fn decide(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
    ) -> Result<Verdict, Error> {
        self.runtime
            .block_on(self.inner.decide(artifact, signers, signed_at))
    }

    /// See [`verifier::Verifier::decide_in`].
    pub fn decide_in(
        &self,
        state: &TrustState,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
    ) -> Result<Verdict, Error> {
        self.runtime
            .block_on(self.inner.decide_in(state, artifact, signers, signed_at))
    }
}
