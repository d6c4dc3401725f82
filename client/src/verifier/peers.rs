//! Following peer redirects: a decision the organization's trust set
//! hands to a peer service is finished there, the peer's repository
//! refreshed over HTTP in its own cache (`peers/<name>-<hash>/`), its first
//! root checked against the pin of the signed peer map, with loop and depth
//! limits, and never at a private or loopback address unless allowed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use time::OffsetDateTime;

use keyshare_policy::hash::sha256_hex;
use keyshare_policy::metadata::{Envelope, KeyId, Root};
use keyshare_policy::trust::{Decision, PinnedRoot, Reason, SignerRef};
use keyshare_policy::verify::{verify_root_self, Authority};

use super::{Error, Hop, Outcome, PeerProblem, TrustState, Verdict, Verifier};
use crate::cache::{Manifest, RepoCache};
use crate::fetch::{HttpFetcher, TransportError};

impl Verifier {
    /// [`Self::decide`] from an already loaded organization state (the
    /// state of [`Self::refresh`] or [`Self::trust_state`]): no file is
    /// read unless the artifact belongs to a peer.
    pub async fn decide_in(
        &self,
        state: &TrustState,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
    ) -> Result<Verdict, Error> {
        let now = self.now();
        let mut hops = Vec::new();
        let mut visited = vec![normalize(&state.url)];
        let mut peer_state: Option<TrustState> = None;
        loop {
            let current = peer_state.as_ref().unwrap_or(state);
            let decision = current.trust_set.decide(artifact, signers, signed_at, now);
            let Decision::Untrusted {
                reason: Reason::DelegatedToPeer { peer, url, root },
            } = decision
            else {
                return Ok(Verdict {
                    hops,
                    outcome: Outcome::Decided(decision),
                });
            };
            // The URL comes from a signed peer map, but must not steer the
            // verifier at services inside its own network.
            let allowed = url.check_outbound(self.options.allow_private_peers);
            let url = url.as_str().trim_end_matches('/').to_owned();
            let fail = |problem| Verdict {
                hops: hops.clone(),
                outcome: Outcome::Peer {
                    peer: peer.clone(),
                    url: url.clone(),
                    problem,
                },
            };
            if visited.contains(&normalize(&url)) {
                let mut chain = visited.clone();
                chain.push(normalize(&url));
                return Ok(fail(PeerProblem::Loop(chain)));
            }
            if hops.len() >= self.options.max_peer_depth {
                return Ok(fail(PeerProblem::TooDeep(self.options.max_peer_depth)));
            }
            if let Err(refusal) = allowed {
                return Ok(fail(PeerProblem::UrlRefused(format!(
                    "{refusal}; peers must be https:// on public addresses (private and loopback peers are contacted only with --allow-private-peers)"
                ))));
            }
            match self.peer_state(&peer, &url, &root).await {
                Ok(next) => {
                    visited.push(normalize(&url));
                    hops.push(Hop { peer, url });
                    peer_state = Some(next);
                }
                Err(problem) => return Ok(fail(problem)),
            }
        }
    }

    /// Refreshes a peer's repository in its own cache, bootstrapping it
    /// from the pinned root on first contact.
    async fn peer_state(
        &self,
        name: &str,
        url: &str,
        pin: &PinnedRoot,
    ) -> Result<TrustState, PeerProblem> {
        let cache = RepoCache::new(self.peer_dir(name, url, pin));
        let unreachable = |e: Error| match e {
            Error::Transport(t @ TransportError::Refused { .. }) => {
                PeerProblem::UrlRefused(t.to_string())
            }
            Error::Transport(t) => PeerProblem::Unreachable(t.to_string()),
            other => PeerProblem::Refused(other.to_string()),
        };
        let manifest = match cache.manifest_shared() {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                let bytes = self
                    .first_root(&self.peer_transport, url)
                    .await
                    .map_err(unreachable)?;
                check_pin(&bytes, pin).map_err(PeerProblem::RootMismatch)?;
                let sha = sha256_hex(&bytes);
                let m = Manifest::pinned(url, sha.clone());
                cache
                    .commit(&m, &BTreeMap::from([(sha, bytes)]))
                    .map_err(|e| PeerProblem::Refused(e.to_string()))?;
                std::sync::Arc::new(m)
            }
        };
        let synced = self
            .sync(
                &cache,
                manifest,
                &HttpFetcher {
                    timestamp: None,
                    transport: &self.peer_transport,
                    base: url,
                },
            )
            .await
            .map_err(unreachable)?;
        let (manifest, blobs) = synced.behind.finish();
        cache
            .commit(&manifest, &blobs)
            .map_err(|e| PeerProblem::Refused(e.to_string()))?;
        Ok(synced.state)
    }

    /// `peers/<name>-<hash of url and pin>`: a changed pin or URL starts a
    /// fresh cache, bootstrapped against the new pin.
    fn peer_dir(&self, name: &str, url: &str, pin: &PinnedRoot) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let id = sha256_hex(format!("{url}\n{pin}").as_bytes());
        self.options
            .cache_dir
            .join("peers")
            .join(format!("{safe}-{}", id.get(..16).unwrap_or(&id)))
    }
}

