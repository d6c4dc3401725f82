//! PKCS#11 URIs (RFC 7512), the subset keyshare uses to name keys.
//!
//! ```text
//! pkcs11:token=root-1;object=root-key-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/keyshare/pin
//! ```
//!
//! Path attributes: `token`, `object`, `id`, `slot-id`, `type`. Query
//! attributes: `module-path`, `pin-source` (`file:` URI or absolute path),
//! `pin-value`. Values are percent-decoded. Any other attribute is refused
//! by name, so a typo does not silently select a different key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use percent_encoding::{
    percent_decode_str, percent_encode_byte, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC,
};

use crate::error::{Error, Result};
use crate::pin::{Pin, PinSource};

/// The `type` path attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectType {
    /// `private`
    Private,
    /// `public`
    Public,
    /// `cert`
    Cert,
    /// `secret-key`
    SecretKey,
    /// `data`
    Data,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
            Self::Cert => "cert",
            Self::SecretKey => "secret-key",
            Self::Data => "data",
        }
    }
}

/// A parsed PKCS#11 URI. `Display` writes it back without `pin-value`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `object`: the key label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id`: the key id (`CKA_ID`), raw bytes.
    pub id: Option<Vec<u8>>,
    /// `slot-id`: the slot number.
    pub slot_id: Option<u64>,
    /// `type`: the object class.
    pub object_type: Option<ObjectType>,
    /// `module-path`: the PKCS#11 module (shared library).
    pub module_path: Option<PathBuf>,
    /// `pin-source`: a file holding the PIN.
    pub pin_source: Option<PathBuf>,
    /// `pin-value`: the PIN itself (discouraged: URIs end up in shell
    /// history, process lists and logs).
    pub pin_value: Option<Pin>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| Error::BadUri("does not start with `pkcs11:`".into()))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Self::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = split_attr(part)?;
            match name {
                "token" => set(&mut uri.token, name, decode_str(name, value)?)?,
                "object" => set(&mut uri.object, name, decode_str(name, value)?)?,
                "id" => set(&mut uri.id, name, decode_bytes(value))?,
                "slot-id" => {
                    let n = decode_str(name, value)?
                        .parse::<u64>()
                        .map_err(|_| Error::BadUri("`slot-id` is not a number".into()))?;
                    set(&mut uri.slot_id, name, n)?;
                }
                "type" => {
                    let t = match decode_str(name, value)?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        "cert" => ObjectType::Cert,
                        "secret-key" => ObjectType::SecretKey,
                        "data" => ObjectType::Data,
                        other => {
                            return Err(Error::BadUri(format!("unknown `type` {other:?}")));
                        }
                    };
                    set(&mut uri.object_type, name, t)?;
                }
                "module-path" | "pin-source" | "pin-value" => {
                    return Err(Error::BadUri(format!(
                        "`{name}` is a query attribute: write it after `?`, e.g. \
                         pkcs11:token=NAME?module-path=/path/to/module.so"
                    )));
                }
                other => {
                    return Err(Error::BadUri(format!(
                        "unsupported path attribute `{other}`"
                    )));
                }
            }
        }
        for part in query.into_iter().flat_map(|q| q.split('&')) {
            if part.is_empty() {
                continue;
            }
            let (name, value) = split_attr(part)?;
            match name {
                "module-path" => set(
                    &mut uri.module_path,
                    name,
                    PathBuf::from(decode_str(name, value)?),
                )?,
                "pin-source" => {
                    let v = decode_str(name, value)?;
                    let path = match v.strip_prefix("file:") {
                        // file:///p and file:/p both name /p.
                        Some(p) => p.strip_prefix("//").unwrap_or(p).to_owned(),
                        None if v.starts_with('/') => v,
                        None => {
                            return Err(Error::BadUri(
                                "`pin-source` must be a `file:` URI or an absolute path".into(),
                            ));
                        }
                    };
                    set(&mut uri.pin_source, name, PathBuf::from(path))?;
                }
                "pin-value" => {
                    let pin = Pin::new(decode_str(name, value)?);
                    if uri.pin_value.is_some() {
                        return Err(Error::BadUri("`pin-value` given twice".into()));
                    }
                    uri.pin_value = Some(pin);
                }
                other => {
                    return Err(Error::BadUri(format!(
                        "unsupported query attribute `{other}`"
                    )));
                }
            }
        }
        if uri.pin_source.is_some() && uri.pin_value.is_some() {
            return Err(Error::BadUri(
                "`pin-source` and `pin-value` cannot both be given".into(),
            ));
        }
        Ok(uri)
    }

    /// Where the URI says the PIN is: `pin-source`, then `pin-value`.
    pub fn pin(&self) -> Option<PinSource> {
        if let Some(p) = &self.pin_source {
            return Some(PinSource::File(p.clone()));
        }
        self.pin_value.clone().map(PinSource::Value)
    }

    /// How the token is named in messages: `label "x"` or `slot-id N`.
    pub(crate) fn token_description(&self) -> String {
        match (&self.token, self.slot_id) {
            (Some(t), _) => format!("{t:?}"),
            (None, Some(n)) => format!("in slot-id {n}"),
            (None, None) => "(unnamed)".to_owned(),
        }
    }

    /// How the key is named in messages.
    pub(crate) fn key_description(&self) -> String {
        match (&self.object, &self.id) {
            (Some(o), Some(id)) => format!("{o:?} (id {})", hex_lower(id)),
            (Some(o), None) => format!("{o:?}"),
            (None, Some(id)) => format!("with id {}", hex_lower(id)),
            (None, None) => "(any)".to_owned(),
        }
    }
}

