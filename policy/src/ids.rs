//! The names everything else refers to: key ids and role names, with the
//! four top-level role names as constants.
//!
//! This is the ground floor of the crate: it imports nothing from it, so the
//! error type, the key model and the metadata model can all name roles and
//! keys without importing one another.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

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
/// The name of a role (`root`, `targets`, `snapshot`, `timestamp` or a delegated role).
///
/// Shared (`Arc<str>`): a clone is a reference count, not a copy. A
/// refresh names every delegated role several times over (the walk's
/// level, the roles it loaded, the trusted set's maps, the roles kept for
/// the next refresh), hundreds of hashed bins each time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(Arc<str>);

impl RoleName {
    /// Wraps a string.
    pub fn new(s: impl AsRef<str>) -> Self {
        Self(Arc::from(s.as_ref()))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for RoleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RoleName {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl Serialize for RoleName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The text as the deserializer has it, copied once, into the `Arc`.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = RoleName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a role name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RoleName, E> {
                Ok(RoleName::new(v))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

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
