//! The verifier commands: `init`, `refresh`, `decide`, `list`.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_client::blocking::Verifier;
use keyshare_client::{Options, Outcome, PeerProblem, RootPin, TrustState, Verdict};
use keyshare_policy::datetime::rfc3339;
use keyshare_policy::hash::Sha256Hex;
use keyshare_policy::keys::Key;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::trust::{
    Counted, Decision, KeyStanding, KeyState, SignerRef, TrustRule, TrustSet, TrustedKey,
};

use super::{output, read_public, Error, OutputFormat, Public};

/// Options every verifier command takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The cache directory (default `$XDG_CACHE_HOME/keyshare`, else `~/.cache/keyshare`).
    #[arg(long, env = "KEYSHARE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// PEM CA certificates trusted for HTTPS in addition to the system's.
    #[arg(long, env = "KEYSHARE_SERVER_CA")]
    server_ca: Option<PathBuf>,
    /// Seconds each HTTP request may take, connect to last byte.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Output mode.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Contact peer services on private or loopback addresses (and plain
    /// http:// to loopback): for tests and local sidecars only.
    #[arg(
        long,
        env = "KEYSHARE_ALLOW_PRIVATE_PEERS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    allow_private_peers: bool,
}

impl Common {
    /// The output mode asked for.
    pub(crate) fn output(&self) -> OutputFormat {
        self.output
    }

    pub(crate) fn verifier(&self) -> Result<Verifier, Error> {
        self.verifier_with(|_| ())
    }

    fn verifier_with(&self, adjust: impl FnOnce(&mut Options)) -> Result<Verifier, Error> {
        let dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => keyshare_client::default_cache_dir().ok_or_else(|| {
                Error::Input("no cache directory: give --cache-dir or set HOME".into())
            })?,
        };
        let mut options = Options::new(dir);
        options.timeout = Duration::from_secs(self.timeout.max(1));
        if let Some(ca) = &self.server_ca {
            options.server_ca = Some(read_bytes(ca)?);
        }
        options.allow_private_peers = self.allow_private_peers;
        adjust(&mut options);
        Ok(Verifier::new(options)?)
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// `keyshare init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The repository's base URL (`https://...`, or `http://` for loopback and tests).
    #[arg(long, env = "KEYSHARE_SERVER")]
    server: String,
    /// A root metadata file obtained out of band (e.g. `1.root.json`).
    #[arg(long, conflicts_with_all = ["root_sha256", "insecure_trust_on_first_use"])]
    root: Option<PathBuf>,
    /// The SHA-256 of a root file the server publishes (`sha256sum
    /// N.root.json`; `keyshare-server init` prints the one of
    /// `1.root.json`): the client looks for it among `1.root.json`,
    /// `2.root.json`, ... and follows later roots from there.
    #[arg(long, conflicts_with = "insecure_trust_on_first_use")]
    root_sha256: Option<String>,
    /// The version of the root `--root-sha256` names: only `N.root.json`
    /// is fetched.
    #[arg(long, value_name = "N", requires = "root_sha256")]
    root_version: Option<NonZeroU64>,
    /// Trust whatever root the server sends now. Anyone able to answer for
    /// the server at this moment gets your trust for good.
    #[arg(long)]
    insecure_trust_on_first_use: bool,
    /// Replace a root already pinned in the cache directory.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn init(args: InitArgs) -> Result<(), Error> {
    let pin = match (
        &args.root,
        &args.root_sha256,
        args.insecure_trust_on_first_use,
    ) {
        (Some(path), _, _) => RootPin::File(read_bytes(path)?),
        (None, Some(hex), _) => RootPin::Sha256 {
            sha256: Sha256Hex::parse(&hex.trim().to_ascii_lowercase())
                .map_err(|e| Error::Input(format!("--root-sha256: {e}")))?,
            version: args.root_version,
        },
        (None, None, true) => {
            output::warning(
                "--insecure-trust-on-first-use: trusting whatever root the server sends now, unverified; pin it with --root or --root-sha256 instead",
            );
            RootPin::InsecureTrustOnFirstUse
        }
        (None, None, false) => {
            return Err(Error::Input(
                "give --root FILE or --root-sha256 HEX (the pinned root)".into(),
            ))
        }
    };
    let verifier = args.common.verifier()?;
    let pinned = verifier.init(&args.server, pin, args.force)?;
    let value = json!({
        "url": pinned.url,
        "root_version": pinned.root_version,
        "root_sha256": pinned.root_sha256,
        "cache_dir": verifier.inner().options().cache_dir,
    });
    emit(args.common.output, &value, || {
        format!(
            "pinned root version {} (sha256 {}) of {}; run `keyshare refresh` next",
            pinned.root_version, pinned.root_sha256, pinned.url
        )
    });
    Ok(())
}

