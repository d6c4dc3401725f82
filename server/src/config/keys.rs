//! Where the online keys are: `[keys]`, a PKCS#8 PEM file or a key in a
//! PKCS#11 token for each role.

use std::path::PathBuf;

use keyshare_hsm::Pkcs11Uri;

/// Where one online key is: a PKCS#8 PEM file or a key in a PKCS#11 token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyRef {
    /// `keys/<role>.pem` in the data directory (what `init` generates).
    #[default]
    Default,
    /// A PKCS#8 PEM file (`file:PATH` or a bare path); a relative path is
    /// relative to the data directory.
    File(PathBuf),
    /// A private key in a PKCS#11 token, named by an RFC 7512 URI with a
    /// `module-path`.
    Pkcs11(Pkcs11Uri),
}

impl KeyRef {
    /// Parses a key reference: `pkcs11:...`, `file:PATH` or a path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("pkcs11:") {
            let uri = Pkcs11Uri::parse(text).map_err(|e| e.to_string())?;
            if uri.module_path.is_none() {
                return Err("the PKCS#11 URI needs a `module-path`".into());
            }
            if uri.token.is_none() && uri.slot_id.is_none() {
                return Err("the PKCS#11 URI names no token (`token` or `slot-id`)".into());
            }
            if uri.object.is_none() && uri.id.is_none() {
                return Err("the PKCS#11 URI names no key (`object` or `id`)".into());
            }
            return Ok(Self::Pkcs11(uri));
        }
        let path = text.strip_prefix("file:").unwrap_or(text);
        if path.is_empty() {
            return Err("expected `pkcs11:...`, `file:PATH` or a path".into());
        }
        Ok(Self::File(PathBuf::from(path)))
    }

    /// True for a key in a PKCS#11 token.
    pub fn is_pkcs11(&self) -> bool {
        matches!(self, Self::Pkcs11(_))
    }
}

/// The online keys' references (`[keys]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// `keys.targets`.
    pub targets: KeyRef,
    /// `keys.snapshot`.
    pub snapshot: KeyRef,
    /// `keys.timestamp`.
    pub timestamp: KeyRef,
    /// `keys.namespaces`.
    pub namespaces: KeyRef,
    /// `keys.pin_file`: the token PIN for URIs without `pin-source`.
    pub pin_file: Option<PathBuf>,
}

impl Keys {
    /// Each role's setting name and reference, in the order of
    /// `OnlineKeys`' fields.
    pub fn roles(&self) -> [(&'static str, &KeyRef); 4] {
        [
            ("keys.targets", &self.targets),
            ("keys.snapshot", &self.snapshot),
            ("keys.timestamp", &self.timestamp),
            ("keys.namespaces", &self.namespaces),
        ]
    }
}
