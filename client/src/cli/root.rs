//! `keyshare root ...`: the offline root ceremony (`docs/operations/root-ceremony.md`).
//!
//! Keys are named by a PKCS#11 URI (`pkcs11:...`) or a key file (`file:PATH`
//! or a plain path). PINs come from the URI's `pin-source`, `--pin-file` or
//! `KEYSHARE_PIN`; key file passphrases from `--passphrase-file` or
//! `KEYSHARE_PASSPHRASE`; never from a flag value.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_client::admin::AdminClient;
use keyshare_hsm::{generate_key, KeyFileSigner, PinSource, Pkcs11Signer, Pkcs11Uri};
use keyshare_policy::cjson::to_canonical;
use keyshare_policy::datetime::Expires;
use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::{Envelope, KeyId, Role, RoleKeys, RoleName, Root, Signed};
use keyshare_policy::repo::{build_root, RoleSpec};
use keyshare_policy::sign::{add_signatures, to_bytes, Signer};
use keyshare_policy::verify::Authority;

use super::admin::Secret;
use super::output;
use super::{Error, OutputFormat};

/// Environment variable holding a token PIN.
pub(crate) const PIN_ENV: &str = "KEYSHARE_PIN";
/// Environment variable holding a key file passphrase.
pub(crate) const PASSPHRASE_ENV: &str = "KEYSHARE_PASSPHRASE";
/// Environment variable naming the PKCS#11 module when a URI has no `module-path`.
pub(crate) const MODULE_ENV: &str = "KEYSHARE_PKCS11_MODULE";

#[derive(Debug, Args)]
pub(crate) struct RootArgs {
    /// Output: a short summary for people, or one JSON document
    /// (`generate-key`, `generate-key-file` and `submit` print JSON in both).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    command: RootCommand,
}

/// Prints `value` as JSON, or `text()` as text.
fn emit(out: OutputFormat, value: &Value, text: impl FnOnce() -> String) {
    match out {
        OutputFormat::Json => output::json(value),
        OutputFormat::Text => output::text(&text()),
    }
}