/// `keyshare refresh`.
#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    /// Refresh from an air-gap bundle file (`keyshare-server export`)
    /// instead of the server: no network.
    #[arg(long, value_name = "FILE")]
    from_bundle: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn refresh(args: RefreshArgs) -> Result<(), Error> {
    let verifier = args.common.verifier()?;
    let state = match &args.from_bundle {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            verifier.refresh_from_bundle(file)?
        }
        None => verifier.refresh()?,
    };
    let value = summary(&state);
    emit(args.common.output, &value, || {
        let unreadable = state.trust_set.unreadable_documents();
        let unreadable = if unreadable.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = unreadable.iter().map(|(n, _)| format!("`{n}`")).collect();
            format!(
                "; cannot read the trust document of {} (nothing signed for their artifacts is trusted; a newer format needs a newer keyshare)",
                names.join(", ")
            )
        };
        format!(
            "refreshed {}: root v{}, timestamp v{}; {} namespaces ({} with a trust document), {} revocations, {} peers{unreadable}",
            state.url,
            state.root_version,
            state.timestamp_version,
            state.trust_set.index().namespaces.len(),
            state.trust_set.namespaces().count(),
            state.trust_set.revocations().len(),
            state.trust_set.peers().len()
        )
    });
    Ok(())
}

fn summary(state: &TrustState) -> Value {
    json!({
        "url": state.url,
        "root_version": state.root_version,
        "timestamp_version": state.timestamp_version,
        "namespaces": state.trust_set.index().namespaces.len(),
        "trust_documents": state.trust_set.namespaces().count(),
        "unreadable_trust_documents": state
            .trust_set
            .unreadable_documents()
            .into_iter()
            .map(|(namespace, why)| json!({"namespace": namespace, "error": why}))
            .collect::<Vec<_>>(),
        "revocations": state.trust_set.revocations().len(),
        "peers": state.trust_set.peers().len(),
        "documents": state.documents.keys().collect::<Vec<_>>(),
    })
}

/// `keyshare decide`.
#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    /// The artifact name (e.g. `registry.acme.io/team-a/app`).
    artifact: String,
    /// A signer by key id (repeatable).
    #[arg(long = "key-id", num_args = 1)]
    key_ids: Vec<String>,
    /// A signer's public key: PEM (SubjectPublicKeyInfo) or a TUF key object (repeatable).
    #[arg(long = "key", num_args = 1)]
    keys: Vec<PathBuf>,
    /// A signer's certificate chain: PEM, leaf first (repeatable).
    #[arg(long = "cert", num_args = 1)]
    certs: Vec<PathBuf>,
    /// When the signature was made (RFC 3339; default: now).
    #[arg(long)]
    signed_at: Option<String>,
    /// Most peer redirects to follow.
    #[arg(long, default_value_t = keyshare_client::DEFAULT_MAX_PEER_DEPTH)]
    max_peer_depth: usize,
    #[command(flatten)]
    common: Common,
}

