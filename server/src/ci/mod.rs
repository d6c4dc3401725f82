//! CI issuance: ephemeral signing delegations for CI jobs.
//!
//! A job proves who it is with an OIDC ID token from its CI platform
//! ([`oidc`], checked against the issuers of `[ci]`) or, where the platform
//! has none, with a scoped CI token (token kind `ci`). The admin's claim
//! rules ([`rules`]) map the token's claims to the namespaces the job may
//! sign for. The job asks for a single-use nonce, signs it (bound to the
//! namespace and its key id) with the key it generated, and sends the
//! public key with that proof of possession; the server then lists the key
//! in the namespace's trust document as ephemeral with
//! `not_after = now + ttl`, optionally issues a short-lived certificate
//! under the organization's CI CA ([`cert`]), and publishes.
//!
//! * [`CiService`]: the whole flow, independent of HTTP
//!   (`crate::http` maps it to `POST /api/v1/ci/nonce`,
//!   `POST /api/v1/ci/delegations`, `DELETE /api/v1/ci/delegations/{id}`).
//! * [`state`]: stateless nonces (a MAC under a server secret) and
//!   per-identity rate limits (in memory).
//! * [`secret`]: the CI secret of the data directory and the keys derived
//!   from it (nonces, principals).
//! * [`batch`]: group commit — concurrent delegations share one publish.
//! * [`sweeper`]: removes expired delegations every `ci.sweep_interval`.
//! * [`CiConfig`]: the `[ci]` section ([`crate::config::ci`]).
//!
//! What is published about a CI key is what a verifier needs: the key, its
//! window, `ephemeral`, the description `CI delegation` and an opaque
//! principal (`ci:<hex>`, [`secret::CiSecret::principal`]), the same for
//! every key of one identity. Who asked, exactly (OIDC issuer and subject,
//! or CI token id), is stored with the key, not published, and decides who
//! may end the delegation early. Used nonces and ID tokens are recorded in
//! the store with the key (one transaction), so a restart forgets neither.
//! Audit records of delegations carry the identity, the principal and the
//! token's claims, never the token. `docs/ci.md` is the guide.

pub mod batch;
pub mod cert;
pub mod jwt_openssl;
pub mod oidc;
pub mod rules;
pub mod secret;
pub mod state;
pub mod sweeper;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{NamespaceName, Principal, TrustedKey};

use crate::clock::Clock;
use crate::publisher::{Batched, Change, PublishError, Publisher};
use crate::store::{CiOwner, SingleUse, SingleUseKind, Store, TokenKind, TokenState};

pub use crate::config::CiConfig;
/// The wire types of the CI endpoints and the proof a job signs, shared
/// with the client (`keyshare_policy::api::ci`).
pub use keyshare_policy::api::ci::{proof_message, Delegation, DelegationRequest};

/// Why a CI request was refused. `crate::http` answers each with a 4xx
/// (or, for an issuer that cannot be reached, 503) and a code naming the
/// reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CiError {
    /// The bearer value is not a usable JWT.
    #[error("malformed ID token: {0}")]
    MalformedToken(String),
    /// `iss` is not a configured issuer.
    #[error("wrong issuer: {0}")]
    WrongIssuer(String),
    /// `aud` does not include the configured audience.
    #[error("wrong audience: {0}")]
    WrongAudience(String),
    /// `exp` has passed (or `nbf`/`iat` lie in the future).
    #[error("expired token: {0}")]
    ExpiredToken(TokenTime),
    /// The signature does not verify, or the algorithm is not accepted.
    #[error("bad token signature: {0}")]
    BadSignature(String),
    /// No claim rule matches the token's claims.
    #[error("unmatched claims: {0}")]
    UnmatchedClaims(String),
    /// The identity may not sign for the namespace.
    #[error("namespace not allowed: {0}")]
    NamespaceNotAllowed(String),
    /// The token was already used for a delegation.
    #[error("replayed token: {0}")]
    Replay(String),
    /// The nonce is not one this server issued, or expired.
    #[error("bad nonce: {0}")]
    BadNonce(NonceRefusal),
    /// The proof of possession does not verify with the presented key.
    #[error("bad proof of possession: {0}")]
    BadProof(String),
    /// Too many delegation requests by one identity.
    #[error("rate limited: more than {limit} delegation requests in {window} by this identity")]
    RateLimited {
        /// Requests allowed per window (`ci.rate_limit`).
        limit: usize,
        /// The window (`ci.rate_window`).
        window: Duration,
    },
    /// No or unusable bearer credential.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but not one the CI endpoints take.
    #[error("{0}")]
    Forbidden(String),
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The JSON field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such delegation.
    #[error("{0}")]
    NotFound(String),
    /// The issuer's keys could not be fetched.
    #[error("issuer unavailable: {0}")]
    IssuerUnavailable(String),
    /// The `[ci]` configuration cannot be used.
    #[error("{0}")]
    Config(String),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Something else failed on the server.
    #[error("{0}")]
    Internal(String),
}

