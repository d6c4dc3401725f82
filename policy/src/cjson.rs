//! Canonical JSON, the byte form TUF signs, exactly as securesystemslib
//! (python-tuf) and go-securesystemslib write it.
//!
//! Object keys sorted by code point, no insignificant whitespace, in strings
//! only `"` and `\` escaped (every other character, control characters
//! included, is written as is), integers only.
//!
//! This is "OLPC canonical JSON" as the TUF ecosystem implements it, with
//! one deliberate difference from the OLPC text and the `olpc-cjson` crate:
//! strings are **not** Unicode-normalised. Normalising (NFC) would make
//! keyshare's signed bytes differ from python-tuf's for any string that is
//! not already NFC, and would let two different strings share one signature.
//! A property test compares this encoder with a reference written from the
//! definition.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Serialises `value` to canonical JSON bytes.
///
/// `what` names the document for the error message (for example the role name).
pub fn to_canonical<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    // Through `Value`, whose objects are ordered maps: keys come out sorted
    // whatever order the struct declares its fields in.
    let value = serde_json::to_value(value).map_err(|e| refused(what, &e.to_string()))?;
    let mut out = Vec::with_capacity(512);
    write_value(&value, &mut out, what)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>, what: &str) -> Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(refused(what, &format!("{n} is not an integer")));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, what)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map is a BTreeMap<String, _>: byte order of UTF-8
            // keys, which is code point order.
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out, what)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn refused(what: &str, why: &str) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path: ".".to_owned(),
        message: format!("cannot be written as canonical JSON: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"d": [1, -2], "c": "x\"y\\z\n"}});
        let out = to_canonical(&v, "t").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":{\"c\":\"x\\\"y\\\\z\n\",\"d\":[1,-2]},\"b\":1}"
        );
    }

    #[test]
    fn struct_fields_are_sorted_too() {
        #[derive(Serialize)]
        struct S {
            z: u8,
            a: u8,
        }
        assert_eq!(
            to_canonical(&S { z: 1, a: 2 }, "t").unwrap(),
            b"{\"a\":2,\"z\":1}"
        );
    }

    #[test]
    fn strings_are_not_unicode_normalised() {
        // U+09A1 U+09BC is not NFC (NFC is U+09DC); python-tuf signs it as is.
        let nfd = "\u{9a1}\u{9bc}";
        let out = to_canonical(&json!(nfd), "t").unwrap();
        assert_eq!(out, format!("\"{nfd}\"").into_bytes());
    }

    #[test]
    fn refuses_floats() {
        let err = to_canonical(&json!({"a": 2.0}), "t").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}