/// Runs `decide`: exit 0 trusted, 1 untrusted, 2 error.
pub(crate) fn decide(args: DecideArgs) -> ExitCode {
    match decide_inner(&args) {
        Ok(verdict) => {
            let value = verdict_json(&args.artifact, &verdict);
            emit(args.common.output, &value, || {
                format!("{}: {verdict}", args.artifact)
            });
            if verdict.is_trusted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            output::error(&e.to_string(), &[]);
            ExitCode::from(2)
        }
    }
}

fn decide_inner(args: &DecideArgs) -> Result<Verdict, Error> {
    let mut signers: Vec<SignerRef> = args
        .key_ids
        .iter()
        .map(|id| SignerRef::KeyId(KeyId::new(id.as_str())))
        .collect();
    for path in &args.keys {
        signers.push(SignerRef::PublicKey(public_key(path)?));
    }
    for path in &args.certs {
        signers.push(SignerRef::CertChain(cert_chain(path)?));
    }
    if signers.is_empty() {
        return Err(Error::Input(
            "name a signer: --key-id ID, --key FILE or --cert FILE".into(),
        ));
    }
    let signed_at = match &args.signed_at {
        Some(t) => {
            super::parse_rfc3339(t).map_err(|e| Error::Input(format!("--signed-at `{t}`: {e}")))?
        }
        None => OffsetDateTime::now_utc(),
    };
    let verifier = args
        .common
        .verifier_with(|o| o.max_peer_depth = args.max_peer_depth)?;
    Ok(verifier.decide(&args.artifact, &signers, signed_at)?)
}

/// A public key from a PEM file or a TUF key object.
fn public_key(path: &Path) -> Result<Key, Error> {
    let text = read_public(path, Public::Key)?;
    parse_public_key(&text).map_err(|what| Error::Input(format!("{}: {what}", path.display())))
}

/// A public key from PEM (SubjectPublicKeyInfo) or TUF key object text
/// (already checked to hold no private key).
pub(crate) fn parse_public_key(text: &str) -> Result<Key, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("not a TUF key object ({e})"));
    }
    Key::from_spki_pem(text).map_err(|e| match e {
        keyshare_policy::Error::BadKey { message, .. } => message,
        other => other.to_string(),
    })
}

/// A PEM certificate chain as DER, leaf first.
fn cert_chain(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let text = read_public(path, Public::Certificate)?;
    parse_cert_chain(&text).map_err(|what| Error::Input(format!("{}: {what}", path.display())))
}

/// A PEM certificate chain as DER, leaf first, from text (already checked
/// to hold no private key).
pub(crate) fn parse_cert_chain(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs = openssl::x509::X509::stack_from_pem(text.as_bytes());
    let _ = openssl::error::ErrorStack::get();
    let certs = certs
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "no PEM certificate in it".to_owned())?;
    certs
        .iter()
        .map(|c| c.to_der().map_err(|e| e.to_string()))
        .collect()
}

fn peer_code(problem: &PeerProblem) -> &'static str {
    match problem {
        PeerProblem::RootMismatch(_) => "peer_root_mismatch",
        PeerProblem::Unreachable(_) => "peer_unreachable",
        PeerProblem::UrlRefused(_) => "peer_url_refused",
        PeerProblem::Refused(_) => "peer_refused",
        PeerProblem::Loop(_) => "peer_loop",
        PeerProblem::TooDeep(_) => "peer_too_deep",
        _ => "peer_other",
    }
}

/// The principals that met a threshold: `{"key": id}`, `{"keys": [ids]}`
/// (one key listed twice), `{"principal": p, "keys": [ids]}` or
/// `{"identity": name}`.
fn principals_json(principals: &[Counted]) -> Value {
    Value::Array(
        principals
            .iter()
            .map(|p| match p {
                Counted::Key(id) => json!({ "key": id }),
                Counted::Keys(ids) => json!({ "keys": ids }),
                Counted::Principal { principal, keys } => {
                    json!({ "principal": principal, "keys": keys })
                }
                Counted::Identity(name) => json!({ "identity": name }),
                other => json!({ "text": other.to_string() }),
            })
            .collect(),
    )
}