impl From<crate::rate_limit::RateLimited> for CiError {
    fn from(e: crate::rate_limit::RateLimited) -> Self {
        Self::RateLimited {
            limit: e.limit,
            window: e.window,
        }
    }
}

/// Why an ID token's times were refused ([`CiError::ExpiredToken`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenTime {
    /// `exp` has passed (allowing for the clock skew).
    #[error("the token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: OffsetDateTime,
        /// The server's time.
        now: OffsetDateTime,
    },
    /// `nbf` lies in the future.
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: OffsetDateTime,
        /// The server's time.
        now: OffsetDateTime,
    },
    /// `iat` lies in the future.
    #[error("the token was issued in the future ({iat}, now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: OffsetDateTime,
        /// The server's time.
        now: OffsetDateTime,
    },
}

/// Why a nonce was refused ([`CiError::BadNonce`]); either way the job
/// asks for a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceRefusal {
    /// Not a nonce this server issued (malformed, or a bad MAC).
    #[error("not a nonce this server issued; ask POST /api/v1/ci/nonce for one")]
    NotIssued,
    /// Issued, but its lifetime has passed.
    #[error("the nonce expired; ask POST /api/v1/ci/nonce for a new one")]
    Expired,
}

/// The description of every CI key in the published documents: who asked
/// is not published (the key's principal tells keys of one identity apart
/// from others without naming it).
pub const DELEGATION_DESCRIPTION: &str = "CI delegation";

/// A verified caller of the CI endpoints.
#[derive(Clone, Debug)]
pub struct CiIdentity {
    /// For the audit log: `oidc:<iss>#<sub>` or `token:<id>`.
    pub actor: String,
    /// Exactly who (OIDC issuer and subject, or CI token id): owns the
    /// delegations it asks for.
    pub owner: CiOwner,
    /// The opaque id its keys are published with; also what rate limits
    /// count by.
    pub principal: Principal,
    /// The namespaces it may sign for, or why none.
    pub allowed: Allowed,
    /// Identity, principal and claims for the audit record (never the token).
    pub context: Value,
    /// An ID token: used up by the delegation it asks for (until it expires).
    pub replay: Option<SingleUse>,
    /// A URI naming the identity (for the certificate), for ID tokens.
    pub uri: Option<String>,
}

/// The namespaces a CI caller may sign for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Allowed {
    /// Those the claim rules give an OIDC identity.
    Namespaces(BTreeSet<NamespaceName>),
    /// Those CI token `id` is scoped to, asked of the store one namespace
    /// at a time (a token may cover thousands; its list is not loaded for
    /// every request).
    TokenScope {
        /// The token's id.
        id: String,
    },
    /// None, and why.
    Nothing(String),
}

/// How many allowed namespaces a refusal names before it says how many
/// more there are.
const NAMED_IN_REFUSAL: u32 = 10;

fn not_allowed(
    actor: &str,
    namespace: &NamespaceName,
    named: impl Iterator<Item = NamespaceName>,
    total: u64,
) -> CiError {
    let named: Vec<String> = named.map(|n| format!("`{n}`")).collect();
    let more = total.saturating_sub(named.len() as u64);
    let list = if more == 0 {
        named.join(", ")
    } else {
        format!("{} and {more} more", named.join(", "))
    };
    CiError::NamespaceNotAllowed(format!(
        "{actor} may sign for {list} but not for `{namespace}`"
    ))
}

