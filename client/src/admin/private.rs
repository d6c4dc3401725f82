//! No endpoint takes a private key: request bodies are searched for private
//! key material before anything is sent.

use serde_json::Value;

use super::{Error, Result};

/// The kind of private key `text` holds, if it holds one: a PEM private
/// key block of any kind (`PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`,
/// `RSA PRIVATE KEY`, `EC PRIVATE KEY`, `OPENSSH PRIVATE KEY`, ...), or a
/// JSON key object with `keyval.private` (as securesystemslib writes key
/// pairs).
pub fn private_key_in(text: &str) -> Option<&'static str> {
    let pem_private = text.match_indices("-----BEGIN ").any(|(at, begin)| {
        text.get(at + begin.len()..)
            .and_then(|rest| rest.split_once("-----"))
            .is_some_and(|(label, _)| label.trim_end().ends_with("PRIVATE KEY"))
    });
    if pem_private {
        return Some("a PEM private key");
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            if private_path(&v, &mut String::new()).is_some() {
                return Some("a private key (`keyval.private`)");
            }
        }
    }
    None
}

/// The JSON path of the first private key material in `v`: a string with
/// a PEM private key block, or a `keyval` object with a `private` member.
fn private_path(v: &Value, path: &mut String) -> Option<String> {
    match v {
        Value::String(s) => private_key_in(s).map(|_| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = private_path(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = if k == "keyval" && item.get("private").is_some() {
                Some(format!("{path}.private"))
            } else {
                private_path(item, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Refuses a request body that holds private key material anywhere (see
/// [`private_key_in`]): no admin endpoint takes a private key, so one in a
/// body is a mistake (a key pair given where its public half belongs, a
/// certificate file with its key appended), and it is stopped here, before
/// anything leaves the machine. The message names where, never the key.
pub(super) fn refuse_private_material(body: &Value) -> Result<()> {
    match private_path(body, &mut String::new()) {
        None => Ok(()),
        Some(at) => Err(Error::Input(format!(
            "the request holds a private key (at `{}`): give the public key, \
             e.g. `openssl pkey -in KEY -pubout`, or a certificate without its key; \
             nothing was sent: a private key never leaves this machine",
            if at.is_empty() { "." } else { at.as_str() }
        ))),
    }
}
