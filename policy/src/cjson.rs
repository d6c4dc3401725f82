//! OLPC canonical JSON, the byte form TUF signs.
//!
//! Keys sorted, no insignificant whitespace, only `"` and `\` escaped, no
//! floating-point numbers. This is *not* RFC 8785. The encoding itself is
//! the `olpc-cjson` crate's; this module only adapts it to our errors.

use serde::Serialize;

use crate::error::{Error, Result};

/// Serialises `value` to canonical JSON bytes.
///
/// `what` names the document for the error message (for example the role name).
pub fn to_canonical<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|e| Error::Malformed {
        what: what.to_owned(),
        path: ".".to_owned(),
        message: format!("cannot be written as canonical JSON: {e}"),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"d": [1, 2], "c": "x\"y\\z\n"}});
        let out = to_canonical(&v, "t").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":{\"c\":\"x\\\"y\\\\z\n\",\"d\":[1,2]},\"b\":1}"
        );
    }

    #[test]
    fn refuses_floats() {
        let err = to_canonical(&json!({"a": 2.0}), "t").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}