/// A decision as JSON: `{"trusted": true, "namespace", "rule"}` or
/// `{"trusted": false, "reason", "message"}`.
pub(crate) fn decision_json(decision: &Decision) -> Value {
    match decision {
        Decision::Trusted { namespace, rule } => {
            let rule = match rule {
                TrustRule::Namespace {
                    keys,
                    identities,
                    principals,
                    threshold,
                } => {
                    json!({"kind": "namespace", "keys": keys, "identities": identities, "principals": principals_json(principals), "threshold": threshold})
                }
                TrustRule::SubDelegation {
                    name,
                    keys,
                    principals,
                    threshold,
                } => {
                    json!({"kind": "sub_delegation", "name": name, "keys": keys, "principals": principals_json(principals), "threshold": threshold})
                }
            };
            json!({"trusted": true, "namespace": namespace.as_str(), "rule": rule})
        }
        Decision::Untrusted { reason } => json!({
            "trusted": false,
            "reason": reason.code(),
            "message": reason.to_string(),
        }),
    }
}

pub(crate) fn verdict_json(artifact: &str, verdict: &Verdict) -> Value {
    let via: Vec<Value> = verdict
        .hops
        .iter()
        .map(|h| json!({"peer": h.peer, "url": h.url}))
        .collect();
    let mut v = match &verdict.outcome {
        Outcome::Decided(decision) => decision_json(decision),
        Outcome::Peer { peer, url, problem } => json!({
            "trusted": false,
            "reason": peer_code(problem),
            "message": problem.to_string(),
            "peer": peer,
            "url": url,
        }),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("artifact".into(), json!(artifact));
        obj.insert("via".into(), Value::Array(via));
    }
    v
}

/// `keyshare list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only namespaces whose name matches this glob (`team-*`).
    pattern: Option<String>,
    /// Flag keys whose not_after is at most this far ahead (`30d`, `12h`).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    expiring_within: String,
    #[command(flatten)]
    common: Common,
}

/// How a key listed in `namespace` (its own or a sub-delegation's) stands
/// at `now`, as JSON: `spki_sha256`, `state`, `expired`, `expires_soon`,
/// `revocation` (`{"by", "revoked_at", "reason", "in_effect"}` or null).
fn key_standing(
    set: &TrustSet,
    namespace: &str,
    k: &TrustedKey,
    now: OffsetDateTime,
    horizon: time::Duration,
) -> (KeyState, Value) {
    let fingerprint = k.key.fingerprint(&k.id).ok();
    let revocation = fingerprint
        .as_ref()
        .and_then(|fp| set.key_revocation(namespace, fp));
    let standing = KeyStanding::of(k, revocation, now, horizon);
    let value = json!({
        "id": k.id,
        "keytype": k.key.keytype,
        "spki_sha256": fingerprint.as_ref().map(|f| f.as_str()),
        "not_before": k.not_before.map(rfc3339),
        "not_after": k.not_after.map(rfc3339),
        "ephemeral": k.ephemeral,
        "state": standing.state.as_str(),
        "expired": standing.expired,
        "expires_soon": standing.expires_soon,
        "revocation": standing.revocation.map(|r| json!({
            "by": r.by.as_str(),
            "revoked_at": rfc3339(r.revocation.revoked_at),
            "reason": r.revocation.reason,
            "in_effect": now >= r.revocation.revoked_at,
        })),
    });
    (standing.state, value)
}

