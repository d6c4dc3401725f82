//! The server's online keys and, for the embedded default, the local root
//! key.
//!
//! By default every key is a PKCS#8 PEM file in the data directory's
//! `keys/`. The `[keys]` configuration ([`crate::config::Keys`]) may name,
//! per role, another PEM file or a private key in a PKCS#11 token
//! ([`keyshare_hsm::Pkcs11Signer`]); [`load_online`] resolves them and
//! [`init_online`] is what `init` uses.
//!
//! Files are created with mode 0600 (the directory 0700) and are refused on
//! load when group or others can read them. Errors name the file or the
//! setting and never contain key material or a PIN; nothing here logs.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyshare_hsm::{PinSource, Pkcs11Signer};
use keyshare_policy::keys::Scheme;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;

use crate::config::{KeyRef, Keys};
use crate::data_dir::KEYS_DIR;
use crate::publisher::OnlineKeys;

/// The root key (embedded default only).
pub const ROOT: &str = "root.pem";
/// The online keys, in the order of [`OnlineKeys`]' fields.
pub const ONLINE: [&str; 4] = [
    "targets.pem",
    "snapshot.pem",
    "timestamp.pem",
    "namespaces.pem",
];

/// The timestamp authority's key (embedded default of `tsa.key`): ECDSA
/// P-256, PKCS#8 PEM.
pub const TSA_KEY: &str = "tsa.pem";
/// The key of the organization's TSA CA, which issues the TSA
/// certificate: ECDSA P-256, PKCS#8 PEM.
pub const TSA_CA_KEY: &str = "tsa-ca.pem";

/// The CI secret (nonces and principals of CI delegations, see
/// `crate::ci::secret`): 32 random bytes as 64 hex digits.
pub const CI_SECRET: &str = "ci-secret";

