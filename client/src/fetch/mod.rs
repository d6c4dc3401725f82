//! Where the verifier reads a repository's files from: the [`Fetcher`]
//! trait and its three kinds, as tough's `Transport`, go-tuf's `Fetcher`
//! and python-tuf's `FetcherInterface` separate the download from the TUF
//! workflow. The workflow itself (what to ask for, what to trust) is the
//! sans-IO [`keyshare_policy::client`]; the verifier's sync asks a
//! `Fetcher` for each file it needs, by repository path.
//!
//! * [`http`]: the repository over HTTP ([`HttpFetcher`] on an
//!   [`HttpTransport`]: reqwest, native-tls, size limits, timeouts,
//!   redirects only within the origin asked for; for peers, a resolver
//!   refusing private addresses). It also holds what every HTTP client of
//!   keyshare shares: [`HttpSettings`] (timeouts, extra CA certificates
//!   from the one loader [`load_ca`], user agent) and [`BlockingClient`]
//!   (the async client on a private runtime, for the admin client and
//!   `keyshare tuf`);
//! * [`bundle`]: a verified air-gap bundle ([`BundleFetcher`]);
//! * [`cache_only`]: nothing but the cache ([`CacheOnly`]: the last good
//!   state, checked again, without network).

pub mod bundle;
pub mod cache_only;
pub mod http;

use std::future::Future;

pub use bundle::BundleFetcher;
pub use cache_only::CacheOnly;
pub use http::{
    answer_text, load_ca, server_base, BlockingClient, CaError, Fetched, HttpFetcher, HttpSettings,
    HttpTransport, Prefetched, TransportError, WaitAnswer, CONNECT_TIMEOUT, DEFAULT_TIMEOUT,
    MAX_REDIRECTS, USER_AGENT,
};

use crate::verifier::Error;

/// A file the workflow needs that [`Fetcher::get`] did not return.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    /// A delegated targets role.
    Role {
        /// The role.
        role: &'a str,
        /// Its file name under `metadata/` (`V.<role>.json`).
        name: &'a str,
    },
    /// A trust document.
    Target {
        /// Its target path (`org/peers.json`).
        path: &'a str,
        /// Its repository path (`targets/org/<hash>.peers.json`).
        file: &'a str,
    },
}

/// Reads a repository's files by path (`metadata/1.root.json`,
/// `targets/org/<hash>.peers.json`).
pub trait Fetcher {
    /// GETs the file at `path`, reading at most `limit` + 1 bytes of it
    /// (the endless-data defence: the workflow refuses anything over
    /// `limit`). With `etag`, may answer [`Fetched::NotModified`].
    ///
    /// [`Fetched::NotFound`] is "no such file" (how the root loop ends);
    /// [`Fetched::NotModified`] is "the cached copy is the repository's".
    fn get(
        &self,
        path: &str,
        limit: u64,
        etag: Option<&str>,
    ) -> impl Future<Output = Result<Fetched, Error>> + Send;

    /// The error for a file the workflow needs that [`Self::get`] did not
    /// return: it says where the file was looked for.
    fn missing(&self, file: Missing<'_>) -> Error;
}