/// One line for people about a key that is not simply active (or has a
/// revocation to come); `None` for an active key.
fn key_note(namespace: &str, key: &Value) -> Option<String> {
    let s = |k: &str| key.get(k).and_then(Value::as_str).unwrap_or("-");
    let id = format!("{namespace}/{}", s("id"));
    let revocation = key.get("revocation").filter(|r| !r.is_null());
    let r = |k: &str| {
        revocation
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    match s("state") {
        "revoked" => Some(format!(
            "{id}: REVOKED by the {} at {}: {}",
            r("by"),
            r("revoked_at"),
            r("reason")
        )),
        "expired" => Some(format!("{id}: expired at {}", s("not_after"))),
        "not_yet_valid" => Some(format!("{id}: not valid before {}", s("not_before"))),
        state => {
            let mut notes = Vec::new();
            if state == "expires_soon" {
                notes.push(format!("expires soon, at {}", s("not_after")));
            }
            if revocation.is_some() {
                notes.push(format!(
                    "to be revoked by the {} from {}: {}",
                    r("by"),
                    r("revoked_at"),
                    r("reason")
                ));
            }
            (!notes.is_empty()).then(|| format!("{id}: {}", notes.join("; ")))
        }
    }
}

/// A key id in the KEYS column, with its state when it is not active.
fn key_cell(id: &str, state: KeyState) -> String {
    match state {
        KeyState::Active => short(id),
        other => format!("{}[{}]", short(id), other.as_str().replace('_', " ")),
    }
}

pub(crate) fn list(args: ListArgs) -> Result<(), Error> {
    let pattern = match &args.pattern {
        Some(p) => {
            Some(glob::Pattern::new(p).map_err(|e| Error::Input(format!("pattern `{p}`: {e}")))?)
        }
        None => None,
    };
    let horizon = keyshare_policy::datetime::parse_duration(&args.expiring_within)
        .map_err(|e| Error::Input(format!("--expiring-within `{}`: {e}", args.expiring_within)))?;
    let now = OffsetDateTime::now_utc();
    let state = args.common.verifier()?.trust_state()?;
    let set = &state.trust_set;
    let mut items = Vec::new();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for entry in &set.index().namespaces {
        if pattern
            .as_ref()
            .is_some_and(|p| !p.matches(entry.name.as_str()))
        {
            continue;
        }
        let name = entry.name.as_str();
        let doc = set.namespaces().find(|d| d.namespace == entry.name);
        let mut cells = Vec::new();
        let mut keys = Vec::new();
        for k in doc.map(|d| d.keys.as_slice()).unwrap_or_default() {
            let (state, v) = key_standing(set, name, k, now, horizon);
            cells.push(key_cell(k.id.as_str(), state));
            notes.extend(key_note(name, &v));
            keys.push(v);
        }
        let mut sub_delegations = Vec::new();
        for sub in doc
            .map(|d| d.sub_delegations.as_slice())
            .unwrap_or_default()
        {
            let mut sub_keys = Vec::new();
            for k in &sub.keys {
                let (_, v) = key_standing(set, name, k, now, horizon);
                notes.extend(key_note(&format!("{name}/{}", sub.name), &v));
                sub_keys.push(v);
            }
            sub_delegations.push(json!({ "name": sub.name, "keys": sub_keys }));
        }
        let scopes: Vec<&str> = entry.scopes.iter().map(|s| s.as_str()).collect();
        rows.push(vec![
            entry.name.to_string(),
            scopes.join(" "),
            doc.map_or("-".into(), |d| d.threshold.to_string()),
            if doc.is_some() {
                cells.join(" ")
            } else {
                "(no trust document)".into()
            },
            entry.maintainers.join(" "),
        ]);
        items.push(json!({
            "name": entry.name.as_str(),
            "scopes": scopes,
            "maintainers": entry.maintainers,
            "trust_document": doc.is_some(),
            "threshold": doc.map(|d| d.threshold.get()),
            "keys": keys,
            "identities": doc.map(|d| d.identities.iter().map(|i| i.name.clone()).collect::<Vec<_>>()).unwrap_or_default(),
            "sub_delegations": sub_delegations,
        }));
    }
    match args.common.output {
        OutputFormat::Json => output::json(&json!({
            "as_of": rfc3339(now),
            "expiring_within_seconds": horizon.whole_seconds(),
            "namespaces": items,
        })),
        OutputFormat::Text => {
            output::table(
                &["NAME", "SCOPES", "THRESHOLD", "KEYS", "MAINTAINERS"],
                &rows,
            );
            if !notes.is_empty() {
                output::text(&format!(
                    "\nkeys that are revoked, expired or expiring within {}:\n{}",
                    args.expiring_within.trim(),
                    notes.join("\n")
                ));
            }
        }
    }
    Ok(())
}

/// The first 12 characters of a long id.
fn short(id: &str) -> String {
    if id.chars().count() > 16 {
        format!("{}…", id.chars().take(12).collect::<String>())
    } else {
        id.to_owned()
    }
}

/// `keyshare export notation|pem|kyverno|policy-controller|cosign|layout-keys --dir DIR`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// What to write.
    #[arg(value_enum)]
    format: ExportFormat,
    /// The directory to write into (created if missing; for notation, its
    /// `truststore/` and `trustpolicy.oci.json` are replaced).
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// notation's trust store and `trustpolicy.oci.json` (`docs/notation.md`).
    Notation,
    /// Each namespace's public keys as PEM files.
    Pem,
    /// Kyverno `ClusterPolicy` resources with `verifyImages` rules,
    /// `kyverno.json` (`docs/exports.md`).
    Kyverno,
    /// Sigstore policy-controller `ClusterImagePolicy` resources,
    /// `policy-controller.json` (`docs/exports.md`).
    PolicyController,
    /// Public keys for `cosign verify --key` and `cosign.json`, a map from
    /// scopes to them (`docs/exports.md`).
    Cosign,
    /// The namespaces' layout-root keys: `layout-keys.json` (in-toto key
    /// maps) and PEM files (`docs/exports.md`).
    LayoutKeys,
}