/// Why a key file could not be written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file may be read by other users.
    #[error(
        "{}: key file is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a usable private key.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// Why (never the key).
        reason: String,
    },
    /// A key in a PKCS#11 token cannot be used (module, token, PIN, key).
    #[error("{setting}: {source}")]
    Token {
        /// The setting that names the key (`keys.targets`, ...).
        setting: &'static str,
        /// Why (never the PIN).
        source: keyshare_hsm::Error,
    },
    /// A PKCS#11 key reference gives no PIN and no `keys.pin_file` is set.
    #[error(
        "{setting}: no PIN for the PKCS#11 key: add `pin-source` to the URI \
         or set keys.pin_file (KEYSHARE_PIN_FILE)"
    )]
    NoPin {
        /// The setting.
        setting: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn from_fsio(e: keyshare_fsio::Error) -> KeyError {
    KeyError::Io {
        path: e.path,
        source: e.source,
    }
}

fn create_dir(dir: &Path) -> Result<(), KeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Generates an Ed25519 key into the new file `path` (mode 0600).
fn generate_file(path: &Path) -> Result<SharedSigner, KeyError> {
    generate_file_of(path, Scheme::Ed25519)
}

/// Generates a key of `scheme` into the new file `path` (mode 0600).
fn generate_file_of(path: &Path, scheme: Scheme) -> Result<SharedSigner, KeyError> {
    let signer = InMemorySigner::generate(scheme).map_err(|e| KeyError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let pem = signer.to_pkcs8_pem().map_err(|e| KeyError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    keyshare_fsio::write_new(path, &pem, 0o600).map_err(from_fsio)?;
    Ok(Arc::new(signer))
}

/// Generates the four online keys and a root key (Ed25519) into `dir`
/// (created with mode 0700 if missing), each file new with mode 0600.
/// Refuses to overwrite an existing key file.
pub fn generate(dir: &Path) -> Result<(OnlineKeys, SharedSigner), KeyError> {
    create_dir(dir)?;
    let make = |name: &str| generate_file(&dir.join(name));
    let [targets, snapshot, timestamp, namespaces] = ONLINE;
    let keys = OnlineKeys {
        targets: make(targets)?,
        snapshot: make(snapshot)?,
        timestamp: make(timestamp)?,
        namespaces: make(namespaces)?,
    };
    let root = make(ROOT)?;
    Ok((keys, root))
}

/// Loads the online keys from `dir`.
pub fn load(dir: &Path) -> Result<OnlineKeys, KeyError> {
    let [targets, snapshot, timestamp, namespaces] = ONLINE;
    Ok(OnlineKeys {
        targets: load_one(&dir.join(targets))?,
        snapshot: load_one(&dir.join(snapshot))?,
        timestamp: load_one(&dir.join(timestamp))?,
        namespaces: load_one(&dir.join(namespaces))?,
    })
}

/// The online keys for `init` in `data_dir`: each role's configured key
/// (a PEM file that must exist, or a key in a PKCS#11 token), or, for a
/// role left at the default, a new key file `keys/<role>.pem`. The root key
/// of the embedded default is always a new local file, `keys/root.pem`.
/// `keys/` is created with mode 0700.
pub fn init_online(config: &Keys, data_dir: &Path) -> Result<(OnlineKeys, SharedSigner), KeyError> {
    let online = init_online_keys(config, data_dir)?;
    let root = generate_file(&data_dir.join(KEYS_DIR).join(ROOT))?;
    Ok((online, root))
}

/// For `init --root FILE` (a root from an offline ceremony): the online keys
/// as [`init_online`] makes them, but the targets, snapshot and timestamp
/// keys must already exist and be named in the configuration (a key file
/// made beforehand, or a key in a PKCS#11 token), since the ceremony's root
/// lists them; only the namespaces key may be generated. No root key is
/// made.
pub fn init_online_for_root(config: &Keys, data_dir: &Path) -> Result<OnlineKeys, KeyError> {
    for ((setting, key_ref), name) in config.roles().into_iter().zip(ONLINE) {
        if matches!(key_ref, KeyRef::Default) && name != "namespaces.pem" {
            return Err(KeyError::Bad {
                path: data_dir.join(KEYS_DIR).join(name),
                reason: format!(
                    "a ceremony root lists the server's online keys, so {setting} must name \
                     an existing key (a key file or a pkcs11: URI, in keyshare.toml or \
                     KEYSHARE_KEY_*) before `init --root`"
                ),
            });
        }
    }
    init_online_keys(config, data_dir)
}

fn init_online_keys(config: &Keys, data_dir: &Path) -> Result<OnlineKeys, KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    create_dir(&dir)?;
    // Token keys first: a wrong PIN or a missing key fails before any file
    // is written.
    let mut opened: Vec<Option<SharedSigner>> = Vec::with_capacity(ONLINE.len());
    for (setting, key_ref) in config.roles() {
        opened.push(match key_ref {
            KeyRef::Default => None,
            other => Some(open_ref(setting, other, &dir, config, data_dir)?),
        });
    }
    let mut signers = Vec::with_capacity(ONLINE.len());
    for (signer, name) in opened.into_iter().zip(ONLINE) {
        signers.push(match signer {
            Some(s) => s,
            None => generate_file(&dir.join(name))?,
        });
    }
    online_keys(signers)
}

/// Loads the online keys `config` names, relative to `data_dir`: for each
/// role, `keys/<role>.pem` (the default), another PEM file, or a key in a
/// PKCS#11 token.
pub fn load_online(config: &Keys, data_dir: &Path) -> Result<OnlineKeys, KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    let mut signers = Vec::with_capacity(ONLINE.len());
    for ((setting, key_ref), name) in config.roles().into_iter().zip(ONLINE) {
        signers.push(open_ref(
            setting,
            key_ref,
            &dir.join(name),
            config,
            data_dir,
        )?);
    }
    online_keys(signers)
}

fn online_keys(signers: Vec<SharedSigner>) -> Result<OnlineKeys, KeyError> {
    let Ok([targets, snapshot, timestamp, namespaces]) = <[SharedSigner; 4]>::try_from(signers)
    else {
        return Err(KeyError::Bad {
            path: PathBuf::from(KEYS_DIR),
            reason: "expected four online keys".into(),
        });
    };
    Ok(OnlineKeys {
        targets,
        snapshot,
        timestamp,
        namespaces,
    })
}

/// Opens a configured key: `default_path`, a PEM file relative to
/// `data_dir`, or a PKCS#11 key with the URI's PIN source, else
/// `keys.pin_file`.
fn open_ref(
    setting: &'static str,
    key_ref: &KeyRef,
    default_path: &Path,
    config: &Keys,
    data_dir: &Path,
) -> Result<SharedSigner, KeyError> {
    match key_ref {
        KeyRef::Default => load_one(default_path),
        KeyRef::File(path) => load_one(&data_dir.join(path)),
        KeyRef::Pkcs11(uri) => {
            let pin = uri
                .pin()
                .or_else(|| config.pin_file.clone().map(PinSource::File))
                .ok_or(KeyError::NoPin { setting })?;
            let signer = Pkcs11Signer::open(uri, &pin, None)
                .map_err(|source| KeyError::Token { setting, source })?;
            Ok(Arc::new(signer))
        }
    }
}

/// Writes a new CI secret to `dir/ci-secret` (a new file, mode 0600;
/// `dir` is created with mode 0700 if missing). Refuses to overwrite one.
pub fn generate_ci_secret(dir: &Path) -> Result<(), KeyError> {
    create_dir(dir)?;
    let path = dir.join(CI_SECRET);
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| KeyError::Bad {
        path: path.clone(),
        reason: format!("random generator: {e}"),
    })?;
    let text = format!("{}\n", hex::encode(bytes));
    keyshare_fsio::write_new(&path, text.as_bytes(), 0o600).map_err(from_fsio)
}

