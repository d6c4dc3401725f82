//! The RFC 3161 timestamp authority (`POST /api/v1/timestamp`,
//! `docs/tsa.md`): a `TimeStampReq` in, a `TimeStampResp` out, with the
//! token signed by the TSA key (ECDSA P-256 in a key file or a PKCS#11
//! token) and recorded in the store before it is handed out.
//!
//! * this module: [`Tsa`], the service: checks a request, signs a token
//!   at the server's time, records it (`timestamps` table: serial, genTime,
//!   message imprint, policy, certificate; never the request) and answers;
//!   the per-address rate limit;
//! * `protocol`: the ASN.1 of RFC 3161 / RFC 5652 / RFC 5816 — the request
//!   read strictly (DER), `TSTInfo`, the CMS `SignedData` with the
//!   `signingCertificateV2` attribute, and the `TimeStampResp`. No IO, no
//!   clock: the time and the signature come in as parameters;
//! * [`setup`]: the key, the organization's TSA CA and the TSA certificate
//!   (`init`, and `serve` for data directories made before the TSA).
//!
//! What is refused, and how, is RFC 3161's answer, a `TimeStampResp`
//! with status `rejection` and a `failInfo` (HTTP 200): a body that is not
//! a DER `TimeStampReq` (`badDataFormat`), a hash algorithm other than
//! SHA-256/384/512 (`badAlg`), an imprint of the wrong length
//! (`badDataFormat`), a policy other than `tsa.policy` (`unacceptedPolicy`),
//! any request extension (`unacceptedExtension`). A failure of the server
//! (signing, the store) is `systemFailure` (HTTP 500). What never reaches
//! the protocol — the wrong media type, an encoded or oversized body, too
//! many requests — is refused by the HTTP layer with a JSON error.
//!
//! A domain service (floor 4): it uses the store, the configuration and
//! the key loading of `keys`.

mod protocol;
pub mod setup;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use keyshare_policy::repo::SharedSigner;

use crate::config::TsaConfig;
use crate::keys::KeyError;
use crate::rate_limit::{RateLimited, RateLimiter};
use crate::store::{self, Store, TimestampRecord};

pub use protocol::{FailInfo, HashAlg};
pub use setup::{Made, Material};

/// The media type of a request (RFC 3161 §3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";
/// The media type of an answer (RFC 3161 §3.4).
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";
/// Largest request body taken, bytes. A `TimeStampReq` with a SHA-512
/// imprint, a 160-bit nonce and a policy is about 120 bytes.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Why the TSA cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsaError {
    /// The TSA key cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A certificate file is missing or unusable.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TSA key cannot sign or be read.
    #[error("TSA key: {0}")]
    Signing(String),
    /// `tsa.policy` is not an OID the ASN.1 library takes.
    #[error("tsa.policy: {0}")]
    Policy(String),
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A token was issued and recorded.
    Granted {
        /// Its serial number (lowercase hex).
        serial: String,
    },
    /// Refused by RFC 3161's rules (the answer says why).
    Rejected {
        /// The failInfo bit.
        fail: FailInfo,
        /// The statusString.
        reason: String,
    },
    /// The server failed (signing, store); answered `systemFailure`.
    Failed(String),
}

/// The answer to one request: a DER `TimeStampResp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The DER `TimeStampResp`.
    pub der: Vec<u8>,
    /// What it says.
    pub outcome: Outcome,
}

/// The name under which `init` lists this server's own timestamp
/// authority in `org/tsas.json`.
pub const OWN_TSA_NAME: &str = "keyshare";

