//! The decision simulator: what a verifier decides for an artifact and a
//! signer, by policy's `TrustSet::decide` over the trust state built from
//! what this server published — read through policy's TUF client pinned
//! to the first root, every signature checked, as `keyshare init` and
//! `keyshare refresh` read it — so it answers as `keyshare decide` does.
//! (Except for names a peer answers for: `keyshare decide` follows the
//! redirect to the peer, the simulator does not leave the server.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::web;
use openssl::x509::X509;
use time::OffsetDateTime;

use keyshare_policy::client::{Config, Request, Response, Updater};
use keyshare_policy::datetime::parse_rfc3339;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{Decision, SignerRef, TrustSet};

use super::form::Form;
use crate::http::{ApiError, AppState};
use crate::publisher::Publisher;

/// The trust set the simulator decides with, built once per published
/// `timestamp.json` and shared by every decision until the next one: a
/// build verifies the whole published repository (every signature, every
/// trust document), so it is the simulator's cost; deciding is cheap.
/// Built lazily, by the first decision that sees a new timestamp, one
/// build at a time (others wait for it and take its result).
#[derive(Debug, Default)]
pub(crate) struct TrustCache {
    current: Mutex<Option<Built>>,
    /// Held while building: at most one build at a time.
    building: Mutex<()>,
    builds: AtomicU64,
}

#[derive(Debug)]
struct Built {
    /// The `timestamp.json` it was built from, byte for byte.
    timestamp: Arc<[u8]>,
    /// That timestamp's expiry: past it, the set is built again (and the
    /// build fails as a verifier's refresh does).
    expires: Option<OffsetDateTime>,
    set: Arc<TrustSet>,
}

impl TrustCache {
    /// How many times the trust set was built (verified from the
    /// published repository) since the server started.
    pub(crate) fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    fn cached(&self, timestamp: &[u8], now: OffsetDateTime) -> Option<Arc<TrustSet>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|b| *b.timestamp == *timestamp && b.expires.is_some_and(|e| now < e))
            .map(|b| b.set.clone())
    }

    /// The trust set of what `publisher` publishes now (blocking).
    pub(crate) fn trust_set(
        &self,
        publisher: &Publisher,
        now: OffsetDateTime,
    ) -> Result<Arc<TrustSet>, ApiError> {
        let timestamp = publisher
            .file("metadata/timestamp.json")
            .ok_or_else(|| ApiError::internal("no metadata/timestamp.json is published"))?;
        if let Some(set) = self.cached(&timestamp.bytes, now) {
            return Ok(set);
        }
        let _building = self.building.lock().unwrap_or_else(PoisonError::into_inner);
        // Another decision may have built it while this one waited.
        if let Some(set) = self.cached(&timestamp.bytes, now) {
            return Ok(set);
        }
        // The timestamp this build starts from: a publish during the
        // build leaves a set keyed to the older timestamp, built again on
        // the next decision.
        let timestamp = publisher
            .file("metadata/timestamp.json")
            .ok_or_else(|| ApiError::internal("no metadata/timestamp.json is published"))?;
        self.builds.fetch_add(1, Ordering::Relaxed);
        let set = Arc::new(build(publisher, now)?);
        let expires = serde_json::from_slice::<serde_json::Value>(&timestamp.bytes)
            .ok()
            .and_then(|v| {
                v.pointer("/signed/expires")
                    .and_then(|e| e.as_str())
                    .and_then(|e| parse_rfc3339(e).ok())
            });
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Built {
            timestamp: timestamp.bytes.clone(),
            expires,
            set: set.clone(),
        });
        Ok(set)
    }
}

