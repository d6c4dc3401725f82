//! The `format` strings of the trust documents, the first thing a reader
//! checks: a document of a newer format needs a newer verifier.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! format_marker {
    ($(#[$doc:meta])* $name:ident, $value:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The `format` string.
            pub const VALUE: &'static str = $value;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(Self::VALUE)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == Self::VALUE {
                    Ok(Self)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "expected `{}`, found `{s}`",
                        Self::VALUE
                    )))
                }
            }
        }
    };
}

/// The `format` of a namespace trust document.
///
/// `keyshare.trust/v3` is `v2` plus layout-root keys, published only for
/// a namespace that marks one, so that every other document reads as
/// before. (keyshare's verifier refuses a whole refresh when one document
/// does not parse, and keeps its last good state: a verifier from before
/// `v3` stops advancing once any namespace marks a layout-root key.)
///
/// `keyshare.trust/v2` is `v1` plus the namespace's own key revocations
/// ([`NamespaceTrust::revocations`](super::NamespaceTrust::revocations)). keyshare-server publishes `v2` only
/// for a namespace that has revoked a key, so a verifier from before `v2`
/// keeps reading every other namespace, and refuses (as malformed, naming
/// the format) a document whose revocations it could not apply, instead of
/// trusting a key the namespace revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrustFormat {
    /// `keyshare.trust/v1`: no revocations.
    #[default]
    V1,
    /// `keyshare.trust/v2`: may carry the namespace's own revocations.
    V2,
    /// `keyshare.trust/v3`: `v2` plus layout-root keys
    /// ([`TrustedKey::layout_root`](super::TrustedKey::layout_root)).
    V3,
}

impl TrustFormat {
    /// The `format` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "keyshare.trust/v1",
            Self::V2 => "keyshare.trust/v2",
            Self::V3 => "keyshare.trust/v3",
        }
    }
}

impl Serialize for TrustFormat {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrustFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "keyshare.trust/v1" => Ok(Self::V1),
            "keyshare.trust/v2" => Ok(Self::V2),
            "keyshare.trust/v3" => Ok(Self::V3),
            _ => Err(serde::de::Error::custom(format!(
                "expected `keyshare.trust/v1`, `keyshare.trust/v2` or `keyshare.trust/v3`, \
                 found `{s}` (a newer format needs a newer verifier)"
            ))),
        }
    }
}
format_marker!(
    /// The `format` of the namespaces document: `keyshare.namespaces/v1`.
    NamespacesFormat,
    "keyshare.namespaces/v1"
);
format_marker!(
    /// The `format` of the revocations document: `keyshare.revocations/v2`.
    RevocationsFormat,
    "keyshare.revocations/v2"
);
format_marker!(
    /// The `format` of the peers document: `keyshare.peers/v1`.
    PeersFormat,
    "keyshare.peers/v1"
);
format_marker!(
    /// The `format` of the trusted timestamp authorities: `keyshare.tsas/v1`.
    TsasFormat,
    "keyshare.tsas/v1"
);