pub(crate) fn export(args: ExportArgs) -> Result<(), Error> {
    use keyshare_client::export;
    let state = args.common.verifier()?.trust_state()?;
    let now = time::OffsetDateTime::now_utc();
    let summary = match args.format {
        ExportFormat::Notation => export::notation::write(&state.trust_set, &state.tsas, &args.dir),
        ExportFormat::Pem => export::pem::write(&state.trust_set, &args.dir),
        ExportFormat::Kyverno => export::kyverno::write(&state.trust_set, &args.dir, now),
        ExportFormat::PolicyController => {
            export::policy_controller::write(&state.trust_set, &args.dir, now)
        }
        ExportFormat::Cosign => export::cosign::write(&state.trust_set, &args.dir, now),
        ExportFormat::LayoutKeys => export::layout::write(&state.trust_set, &args.dir, now),
    }
    .map_err(|e| Error::Input(format!("export to {}: {e}", args.dir.display())))?;
    let mut summary = summary;
    for (namespace, why) in state.trust_set.unreadable_documents() {
        summary.warnings.push(format!(
            "namespace `{namespace}`: its trust document cannot be read ({why}); nothing is exported for it"
        ));
    }
    let value = json!({
        "dir": args.dir,
        "timestamp_version": state.timestamp_version,
        "namespaces": summary.namespaces,
        "files": summary.files,
        "warnings": summary.warnings,
    });
    if args.common.output == OutputFormat::Text {
        for w in &summary.warnings {
            output::warning(w);
        }
    }
    emit(args.common.output, &value, || {
        format!(
            "wrote {} files for {} namespaces to {} (trust state of timestamp version {}){}",
            summary.files.len(),
            summary.namespaces.len(),
            args.dir.display(),
            state.timestamp_version,
            if summary.warnings.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} left out, see the warnings above",
                    summary.warnings.len()
                )
            }
        )
    });
    Ok(())
}

fn emit(out: OutputFormat, value: &Value, text: impl FnOnce() -> String) {
    match out {
        OutputFormat::Json => output::json(value),
        OutputFormat::Text => output::text(&text()),
    }
}
