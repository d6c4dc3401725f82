//! `org/peers.json`: artifact names that other keyshare services answer for.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer, Serialize};

use super::check::{check_label, parse_json, problem_to_error, to_json, Problem};
use super::format::PeersFormat;
use super::{Sha256Hex, PEERS_PATH};
use crate::error::Result;
use crate::metadata::KeyId;
use crate::pattern::ArtifactPattern;

/// A peer service's base URL: `https://`, or `http://` to a loopback host
/// (`localhost`, `127.x.y.z`, `[::1]`) for tests and local sidecars.
///
/// That is what the document format allows. Whether keyshare contacts or
/// accepts the peer is stricter and up to the caller's configuration:
/// [`PeerUrl::check_outbound`] (https to a public host unless private
/// addresses are allowed).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PeerUrl(String);

impl PeerUrl {
    /// Parses and checks a peer URL. No user info, query or fragment.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{s}` contains whitespace or control characters"));
        }
        let (rest, loopback_only) = if let Some(rest) = s.strip_prefix("https://") {
            (rest, false)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (rest, true)
        } else {
            return Err(format!("`{s}` is not an https:// URL"));
        };
        if s.contains(['?', '#']) {
            return Err(format!("`{s}` must not have a query or fragment"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!("`{s}` must not carry user info"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("`{s}` has no valid host"))?;
        if let Some(port) = port {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("`{s}` has an invalid port `{port}`"));
            }
        }
        if loopback_only && !is_loopback(host) {
            return Err(format!(
                "`{s}`: plain http:// is only allowed to a loopback host (localhost, 127.x.y.z, [::1]); use https://"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether keyshare may send requests to this peer: `https://` to a
    /// host not written as a private address, or with `allow_private`
    /// also private hosts and `http://` to loopback
    /// ([`crate::outbound::check`]). A host name that resolves to a private
    /// address is for the HTTP client to catch.
    pub fn check_outbound(
        &self,
        allow_private: bool,
    ) -> std::result::Result<crate::outbound::Origin, crate::outbound::Refusal> {
        crate::outbound::check(&self.0, allow_private)
    }
}

/// Splits `host[:port]` or `[v6][:port]`, checking the host's characters.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let host = authority.get(..v6.len() + 2)?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some((host, port))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeerUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The root a peer service is pinned to: `{"keyids": [...], "threshold": n}`
/// (the peer's root must be signed by `threshold` of these keys) or
/// `{"sha256": "..."}` (the peer's trusted root file has this hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPinnedRoot", into = "RawPinnedRoot")]
pub enum PinnedRoot {
    /// Root keys and how many of them must sign the peer's root.
    Keys {
        /// Root key ids (at least one, unique).
        keyids: Vec<KeyId>,
        /// Distinct keys needed (at most `keyids.len()`).
        threshold: NonZeroU32,
    },
    /// SHA-256 of the peer's root metadata file.
    Sha256(Sha256Hex),
}

impl fmt::Display for PinnedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keys { keyids, threshold } => {
                let ids: Vec<&str> = keyids.iter().map(KeyId::as_str).collect();
                write!(f, "{threshold} of root keys {}", ids.join(", "))
            }
            Self::Sha256(h) => write!(f, "root file with SHA-256 {h}"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPinnedRoot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keyids: Option<Vec<KeyId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<NonZeroU32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<Sha256Hex>,
}

impl TryFrom<RawPinnedRoot> for PinnedRoot {
    type Error = String;
    fn try_from(raw: RawPinnedRoot) -> std::result::Result<Self, String> {
        match raw {
            RawPinnedRoot {
                keyids: None,
                threshold: None,
                sha256: Some(h),
            } => Ok(Self::Sha256(h)),
            RawPinnedRoot {
                keyids: Some(keyids),
                threshold: Some(threshold),
                sha256: None,
            } => {
                if keyids.is_empty() {
                    return Err("`keyids` must list at least one key id".into());
                }
                let unique: BTreeSet<&KeyId> = keyids.iter().collect();
                if unique.len() != keyids.len() {
                    return Err("`keyids` lists a key id more than once".into());
                }
                if usize::try_from(threshold.get()).map_or(true, |t| t > keyids.len()) {
                    return Err(format!(
                        "`threshold` {threshold} is more than the {} key ids listed",
                        keyids.len()
                    ));
                }
                Ok(Self::Keys { keyids, threshold })
            }
            _ => Err(
                "must have either `sha256`, or both `keyids` and `threshold` (not both forms)"
                    .into(),
            ),
        }
    }
}

impl From<PinnedRoot> for RawPinnedRoot {
    fn from(p: PinnedRoot) -> Self {
        match p {
            PinnedRoot::Keys { keyids, threshold } => Self {
                keyids: Some(keyids),
                threshold: Some(threshold),
                sha256: None,
            },
            PinnedRoot::Sha256(h) => Self {
                keyids: None,
                threshold: None,
                sha256: Some(h),
            },
        }
    }
}

/// One peer keyshare service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Name, unique in the document.
    pub name: String,
    /// Artifact names the peer answers for (at least one).
    pub patterns: Vec<ArtifactPattern>,
    /// The peer's base URL.
    pub url: PeerUrl,
    /// The root the client must verify the peer against.
    pub root: PinnedRoot,
    /// `true`: the peer owns its patterns outright, before any namespace.
    /// `false`: the peer is asked only when no namespace matches.
    #[serde(default)]
    pub terminating: bool,
}

/// `org/peers.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    /// Always `keyshare.peers/v1`.
    pub format: PeersFormat,
    /// The peers.
    pub peers: Vec<Peer>,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            format: PeersFormat,
            peers: Vec::new(),
        }
    }
}

impl Peers {
    /// Parses `org/peers.json`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let doc: Self = parse_json(PEERS_PATH, bytes)?;
        doc.check().map_err(|p| problem_to_error(PEERS_PATH, p))?;
        Ok(doc)
    }

    /// The document as JSON (parses back to an equal value).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        to_json(PEERS_PATH, self)
    }

    fn check(&self) -> std::result::Result<(), Problem> {
        let mut names = BTreeSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let at = |field: &str| format!("peers[{i}].{field}");
            check_label(|| at("name"), &p.name)?;
            if !names.insert(p.name.as_str()) {
                return Err((at("name"), format!("peer `{}` is listed twice", p.name)));
            }
            if p.patterns.is_empty() {
                return Err((at("patterns"), "must list at least one pattern".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_must_be_https_or_loopback_http() {
        for ok in [
            "https://keyshare.partner.example",
            "https://keyshare.partner.example:8443/base",
            "https://[2001:db8::1]/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3/x",
            "http://localhost:1234",
            "http://[::1]:9000/",
        ] {
            assert!(PeerUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://keyshare.partner.example",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "ftp://x",
            "https://",
            "https://user@host",
            "https://host:0",
            "https://host:99999",
            "https://host/?q",
            "https://ho st",
            "HTTPS://host",
        ] {
            assert!(PeerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
