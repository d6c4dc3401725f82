//! Loading one targets role, cache first and then the repository
//! (python-tuf's `_load_targets`): the step the [`super::Updater`]'s
//! refresh and the [`super::TargetSearch`] share.

use super::request::{CacheOp, MetadataFile, Request, Source};
use super::trusted::TrustedSet;
use crate::error::{Error, Result};
use crate::ids::RoleName;

/// The error for a file the repository does not have.
pub(super) fn unavailable(request: &Request) -> Error {
    Error::Unavailable {
        role: RoleName::new(request.role()),
        file: request.remote_name(),
    }
}

/// Loading one targets role: the cache first, then the repository
/// (python-tuf's `_load_targets`).
#[derive(Debug, Clone)]
pub(super) struct Load {
    pub(super) role: RoleName,
    pub(super) delegator: RoleName,
    source: Source,
}

/// What an answer did to a [`Load`].
pub(super) enum Loaded {
    /// The role is trusted now; persist it if the operation is there.
    Yes(Option<CacheOp>),
    /// The cached copy was missing or invalid: ask the repository.
    NotYet,
}

impl Load {
    pub(super) fn new(role: &str, delegator: &str) -> Self {
        Self {
            role: RoleName::new(role),
            delegator: RoleName::new(delegator),
            source: Source::Local,
        }
    }

    /// The next request for the role.
    pub(super) fn request(&self, trusted: &TrustedSet) -> Result<Request> {
        let config = trusted.config();
        let meta = trusted
            .snapshot()
            .and_then(|s| s.role_meta(self.role.as_str()))
            .ok_or_else(|| Error::MissingRole {
                role: self.role.clone(),
                message: "delegated but not listed in snapshot".into(),
            })?;
        let max_length = match self.source {
            Source::Local => config.targets_max_length,
            Source::Remote => meta.length.unwrap_or(config.targets_max_length),
        };
        let file = MetadataFile::Targets {
            role: self.role.clone(),
            version: meta.version,
        };
        Ok(Request::new(
            file,
            self.source,
            max_length,
            trusted.consistent_snapshot(),
        ))
    }

    /// Applies the answer (`None`: not found, or an oversized cached file).
    pub(super) fn answer(
        &mut self,
        trusted: &mut TrustedSet,
        request: &Request,
        bytes: Option<Vec<u8>>,
    ) -> Result<Loaded> {
        let (role, delegator) = (self.role.as_str(), self.delegator.as_str());
        match self.source {
            Source::Local => {
                if let Some(bytes) = bytes {
                    if trusted
                        .update_delegated_targets(&bytes, role, delegator)
                        .is_ok()
                    {
                        return Ok(Loaded::Yes(None));
                    }
                }
                self.source = Source::Remote;
                Ok(Loaded::NotYet)
            }
            Source::Remote => {
                let bytes = bytes.ok_or_else(|| unavailable(request))?;
                trusted.update_delegated_targets(&bytes, role, delegator)?;
                Ok(Loaded::Yes(Some(CacheOp::Store {
                    name: request.cache_name(),
                    bytes,
                })))
            }
        }
    }
}