impl FromStr for Pkcs11Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Characters written as-is in attribute values (RFC 7512 `pk11-pchar`
/// minus the separators).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b':');

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", utf8_percent_encode(t, VALUE)));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", utf8_percent_encode(o, VALUE)));
        }
        if let Some(id) = &self.id {
            let enc: String = id.iter().map(|b| percent_encode_byte(*b)).collect();
            path.push(format!("id={enc}"));
        }
        if let Some(n) = self.slot_id {
            path.push(format!("slot-id={n}"));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.as_str()));
        }
        f.write_str(&path.join(";"))?;
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!(
                "module-path={}",
                utf8_percent_encode(&m.to_string_lossy(), VALUE)
            ));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!(
                "pin-source=file:{}",
                utf8_percent_encode(&p.to_string_lossy(), VALUE)
            ));
        }
        // pin-value is never written.
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

fn split_attr(part: &str) -> Result<(&str, &str)> {
    part.split_once('=').ok_or_else(|| {
        // Name only the part before any value: it could be a PIN.
        Error::BadUri(format!(
            "attribute `{}` has no `=value`",
            part.chars().take(32).collect::<String>()
        ))
    })
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::BadUri(format!("`{name}` given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn decode_bytes(value: &str) -> Vec<u8> {
    percent_decode_str(value).collect()
}

fn decode_str(name: &str, value: &str) -> Result<String> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::BadUri(format!("`{name}` is not UTF-8 after percent-decoding")))
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri_parses_and_decodes() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=Root%20Token;object=root-key;id=%01%A2;slot-id=7;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("Root Token"));
        assert_eq!(u.object.as_deref(), Some("root-key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert_eq!(
            u.module_path,
            Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source, Some(PathBuf::from("/run/pin")));
    }

    #[test]
    fn display_round_trips() {
        let text =
            "pkcs11:token=Root%20Token;object=k;id=%01%A2?module-path=/m.so&pin-source=file:/p";
        let u = Pkcs11Uri::parse(text).unwrap();
        assert_eq!(u.to_string(), text);
        assert_eq!(Pkcs11Uri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn display_and_debug_never_show_pin_value() {
        let u = Pkcs11Uri::parse("pkcs11:token=t?pin-value=s3cr3t-PIN").unwrap();
        assert_eq!(u.pin_value.as_ref().map(Pin::expose), Some("s3cr3t-PIN"));
        assert!(!u.to_string().contains("s3cr3t"), "{u}");
        assert!(!format!("{u:?}").contains("s3cr3t"), "{u:?}");
    }

    #[test]
    fn unknown_attributes_are_refused_by_name() {
        let err = Pkcs11Uri::parse("pkcs11:token=t;serial=42").unwrap_err();
        assert!(matches!(err, Error::BadUri(_)));
        assert!(err.to_string().contains("`serial`"), "{err}");
        let err = Pkcs11Uri::parse("pkcs11:token=t?module-name=softhsm2").unwrap_err();
        assert!(err.to_string().contains("`module-name`"), "{err}");
    }

    #[test]
    fn query_attributes_written_in_the_path_are_refused_with_the_right_form() {
        for attr in ["module-path=/m.so", "pin-source=file:/p", "pin-value=1234"] {
            let err = Pkcs11Uri::parse(&format!("pkcs11:token=t;{attr}")).unwrap_err();
            let name = attr.split('=').next().unwrap();
            assert!(
                err.to_string().contains(&format!(
                    "`{name}` is a query attribute: write it after `?`"
                )),
                "{err}"
            );
            assert!(!err.to_string().contains("1234"), "{err}");
        }
    }

    #[test]
    fn malformed_uris_are_bad_uri() {
        for bad in [
            "pkcs12:token=t",
            "pkcs11:token",
            "pkcs11:token=a;token=b",
            "pkcs11:slot-id=x",
            "pkcs11:type=key",
            "pkcs11:object=%FF",
            "pkcs11:token=t?pin-source=relative/pin",
        ] {
            assert!(
                matches!(Pkcs11Uri::parse(bad), Err(Error::BadUri(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_uri_error_does_not_echo_a_pin() {
        let err =
            Pkcs11Uri::parse("pkcs11:token=t?pin-value=123456&pin-source=file:/p").unwrap_err();
        assert!(!err.to_string().contains("123456"), "{err}");
    }
}
