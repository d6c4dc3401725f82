//! Keys in PKCS#8 PEM files, optionally encrypted with a passphrase.

use std::fmt;
use std::path::{Path, PathBuf};

use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, SignError, Signer};
use openssl::pkey::{Id, PKey, Private};
use openssl::symm::Cipher;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::pin::{Pin, PinSource};

const ENCRYPTED_TAG: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// A signer whose private key comes from a PKCS#8 PEM file
/// (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a passphrase).
///
/// Ed25519, ECDSA P-256 and RSA (signing RSASSA-PSS-SHA256) keys.
pub struct KeyFileSigner {
    path: PathBuf,
    inner: InMemorySigner,
}

impl fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileSigner")
            .field("path", &self.path)
            .field("scheme", &self.inner.scheme())
            .field("key_id", self.inner.key_id())
            .finish_non_exhaustive()
    }
}

impl KeyFileSigner {
    /// Loads a key file. `passphrase` is read only if the file is encrypted.
    pub fn open(path: &Path, passphrase: Option<&PinSource>) -> Result<Self> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|e| Error::KeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?);
        let pin = match passphrase {
            Some(src) if is_encrypted(&pem) => Some(src.read()?),
            _ => None,
        };
        Self::from_pem(path, &pem, pin.as_ref())
    }

    /// Parses PEM bytes; `path` is only used in messages.
    pub fn from_pem(path: &Path, pem: &[u8], passphrase: Option<&Pin>) -> Result<Self> {
        let encrypted = is_encrypted(pem);
        let private = match (encrypted, passphrase) {
            (true, None) => {
                return Err(Error::PassphraseRequired {
                    path: path.to_owned(),
                })
            }
            (true, Some(pass)) => {
                PKey::private_key_from_pem_passphrase(pem, pass.expose().as_bytes()).map_err(|_| {
                    Error::WrongPassphrase {
                        path: path.to_owned(),
                    }
                })
            }
            (false, _) => PKey::private_key_from_pem(pem).map_err(|_| Error::KeyFile {
                path: path.to_owned(),
                message: "not a PEM private key".into(),
            }),
        };
        // OpenSSL leaves the failed attempts of PEM decoding queued.
        let _ = openssl::error::ErrorStack::get();
        let private = private?;
        let scheme = scheme_of(&private).ok_or_else(|| Error::KeyFile {
            path: path.to_owned(),
            message: "unsupported key type (Ed25519, ECDSA P-256 or RSA expected)".into(),
        })?;
        let inner = InMemorySigner::from_private(scheme, private).map_err(|e| Error::KeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    /// Generates a key and writes it to a new file (mode 0600, refusing to
    /// overwrite), encrypted with AES-256-CBC under `passphrase` if given.
    pub fn generate(path: &Path, scheme: Scheme, passphrase: Option<&Pin>) -> Result<Self> {
        let inner = InMemorySigner::generate(scheme).map_err(|e| Error::Crypto(e.to_string()))?;
        let pem = Zeroizing::new(
            inner
                .to_pkcs8_pem()
                .map_err(|e| Error::Crypto(e.to_string()))?,
        );
        let bytes = match passphrase {
            None => pem,
            Some(pass) => {
                let private =
                    PKey::private_key_from_pem(&pem).map_err(|e| Error::Crypto(e.to_string()))?;
                Zeroizing::new(
                    private
                        .private_key_to_pem_pkcs8_passphrase(
                            Cipher::aes_256_cbc(),
                            pass.expose().as_bytes(),
                        )
                        .map_err(|e| Error::Crypto(e.to_string()))?,
                )
            }
        };
        write_new(path, &bytes)?;
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        self.inner.scheme()
    }

    /// The file the key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Signer for KeyFileSigner {
    fn key_id(&self) -> &KeyId {
        self.inner.key_id()
    }

    fn public_key(&self) -> &Key {
        self.inner.public_key()
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignError> {
        self.inner.sign(message)
    }
}

fn is_encrypted(pem: &[u8]) -> bool {
    pem.windows(ENCRYPTED_TAG.len()).any(|w| w == ENCRYPTED_TAG)
}

fn scheme_of(private: &PKey<Private>) -> Option<Scheme> {
    match private.id() {
        Id::ED25519 => Some(Scheme::Ed25519),
        Id::EC => Some(Scheme::EcdsaP256Sha256),
        Id::RSA => Some(Scheme::RsaPssSha256),
        _ => None,
    }
}

/// Creates the key file `path` (mode 0600 on Unix), refusing an existing one.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    keyshare_fsio::write_new(path, bytes, 0o600).map_err(|e| Error::KeyFile {
        path: path.to_owned(),
        message: e.source.to_string(),
    })
}
