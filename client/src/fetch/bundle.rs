//! A verified air-gap bundle as the repository: its files are read by
//! repository path (`metadata/...`, `targets/...`) when the workflow asks,
//! each checked against the bundle's manifest again as it is read.

use keyshare_airgap::VerifiedBundle;
use keyshare_policy::metadata::RoleName;

use super::{Fetched, Fetcher, Missing};
use crate::verifier::Error;

/// The [`Fetcher`] of a verified bundle, for the repository at `url`.
#[derive(Debug, Clone, Copy)]
pub struct BundleFetcher<'a> {
    /// The bundle.
    pub bundle: &'a VerifiedBundle,
    /// The repository's base URL (for errors).
    pub url: &'a str,
}

impl Fetcher for BundleFetcher<'_> {
    async fn get(&self, path: &str, limit: u64, _etag: Option<&str>) -> Result<Fetched, Error> {
        Ok(match bundle_file(self.bundle, path, limit)? {
            Some(bytes) => Fetched::Bytes { bytes, etag: None },
            None => Fetched::NotFound,
        })
    }

    fn missing(&self, file: Missing<'_>) -> Error {
        match file {
            Missing::Role { role, name } => Error::Tuf {
                url: self.url.to_owned(),
                source: keyshare_policy::Error::Unavailable {
                    role: RoleName::new(role),
                    file: format!("{name} (not in the bundle)"),
                },
            },
            Missing::Target { file, .. } => Error::Input(format!("bundle: {file} is missing")),
        }
    }
}

/// A file of a bundle, `None` when it has none at `path`, refused when its
/// length (as the manifest gives it, before anything is read) is larger
/// than the workflow allows.
fn bundle_file(bundle: &VerifiedBundle, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    match bundle.entry(path) {
        None => Ok(None),
        Some(entry) if entry.length > limit => Err(Error::Input(format!(
            "bundle: {path} is {} bytes, over the {limit} byte limit",
            entry.length
        ))),
        // The bundle's errors name the bundle ("bundle entry ...").
        Some(_) => bundle.file(path).map_err(|e| Error::Input(e.to_string())),
    }
}
