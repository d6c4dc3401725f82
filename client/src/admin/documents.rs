//! The organization's documents: revocations, peers, X.509 roots, and the
//! TUF root a root ceremony submits.

use serde_json::Value;

use keyshare_policy::api::admin as api;

use super::{encode_segment, AdminClient, Result};
use super::{KeyMaterial, NewRevocation, PeerRoot, PeerSpec, RevokedSubject};
use keyshare_policy::metadata::KeyId;

impl AdminClient {
    /// `POST /api/v1/revocations`: the revocation.
    pub fn add_revocation(&self, r: &NewRevocation) -> Result<Value> {
        let mut body: api::AddRevocation<&str, &Value, &str, &str> = api::AddRevocation {
            key_id: None,
            namespace: None,
            key: None,
            public_key_pem: None,
            spki_sha256: None,
            certificate_sha256: None,
            certificate_pem: None,
            revoked_at: r.revoked_at.as_deref(),
            reason: r.reason.clone(),
        };
        match &r.subject {
            RevokedSubject::KeyId { namespace, id } => {
                body.key_id = Some(KeyId::new(id.as_str()));
                body.namespace = namespace.as_deref();
            }
            RevokedSubject::Key(KeyMaterial::Pem(p)) => body.public_key_pem = Some(p.clone()),
            RevokedSubject::Key(KeyMaterial::Tuf(v)) => body.key = Some(v),
            RevokedSubject::SpkiSha256(h) => body.spki_sha256 = Some(h),
            RevokedSubject::CertificateSha256(h) => body.certificate_sha256 = Some(h),
            RevokedSubject::CertificatePem(p) => body.certificate_pem = Some(p.clone()),
        }
        self.send("POST", "revocations", &body)
    }

    /// `GET /api/v1/revocations`: `{"revocations": [...]}`.
    pub fn revocations(&self) -> Result<Value> {
        self.get("revocations")
    }

    /// `PUT /api/v1/peers/{name}`: the peer.
    pub fn put_peer(&self, name: &str, peer: &PeerSpec) -> Result<Value> {
        let root = match &peer.root {
            PeerRoot::Sha256(h) => serde_json::json!({ "sha256": h }),
            PeerRoot::Keys { keyids, threshold } => {
                serde_json::json!({ "keyids": keyids, "threshold": threshold })
            }
        };
        let body = api::PutPeer {
            patterns: peer.patterns.clone(),
            url: peer.url.clone(),
            root,
            terminating: peer.terminating,
        };
        self.send("PUT", &format!("peers/{}", encode_segment(name)), &body)
    }

    /// `GET /api/v1/peers`: `{"peers": [...]}`.
    pub fn peers(&self) -> Result<Value> {
        self.get("peers")
    }

    /// `DELETE /api/v1/peers/{name}`.
    pub fn delete_peer(&self, name: &str) -> Result<()> {
        self.delete(&format!("peers/{}", encode_segment(name)))
    }

    /// `PUT /api/v1/roots/{name}`: the root certificate.
    pub fn put_root(&self, name: &str, pem: &str) -> Result<Value> {
        self.send(
            "PUT",
            &format!("roots/{}", encode_segment(name)),
            &api::PutRoot {
                pem: pem.to_owned(),
            },
        )
    }

    /// `POST /api/v1/root`: submits a signed TUF root file (the next
    /// version, signed by the old and new root thresholds) as it is, byte
    /// for byte: the server publishes these bytes. The server's answer.
    pub fn submit_tuf_root(&self, root: &[u8]) -> Result<Value> {
        self.call_with_bytes("POST", "root", &[], Some(root))
    }

    /// `GET /api/v1/roots`: `{"roots": [...]}`.
    pub fn roots(&self) -> Result<Value> {
        self.get("roots")
    }

    /// `DELETE /api/v1/roots/{name}`.
    pub fn delete_root(&self, name: &str) -> Result<()> {
        self.delete(&format!("roots/{}", encode_segment(name)))
    }

    /// `PUT /api/v1/tsas/{name}`: a timestamp authority to trust.
    pub fn put_tsa(
        &self,
        name: &str,
        certificate: &str,
        description: Option<&str>,
    ) -> Result<Value> {
        self.send(
            "PUT",
            &format!("tsas/{}", encode_segment(name)),
            &api::PutTsa {
                certificate: certificate.to_owned(),
                description: description.map(str::to_owned),
            },
        )
    }

    /// `GET /api/v1/tsas`: `{"tsas": [...]}`.
    pub fn tsas(&self) -> Result<Value> {
        self.get("tsas")
    }

    /// `DELETE /api/v1/tsas/{name}`.
    pub fn delete_tsa(&self, name: &str) -> Result<()> {
        self.delete(&format!("tsas/{}", encode_segment(name)))
    }
}
