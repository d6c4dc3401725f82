//! Peers: `PUT /api/v1/peers/{name}`.

use serde::{Deserialize, Serialize};

use crate::pattern::ArtifactPattern;
use crate::trust::{Peer, PeerUrl, PinnedRoot};

/// `PUT /api/v1/peers/{name}`: a peer keyshare service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutPeer<Pattern = ArtifactPattern, Url = PeerUrl, Root = PinnedRoot> {
    /// Artifact patterns the peer answers for.
    pub patterns: Vec<Pattern>,
    /// The peer's base URL.
    pub url: Url,
    /// Its pinned root: `{"sha256"}` or `{"keyids", "threshold"}`.
    pub root: Root,
    /// Whether the peer owns its patterns before any namespace.
    #[serde(default)]
    pub terminating: bool,
}

/// The answer to `GET /api/v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerList {
    /// Every peer, by name.
    pub peers: Vec<Peer>,
}
