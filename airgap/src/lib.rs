//! keyshare-airgap: the signed bundle format for air-gapped replicas.
//!
//! Not written yet. Bundle verification will reuse the TUF verification of
//! [`keyshare_policy`].

pub use keyshare_policy as policy;
