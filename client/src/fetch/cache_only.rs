//! No repository at all: the verifier's cache is the last word. Loading the
//! last good state without network (`keyshare check`, `decide`) runs the
//! same workflow over the cached files, checked again as of now.

use keyshare_policy::metadata::RoleName;

use super::{Fetched, Fetcher, Missing};
use crate::verifier::Error;

/// The [`Fetcher`] that contacts nothing, for the repository at `url`:
/// there is no newer root (`metadata/N.root.json` is not found), every
/// other metadata file is the cached one ([`Fetched::NotModified`]), and a
/// delegated role or trust document the cache lacks is an error telling
/// the user to refresh.
#[derive(Debug, Clone, Copy)]
pub struct CacheOnly<'a> {
    /// The repository's base URL (for errors).
    pub url: &'a str,
}

/// True for `metadata/N.root.json`.
fn is_root(path: &str) -> bool {
    path.strip_prefix("metadata/")
        .and_then(|name| name.strip_suffix(".root.json"))
        .is_some_and(|version| !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
}

impl Fetcher for CacheOnly<'_> {
    async fn get(&self, path: &str, _limit: u64, _etag: Option<&str>) -> Result<Fetched, Error> {
        Ok(if is_root(path) || !path.starts_with("metadata/") {
            Fetched::NotFound
        } else {
            Fetched::NotModified
        })
    }

    fn missing(&self, file: Missing<'_>) -> Error {
        let (role, file) = match file {
            Missing::Role { role, name } => (role, name),
            Missing::Target { path, .. } => ("targets", path),
        };
        Error::Tuf {
            url: self.url.to_owned(),
            source: keyshare_policy::Error::Unavailable {
                role: RoleName::new(role),
                file: format!("{file} (not in the cache: run `keyshare refresh`)"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_roots_count_as_roots() {
        assert!(is_root("metadata/1.root.json"));
        assert!(is_root("metadata/12.root.json"));
        assert!(!is_root("metadata/root.json"));
        assert!(!is_root("metadata/x.root.json"));
        assert!(!is_root("metadata/.root.json"));
        assert!(!is_root("targets/1.root.json"));
    }
}