/// Lists the top certificate of this server's TSA chain (the TSA CA `init`
/// made, or the CA of a configured chain) in `org/tsas.json` as
/// [`OWN_TSA_NAME`], so tokens of this server's TSA verify out of the box;
/// an org admin may remove it or list others (`keyshare admin tsa`).
/// Audited as `system` (`tsa.create`).
pub fn trust_own(
    publisher: &crate::publisher::Publisher,
    material: &Material,
    now: OffsetDateTime,
) -> Result<(), crate::publisher::PublishError> {
    let refused = |m: String| {
        crate::publisher::PublishError::from(store::Error::invalid(
            "tsa",
            format!("listing this server's TSA in org/tsas.json: {m}"),
        ))
    };
    let top = material
        .chain
        .last()
        .ok_or_else(|| refused("the TSA certificate chain is empty".into()))?;
    let pem = openssl::x509::X509::from_der(top)
        .and_then(|c| c.to_pem())
        .map_err(|e| refused(e.to_string()))?;
    let pem = String::from_utf8(pem).map_err(|e| refused(e.to_string()))?;
    let certificate = keyshare_policy::trust::check_tsa_certificate(&pem).map_err(refused)?;
    publisher.apply(
        "system",
        crate::publisher::Change::PutTsa {
            tsa: keyshare_policy::trust::TrustedTsa {
                name: OWN_TSA_NAME.to_owned(),
                certificate,
                description: Some(
                    "this keyshare server's timestamp authority (listed by init)".into(),
                ),
            },
        },
        now,
    )?;
    Ok(())
}

/// Records the TSA's key and certificate in the audit log (actor
/// `system`): `tsa.setup` when [`setup::prepare`] made anything (which
/// files), else `tsa.certificate` when the TSA certificate is not the one
/// the newest `tsa.*` record names (a configured chain or key changed);
/// nothing when it is. Details: the SHA-256 of the TSA certificate and of
/// the CA certificate, where the key is, the policy. So every certificate
/// that signed tokens is in the audit log. Returns the action recorded.
pub fn audit_setup(
    publisher: &crate::publisher::Publisher,
    material: &Material,
    made: Made,
    config: &TsaConfig,
    now: OffsetDateTime,
) -> Result<Option<&'static str>, crate::publisher::PublishError> {
    let sha = |der: Option<&Vec<u8>>| der.map(|d| hex::encode(openssl::sha::sha256(d)));
    let certificate = sha(material.chain.first());
    let action = if made.any() {
        "tsa.setup"
    } else {
        let last = publisher.read(|store| {
            store.audit_query(&store::AuditFilter {
                action: Some("tsa.*".into()),
                newest_first: true,
                limit: 1,
                ..store::AuditFilter::default()
            })
        })?;
        let audited = last.first().and_then(|r| {
            r.details
                .get("certificate_sha256")?
                .as_str()
                .map(str::to_owned)
        });
        if audited == certificate {
            return Ok(None);
        }
        "tsa.certificate"
    };
    let details = serde_json::json!({
        "key": if material.pkcs11 { "pkcs11" } else { "file" },
        "key_made": made.key,
        "ca_made": made.ca,
        "certificate_made": made.cert,
        "certificate_sha256": certificate,
        "ca_sha256": sha(material.chain.get(1..).and_then(<[Vec<u8>]>::last)),
        "policy": config.policy,
    });
    publisher.audit_event("system", action, "tsa", &details, now)?;
    Ok(Some(action))
}

/// The timestamp authority. `Send + Sync`; share it as `Arc<Tsa>`.
#[derive(Debug)]
pub struct Tsa {
    signer: SharedSigner,
    signing: protocol::Signing,
    policy: protocol::Policy,
    accuracy_seconds: u64,
    /// SHA-256 (hex) of the TSA certificate.
    cert_sha256: String,
    limiter: Option<RateLimiter>,
    /// Its own connection: recording a token does not wait for a publish.
    store: Mutex<Store>,
}