/// The CI flow, shared by the HTTP handlers.
pub struct CiService {
    config: CiConfig,
    oidc: oidc::Oidc,
    secret: secret::CiSecret,
    nonces: state::Nonces,
    rate: state::RateLimiter,
    ca: Option<cert::CiCa>,
    batcher: batch::Batcher,
    publisher: Arc<Publisher>,
    /// A read connection of its own to the store, for CI token lookups,
    /// so authenticating does not wait for the publish in flight (which
    /// holds the publisher's lock); `None` when the store could not be
    /// opened twice, and then lookups go through the publisher.
    tokens: Option<Mutex<Store>>,
    /// When this service last recorded (or began to record) the use of
    /// each CI token, by id: of the requests that find a token's recorded
    /// last use stale, only the first records it, and the others do not
    /// queue for the publisher's lock behind it.
    recorded_use: Mutex<HashMap<String, OffsetDateTime>>,
    /// The namespaces of CI tokens, by token id, read from the store the
    /// first time a token asks for a delegation. A token's namespaces never
    /// change after it is made (deleting a namespace revokes the tokens
    /// scoped to it, and a revoked token is refused before its scope is
    /// looked at), so they are kept; at most [`SCOPES_CACHED`] tokens, and
    /// a token of more than [`SCOPE_CACHED_MAX`] namespaces is looked up
    /// in the store each time instead.
    scopes: Mutex<HashMap<String, Arc<HashSet<NamespaceName>>>>,
    /// Held while a token's namespaces are read into [`Self::scopes`]: of
    /// the requests that arrive together with a token not kept yet (a CI
    /// fleet starting at once), one reads them and the others wait for it
    /// and find them kept, instead of each reading all of them in turn.
    loading_scope: Mutex<()>,
    /// Bounds the CI-token look-ups running on blocking threads at once.
    /// They take turns on one read connection anyway; without the bound, a
    /// fleet of jobs starting together gets a blocking thread each (made
    /// for it, its memory first touched) only to queue for that
    /// connection. The others wait here, on the async worker, without a
    /// thread.
    token_lookups: tokio::sync::Semaphore,
}

/// How many CI-token look-ups run on blocking threads at once (see
/// `CiService::token_lookups`): one on the read connection, one between
/// its reads (hashing the secret, the principal).
const TOKEN_LOOKUPS: usize = 2;

/// How many CI tokens' namespaces [`CiService`] keeps in memory.
const SCOPES_CACHED: usize = 1024;

/// The most namespaces of one CI token kept in memory.
const SCOPE_CACHED_MAX: usize = 100_000;

impl std::fmt::Debug for CiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiService").finish_non_exhaustive()
    }
}

