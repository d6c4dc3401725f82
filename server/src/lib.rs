//! keyshare-server: the organization's keyshare service.
//!
//! The HTTP API, the SQLite store and the publisher are not written yet. The
//! repository-side metadata builder they will use is
//! [`keyshare_policy::repo`].

pub use keyshare_policy::repo;
