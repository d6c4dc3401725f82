//! `keyshare sign-blob` and `keyshare verify-blob`: detached signatures
//! over files (format: [`keyshare_client::blob`], `docs/ci.md`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_client::blob;
use keyshare_policy::datetime::rfc3339;
use keyshare_policy::sign::InMemorySigner;
use keyshare_policy::trust::{Decision, Reason};

use super::{output, Error, OutputFormat};

/// `keyshare sign-blob`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The private key (PKCS#8 PEM), e.g. from `keyshare ci request`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the signature (default: FILE.sig; must not exist).
    #[arg(long, value_name = "SIG")]
    signature: Option<PathBuf>,
    /// The keyshare server whose timestamp authority stamps the signature
    /// (`POST /api/v1/timestamp`); without it no token is asked for.
    #[arg(long, env = "KEYSHARE_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Extra CA certificates (PEM) for an HTTPS server with a private CA.
    #[arg(long, value_name = "FILE")]
    server_ca: Option<PathBuf>,
    /// Do not ask for a timestamp token: verifiers then decide as of the
    /// time they verify (an ephemeral CI key's signature stops verifying
    /// when its delegation ends).
    #[arg(long)]
    no_timestamp: bool,
    /// Output mode.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// The file to sign.
    file: PathBuf,
}

/// `keyshare verify-blob`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The artifact name the file is published as (decides the namespace).
    artifact: String,
    /// The file.
    file: PathBuf,
    /// Its signature (from `keyshare sign-blob`).
    #[arg(long, value_name = "SIG")]
    signature: PathBuf,
    /// Refresh the trust state from the server first (`keyshare refresh`);
    /// without it the cached state is used, verified again, offline.
    #[arg(long)]
    refresh: bool,
    /// Decide for a signature made at this RFC 3339 time instead of now.
    /// Only for a time you hold trusted evidence of (your own record of
    /// when you received the artifact, a timestamp token you verified):
    /// the signature's own `signed_at` is the signer's word and is never
    /// used, so a stolen key cannot sign "before" its revocation.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    #[command(flatten)]
    common: super::verify::Common,
}

/// Largest signature file `verify-blob` reads (a token and a few
/// namespaces' delegation evidence are well under 1 MiB).
const MAX_SIGNATURE_FILE: u64 = 16 << 20;