impl CiService {
    /// Builds the service and starts its publishing thread. Relative paths
    /// of `config` are relative to `data_dir`; `pin_file` is
    /// `keys.pin_file` (for a CA key in a token). The CI secret is read
    /// from `data_dir` (`keys/ci-secret`), and made there first if the data
    /// directory has none.
    pub fn new(
        config: CiConfig,
        data_dir: &Path,
        pin_file: Option<&Path>,
        publisher: Arc<Publisher>,
        clock: Clock,
    ) -> Result<Self, CiError> {
        config.check().map_err(CiError::Config)?;
        let master =
            crate::keys::ci_secret(data_dir).map_err(|e| CiError::Config(e.to_string()))?;
        let secret = secret::CiSecret::derive(master)?;
        let ca = config
            .ca
            .as_ref()
            .map(|c| cert::CiCa::open(c, data_dir, pin_file))
            .transpose()?;
        let batcher = batch::Batcher::start(
            publisher.clone(),
            clock,
            std::time::Duration::from_millis(config.batch_wait_ms),
            config.batch_max,
        )
        .map_err(|e| CiError::Internal(format!("cannot start the publishing thread: {e}")))?;
        let db = publisher.read(|s| s.path().to_owned());
        let in_memory = db.as_os_str().is_empty() || db.as_os_str() == ":memory:";
        let tokens = match publisher.read(Store::open_alongside) {
            Ok(store) if !in_memory => Some(Mutex::new(store)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "CI token lookups go through the publisher's lock");
                None
            }
        };
        Ok(Self {
            tokens,
            oidc: oidc::Oidc::new(
                &config.issuers,
                data_dir,
                config.clock_skew,
                config.jwks_min_refresh,
                config.allow_private_addresses,
            ),
            nonces: state::Nonces::new(secret.nonce_key().clone(), config.nonce_ttl),
            secret,
            rate: state::RateLimiter::new(config.rate_limit, config.rate_window),
            ca,
            batcher,
            publisher,
            config,
            recorded_use: Mutex::new(HashMap::new()),
            scopes: Mutex::new(HashMap::new()),
            loading_scope: Mutex::new(()),
            token_lookups: tokio::sync::Semaphore::new(TOKEN_LOOKUPS),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CiConfig {
        &self.config
    }

    /// A new single-use nonce and when it expires. Stores nothing.
    pub fn nonce(&self, now: OffsetDateTime) -> Result<(String, OffsetDateTime), CiError> {
        self.nonces.issue(now)
    }

    /// [`Self::authenticate`] on a blocking thread, never on the caller's
    /// async worker. CI tokens are looked up at most `TOKEN_LOOKUPS` at
    /// a time; the others wait for their turn without a thread. OIDC ID
    /// tokens are not held to that bound: fetching an issuer's keys may
    /// take seconds and must not hold up the CI tokens.
    pub async fn identify(
        self: &Arc<Self>,
        bearer: String,
        now: OffsetDateTime,
    ) -> Result<CiIdentity, CiError> {
        let _turn = if bearer.starts_with("ks_") {
            Some(
                self.token_lookups
                    .acquire()
                    .await
                    .map_err(|e| CiError::Internal(format!("token look-ups: {e}")))?,
            )
        } else {
            None
        };
        let this = Arc::clone(self);
        blocking(move || this.authenticate(&bearer, now)).await
    }

    /// Verifies a bearer credential: a CI token (`ks_...`) or an OIDC ID
    /// token. Blocking (store reads, JWKS fetches).
    pub fn authenticate(&self, bearer: &str, now: OffsetDateTime) -> Result<CiIdentity, CiError> {
        if bearer.starts_with("ks_") {
            let token = self.ci_token(bearer, now)?;
            let token =
                token.ok_or_else(|| CiError::Unauthorized("unknown or revoked token".into()))?;
            if let Some(why) = token.refusal(now) {
                return Err(CiError::Unauthorized(why));
            }
            if token.kind != "ci" {
                return Err(CiError::Forbidden(format!(
                    "token `{}` is not a CI token; the CI endpoints take CI tokens or OIDC ID tokens",
                    token.id
                )));
            }
            let owner = CiOwner::Token {
                id: token.id.clone(),
            };
            let principal = self.secret.principal(&owner)?;
            return Ok(CiIdentity {
                actor: format!("token:{}", token.id),
                allowed: Allowed::TokenScope {
                    id: token.id.clone(),
                },
                context: json!({
                    "identity": format!("token:{}", token.id),
                    "kind": "ci-token",
                    "principal": principal,
                }),
                owner,
                principal,
                replay: None,
                uri: None,
            });
        }
        let verified = self.oidc.verify(bearer, now)?;
        let actor = format!("oidc:{}#{}", verified.issuer, verified.subject);
        let owner = CiOwner::Oidc {
            issuer: verified.issuer.clone(),
            subject: verified.subject.clone(),
        };
        let principal = self.secret.principal(&owner)?;
        let allowed =
            match rules::allowed_namespaces(&self.config.rules, &verified.issuer, &verified.claims)
            {
                Some(set) => Allowed::Namespaces(set),
                None => Allowed::Nothing(format!(
                    "no claim rule of issuer {} matches this job (subject `{}`)",
                    verified.issuer, verified.subject
                )),
            };
        let replay = SingleUse {
            kind: SingleUseKind::Token,
            digest: hex::encode(keyshare_policy::hash::sha256(&secret::encode(&[
                verified.issuer.as_bytes(),
                verified.replay_key.as_bytes(),
            ]))),
            expires_at: verified.expires_at + self.config.clock_skew,
        };
        Ok(CiIdentity {
            context: json!({
                "identity": actor,
                "principal": principal,
                "claims": audit_claims(&verified.claims),
            }),
            uri: Some(format!("{}#{}", verified.issuer, verified.subject)),
            replay: Some(replay),
            owner,
            principal,
            actor,
            allowed,
        })
    }

    /// The state of the token whose secret is `bearer`, if one exists and
    /// is not revoked (as [`Publisher::authenticate`]), looked up on the
    /// service's own read connection and without the token's scope list
    /// ([`Self::check_namespace`] asks about one namespace). When the
    /// token's last use must be recorded (at most once a minute), the first
    /// request to see that records it through the publisher, under its
    /// lock, without reading the token again (its scope list may name
    /// thousands of namespaces); requests racing it do not wait for it.
    fn ci_token(&self, bearer: &str, now: OffsetDateTime) -> Result<Option<TokenState>, CiError> {
        if let Some(reader) = &self.tokens {
            let found = reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .token_state_by_secret(bearer)
                .map_err(internal)?;
            return Ok(match found {
                Some(mut token)
                    if token.refusal(now).is_none() && token.last_used_is_stale(now) =>
                {
                    if self.claim_use(&token, now) {
                        match self.publisher.record_token_use(&token.id, now) {
                            Ok(_) => token.last_used_at = Some(now),
                            Err(e) => {
                                self.recorded_use
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .remove(&token.id);
                                tracing::warn!(
                                    token = %token.id,
                                    error = %e,
                                    "cannot record the token's last use"
                                );
                            }
                        }
                    }
                    Some(token)
                }
                other => other,
            });
        }
        Ok(self
            .publisher
            .authenticate(bearer, now)
            .map_err(internal)?
            .map(|t| t.state()))
    }

    /// Whether this request is the one to record the use of `token` (whose
    /// recorded last use is stale at `now`); see [`claim_use`].
    fn claim_use(&self, token: &TokenState, now: OffsetDateTime) -> bool {
        claim_use(&self.recorded_use, token, now)
    }

    /// Reads from the store on the service's read connection, or through
    /// the publisher when it has none.
    fn read_tokens<T>(
        &self,
        f: impl FnOnce(&Store) -> crate::store::Result<T>,
    ) -> Result<T, CiError> {
        match &self.tokens {
            Some(reader) => f(&reader.lock().unwrap_or_else(PoisonError::into_inner)),
            None => self.publisher.read(f),
        }
        .map_err(internal)
    }

    /// Whether `identity` may sign for `namespace`: a refusal names the
    /// reason and (some of) the namespaces it may sign for. For a CI token,
    /// one indexed lookup in the store.
    fn check_namespace(
        &self,
        identity: &CiIdentity,
        namespace: &NamespaceName,
    ) -> Result<(), CiError> {
        match &identity.allowed {
            Allowed::Nothing(why) => Err(CiError::UnmatchedClaims(why.clone())),
            Allowed::Namespaces(set) if set.contains(namespace) => Ok(()),
            Allowed::Namespaces(set) => Err(not_allowed(
                &identity.actor,
                namespace,
                set.iter().take(NAMED_IN_REFUSAL as usize).cloned(),
                set.len() as u64,
            )),
            Allowed::TokenScope { id } => {
                let scope = match self.cached_scope(id) {
                    Some(scope) => scope,
                    None => match self.load_scope(id)? {
                        Some(scope) => scope,
                        // Too large to keep: one indexed lookup.
                        None => {
                            if self.read_tokens(|s| s.token_covers(id, namespace.as_str()))? {
                                return Ok(());
                            }
                            let (named, total) =
                                self.read_tokens(|s| s.token_scope_sample(id, NAMED_IN_REFUSAL))?;
                            return Err(not_allowed(
                                &identity.actor,
                                namespace,
                                named.into_iter(),
                                total,
                            ));
                        }
                    },
                };
                if scope.contains(namespace) {
                    return Ok(());
                }
                let mut named: Vec<NamespaceName> = scope.iter().cloned().collect();
                named.sort();
                named.truncate(NAMED_IN_REFUSAL as usize);
                Err(not_allowed(
                    &identity.actor,
                    namespace,
                    named.into_iter(),
                    scope.len() as u64,
                ))
            }
        }
    }

    /// The namespaces of CI token `id`, if kept in memory.
    fn cached_scope(&self, id: &str) -> Option<Arc<HashSet<NamespaceName>>> {
        let scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        scopes.get(id).cloned()
    }

    /// Reads the namespaces of CI token `id` from the store and keeps them
    /// (see [`Self::scopes`]); `None` for a token of more than
    /// [`SCOPE_CACHED_MAX`] namespaces. Blocking.
    fn load_scope(&self, id: &str) -> Result<Option<Arc<HashSet<NamespaceName>>>, CiError> {
        let _loading = self
            .loading_scope
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another request may have read them while this one waited.
        if let Some(scope) = self.cached_scope(id) {
            return Ok(Some(scope));
        }
        let too_many = |n: u64| n > SCOPE_CACHED_MAX as u64;
        let (_, total) = self.read_tokens(|s| s.token_scope_sample(id, 0))?;
        if too_many(total) {
            return Ok(None);
        }
        let token = self.read_tokens(|s| s.token(id))?;
        let TokenKind::Ci(list) = token.kind else {
            return Err(CiError::Internal(format!("token `{id}` is not a CI token")));
        };
        let scope: Arc<HashSet<NamespaceName>> = Arc::new(list.into_iter().collect());
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        if scopes.len() >= SCOPES_CACHED {
            scopes.clear();
        }
        scopes.insert(id.to_owned(), scope.clone());
        Ok(Some(scope))
    }

    /// Whether checking `identity`'s request needs the store (a CI token
    /// whose namespaces are not in memory yet).
    fn needs_store(&self, identity: &CiIdentity) -> bool {
        match &identity.allowed {
            Allowed::TokenScope { id } => self.cached_scope(id).is_none(),
            Allowed::Nothing(_) | Allowed::Namespaces(_) => false,
        }
    }

    /// Grants a delegation to `identity` and publishes it. Checks that read
    /// the store (a CI token's namespaces, the first time) run on a
    /// blocking thread, never on the caller's async worker: a store behind
    /// a network connection blocks, and a slow read would stall every other
    /// request on that worker.
    pub async fn delegate(
        self: &Arc<Self>,
        identity: &CiIdentity,
        req: DelegationRequest,
        now: OffsetDateTime,
    ) -> Result<Delegation, CiError> {
        let (batched, granted) = if self.needs_store(identity) {
            let (this, who) = (Arc::clone(self), identity.clone());
            blocking(move || this.prepare(&who, req, now)).await?
        } else {
            // Memory and CPU only (the key, its proof, a certificate).
            self.prepare(identity, req, now)?
        };
        let applied = self.batcher.submit(batched).await?;
        let trust_role = self.publisher.trust_role(&granted.namespace);
        Ok(Delegation {
            namespace_version: role_version(&applied.files, trust_role.as_str()),
            timestamp_version: applied.timestamp_version,
            ..granted
        })
    }

    /// Every check of a delegation request, and the change that lists the
    /// key (with the nonce and token it uses up); the delegation as it
    /// will be answered, its versions still unknown (zero, `None`).
    fn prepare(
        &self,
        identity: &CiIdentity,
        req: DelegationRequest,
        now: OffsetDateTime,
    ) -> Result<(Batched, Delegation), CiError> {
        let now = now.replace_nanosecond(0).unwrap_or(now);
        self.rate.admit(identity.principal.as_str(), now)?;
        self.check_namespace(identity, &req.namespace)?;
        let ttl = match req.ttl_seconds {
            None => self.config.default_ttl,
            Some(0) => {
                return Err(CiError::Invalid {
                    field: "ttl_seconds",
                    message: "must be positive".into(),
                })
            }
            Some(s) => Duration::seconds(
                i64::try_from(s)
                    .unwrap_or(i64::MAX)
                    .min(self.config.max_ttl.whole_seconds()),
            ),
        }
        .min(self.config.max_ttl);
        let key = key_from_pem(&req.public_key_pem)?;
        let key_id = key.key_id().map_err(|e| CiError::Invalid {
            field: "public_key_pem",
            message: e.to_string(),
        })?;
        key.check(&key_id).map_err(|e| CiError::Invalid {
            field: "public_key_pem",
            message: e.to_string(),
        })?;
        let nonce = self.nonces.check(&req.nonce, now)?;
        let proof = hex::decode(&req.proof)
            .map_err(|_| CiError::BadProof("`proof` is not a hex signature".into()))?;
        let message = proof_message(&req.nonce, req.namespace.as_str(), key_id.as_str());
        if !key.verify(&key_id, &message, &proof).unwrap_or(false) {
            return Err(CiError::BadProof(
                "the proof does not verify with the presented key over this nonce, namespace and key"
                    .into(),
            ));
        }
        // Used up with the delegation, in the store: refused there if used
        // before (400 `bad_nonce`, 401 `replay`), restarts or not.
        let mut single_use = vec![nonce];
        single_use.extend(identity.replay.clone());
        let not_after = now + ttl;
        let id = format!("{}.{}", req.namespace, key_id);
        let certificate_chain_pem = match &self.ca {
            Some(ca) => {
                Some(ca.issue(&key, &key_id, &id, identity.uri.as_deref(), now, not_after)?)
            }
            None => None,
        };
        let trusted = TrustedKey {
            id: key_id.clone(),
            key,
            not_before: Some(now),
            not_after: Some(not_after),
            ephemeral: true,
            description: Some(DELEGATION_DESCRIPTION.to_owned()),
            principal: Some(identity.principal.clone()),
            layout_root: false,
        };
        let mut context = identity.context.clone();
        if let Value::Object(map) = &mut context {
            map.insert("delegation".into(), Value::String(id.clone()));
        }
        let batched = Batched {
            actor: identity.actor.clone(),
            change: Change::DelegateCi {
                namespace: req.namespace.clone(),
                key: trusted,
                owner: identity.owner.clone(),
                single_use,
            },
            context,
        };
        Ok((
            batched,
            Delegation {
                id,
                namespace: req.namespace,
                key_id,
                not_before: now,
                not_after,
                certificate_chain_pem,
                timestamp_version: 0,
                namespace_version: None,
            },
        ))
    }

    /// Ends delegation `id` (`<namespace>.<key id>`) early; the store is
    /// read on a blocking thread, as in [`Self::delegate`].
    pub async fn end(self: &Arc<Self>, identity: &CiIdentity, id: &str) -> Result<(), CiError> {
        let (this, who, id) = (Arc::clone(self), identity.clone(), id.to_owned());
        let batched = blocking(move || this.ending(&who, &id)).await?;
        self.batcher.submit(batched).await?;
        Ok(())
    }

    /// Every check of ending delegation `id` early, and the change that
    /// removes its key.
    fn ending(&self, identity: &CiIdentity, id: &str) -> Result<Batched, CiError> {
        let not_found = || CiError::NotFound(format!("no CI delegation `{id}`"));
        let (ns, key_id) = id.split_once('.').ok_or_else(not_found)?;
        let namespace = NamespaceName::parse(ns).map_err(|_| not_found())?;
        self.check_namespace(identity, &namespace)?;
        let key_id_owned = key_id.to_owned();
        let (key, owner) = self.publisher.read(|s| {
            (
                s.key(namespace.as_str(), key_id),
                s.ci_owner(namespace.as_str(), key_id),
            )
        });
        match key {
            Ok(k) if k.key.ephemeral => {}
            Ok(_) | Err(crate::store::Error::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(CiError::Internal(e.to_string())),
        }
        let owner = owner.map_err(|e| CiError::Internal(e.to_string()))?;
        // Only the identity that asked for it may end it early: another job
        // allowed in the same namespace may not cut a running job short.
        match owner {
            Some(owner) if owner == identity.owner => {}
            Some(_) => {
                return Err(CiError::Forbidden(format!(
                    "CI delegation `{id}` was made by another identity; only it can end the delegation early"
                )))
            }
            None => {
                return Err(CiError::Forbidden(format!(
                    "CI delegation `{id}` has no recorded owner (it was made by an earlier \
                     version), so nobody can end it early; it ends at its not_after"
                )))
            }
        }
        Ok(Batched {
            actor: identity.actor.clone(),
            change: Change::RemoveKey {
                namespace,
                key_id: KeyId::new(key_id_owned),
            },
            context: identity.context.clone(),
        })
    }
}

/// Runs `work` (which reads the store) on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CiError> + Send + 'static,
) -> Result<T, CiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CiError::Internal(format!("a blocking task failed: {e}")))?
}

