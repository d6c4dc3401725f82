//! Namespaces and what they trust: keys, identities, sub-delegations,
//! their own revocations; and who answers for an artifact name.

use serde_json::Value;

use keyshare_policy::api::admin as api;

use super::{encode_segment, AdminClient, Result};
use super::{
    KeyMaterial, NewIdentity, NewKey, NewNamespace, NewNamespaceRevocation, NewSubDelegation,
};
use keyshare_policy::metadata::KeyId;

impl AdminClient {
    /// `POST /api/v1/namespaces`: the new namespace.
    pub fn create_namespace(&self, ns: &NewNamespace) -> Result<Value> {
        self.send("POST", "namespaces", ns)
    }

    /// `GET /api/v1/namespaces`: `{"namespaces": [...]}`.
    pub fn namespaces(&self) -> Result<Value> {
        self.get("namespaces")
    }

    /// `GET /api/v1/namespaces/{ns}`: the namespace with its keys,
    /// identities and sub-delegations.
    pub fn namespace(&self, ns: &str) -> Result<Value> {
        self.get(&format!("namespaces/{}", encode_segment(ns)))
    }

    /// [`AdminClient::namespace`], with keys whose `not_after` is at most
    /// `expiring_within` ahead (`30d`, `12h`) flagged `expires_soon` (the
    /// server's default when `None`).
    pub fn namespace_expiring_within(
        &self,
        ns: &str,
        expiring_within: Option<&str>,
    ) -> Result<Value> {
        let query = api::NamespaceQuery {
            expiring_within: expiring_within.map(str::to_owned),
        }
        .pairs();
        self.call(
            "GET",
            &format!("namespaces/{}", encode_segment(ns)),
            &query,
            None,
        )
    }

    /// `POST /api/v1/namespaces/{ns}/scopes`: widens a namespace; the
    /// namespace (with `overlaps` when `allow_overlap` let some through).
    pub fn add_scopes(&self, ns: &str, scopes: &[String], allow_overlap: bool) -> Result<Value> {
        let body = api::AddScopes {
            scopes: scopes.to_vec(),
            allow_overlap,
        };
        self.send(
            "POST",
            &format!("namespaces/{}/scopes", encode_segment(ns)),
            &body,
        )
    }

    /// `POST /api/v1/namespaces/{ns}/revocations`: the namespace's
    /// revocation of one of its keys (in that namespace only).
    pub fn revoke_namespace_key(&self, ns: &str, r: &NewNamespaceRevocation) -> Result<Value> {
        let body = api::RevokeNamespaceKey {
            key_id: KeyId::new(r.key_id.as_str()),
            reason: r.reason.clone(),
            revoked_at: r.revoked_at.clone(),
        };
        self.send(
            "POST",
            &format!("namespaces/{}/revocations", encode_segment(ns)),
            &body,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/revocations/{spki_sha256}`: withdraws
    /// a namespace's revocation (org admins only).
    pub fn remove_namespace_revocation(&self, ns: &str, spki_sha256: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/revocations/{}",
            encode_segment(ns),
            encode_segment(spki_sha256)
        ))
    }

    /// `DELETE /api/v1/namespaces/{ns}`.
    pub fn delete_namespace(&self, ns: &str) -> Result<()> {
        self.delete(&format!("namespaces/{}", encode_segment(ns)))
    }

    /// `PUT /api/v1/namespaces/{ns}/threshold`: the namespace.
    pub fn set_threshold(&self, ns: &str, threshold: u32) -> Result<Value> {
        self.send(
            "PUT",
            &format!("namespaces/{}/threshold", encode_segment(ns)),
            &api::SetThreshold { threshold },
        )
    }

    // ---- keys, identities, sub-delegations ----

    /// `POST /api/v1/namespaces/{ns}/keys`: the key with its id.
    pub fn add_key(&self, ns: &str, key: &NewKey) -> Result<Value> {
        let (tuf, pem) = match &key.key {
            KeyMaterial::Tuf(v) => (Some(v), None),
            KeyMaterial::Pem(p) => (None, Some(p.as_str())),
        };
        let body = api::AddKey {
            key: tuf,
            public_key_pem: pem.map(str::to_owned),
            id: key.id.as_deref().map(KeyId::new),
            not_before: key.not_before.as_deref(),
            not_after: key.not_after.as_deref(),
            description: key.description.clone(),
            layout_root: key.layout_root,
        };
        self.send(
            "POST",
            &format!("namespaces/{}/keys", encode_segment(ns)),
            &body,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/keys/{key_id}`.
    pub fn remove_key(&self, ns: &str, key_id: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/keys/{}",
            encode_segment(ns),
            encode_segment(key_id)
        ))
    }

    /// `POST /api/v1/namespaces/{ns}/identities`: the identity.
    pub fn add_identity(&self, ns: &str, identity: &NewIdentity) -> Result<Value> {
        self.send(
            "POST",
            &format!("namespaces/{}/identities", encode_segment(ns)),
            identity,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/identities/{name}`.
    pub fn remove_identity(&self, ns: &str, name: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/identities/{}",
            encode_segment(ns),
            encode_segment(name)
        ))
    }

    /// `POST /api/v1/namespaces/{ns}/sub-delegations`: the sub-delegation.
    pub fn add_sub_delegation(&self, ns: &str, sub: &NewSubDelegation) -> Result<Value> {
        self.send(
            "POST",
            &format!("namespaces/{}/sub-delegations", encode_segment(ns)),
            sub,
        )
    }

    /// `DELETE /api/v1/namespaces/{ns}/sub-delegations/{name}`.
    pub fn remove_sub_delegation(&self, ns: &str, name: &str) -> Result<()> {
        self.delete(&format!(
            "namespaces/{}/sub-delegations/{}",
            encode_segment(ns),
            encode_segment(name)
        ))
    }

    /// `GET /api/v1/resolve?artifact=NAME`: who answers for an artifact.
    pub fn resolve(&self, artifact: &str) -> Result<Value> {
        let query = api::ResolveQuery {
            artifact: artifact.to_owned(),
        };
        self.call("GET", "resolve", &query.pairs(), None)
    }
}