impl Tsa {
    /// The TSA of `material` with the settings of `config`, recording
    /// tokens in `store`. Refuses a chain whose first certificate is not a
    /// TSA certificate (extendedKeyUsage timeStamping, critical, alone).
    pub fn new(material: Material, config: &TsaConfig, store: Store) -> Result<Self, TsaError> {
        let policy = protocol::Policy::parse(&config.policy).map_err(TsaError::Policy)?;
        let signing =
            protocol::Signing::new(&material.chain).map_err(|reason| TsaError::Certificate {
                path: material.chain_path.clone(),
                reason,
            })?;
        // The chain must certify the key that signs, or no token verifies.
        let certifies = material
            .chain
            .first()
            .and_then(|der| openssl::x509::X509::from_der(der).ok())
            .and_then(|cert| cert.public_key().ok())
            .zip(
                material
                    .signer
                    .public_key()
                    .openssl_key(material.signer.key_id())
                    .ok(),
            )
            .is_some_and(|(cert, key)| cert.public_eq(key));
        if !certifies {
            return Err(TsaError::Certificate {
                path: material.chain_path.clone(),
                reason: "its first certificate does not certify the TSA key (tsa.key)".into(),
            });
        }
        let cert_sha256 = material
            .chain
            .first()
            .map(|der| hex::encode(openssl::sha::sha256(der)))
            .unwrap_or_default();
        let limiter = (config.rate_limit > 0)
            .then(|| RateLimiter::new(config.rate_limit, config.rate_window));
        Ok(Self {
            signer: material.signer,
            signing,
            policy,
            accuracy_seconds: u64::try_from(config.accuracy.whole_seconds())
                .unwrap_or(1)
                .max(1),
            cert_sha256,
            limiter,
            store: Mutex::new(store),
        })
    }

    /// SHA-256 (hex) of the TSA certificate.
    pub fn certificate_sha256(&self) -> &str {
        &self.cert_sha256
    }

    /// Counts one request from `client` (an address, see the HTTP layer)
    /// against `tsa.rate_limit`; refuses it over the limit.
    pub fn admit(&self, client: &str, now: OffsetDateTime) -> Result<(), RateLimited> {
        match &self.limiter {
            Some(limiter) => limiter.admit(client, now),
            None => Ok(()),
        }
    }

    /// Answers the DER `TimeStampReq` in `request` at `now` (the server's
    /// clock, never the client's). Never panics on any input: a request
    /// that cannot be granted is answered with a rejection. Blocking (the
    /// store, a PKCS#11 token): call from a blocking thread.
    pub fn answer(&self, request: &[u8], now: OffsetDateTime) -> Answer {
        let req = match protocol::read_request(request, &self.policy) {
            Ok(req) => req,
            Err(refusal) => {
                return Answer {
                    der: protocol::rejection(refusal.fail, &refusal.reason),
                    outcome: Outcome::Rejected {
                        fail: refusal.fail,
                        reason: refusal.reason,
                    },
                }
            }
        };
        match self.grant(&req, now) {
            Ok((der, serial)) => Answer {
                der,
                outcome: Outcome::Granted { serial },
            },
            Err(cause) => Answer {
                der: protocol::rejection(
                    FailInfo::SystemFailure,
                    "the timestamp authority failed; try again later",
                ),
                outcome: Outcome::Failed(cause),
            },
        }
    }

    fn grant(
        &self,
        req: &protocol::Request,
        now: OffsetDateTime,
    ) -> Result<(Vec<u8>, String), String> {
        let gen_time = now.to_offset(time::UtcOffset::UTC);
        let gen_time = gen_time.replace_nanosecond(0).unwrap_or(gen_time);
        let (not_before, not_after) = self.signing.valid;
        let seconds = u64::try_from(gen_time.unix_timestamp()).unwrap_or(0);
        if seconds < not_before || seconds > not_after {
            return Err(format!(
                "the TSA certificate is not valid at {gen_time} (valid from Unix time \
                 {not_before} to {not_after}): renew it (docs/tsa.md)"
            ));
        }
        let mut serial = [0u8; 16];
        openssl::rand::rand_bytes(&mut serial).map_err(|e| format!("random serial: {e}"))?;
        let tst_info =
            protocol::tst_info(req, &self.policy, &serial, gen_time, self.accuracy_seconds)?;
        let token = self.signing.sign(&tst_info, req.cert_req, |message| {
            self.signer.sign(message).map_err(|e| e.to_string())
        })?;
        let der = protocol::granted(&token)?;
        let record = TimestampRecord {
            serial: protocol::serial_hex(&serial),
            gen_time,
            hash_alg: req.hash_alg.name().to_owned(),
            hash: hex::encode(&req.hash),
            policy: self.policy.to_string(),
            tsa_cert: self.cert_sha256.clone(),
        };
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .transaction_at(now, |tx| -> Result<(), store::Error> {
                tx.record_timestamp(&record)
            })
            .map_err(|e| format!("recording the token: {e}"))?;
        Ok((der, record.serial))
    }
}