/// Where secrets for keys come from.
#[derive(Debug, Clone, Args)]
struct SecretArgs {
    /// File whose first line is the token PIN (else the URI's `pin-source`,
    /// else $KEYSHARE_PIN, else a prompt).
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// File whose first line is the key file passphrase (else
    /// $KEYSHARE_PASSPHRASE, else a prompt when the file is encrypted).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemeArg {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl SchemeArg {
    fn scheme(self) -> Scheme {
        match self {
            Self::Ed25519 => Scheme::Ed25519,
            Self::Ecdsa => Scheme::EcdsaP256Sha256,
            Self::Rsa => Scheme::RsaPssSha256,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RootCommand {
    /// Generates a key pair inside a PKCS#11 token; prints its id, URI and
    /// public key entry.
    GenerateKey {
        /// The token (`pkcs11:token=NAME?module-path=/path/to/module.so`;
        /// `module-path` may instead come from KEYSHARE_PKCS11_MODULE).
        uri: String,
        #[arg(long, value_enum)]
        scheme: SchemeArg,
        /// Label of the new key in the token.
        #[arg(long)]
        label: String,
        /// Also write the public key entry (JSON) to this file.
        #[arg(long, value_name = "FILE")]
        public_out: Option<PathBuf>,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// Generates a key file (PKCS#8 PEM, encrypted when a passphrase is
    /// given); prints its id and public key entry.
    GenerateKeyFile {
        path: PathBuf,
        #[arg(long, value_enum)]
        scheme: SchemeArg,
        /// Also write the public key entry (JSON) to this file.
        #[arg(long, value_name = "FILE")]
        public_out: Option<PathBuf>,
        /// Write the key unencrypted even without a passphrase source.
        #[arg(long)]
        no_passphrase: bool,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// Writes an unsigned root (version 1 by default).
    Create(CreateArgs),
    /// Adds signatures to a root, keeping the ones already there.
    Sign {
        root: PathBuf,
        /// Signing key: `pkcs11:...`, `file:PATH` or a path (repeatable).
        #[arg(long = "key", value_name = "REF", required = true)]
        keys: Vec<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// Merges signatures of copies of the same root.
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Writes the next root version, unsigned, with role keys replaced.
    Rotate(RotateArgs),
    /// Verifies a root chain: the first self-signed, each next one by the
    /// old and the new root thresholds, versions consecutive.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Submits a signed root to a keyshare server (`POST /api/v1/root`).
    Submit {
        root: PathBuf,
        #[arg(long, env = "KEYSHARE_SERVER", default_value = "http://127.0.0.1:8439")]
        server: String,
        /// Bearer token of an org admin [env: KEYSHARE_TOKEN].
        #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
        token: Option<Secret>,
        /// File holding the bearer token.
        #[arg(long, value_name = "FILE", conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// PEM file of CA certificates to trust for an HTTPS server.
        #[arg(long, env = "KEYSHARE_SERVER_CA", value_name = "FILE")]
        server_ca: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RoleKeyArgs {
    /// Root key: a public key file (TUF key JSON or PEM) or a key reference
    /// (repeatable).
    #[arg(long = "root-key", value_name = "PUBKEY")]
    root_keys: Vec<String>,
    #[arg(long)]
    root_threshold: Option<u32>,
    #[arg(long = "targets-key", value_name = "PUBKEY")]
    targets_keys: Vec<String>,
    #[arg(long)]
    targets_threshold: Option<u32>,
    #[arg(long = "snapshot-key", value_name = "PUBKEY")]
    snapshot_keys: Vec<String>,
    #[arg(long)]
    snapshot_threshold: Option<u32>,
    #[arg(long = "timestamp-key", value_name = "PUBKEY")]
    timestamp_keys: Vec<String>,
    #[arg(long)]
    timestamp_threshold: Option<u32>,
    #[command(flatten)]
    secrets: SecretArgs,
}

impl RoleKeyArgs {
    fn roles(&self) -> [(&'static str, &[String], Option<u32>); 4] {
        [
            ("root", &self.root_keys, self.root_threshold),
            ("targets", &self.targets_keys, self.targets_threshold),
            ("snapshot", &self.snapshot_keys, self.snapshot_threshold),
            ("timestamp", &self.timestamp_keys, self.timestamp_threshold),
        ]
    }
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    keys: RoleKeyArgs,
    /// Validity: `365d`, `12h` or an RFC 3339 time.
    #[arg(long, default_value = "365d")]
    expires: String,
    #[arg(long, default_value_t = 1)]
    version: u64,
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The current root (version N).
    #[arg(long, value_name = "FILE")]
    current: PathBuf,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    keys: RoleKeyArgs,
    /// Validity of the new root: `365d`, `12h` or an RFC 3339 time.
    #[arg(long, default_value = "365d")]
    expires: String,
}

pub(crate) fn run(args: RootArgs) -> Result<(), Error> {
    let out = args.output;
    match args.command {
        RootCommand::GenerateKey {
            uri,
            scheme,
            label,
            public_out,
            secrets,
        } => {
            let uri = parse_uri(&uri)?;
            let pin = pin_source(&uri, &secrets);
            let key_uri = generate_key(&uri, &pin, scheme.scheme(), &label).map_err(hsm)?;
            let signer = Pkcs11Signer::open(&key_uri, &pin, Some(scheme.scheme())).map_err(hsm)?;
            print_key(&signer, json!({ "uri": key_uri.to_string() }), public_out)
        }
        RootCommand::GenerateKeyFile {
            path,
            scheme,
            public_out,
            no_passphrase,
            secrets,
        } => {
            let pass = if no_passphrase {
                None
            } else {
                Some(passphrase_source(&secrets).read().map_err(hsm)?)
            };
            let signer =
                KeyFileSigner::generate(&path, scheme.scheme(), pass.as_ref()).map_err(hsm)?;
            print_key(&signer, json!({ "path": path }), public_out)
        }
        RootCommand::Create(args) => create(args, out),
        RootCommand::Sign {
            root,
            keys,
            out: file,
            secrets,
        } => sign(&root, &keys, &file, &secrets, out),
        RootCommand::Merge { files, out: file } => merge(&files, &file, out),
        RootCommand::Rotate(args) => rotate(args, out),
        RootCommand::Verify { files } => verify(&files, out),
        RootCommand::Submit {
            root,
            server,
            token,
            token_file,
            server_ca,
        } => submit(&root, &server, token, token_file, server_ca),
    }
}

fn hsm(e: keyshare_hsm::Error) -> Error {
    Error::Input(e.to_string())
}

fn policy(e: keyshare_policy::error::Error) -> Error {
    Error::Input(e.to_string())
}

fn parse_uri(text: &str) -> Result<Pkcs11Uri, Error> {
    let mut uri = Pkcs11Uri::parse(text).map_err(hsm)?;
    if uri.module_path.is_none() {
        if let Some(m) = std::env::var_os(MODULE_ENV) {
            uri.module_path = Some(PathBuf::from(m));
        }
    }
    Ok(uri)
}

fn pin_source(uri: &Pkcs11Uri, secrets: &SecretArgs) -> PinSource {
    if let Some(p) = uri.pin() {
        return p;
    }
    if let Some(f) = &secrets.pin_file {
        return PinSource::File(f.clone());
    }
    if std::env::var_os(PIN_ENV).is_some() {
        return PinSource::Env(PIN_ENV.to_owned());
    }
    PinSource::Prompt(format!(
        "PIN for token {}: ",
        uri.token.as_deref().unwrap_or("?")
    ))
}

fn passphrase_source(secrets: &SecretArgs) -> PinSource {
    if let Some(f) = &secrets.passphrase_file {
        return PinSource::File(f.clone());
    }
    if std::env::var_os(PASSPHRASE_ENV).is_some() {
        return PinSource::Env(PASSPHRASE_ENV.to_owned());
    }
    PinSource::Prompt("key file passphrase: ".to_owned())
}

/// A key reference: a PKCS#11 URI or a key file.
enum KeyRef {
    Pkcs11(Pkcs11Uri),
    File(PathBuf),
}

fn key_ref(text: &str) -> Result<KeyRef, Error> {
    if text.starts_with("pkcs11:") {
        return Ok(KeyRef::Pkcs11(parse_uri(text)?));
    }
    let path = text.strip_prefix("file:").unwrap_or(text);
    Ok(KeyRef::File(PathBuf::from(path)))
}

fn open_signer(text: &str, secrets: &SecretArgs) -> Result<Box<dyn Signer>, Error> {
    match key_ref(text)? {
        KeyRef::Pkcs11(uri) => {
            let pin = pin_source(&uri, secrets);
            Ok(Box::new(Pkcs11Signer::open(&uri, &pin, None).map_err(hsm)?))
        }
        KeyRef::File(path) => {
            let pass = passphrase_source(secrets);
            Ok(Box::new(
                KeyFileSigner::open(&path, Some(&pass)).map_err(hsm)?,
            ))
        }
    }
}

fn print_key(
    signer: &dyn Signer,
    mut extra: Value,
    public_out: Option<PathBuf>,
) -> Result<(), Error> {
    let key = serde_json::to_value(signer.public_key())
        .map_err(|e| Error::Input(format!("cannot encode the key: {e}")))?;
    if let Some(path) = public_out {
        write_file(&path, &pretty(&key)?)?;
    }
    if let Value::Object(m) = &mut extra {
        m.insert("keyid".into(), json!(signer.key_id().as_str()));
        m.insert("key".into(), key);
    }
    output::json(&extra);
    Ok(())
}

fn pretty(v: &Value) -> Result<Vec<u8>, Error> {
    let mut s = serde_json::to_vec_pretty(v)
        .map_err(|e| Error::Input(format!("cannot encode JSON: {e}")))?;
    s.push(b'\n');
    Ok(s)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes)
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", path.display())))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// A public key: a file with a TUF key entry (or `{"key": entry}` as the
/// generate commands print), a PEM public key, or a key reference whose
/// public key is read (PKCS#11 URI, private key file).
fn public_key(text: &str, secrets: &SecretArgs) -> Result<(KeyId, Key), Error> {
    if text.starts_with("pkcs11:") {
        let s = open_signer(text, secrets)?;
        return Ok((s.key_id().clone(), s.public_key().clone()));
    }
    let path = Path::new(text.strip_prefix("file:").unwrap_or(text));
    let bytes = read_bytes(path)?;
    let trimmed = String::from_utf8_lossy(&bytes);
    let trimmed = trimmed.trim_start();
    let key = if trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
        Key::from_spki_pem(trimmed).map_err(|e| match e {
            keyshare_policy::Error::BadKey { message, .. } => {
                Error::Input(format!("{}: {message}", path.display()))
            }
            other => policy(other),
        })?
    } else if trimmed.starts_with("-----BEGIN") {
        let s = open_signer(text, secrets)?;
        return Ok((s.key_id().clone(), s.public_key().clone()));
    } else {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Input(format!(
                "{}: neither a PEM key nor JSON ({e})",
                path.display()
            ))
        })?;
        let entry = v.get("key").cloned().unwrap_or(v);
        serde_json::from_value::<Key>(entry).map_err(|e| {
            Error::Input(format!(
                "{}: not a TUF public key entry ({e})",
                path.display()
            ))
        })?
    };
    let id = key.key_id().map_err(policy)?;
    key.check(&id)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    Ok((id, key))
}

fn role_spec(
    role: &str,
    refs: &[String],
    threshold: Option<u32>,
    secrets: &SecretArgs,
) -> Result<RoleSpec, Error> {
    let mut keys: Vec<(KeyId, Key)> = Vec::new();
    for r in refs {
        let (id, key) = public_key(r, secrets)?;
        if !keys.iter().any(|(k, _)| k == &id) {
            keys.push((id, key));
        }
    }
    if keys.is_empty() {
        return Err(Error::Input(format!("no --{role}-key given")));
    }
    let t = threshold.unwrap_or(1);
    let threshold = NonZeroU32::new(t)
        .ok_or_else(|| Error::Input(format!("--{role}-threshold must be at least 1")))?;
    if keys.len() < t as usize {
        return Err(Error::Input(format!(
            "--{role}-threshold {t} is more than the {} distinct {role} key(s)",
            keys.len()
        )));
    }
    Ok(RoleSpec { keys, threshold })
}

/// `365d`, `12h`, `30m` from now, or an RFC 3339 time.
fn expires(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    let bad = || {
        Error::Input(format!(
            "--expires {text:?}: expected e.g. 365d, 12h or an RFC 3339 time"
        ))
    };
    let units = [('d', 86_400i64), ('h', 3_600), ('m', 60)];
    for (unit, secs) in units {
        if let Some(n) = text.strip_suffix(unit) {
            if let Ok(n) = n.parse::<i64>() {
                if n <= 0 {
                    return Err(bad());
                }
                let secs = n.checked_mul(secs).ok_or_else(bad)?;
                let t = now + time::Duration::seconds(secs);
                // Whole seconds, as TUF writes them.
                return t.replace_nanosecond(0).map_err(|_| bad());
            }
        }
    }
    Expires::parse(text).map(Expires::time).map_err(|_| bad())
}

fn write_root(path: &Path, root: &Signed<Root>) -> Result<(), Error> {
    let bytes = to_bytes(root).map_err(policy)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input(format!("cannot encode the root: {e}")))?;
    write_file(path, &pretty(&v)?)
}

fn read_root(path: &Path) -> Result<(Signed<Root>, Vec<u8>), Error> {
    let bytes = read_bytes(path)?;
    let env = Envelope::<Root>::parse("root", &bytes)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    let signed: Signed<Root> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    Ok((signed, env.canonical))
}

fn unsigned(root: Root) -> Signed<Root> {
    Signed {
        signatures: Vec::new(),
        signed: root,
        unrecognized: Default::default(),
    }
}

/// The roles of a root as JSON: `{"root": {"keyids", "threshold"}, ...}`.
fn roles_json(root: &Root) -> Value {
    Value::Object(
        root.roles
            .iter()
            .map(|(name, r)| {
                (
                    name.as_str().to_owned(),
                    json!({"keyids": r.keyids, "threshold": r.threshold.get()}),
                )
            })
            .collect(),
    )
}

fn create(args: CreateArgs, out: OutputFormat) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let expires = expires(&args.expires, now)?;
    if args.version == 0 {
        return Err(Error::Input("--version must be at least 1".into()));
    }
    let mut specs = Vec::new();
    for (role, refs, t) in args.keys.roles() {
        specs.push(role_spec(role, refs, t, &args.keys.secrets)?);
    }
    let [r, t, s, ts] =
        <[RoleSpec; 4]>::try_from(specs).map_err(|_| Error::Input("four roles expected".into()))?;
    let root = build_root(
        args.version,
        expires,
        [
            ("root", &r),
            ("targets", &t),
            ("snapshot", &s),
            ("timestamp", &ts),
        ],
    )
    .map_err(policy)?;
    let value = json!({
        "file": args.out,
        "version": root.version,
        "expires": root.expires.to_string(),
        "roles": roles_json(&root),
        "signatures": 0,
    });
    write_root(&args.out, &unsigned(root))?;
    emit(out, &value, || {
        format!(
            "wrote unsigned root v{} to {} (root threshold {} of {})",
            args.version,
            args.out.display(),
            r.threshold,
            r.keys.len()
        )
    });
    Ok(())
}

fn sign(
    root: &Path,
    keys: &[String],
    out: &Path,
    secrets: &SecretArgs,
    format: OutputFormat,
) -> Result<(), Error> {
    let (mut envelope, _) = read_root(root)?;
    let mut signers = Vec::new();
    for k in keys {
        signers.push(open_signer(k, secrets)?);
    }
    let refs: Vec<&dyn Signer> = signers.iter().map(|s| s.as_ref()).collect();
    add_signatures(&mut envelope, &refs).map_err(policy)?;
    write_root(out, &envelope)?;
    let mut lines = Vec::new();
    let mut signed_with = Vec::new();
    for s in &signers {
        let listed = envelope
            .signed
            .roles
            .get(&RoleName::new("root"))
            .is_some_and(|r| r.keyids.contains(s.key_id()));
        let note = if listed {
            ""
        } else {
            " (not a root key of this version: counts only for a rotation from the previous one)"
        };
        lines.push(format!("signed with {}{note}", s.key_id()));
        signed_with.push(json!({"keyid": s.key_id().as_str(), "root_key": listed}));
    }
    lines.push(format!(
        "wrote {} ({} signature(s))",
        out.display(),
        envelope.signatures.len()
    ));
    let value = json!({
        "file": out,
        "version": envelope.signed.version,
        "signed_with": signed_with,
        "signatures": envelope.signatures.len(),
    });
    emit(format, &value, || lines.join("\n"));
    Ok(())
}

fn merge(files: &[PathBuf], out: &Path, format: OutputFormat) -> Result<(), Error> {
    let mut merged: Option<(Signed<Root>, Vec<u8>, &Path)> = None;
    for f in files {
        let (root, canonical) = read_root(f)?;
        match &mut merged {
            None => merged = Some((root, canonical, f)),
            Some((m, c, first)) => {
                if *c != canonical {
                    return Err(Error::Input(format!(
                        "{}: its `signed` differs from {}'s; refusing to merge",
                        f.display(),
                        first.display()
                    )));
                }
                for sig in root.signatures {
                    if !m.signatures.iter().any(|s| s.keyid == sig.keyid) {
                        m.signatures.push(sig);
                    }
                }
            }
        }
    }
    let Some((root, _, _)) = merged else {
        return Err(Error::Input("no files to merge".into()));
    };
    write_root(out, &root)?;
    let value = json!({
        "file": out,
        "version": root.signed.version,
        "merged": files,
        "signatures": root.signatures.len(),
        "keyids": root.signatures.iter().map(|s| s.keyid.as_str()).collect::<Vec<_>>(),
    });
    emit(format, &value, || {
        format!(
            "wrote {} ({} signature(s))",
            out.display(),
            root.signatures.len()
        )
    });
    Ok(())
}

fn rotate(args: RotateArgs, out: OutputFormat) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let expires = expires(&args.expires, now)?;
    let (current, _) = read_root(&args.current)?;
    let mut root = current.signed.clone();
    root.version = current
        .signed
        .version
        .checked_add(1)
        .ok_or_else(|| Error::Input("root version overflow".into()))?;
    root.expires = Expires::new(expires);
    let mut changed = Vec::new();
    for (role, refs, threshold) in args.keys.roles() {
        let name = RoleName::new(role);
        let old_threshold = root.roles.get(&name).map(|r| r.threshold.get());
        if refs.is_empty() {
            if let Some(t) = threshold {
                let keys = root.roles.get(&name).map_or(0, |r| r.keyids.len());
                if t == 0 || keys < t as usize {
                    return Err(Error::Input(format!(
                        "--{role}-threshold {t} does not fit the {keys} {role} key(s)"
                    )));
                }
                if let Some(r) = root.roles.get_mut(&name) {
                    r.threshold = NonZeroU32::new(t).unwrap_or(r.threshold);
                }
                changed.push(role);
            }
            continue;
        }
        let t = threshold.or(old_threshold.filter(|&t| t as usize <= refs.len()));
        let spec = role_spec(role, refs, t, &args.keys.secrets)?;
        for (id, key) in &spec.keys {
            root.keys.insert(id.clone(), key.clone());
        }
        root.roles.insert(
            name,
            RoleKeys {
                keyids: spec.keys.iter().map(|(id, _)| id.clone()).collect(),
                threshold: spec.threshold,
                unrecognized: Default::default(),
            },
        );
        changed.push(role);
    }
    // Keys no role lists any more are dropped.
    let used: BTreeSet<KeyId> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| used.contains(id));
    to_canonical(&root, Root::TYPE).map_err(policy)?;
    let value = json!({
        "file": args.out,
        "version": root.version,
        "previous_version": current.signed.version,
        "expires": root.expires.to_string(),
        "changed": changed,
        "roles": roles_json(&root),
        "signatures": 0,
    });
    write_root(&args.out, &unsigned(root))?;
    emit(out, &value, || {
        format!(
            "wrote unsigned root v{} to {} (changed: {}); it needs the threshold of v{} and its own",
            current.signed.version + 1,
            args.out.display(),
            if changed.is_empty() {
                "expiry only".to_owned()
            } else {
                changed.join(", ")
            },
            current.signed.version
        )
    });
    Ok(())
}

fn verify(files: &[PathBuf], out: OutputFormat) -> Result<(), Error> {
    let mut trusted: Option<Root> = None;
    let mut lines = Vec::new();
    let mut roots = Vec::new();
    let now = OffsetDateTime::now_utc();
    for f in files {
        let bytes = read_bytes(f)?;
        let fail = |why: String| Error::Failed(format!("{}: {why}", f.display()));
        let env = Envelope::<Root>::parse("root", &bytes).map_err(|e| fail(e.to_string()))?;
        let version = env.signed.version;
        if let Some(prev) = &trusted {
            let expected = prev.version + 1;
            if version != expected {
                return Err(fail(format!(
                    "version {version} does not follow version {} (expected {expected})",
                    prev.version
                )));
            }
            Authority::from_root(prev, "root")
                .and_then(|a| a.check("root", &env))
                .map_err(|e| {
                    fail(format!(
                        "threshold not met for the old root (v{}): {e}",
                        prev.version
                    ))
                })?;
        }
        Authority::from_root(&env.signed, "root")
            .and_then(|a| a.check("root", &env))
            .map_err(|e| {
                let which = if trusted.is_some() {
                    format!("the new root (v{version})")
                } else {
                    format!("its own root role (v{version})")
                };
                fail(format!("threshold not met for {which}: {e}"))
            })?;
        let root_role = env.signed.roles.get(&RoleName::new("root"));
        let expired = if env.signed.expires.is_expired(now) {
            " (expired)"
        } else {
            ""
        };
        lines.push(format!(
            "{}: v{version} ok, root {} of {}, {} signature(s), expires {}{expired}",
            f.display(),
            root_role.map_or(0, |r| r.threshold.get()),
            root_role.map_or(0, |r| r.keyids.len()),
            env.signatures.len(),
            env.signed.expires
        ));
        roots.push(json!({
            "file": f,
            "version": version,
            "root_threshold": root_role.map_or(0, |r| r.threshold.get()),
            "root_keys": root_role.map_or(0, |r| r.keyids.len()),
            "signatures": env.signatures.len(),
            "expires": env.signed.expires.to_string(),
            "expired": !expired.is_empty(),
        }));
        trusted = Some(env.signed);
    }
    lines.push(format!("root chain of {} file(s) verified", files.len()));
    let value = json!({"verified": true, "roots": roots});
    emit(out, &value, || lines.join("\n"));
    Ok(())
}

fn submit(
    root: &Path,
    server: &str,
    token: Option<Secret>,
    token_file: Option<PathBuf>,
    server_ca: Option<PathBuf>,
) -> Result<(), Error> {
    let token = super::admin::resolve_token(token, token_file)?;
    let client = match server_ca {
        Some(ca) => AdminClient::with_server_ca(server, &token, &read_bytes(&ca)?),
        None => AdminClient::new(server, &token),
    }?;
    let bytes = super::read_public(root, super::Public::Document)?.into_bytes();
    serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| Error::Input(format!("{}: not JSON ({e})", root.display())))?;
    // The file as it is: the server publishes exactly these bytes.
    let answer = client.submit_tuf_root(&bytes)?;
    output::json(&answer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_periods() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(expires("365d", now).is_ok_and(|t| t == now + time::Duration::days(365)));
        assert!(expires("0d", now).is_err());
        assert!(expires("soon", now).is_err());
        assert!(expires("2030-01-01T00:00:00Z", now).is_ok());
    }
}