/// The CI secret of `data_dir` (`keys/ci-secret`), made first when the
/// data directory has none (one made before the secret existed). Refused
/// when group or others may read it. Errors name the file, never its
/// content.
pub fn ci_secret(data_dir: &Path) -> Result<[u8; 32], KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    let path = dir.join(CI_SECRET);
    if !path.exists() {
        match generate_ci_secret(&dir) {
            Ok(()) => {}
            // Another process made it first: use that one.
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let meta = fs::metadata(&path).map_err(io(&path))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen { path, mode });
    }
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| KeyError::Bad {
            path,
            reason: "not a CI secret (64 hex digits)".into(),
        })
}

/// The timestamp authority's signing key as `tsa.key` names it (`key_ref`):
/// `keys/tsa.pem` (the default), another PEM file relative to `data_dir`,
/// or a key in a PKCS#11 token (PIN from the URI, else `pin_file`). With
/// `create`, a missing default key file is generated (ECDSA P-256); the
/// flag in the result says whether it was. The key must be ECDSA P-256:
/// RFC 3161 verifiers rarely know Ed25519.
pub fn tsa_key(
    key_ref: &KeyRef,
    pin_file: Option<&Path>,
    data_dir: &Path,
    create: bool,
) -> Result<(SharedSigner, bool), KeyError> {
    const SETTING: &str = "tsa.key";
    let dir = data_dir.join(KEYS_DIR);
    let default_path = dir.join(TSA_KEY);
    let (signer, created, path): (SharedSigner, bool, PathBuf) = match key_ref {
        KeyRef::Default if create && !default_path.exists() => {
            create_dir(&dir)?;
            let signer = generate_file_of(&default_path, Scheme::EcdsaP256Sha256)?;
            (signer, true, default_path)
        }
        KeyRef::Default => (load_one(&default_path)?, false, default_path),
        KeyRef::File(path) => {
            let path = data_dir.join(path);
            (load_one(&path)?, false, path)
        }
        KeyRef::Pkcs11(uri) => {
            let pin = uri
                .pin()
                .or_else(|| pin_file.map(|p| PinSource::File(p.to_owned())))
                .ok_or(KeyError::NoPin { setting: SETTING })?;
            let signer =
                Pkcs11Signer::open(uri, &pin, Some(Scheme::EcdsaP256Sha256)).map_err(|source| {
                    KeyError::Token {
                        setting: SETTING,
                        source,
                    }
                })?;
            return Ok((Arc::new(signer), false));
        }
    };
    if signer.public_key().scheme() != Some(Scheme::EcdsaP256Sha256) {
        return Err(KeyError::Bad {
            path,
            reason: "the TSA key must be an ECDSA P-256 key".into(),
        });
    }
    Ok((signer, created))
}

/// The TSA CA's private key, `keys/tsa-ca.pem` in `data_dir`; with
/// `create`, a missing one is generated (ECDSA P-256, mode 0600). The flag
/// in the result says whether it was. Refused when group or others may
/// read it.
pub fn tsa_ca_key(
    data_dir: &Path,
    create: bool,
) -> Result<(openssl::pkey::PKey<openssl::pkey::Private>, bool), KeyError> {
    let dir = data_dir.join(KEYS_DIR);
    let path = dir.join(TSA_CA_KEY);
    let created = create && !path.exists();
    if created {
        create_dir(&dir)?;
        generate_file_of(&path, Scheme::EcdsaP256Sha256)?;
    }
    let meta = fs::metadata(&path).map_err(io(&path))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen { path, mode });
    }
    let pem = fs::read(&path).map_err(io(&path))?;
    let key = openssl::pkey::PKey::private_key_from_pem(&pem).map_err(|_| KeyError::Bad {
        path: path.clone(),
        reason: "not a PEM private key".into(),
    })?;
    Ok((key, created))
}

