//! Asking the keyshare server for the delegation evidence of an ephemeral
//! key (`GET /api/v1/ci/evidence/{spki_sha256}`,
//! [`keyshare_policy::evidence`]), for `keyshare sign-blob` to keep with a
//! signature so that it verifies after the delegation was swept.
//!
//! Nothing here is trusted: verifiers check the evidence against their own
//! trust state ([`keyshare_policy::evidence::EvidenceAnchor::check`]). The
//! answer is only checked to be evidence for this key: each document must
//! list it as an ephemeral key.

use reqwest::header::ACCEPT;

use keyshare_policy::api::ci::EvidenceAnswer;
use keyshare_policy::evidence::{DelegationEvidence, MAX_EVIDENCE_FILE};
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::NamespaceTrust;

use crate::fetch::{answer_text, server_base, BlockingClient};

/// Largest answer read: a few namespaces' evidence, each two files.
const MAX_ANSWER: usize = 4 * MAX_EVIDENCE_FILE;

/// Why no evidence was obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not be set up, or the URL is not one.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or answered an unexpected status.
    #[error("delegation evidence request to {url} failed: {message}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The answer is not evidence for this key.
    #[error("delegation evidence from {url}: {message}")]
    Answer {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Asks the server at `server` (base URL) for the delegation evidence of
/// `key` (listed as `key_id` by the signer). `Ok(empty)` when the server
/// lists the key in no namespace as an ephemeral key (404): a long-lived
/// key needs none. `server_ca`: extra PEM CA certificates for an HTTPS
/// server with a private CA.
pub fn fetch(
    server: &str,
    server_ca: Option<&[u8]>,
    key_id: &KeyId,
    key: &Key,
) -> Result<Vec<DelegationEvidence>, Error> {
    let base = server_base(server).map_err(Error::Config)?;
    let fingerprint = key
        .fingerprint(key_id)
        .map_err(|e| Error::Config(e.to_string()))?;
    let url = format!("{base}/api/v1/ci/evidence/{fingerprint}");
    let http = BlockingClient::for_server(server_ca).map_err(|e| Error::Config(e.to_string()))?;
    let (status, bytes) = http
        .send(
            http.client().get(&url).header(ACCEPT, "application/json"),
            MAX_ANSWER,
        )
        .map_err(|message| Error::Transport {
            url: url.clone(),
            message,
        })?;
    if status == 404 {
        return Ok(Vec::new());
    }
    if status != 200 {
        return Err(Error::Transport {
            message: format!("status {status}: {}", answer_text(&bytes)),
            url,
        });
    }
    let bad = |message: String| Error::Answer {
        url: url.clone(),
        message,
    };
    let answer: EvidenceAnswer =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not evidence: {e}")))?;
    for evidence in &answer.evidence {
        let doc =
            NamespaceTrust::from_target(&evidence.namespace.target_path(), &evidence.document)
                .map_err(|e| bad(e.to_string()))?;
        let listed = doc
            .keys
            .iter()
            .any(|k| k.ephemeral && k.key.fingerprint(&k.id).ok().as_ref() == Some(&fingerprint));
        if !listed {
            return Err(bad(format!(
                "the trust document of namespace `{}` does not list this key as ephemeral",
                evidence.namespace
            )));
        }
    }
    Ok(answer.evidence)
}