/// The trust set a verifier pinned to the first root builds from what
/// `publisher` publishes: policy's TUF client, every signature and hash
/// checked, every trust document read.
fn build(publisher: &Publisher, now: OffsetDateTime) -> Result<TrustSet, ApiError> {
    let fetch = |path: &str| publisher.file(path).map(|f| f.bytes.to_vec());
    let root = fetch("metadata/1.root.json")
        .ok_or_else(|| ApiError::internal("no metadata/1.root.json is published"))?;
    let mut updater = Updater::new(&root, now, Config::default()).map_err(ApiError::internal)?;
    let meta = |request: &Request| -> Response {
        if request.is_local() {
            Response::NotFound
        } else {
            fetch(&format!("metadata/{}", request.remote_name())).into()
        }
    };
    updater.refresh_with(meta).map_err(ApiError::internal)?;
    updater
        .trust_set_with(meta, |name, _| fetch(&format!("targets/{name}")))
        .map_err(ApiError::internal)
}

/// A decision as the portal shows it.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) trusted: bool,
    /// `<artifact>: <decision>`, the line `keyshare decide` prints.
    pub(crate) line: String,
    /// The reason's code (as `keyshare decide --output json` names it).
    pub(crate) reason: Option<String>,
}

/// The signers the form names.
fn signers(form: &Form) -> Result<Vec<SignerRef>, ApiError> {
    let mut out = Vec::new();
    if let Some(id) = form.get("key_id") {
        out.push(SignerRef::KeyId(KeyId::new(id.trim())));
    }
    if let Some(text) = form.get("signer") {
        crate::http::admin::refuse_private_key("signer", text)?;
        if text.contains("-----BEGIN CERTIFICATE-----") {
            let certs = X509::stack_from_pem(text.as_bytes())
                .map_err(|_| ApiError::invalid("signer", "no PEM certificate in it"))?;
            let der = certs
                .iter()
                .map(|c| c.to_der())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::invalid("signer", e))?;
            out.push(SignerRef::CertChain(der));
        } else if text.trim_start().starts_with('{') {
            let key: Key = serde_json::from_str(text)
                .map_err(|e| ApiError::invalid("signer", format!("not a TUF key object ({e})")))?;
            out.push(SignerRef::PublicKey(key));
        } else {
            let key = Key::from_spki_pem(text).map_err(|e| match e {
                keyshare_policy::Error::BadKey { message, .. } => {
                    ApiError::invalid("signer", message)
                }
                other => ApiError::invalid("signer", other),
            })?;
            out.push(SignerRef::PublicKey(key));
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid(
            "signer",
            "name a signer: a public key or certificate, or a key id",
        ));
    }
    Ok(out)
}

/// The decision for the simulator's form.
pub(crate) async fn decide(
    state: &AppState,
    session_id: &str,
    form: &Form,
) -> Result<Outcome, ApiError> {
    let artifact = form
        .get("artifact")
        .map(|a| a.trim().to_owned())
        .ok_or_else(|| ApiError::invalid("artifact", "name the artifact"))?;
    let signers = signers(form)?;
    let now = state.now();
    // Counted once the form is well formed, before any work.
    state
        .portal
        .simulations
        .admit(session_id, now)
        .map_err(|e| {
            ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limited: more than {} decisions in {} from this session; try again later",
                    e.limit, e.window
                ),
            )
        })?;
    let signed_at = match form.get("signed_at") {
        Some(t) => parse_rfc3339(t.trim())
            .map_err(|e| ApiError::invalid("signed_at", format!("`{}`: {e}", t.trim())))?,
        None => now,
    };
    let publisher = state.publisher.clone();
    let cache = state.portal.simulator.clone();
    let decision = web::block(move || {
        let set = cache.trust_set(&publisher, now)?;
        Ok::<Decision, ApiError>(set.decide(&artifact, &signers, signed_at, now))
            .map(|d| (artifact, d))
    })
    .await
    .map_err(ApiError::internal)??;
    let (artifact, decision) = decision;
    Ok(Outcome {
        trusted: decision.is_trusted(),
        line: format!("{artifact}: {decision}"),
        reason: match &decision {
            Decision::Untrusted { reason } => Some(reason.code().to_owned()),
            Decision::Trusted { .. } => None,
        },
    })
}