/// Whether the caller is the one to record the use of `token` at `now`:
/// no other has recorded it, or begun to, within the last
/// [`LAST_USED_RESOLUTION`](crate::store::LAST_USED_RESOLUTION), as
/// `recorded` (by token id) remembers. If so, `now` is remembered.
fn claim_use(
    recorded: &Mutex<HashMap<String, OffsetDateTime>>,
    token: &TokenState,
    now: OffsetDateTime,
) -> bool {
    let mut recorded = recorded.lock().unwrap_or_else(PoisonError::into_inner);
    let stale = TokenState {
        last_used_at: recorded.get(&token.id).copied(),
        ..token.clone()
    }
    .last_used_is_stale(now);
    if stale {
        recorded.insert(token.id.clone(), now);
    }
    stale
}

fn internal(e: impl std::fmt::Display) -> CiError {
    CiError::Internal(e.to_string())
}

/// The version of `metadata/<V>.<role>.json` among `files`.
fn role_version(files: &[String], role: &str) -> Option<u64> {
    let suffix = format!(".{role}.json");
    files.iter().find_map(|f| {
        f.strip_prefix("metadata/")?
            .strip_suffix(&suffix)?
            .parse()
            .ok()
    })
}

/// Claims kept in the audit record: strings, booleans and integers (the
/// audit log refuses floats); nested values are left out.
fn audit_claims(claims: &Map<String, Value>) -> Value {
    Value::Object(
        claims
            .iter()
            .filter(|(_, v)| match v {
                Value::String(_) | Value::Bool(_) => true,
                Value::Number(n) => n.is_i64() || n.is_u64(),
                Value::Array(a) => a.iter().all(Value::is_string),
                _ => false,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A TUF key from a SubjectPublicKeyInfo PEM, in its canonical form (see
/// [`keyshare_policy::keys::canonical_public_key`]): one key always gets
/// one key id.
pub fn key_from_pem(pem: &str) -> Result<Key, CiError> {
    let invalid = |m: &str| CiError::Invalid {
        field: "public_key_pem",
        message: m.to_owned(),
    };
    Key::from_spki_pem(pem).map_err(|e| match e {
        keyshare_policy::Error::BadKey { message, .. } => invalid(&message),
        other => invalid(&other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use openssl::bn::BigNumContext;
    use openssl::ec::{EcGroup, EcKey, PointConversionForm};
    use openssl::pkey::PKey;

    use super::*;

    /// Of requests that find a token's last use due, one records it: the
    /// others, until a minute after, do not (nor wait for it); the next
    /// due use after that is claimed again, and other tokens apart.
    #[test]
    fn one_request_records_a_tokens_use_per_minute() {
        let recorded = Mutex::new(HashMap::new());
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let token = |id: &str| TokenState {
            id: id.to_owned(),
            kind: "ci",
            revoked_at: None,
            expires_at: None,
            last_used_at: None,
        };
        assert!(claim_use(&recorded, &token("a"), now));
        assert!(!claim_use(&recorded, &token("a"), now));
        assert!(!claim_use(
            &recorded,
            &token("a"),
            now + Duration::seconds(59)
        ));
        assert!(claim_use(&recorded, &token("b"), now));
        assert!(claim_use(
            &recorded,
            &token("a"),
            now + Duration::seconds(60)
        ));
        assert!(!claim_use(
            &recorded,
            &token("a"),
            now + Duration::seconds(61)
        ));
    }

    fn spki_pem(der: &[u8]) -> String {
        let b64 = openssl::base64::encode_block(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn an_ec_key_sent_compressed_is_the_same_key_as_sent_uncompressed() {
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let private = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let uncompressed = spki_pem(&private.public_key_to_der().unwrap());
        let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        der.extend(
            private
                .public_key()
                .to_bytes(&group, PointConversionForm::COMPRESSED, &mut ctx)
                .unwrap(),
        );
        let compressed = spki_pem(&der);
        let a = key_from_pem(&uncompressed).unwrap();
        let b = key_from_pem(&compressed).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key_id().unwrap(), b.key_id().unwrap());
    }

    #[test]
    fn other_keys_keep_their_form() {
        let ed = PKey::generate_ed25519().unwrap();
        let pem = String::from_utf8(ed.public_key_to_pem().unwrap()).unwrap();
        let key = key_from_pem(&pem).unwrap();
        assert_eq!(key.keyval.public, hex::encode(ed.raw_public_key().unwrap()));
    }

    #[test]
    fn a_refusal_names_at_most_a_few_allowed_namespaces_and_counts_the_rest() {
        let ns = |n: &str| NamespaceName::parse(n).unwrap();
        let few = not_allowed("token:t", &ns("z"), [ns("a"), ns("b")].into_iter(), 2);
        assert_eq!(
            few.to_string(),
            "namespace not allowed: token:t may sign for `a`, `b` but not for `z`"
        );
        let many = not_allowed("token:t", &ns("z"), [ns("a"), ns("b")].into_iter(), 10_000);
        assert_eq!(
            many.to_string(),
            "namespace not allowed: token:t may sign for `a`, `b` and 9998 more but not for `z`"
        );
    }

    #[test]
    fn role_versions_come_from_metadata_paths() {
        let files = [
            "metadata/7.team-a.json".to_owned(),
            "metadata/timestamp.json".to_owned(),
            "metadata/12.team-ab.json".to_owned(),
        ];
        assert_eq!(role_version(&files, "team-a"), Some(7));
        assert_eq!(role_version(&files, "team-ab"), Some(12));
        assert_eq!(role_version(&files, "team"), None);
    }
}