/// Reads the signature file, refusing one over [`MAX_SIGNATURE_FILE`].
fn read_signature(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_SIGNATURE_FILE {
        return Err(Error::Input(format!(
            "{}: larger than a signature file may be ({MAX_SIGNATURE_FILE} bytes)",
            path.display()
        )));
    }
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn sign(a: SignArgs) -> Result<(), Error> {
    let key = InMemorySigner::from_pkcs8_pem(&read(&a.key)?)
        .map_err(|e| Error::Input(format!("{}: {e}", a.key.display())))?;
    let bytes = read(&a.file)?;
    let mut sig = blob::sign(&key, &bytes, OffsetDateTime::now_utc())
        .map_err(|e| Error::Input(e.to_string()))?;
    match (&a.server, a.no_timestamp) {
        (_, true) => {}
        (None, false) => output::warning(
            "no timestamp token: no --server (or KEYSHARE_SERVER) to ask; verifiers will decide as of the time they verify",
        ),
        (Some(server), false) => {
            let ca = a.server_ca.as_deref().map(read).transpose()?;
            let raw = sig
                .signature_bytes()
                .map_err(|e| Error::Input(e.to_string()))?;
            match keyshare_client::timestamp::fetch(server, ca.as_deref(), &raw)
                .map_err(|e| Error::Failed(format!("{e} (use --no-timestamp to sign without one)")))?
            {
                Some(token) => {
                    sig.timestamp_token = Some(hex::encode(token));
                    // An ephemeral (CI) key's delegation, for verifiers after
                    // the sweep; none for a key the server lists as long-lived.
                    sig.delegation_evidence = keyshare_client::evidence::fetch(
                        server,
                        ca.as_deref(),
                        &sig.key_id,
                        &sig.key,
                    )
                    .map_err(|e| {
                        Error::Failed(format!("{e} (use --no-timestamp to sign without a token or evidence)"))
                    })?;
                }
                None => output::warning(&format!(
                    "no timestamp token: {server} runs no timestamp authority (404); verifiers will decide as of the time they verify"
                )),
            }
        }
    }
    let out = a.signature.unwrap_or_else(|| {
        let mut p = a.file.clone().into_os_string();
        p.push(".sig");
        p.into()
    });
    let json = serde_json::to_vec_pretty(&sig).map_err(|e| Error::Input(e.to_string()))?;
    // A new file, with the mode a plain create gives (0666 less the umask).
    keyshare_fsio::write_new(&out, &json, 0o666)
        .map_err(|e| Error::Input(format!("cannot write {}: {}", out.display(), e.source)))?;
    match a.output {
        OutputFormat::Json => output::json(&json!({
            "signature": out,
            "file": a.file,
            "key_id": sig.key_id,
            "sha256": sig.sha256,
            "signed_at": rfc3339(sig.signed_at),
            "timestamp_token": sig.timestamp_token.is_some(),
            "delegation_evidence": sig.delegation_evidence.len(),
        })),
        OutputFormat::Text => output::text(&format!("signature: {}", out.display())),
    }
    Ok(())
}

pub(crate) fn verify(a: VerifyArgs) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let time = match &a.at {
        None => blob::SigningTime::Now,
        Some(t) => blob::SigningTime::Trusted(
            super::parse_rfc3339(t).map_err(|e| Error::Input(format!("--at `{t}`: {e}")))?,
        ),
    };
    let bytes = read(&a.file)?;
    let sig = read_signature(&a.signature)?;
    let verifier = a.common.verifier()?;
    let state = if a.refresh {
        verifier.refresh()?
    } else {
        verifier.trust_state()?
    };
    let verified = blob::verify(
        (&state).into(),
        &a.artifact,
        &bytes,
        &sig,
        time,
        now,
    )
    .map_err(|e| {
        let mut message = e.to_string();
        if !a.refresh
            && matches!(
                e,
                blob::BlobError::Timestamp(
                    keyshare_policy::timestamp::TokenError::UntrustedTsa(_)
                )
            )
        {
            message.push_str(&format!(
                "; the cached trust state (timestamp version {}) may predate the TSA's listing in org/tsas.json: run again with --refresh to fetch the current one",
                state.timestamp_version
            ));
        }
        Error::Failed(message)
    })?;
    let when = match (time, &verified.timestamp) {
        (blob::SigningTime::Now, None) => "as of now (no timestamp token)".to_owned(),
        (blob::SigningTime::Now, Some(t)) => format!(
            "for a signature made at {} (timestamp token of TSA `{}`)",
            rfc3339(verified.decided_for),
            t.tsa
        ),
        _ => format!(
            "for a signature made at {} (--at)",
            rfc3339(verified.decided_for)
        ),
    };
    let when = match &verified.evidence {
        None => when,
        Some(e) => format!(
            "{when}, with the key's delegation from the signature's evidence (namespace `{}` as `{}` version {} listed it)",
            e.namespace, e.role, e.version
        ),
    };
    let note = format!(
        "decided {when}; the signature claims signed_at {}, which is not used",
        rfc3339(verified.claimed_signed_at)
    );
    let json_mode = a.common.output() == OutputFormat::Json;
    let source = match (time, &verified.timestamp) {
        (blob::SigningTime::Now, None) => "now",
        (blob::SigningTime::Now, Some(_)) => "timestamp_token",
        _ => "at",
    };
    let value = |message: Option<&str>| {
        let mut v = super::verify::decision_json(&verified.decision);
        if let (Some(obj), Some(m)) = (v.as_object_mut(), message) {
            obj.insert("message".into(), json!(m));
        }
        if let Some(obj) = v.as_object_mut() {
            obj.insert("artifact".into(), json!(a.artifact));
            obj.insert("file".into(), json!(a.file));
            obj.insert("signature".into(), json!(a.signature));
            obj.insert("key_id".into(), json!(verified.key_id));
            obj.insert("decided_for".into(), json!(rfc3339(verified.decided_for)));
            obj.insert("decided_for_source".into(), json!(source));
            obj.insert(
                "claimed_signed_at".into(),
                json!(rfc3339(verified.claimed_signed_at)),
            );
            obj.insert(
                "timestamp".into(),
                verified.timestamp.as_ref().map_or(Value::Null, |t| {
                    json!({
                        "tsa": t.tsa,
                        "gen_time": rfc3339(t.gen_time),
                        "signer": t.signer,
                        "signer_sha256": t.signer_sha256,
                        "serial": t.serial,
                    })
                }),
            );
            obj.insert(
                "evidence".into(),
                verified.evidence.as_ref().map_or(Value::Null, |e| {
                    json!({"namespace": e.namespace.as_str(), "role": e.role, "version": e.version})
                }),
            );
            obj.insert("timestamp_version".into(), json!(state.timestamp_version));
        }
        v
    };
    if verified.decision.is_trusted() {
        if json_mode {
            output::json(&value(None));
        } else {
            output::text(&format!("{} ({note})", verified.decision));
        }
        return Ok(());
    }
    let mut why = untrusted_message(&verified);
    if !a.refresh && may_be_stale(&verified.decision) {
        why.push_str(&format!(
            "; the cached trust state (timestamp version {}) may predate the key: run again with --refresh to fetch the current one",
            state.timestamp_version
        ));
    }
    let message = format!("{why} ({note})");
    if json_mode {
        // The decision on stdout for scripts; the error line on stderr.
        output::json(&value(Some(&message)));
    }
    Err(Error::Failed(message))
}

/// The decision's text, naming the signer by the key id its signature
/// carries rather than by the fingerprint the decision computed.
fn untrusted_message(verified: &blob::Verified) -> String {
    match &verified.decision {
        Decision::Untrusted {
            reason: Reason::KeyNotListed { namespace, .. },
        } => format!(
            "untrusted: key {} (the signature's key) is not trusted by namespace `{namespace}` for this artifact: sign with a listed key, or ask the namespace's maintainers to add it",
            verified.key_id
        ),
        other => other.to_string(),
    }
}

/// Whether a newer trust state could decide otherwise: the key, its
/// namespace or the namespace's trust document may have been published
/// since the cached state.
fn may_be_stale(decision: &Decision) -> bool {
    matches!(
        decision,
        Decision::Untrusted {
            reason: Reason::KeyNotListed { .. }
                | Reason::NoNamespace { .. }
                | Reason::NoTrustDocument { .. }
                | Reason::UnreadableTrustDocument { .. }
        }
    )
}
