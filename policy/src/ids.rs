//! The names everything else refers to: key ids and role names, with the
//! four top-level role names as constants.
//!
//! This is the ground floor of the crate: it imports nothing from it, so the
//! error type, the key model and the metadata model can all name roles and
//! keys without importing one another.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_newtype!(
    /// A key id, opaque: compared as given by the metadata, never recomputed.
    KeyId
);
string_newtype!(
    /// The name of a role (`root`, `targets`, `snapshot`, `timestamp` or a delegated role).
    RoleName
);

impl RoleName {
    /// The root role.
    pub const ROOT: &'static str = "root";
    /// The top-level targets role.
    pub const TARGETS: &'static str = "targets";
    /// The snapshot role.
    pub const SNAPSHOT: &'static str = "snapshot";
    /// The timestamp role.
    pub const TIMESTAMP: &'static str = "timestamp";

    /// The top-level targets role's name, the root of every delegation tree.
    pub fn targets() -> Self {
        Self::new(Self::TARGETS)
    }

    /// Whether this is one of the four top-level roles.
    pub fn is_top_level(&self) -> bool {
        TOP_LEVEL_ROLES.contains(&self.as_str())
    }
}

/// Names of the four top-level roles.
pub const TOP_LEVEL_ROLES: [&str; 4] = [
    RoleName::ROOT,
    RoleName::TARGETS,
    RoleName::SNAPSHOT,
    RoleName::TIMESTAMP,
];
