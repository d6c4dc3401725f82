//! CI delegations from the job's side: generate a key locally, prove
//! possession of it, and ask the server for an ephemeral delegation
//! (`POST /api/v1/ci/nonce`, `POST /api/v1/ci/delegations`, see
//! `docs/ci.md`). The private key never leaves the job.

use keyshare_policy::api::ci::{Delegation, DelegationRequest, Nonce};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};

use crate::admin::{AdminClient, Error};

/// The message a job signs to prove it holds its key, as the server
/// checks it (one definition: `keyshare_policy::api::ci`).
pub use keyshare_policy::api::ci::proof_message;

/// A delegation granted to a freshly generated key.
#[derive(Debug)]
pub struct Granted {
    /// The job's key (keep it secret; it is trusted until `not_after`).
    pub key: InMemorySigner,
    /// The server's answer.
    pub delegation: Delegation,
}

/// Generates a `scheme` key and asks `client`'s server (whose token is the
/// job's OIDC ID token or CI token) for a delegation in `namespace`,
/// optionally for `ttl_seconds`.
pub fn request(
    client: &AdminClient,
    namespace: &str,
    scheme: Scheme,
    ttl_seconds: Option<u64>,
) -> Result<Granted, Error> {
    let key = InMemorySigner::generate(scheme)
        .map_err(|e| Error::Config(format!("cannot generate a key: {e}")))?;
    let pem = key
        .public_key()
        .openssl_key(key.key_id())
        .and_then(|k| {
            k.public_key_to_pem()
                .map_err(|e| keyshare_policy::Error::BadKey {
                    keyid: key.key_id().clone(),
                    message: e.to_string(),
                })
        })
        .map_err(|e| Error::Config(format!("cannot encode the public key: {e}")))?;
    let answer = client.send("POST", "ci/nonce", &serde_json::json!({}))?;
    let Nonce { nonce, .. } = serde_json::from_value(answer).map_err(|_| Error::BadAnswer {
        url: format!("{}/api/v1/ci/nonce", client.base_url()),
        message: "no `nonce` in the answer".into(),
    })?;
    let proof = key
        .sign(&proof_message(&nonce, namespace, key.key_id().as_str()))
        .map_err(|e| Error::Config(format!("cannot sign the proof: {e}")))?;
    let answer = client.send(
        "POST",
        "ci/delegations",
        &DelegationRequest {
            namespace,
            public_key_pem: String::from_utf8_lossy(&pem).into_owned(),
            nonce,
            proof: hex::encode(proof),
            ttl_seconds,
        },
    )?;
    let delegation = serde_json::from_value(answer).map_err(|e| Error::BadAnswer {
        url: format!("{}/api/v1/ci/delegations", client.base_url()),
        message: format!("not a delegation: {e}"),
    })?;
    Ok(Granted { key, delegation })
}

/// Ends delegation `id` early.
pub fn end(client: &AdminClient, id: &str) -> Result<(), Error> {
    client.delete(&format!("ci/delegations/{id}"))
}