/// Loads one key file, refusing it when group or others may read it.
pub fn load_one(path: &Path) -> Result<SharedSigner, KeyError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = fs::read(path).map_err(io(path))?;
    let signer = InMemorySigner::from_pkcs8_pem(&pem).map_err(|e| KeyError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(signer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    use super::*;

    #[test]
    fn generated_keys_are_private_files_and_load_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let (keys, root) = generate(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        for name in ONLINE.iter().chain([&ROOT]) {
            let mode = fs::metadata(dir.join(name)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.targets.key_id(), keys.targets.key_id());
        assert_eq!(loaded.snapshot.key_id(), keys.snapshot.key_id());
        assert_eq!(loaded.timestamp.key_id(), keys.timestamp.key_id());
        assert_eq!(loaded.namespaces.key_id(), keys.namespaces.key_id());
        assert_eq!(load_one(&dir.join(ROOT)).unwrap().key_id(), root.key_id());
    }

    #[test]
    fn configured_files_and_defaults_load_and_init_generates_only_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let (keys, _) = generate(&tmp.path().join("elsewhere")).unwrap();
        let config = Keys {
            // Relative to the data directory.
            snapshot: KeyRef::File("elsewhere/snapshot.pem".into()),
            timestamp: KeyRef::File(data.join("elsewhere/timestamp.pem")),
            ..Keys::default()
        };
        let (online, root) = init_online(&config, data).unwrap();
        assert_eq!(online.snapshot.key_id(), keys.snapshot.key_id());
        assert_eq!(online.timestamp.key_id(), keys.timestamp.key_id());
        let mut made: Vec<_> = fs::read_dir(data.join(KEYS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        made.sort();
        assert_eq!(made, ["namespaces.pem", "root.pem", "targets.pem"]);
        let loaded = load_online(&config, data).unwrap();
        assert_eq!(loaded.targets.key_id(), online.targets.key_id());
        assert_eq!(loaded.snapshot.key_id(), keys.snapshot.key_id());
        assert_eq!(loaded.timestamp.key_id(), keys.timestamp.key_id());
        assert_eq!(loaded.namespaces.key_id(), online.namespaces.key_id());
        assert_ne!(root.key_id(), online.targets.key_id());
    }

    #[test]
    fn a_pkcs11_key_without_a_pin_source_is_refused_before_the_module_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let uri = keyshare_hsm::Pkcs11Uri::parse(
            "pkcs11:token=t;object=o?module-path=/nonexistent/module.so",
        )
        .unwrap();
        let config = Keys {
            namespaces: KeyRef::Pkcs11(uri),
            ..Keys::default()
        };
        generate(&tmp.path().join(KEYS_DIR)).unwrap();
        let e = load_online(&config, tmp.path()).unwrap_err().to_string();
        assert!(
            e.starts_with("keys.namespaces: no PIN") && e.contains("KEYSHARE_PIN_FILE"),
            "{e}"
        );
    }

    #[test]
    fn generate_refuses_to_overwrite_a_key() {
        let tmp = tempfile::tempdir().unwrap();
        generate(tmp.path()).unwrap();
        let e = generate(tmp.path()).unwrap_err();
        assert!(matches!(e, KeyError::Io { .. }), "{e}");
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        generate(tmp.path()).unwrap();
        let path = tmp.path().join("snapshot.pem");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(tmp.path()).unwrap_err();
        assert!(matches!(e, KeyError::TooOpen { mode: 0o644, .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("snapshot.pem") && text.contains("chmod 600"),
            "{text}"
        );
    }

    #[test]
    fn the_ci_secret_is_made_once_private_and_refused_when_others_can_read_it() {
        let tmp = tempfile::tempdir().unwrap();
        let first = ci_secret(tmp.path()).unwrap();
        let path = tmp.path().join(KEYS_DIR).join(CI_SECRET);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            ci_secret(tmp.path()).unwrap(),
            first,
            "made once, then read"
        );
        assert!(generate_ci_secret(&tmp.path().join(KEYS_DIR)).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let e = ci_secret(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("ci-secret") && e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "TOPSECRET but not hex").unwrap();
        let e = ci_secret(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("ci-secret") && !e.contains("TOPSECRET"), "{e}");
    }

    #[test]
    fn errors_never_show_key_material() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("targets.pem");
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETBYTES\n-----END PRIVATE KEY-----\n";
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let e = load_one(&path).unwrap_err().to_string();
        assert!(!e.contains("TOPSECRET"), "{e}");
        assert!(e.contains("targets.pem"), "{e}");
    }
}