/// Checks a peer's first root against the pin of the signed peer map.
///
/// `{"sha256"}`: the file's hash. `{"keyids", "threshold"}`: the root is
/// signed by `threshold` distinct pinned keys, counting only keys whose id
/// is their TUF key id (the SHA-256 of the key's canonical form), since a
/// peer chooses the ids in its own root; and it verifies against itself.
fn check_pin(bytes: &[u8], pin: &PinnedRoot) -> Result<(), String> {
    match pin {
        PinnedRoot::Sha256(expected) => {
            let found = sha256_hex(bytes);
            if found == expected.as_str() {
                Ok(())
            } else {
                Err(format!(
                    "1.root.json has SHA-256 {found}, the peer map pins {expected}"
                ))
            }
        }
        PinnedRoot::Keys { keyids, threshold } => {
            let envelope = Envelope::<Root>::parse("root", bytes).map_err(|e| e.to_string())?;
            let keys: BTreeMap<KeyId, keyshare_policy::keys::Key> = envelope
                .signed
                .keys
                .iter()
                .filter(|(id, key)| keyids.contains(id) && key.key_id().ok().as_ref() == Some(*id))
                .map(|(id, key)| (id.clone(), key.clone()))
                .collect();
            let authority = Authority {
                keys: &keys,
                keyids,
                threshold: *threshold,
            };
            authority
                .check("root", &envelope)
                .map_err(|e| format!("not signed by the pinned keys: {e}"))?;
            verify_root_self(envelope).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// A URL as compared for loop detection.
fn normalize(url: &str) -> String {
    url.trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;
    use std::num::NonZeroU32;

    use keyshare_policy::datetime::Expires;
    use keyshare_policy::keys::Scheme;
    use keyshare_policy::metadata::{
        RoleKeys, RoleName, Unrecognized, SPEC_VERSION, TOP_LEVEL_ROLES,
    };
    use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, SignError, Signer};
    use keyshare_policy::trust::Sha256Hex;

    use super::*;

    /// A key that claims another key's id.
    #[derive(Debug)]
    struct Posing {
        id: KeyId,
        inner: InMemorySigner,
    }

    impl Signer for Posing {
        fn key_id(&self) -> &KeyId {
            &self.id
        }
        fn public_key(&self) -> &keyshare_policy::keys::Key {
            self.inner.public_key()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
            self.inner.sign(message)
        }
    }

    /// A root v1 listing `keys` (id → signer's public key) for every role,
    /// threshold 1, signed by `signers`.
    fn root(keys: &[(KeyId, &dyn Signer)], signers: &[&dyn Signer]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let ids: Vec<KeyId> = keys.iter().map(|(id, _)| id.clone()).collect();
        let role = || RoleKeys {
            keyids: ids.clone(),
            threshold: NonZeroU32::MIN,
            unrecognized: Unrecognized::new(),
        };
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: Expires::new(now + time::Duration::days(30)),
            consistent_snapshot: Some(true),
            keys: keys
                .iter()
                .map(|(id, s)| (id.clone(), s.public_key().clone()))
                .collect::<BTreeMap<_, _>>(),
            roles: TOP_LEVEL_ROLES
                .iter()
                .map(|r| (RoleName::new(*r), role()))
                .collect(),
            unrecognized: Unrecognized::new(),
        };
        to_bytes(&sign(root, signers).unwrap()).unwrap()
    }

    #[test]
    fn pinned_keys_count_only_under_their_own_key_id() {
        let real = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let real_id = real.key_id().clone();
        let evil = Posing {
            id: real_id.clone(),
            inner: InMemorySigner::generate(Scheme::Ed25519).unwrap(),
        };
        let pin = PinnedRoot::Keys {
            keyids: vec![real_id.clone()],
            threshold: NonZeroU32::MIN,
        };
        // The peer's genuine root, signed by the pinned key.
        let good = root(&[(real_id.clone(), &real)], &[&real]);
        assert_eq!(check_pin(&good, &pin), Ok(()));
        // An impostor lists its own key under the pinned id and signs: the
        // id is not that key's TUF key id, so it does not count.
        let forged = root(&[(real_id, &evil)], &[&evil]);
        let err = check_pin(&forged, &pin).unwrap_err();
        assert!(err.contains("not signed by the pinned keys"), "{err}");
        // Under its own id, the impostor's key is simply not pinned.
        let own_id = evil.inner.key_id().clone();
        let other = root(&[(own_id, &evil.inner)], &[&evil.inner]);
        assert!(check_pin(&other, &pin).is_err());
    }

    #[test]
    fn a_pinned_hash_must_be_the_hash_of_the_root_file() {
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let bytes = root(&[(key.key_id().clone(), &key)], &[&key]);
        assert_eq!(
            check_pin(&bytes, &PinnedRoot::Sha256(Sha256Hex::of(&bytes))),
            Ok(())
        );
        let other = PinnedRoot::Sha256(Sha256Hex::of(b"another root"));
        assert!(check_pin(&bytes, &other).unwrap_err().contains("pins"));
    }
}
