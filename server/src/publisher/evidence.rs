//! Delegation evidence for an ephemeral key
//! ([`keyshare_policy::evidence`]): the current trust document of each
//! namespace that lists it and the current bin that lists that document,
//! as published, for `GET /api/v1/evidence/{spki_sha256}`.

use keyshare_policy::evidence::DelegationEvidence;
use keyshare_policy::layout::{metadata_path, target_path};
use keyshare_policy::metadata::{Envelope, Snapshot, Targets, Timestamp};
use keyshare_policy::trust::{NamespaceName, Sha256Hex};

use super::{PublishError, Publisher};

/// Most namespaces one key's evidence names (a CI key is delegated in one;
/// a job that reuses its key across namespaces gets the first few).
pub const MAX_EVIDENCE_NAMESPACES: u32 = 8;

impl Publisher {
    /// The delegation evidence of the ephemeral key with fingerprint
    /// `fingerprint` (SHA-256 of its material), one per namespace that
    /// lists it as ephemeral now, by name, at most
    /// [`MAX_EVIDENCE_NAMESPACES`]; empty when none does. Read from the
    /// published files (the timestamp, its snapshot, the bin that version
    /// lists, the document that bin lists), so each evidence is one
    /// consistent published state.
    pub fn delegation_evidence(
        &self,
        fingerprint: &Sha256Hex,
    ) -> Result<Vec<DelegationEvidence>, PublishError> {
        let namespaces =
            self.read(|s| s.ephemeral_namespaces(fingerprint, MAX_EVIDENCE_NAMESPACES))?;
        if namespaces.is_empty() {
            return Ok(Vec::new());
        }
        let timestamp = self.published("metadata/timestamp.json")?;
        let timestamp = Envelope::<Timestamp>::parse("timestamp", &timestamp)?;
        let snapshot = self.published(&metadata_path(
            "snapshot",
            timestamp.signed.snapshot_meta().version,
        ))?;
        let snapshot = Envelope::<Snapshot>::parse("snapshot", &snapshot)?.signed;
        let mut out = Vec::with_capacity(namespaces.len());
        for name in namespaces {
            let namespace = NamespaceName::parse(&name)
                .map_err(|e| PublishError::Store(crate::store::Error::corrupt("keys", e)))?;
            let role = self.trust_role(&namespace);
            let Some(meta) = snapshot.role_meta(role.as_str()) else {
                continue;
            };
            let metadata = self.published(&metadata_path(role.as_str(), meta.version))?;
            let bin = Envelope::<Targets>::parse(role.as_str(), &metadata)?.signed;
            let path = namespace.target_path();
            // Listed in the store but not yet in the published bin (a
            // publish in flight): no evidence for it yet.
            let Some(listed) = bin.targets.get(&path) else {
                continue;
            };
            let document = self.published(&target_path(&path, listed))?;
            out.push(DelegationEvidence {
                namespace,
                role,
                metadata,
                document,
            });
        }
        Ok(out)
    }

    /// A published file's bytes; a file the published state names but the
    /// server cannot find is the server's fault.
    fn published(&self, path: &str) -> Result<Vec<u8>, PublishError> {
        self.file(path).map(|f| f.bytes.to_vec()).ok_or_else(|| {
            PublishError::Store(crate::store::Error::corrupt(
                "published_files",
                format!("`{path}` is missing"),
            ))
        })
    }
}
