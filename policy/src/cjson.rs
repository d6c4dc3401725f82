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

use std::io::Write as _;

use serde::ser;
use serde::Serialize;

use crate::error::{Error, Result};

/// Serialises `value` to canonical JSON bytes.
///
/// `what` names the document for the error message (for example the role name).
///
/// Written directly by a serde serializer (not through `serde_json::Value`)
/// into one buffer: each object's entries are written where they come,
/// and when their keys did not come in order (or a key came twice, a
/// flattened field repeating a named one) the object is rewritten with
/// its entries sorted by key, a key given twice keeping its last value, as
/// a JSON map would. So keys come out sorted whatever order a struct
/// declares its fields in, and a map that iterates in order (a `BTreeMap`
/// of strings) is written once, with no buffer of its own.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    let mut buf = Buffers {
        out: Vec::with_capacity(512),
        entries: Vec::new(),
        keys: String::new(),
        scratch: Vec::new(),
    };
    value
        .serialize(Canonical { b: &mut buf })
        .map_err(|e| refused(what, &e.0))?;
    Ok(buf.out)
}

/// `"key":value` as an entry of a canonical JSON object: the bytes
/// [`to_canonical`] writes for that entry of a map.
pub(crate) fn canonical_entry<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    let mut buf = Buffers {
        out: Vec::with_capacity(key.len() + 128),
        entries: Vec::new(),
        keys: String::new(),
        scratch: Vec::new(),
    };
    write_string(key, &mut buf.out);
    buf.out.push(b':');
    value
        .serialize(Canonical { b: &mut buf })
        .map_err(|e| refused(key, &e.0))?;
    Ok(buf.out)
}

/// The output and the scratch space shared by every object being written.
struct Buffers {
    /// The canonical bytes.
    out: Vec<u8>,
    /// The entries of the objects being written, innermost last: an
    /// object's own start where it opened, and are dropped when it closes.
    entries: Vec<EntryAt>,
    /// Map keys as given (unescaped), for comparing them.
    keys: String,
    /// Where an object's entries are copied while it is rewritten sorted.
    scratch: Vec<u8>,
}

/// One entry of an object being written: its key and where in `out` its
/// `"key":value` is (from `start`, without the comma before it, to `end`).
struct EntryAt {
    key: Key,
    start: usize,
    end: usize,
}

/// An entry's key: a struct field's name, or a map key in `Buffers::keys`.
#[derive(Clone, Copy)]
enum Key {
    Field(&'static str),
    Text(usize, usize),
}

impl Key {
    fn text(self, keys: &str) -> &str {
        match self {
            Self::Field(name) => name,
            Self::Text(from, to) => keys.get(from..to).unwrap_or_default(),
        }
    }
}

/// Why a value cannot be written as canonical JSON.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type Done = std::result::Result<(), Refused>;

/// Writes one value to `b.out`.
struct Canonical<'a> {
    b: &'a mut Buffers,
}

impl Canonical<'_> {
    fn integer(self, n: impl std::fmt::Display) -> Done {
        write!(self.b.out, "{n}").map_err(|e| Refused(e.to_string()))
    }

    /// `{"variant":` before a variant's content.
    fn open_variant(&mut self, variant: &str) {
        self.b.out.push(b'{');
        write_string(variant, &mut self.b.out);
        self.b.out.push(b':');
    }
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Done {
        self.b
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Done {
        self.integer(v)
    }
    fn serialize_i16(self, v: i16) -> Done {
        self.integer(v)
    }
    fn serialize_i32(self, v: i32) -> Done {
        self.integer(v)
    }
    fn serialize_i64(self, v: i64) -> Done {
        self.integer(v)
    }
    fn serialize_i128(self, v: i128) -> Done {
        self.integer(v)
    }
    fn serialize_u8(self, v: u8) -> Done {
        self.integer(v)
    }
    fn serialize_u16(self, v: u16) -> Done {
        self.integer(v)
    }
    fn serialize_u32(self, v: u32) -> Done {
        self.integer(v)
    }
    fn serialize_u64(self, v: u64) -> Done {
        self.integer(v)
    }
    fn serialize_u128(self, v: u128) -> Done {
        self.integer(v)
    }
    fn serialize_f32(self, v: f32) -> Done {
        Err(Refused(format!("{v} is not an integer")))
    }
    fn serialize_f64(self, v: f64) -> Done {
        Err(Refused(format!("{v} is not an integer")))
    }
    fn serialize_char(self, v: char) -> Done {
        write_string(v.encode_utf8(&mut [0; 4]), &mut self.b.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Done {
        write_string(v, &mut self.b.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Done {
        // As serde_json writes bytes: an array of numbers.
        let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Done {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        self.b.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Done {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Done {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Done {
        self.open_variant(variant);
        value.serialize(Canonical { b: &mut *self.b })?;
        self.b.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> std::result::Result<Array<'a>, Refused> {
        self.b.out.push(b'[');
        Ok(Array {
            b: self.b,
            first: true,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> std::result::Result<Array<'a>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> std::result::Result<Array<'a>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> std::result::Result<Array<'a>, Refused> {
        self.open_variant(variant);
        self.b.out.push(b'[');
        Ok(Array {
            b: self.b,
            first: true,
            variant: true,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> std::result::Result<Object<'a>, Refused> {
        Ok(Object::new(self.b, false))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> std::result::Result<Object<'a>, Refused> {
        Ok(Object::new(self.b, false))
    }
    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> std::result::Result<Object<'a>, Refused> {
        self.open_variant(variant);
        Ok(Object::new(self.b, true))
    }
}

/// An array being written.
struct Array<'a> {
    b: &'a mut Buffers,
    first: bool,
    /// Inside `{"variant":` (a tuple variant), closed by `end`.
    variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        if !self.first {
            self.b.out.push(b',');
        }
        self.first = false;
        value.serialize(Canonical { b: &mut *self.b })
    }

    fn close(self) -> Done {
        self.b.out.push(b']');
        if self.variant {
            self.b.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.element(value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.element(value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.element(value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Array<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.element(value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

/// An object being written: `{` and its entries written to `out` as they
/// come, each recorded in `entries` (and a map key's text in `keys`); at
/// the end, if the keys did not come strictly in order, the entries are
/// written again sorted.
struct Object<'a> {
    b: &'a mut Buffers,
    /// Where its first entry starts in `out` (after the `{`).
    open: usize,
    /// Its first entry in `entries`; its first key in `keys`.
    first_entry: usize,
    first_key: usize,
    /// Whether every key so far came after the one before it.
    in_order: bool,
    /// The key given to `serialize_key`, waiting for its value.
    key: Option<Key>,
    /// Inside `{"variant":` (a struct variant), closed by `end`.
    variant: bool,
}

impl<'a> Object<'a> {
    fn new(b: &'a mut Buffers, variant: bool) -> Self {
        b.out.push(b'{');
        Self {
            open: b.out.len(),
            first_entry: b.entries.len(),
            first_key: b.keys.len(),
            in_order: true,
            key: None,
            variant,
            b,
        }
    }

    fn entry<T: Serialize + ?Sized>(&mut self, key: Key, value: &T) -> Done {
        let b = &mut *self.b;
        if let Some(last) = b.entries.get(self.first_entry..).and_then(<[_]>::last) {
            if last.key.text(&b.keys) >= key.text(&b.keys) {
                self.in_order = false;
            }
            b.out.push(b',');
        }
        let start = b.out.len();
        write_string(key.text(&b.keys), &mut b.out);
        b.out.push(b':');
        value.serialize(Canonical { b: &mut *b })?;
        b.entries.push(EntryAt {
            key,
            start,
            end: b.out.len(),
        });
        Ok(())
    }

    fn close(self) -> Done {
        let b = self.b;
        if !self.in_order {
            // Sorted by the keys' UTF-8 bytes (code point order); stable, so
            // of two entries with one key the later one comes last.
            let Buffers {
                out,
                entries,
                keys,
                scratch,
            } = b;
            let entries = entries.get_mut(self.first_entry..).unwrap_or_default();
            entries.sort_by(|x, y| x.key.text(keys).cmp(y.key.text(keys)));
            scratch.clear();
            scratch.extend_from_slice(out.get(self.open..).unwrap_or_default());
            out.truncate(self.open);
            let mut first = true;
            let mut sorted = entries.iter().peekable();
            while let Some(entry) = sorted.next() {
                let key = entry.key.text(keys);
                if sorted.peek().is_some_and(|next| next.key.text(keys) == key) {
                    continue; // a later value for this key wins
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                let bytes = scratch
                    .get(entry.start - self.open..entry.end - self.open)
                    .unwrap_or_default();
                out.extend_from_slice(bytes);
            }
        }
        b.entries.truncate(self.first_entry);
        b.keys.truncate(self.first_key);
        b.out.push(b'}');
        if self.variant {
            b.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        let from = self.b.keys.len();
        key.serialize(KeyText {
            text: &mut self.b.keys,
        })?;
        self.key = Some(Key::Text(from, self.b.keys.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        let key = self
            .key
            .take()
            .ok_or_else(|| Refused("a map value without its key".into()))?;
        self.entry(key, value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        self.entry(Key::Field(key), value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        self.entry(Key::Field(key), value)
    }
    fn end(self) -> Done {
        self.close()
    }
}

/// A map key as the text JSON writes it, as `serde_json` takes keys:
/// strings, characters, integers and booleans (written as their text),
/// unit variants (their name) and newtypes of those.
struct KeyText<'a> {
    text: &'a mut String,
}

impl KeyText<'_> {
    fn refuse<T>(what: &str) -> std::result::Result<T, Refused> {
        Err(Refused(format!("a map key must be a string, not {what}")))
    }

    fn put(self, v: impl std::fmt::Display) -> Done {
        use std::fmt::Write as _;
        write!(self.text, "{v}").map_err(|e| Refused(e.to_string()))
    }
}

impl ser::Serializer for KeyText<'_> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = ser::Impossible<(), Refused>;
    type SerializeTuple = ser::Impossible<(), Refused>;
    type SerializeTupleStruct = ser::Impossible<(), Refused>;
    type SerializeTupleVariant = ser::Impossible<(), Refused>;
    type SerializeMap = ser::Impossible<(), Refused>;
    type SerializeStruct = ser::Impossible<(), Refused>;
    type SerializeStructVariant = ser::Impossible<(), Refused>;

    fn serialize_bool(self, v: bool) -> Done {
        self.put(v)
    }
    fn serialize_i8(self, v: i8) -> Done {
        self.put(v)
    }
    fn serialize_i16(self, v: i16) -> Done {
        self.put(v)
    }
    fn serialize_i32(self, v: i32) -> Done {
        self.put(v)
    }
    fn serialize_i64(self, v: i64) -> Done {
        self.put(v)
    }
    fn serialize_i128(self, v: i128) -> Done {
        self.put(v)
    }
    fn serialize_u8(self, v: u8) -> Done {
        self.put(v)
    }
    fn serialize_u16(self, v: u16) -> Done {
        self.put(v)
    }
    fn serialize_u32(self, v: u32) -> Done {
        self.put(v)
    }
    fn serialize_u64(self, v: u64) -> Done {
        self.put(v)
    }
    fn serialize_u128(self, v: u128) -> Done {
        self.put(v)
    }
    fn serialize_f32(self, _v: f32) -> Done {
        Self::refuse("a float")
    }
    fn serialize_f64(self, _v: f64) -> Done {
        Self::refuse("a float")
    }
    fn serialize_char(self, v: char) -> Done {
        self.put(v)
    }
    fn serialize_str(self, v: &str) -> Done {
        {
            self.text.push_str(v);
            Ok(())
        }
    }
    fn serialize_bytes(self, _v: &[u8]) -> Done {
        Self::refuse("bytes")
    }
    fn serialize_none(self) -> Done {
        Self::refuse("null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _v: &T) -> Done {
        Self::refuse("an option")
    }
    fn serialize_unit(self) -> Done {
        Self::refuse("null")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Done {
        Self::refuse("null")
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Done {
        self.text.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Done {
        Self::refuse("an enum variant with data")
    }
    fn serialize_seq(
        self,
        _len: Option<usize>,
    ) -> std::result::Result<Self::SerializeSeq, Refused> {
        Self::refuse("an array")
    }
    fn serialize_tuple(self, _len: usize) -> std::result::Result<Self::SerializeTuple, Refused> {
        Self::refuse("an array")
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> std::result::Result<Self::SerializeTupleStruct, Refused> {
        Self::refuse("an array")
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> std::result::Result<Self::SerializeTupleVariant, Refused> {
        Self::refuse("an array")
    }
    fn serialize_map(
        self,
        _len: Option<usize>,
    ) -> std::result::Result<Self::SerializeMap, Refused> {
        Self::refuse("an object")
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> std::result::Result<Self::SerializeStruct, Refused> {
        Self::refuse("an object")
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> std::result::Result<Self::SerializeStructVariant, Refused> {
        Self::refuse("an object")
    }
}

/// `s` quoted, with `"` and `\\` escaped; the runs between them are copied whole.
fn write_string(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings (paths, hashes, key ids) have nothing to escape; this
    // test has no early exit, so it is vectorised.
    let plain = !bytes
        .iter()
        .fold(false, |seen, &b| seen | (b == b'"') | (b == b'\\'));
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
            out.push(b'\\');
            run = i; // the escaped byte starts the next run
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
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
    use serde_json::{json, Value};

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

    /// The typed value and its `serde_json::Value` form (objects as sorted
    /// maps) give the same bytes: flattened fields, a flattened key that
    /// repeats a named field (the later wins, as in a JSON map), options,
    /// enum variants of every shape, bytes and integer map keys.
    #[test]
    fn a_typed_value_writes_as_its_json_value_does() {
        #[derive(Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, i64),
            Fields { z: u8, a: String },
        }
        #[derive(Serialize)]
        struct S {
            z: u64,
            b: Option<u8>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            e: Vec<E>,
            #[serde(with = "serde_bytes_as_seq")]
            raw: Vec<u8>,
            ints: std::collections::BTreeMap<u32, bool>,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, serde_json::Value>,
        }
        mod serde_bytes_as_seq {
            pub(super) fn serialize<S: serde::Serializer>(
                v: &[u8],
                s: S,
            ) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
        }
        let s = S {
            z: u64::MAX,
            b: None,
            skipped: None,
            e: vec![
                E::Unit,
                E::New(7),
                E::Tuple(1, -2),
                E::Fields {
                    z: 1,
                    a: "q\"".into(),
                },
            ],
            raw: vec![0, 255],
            ints: [(10, true), (9, false)].into_iter().collect(),
            rest: [("a".to_owned(), json!(1)), ("z".to_owned(), json!("later"))]
                .into_iter()
                .collect(),
        };
        let typed = to_canonical(&s, "t").unwrap();
        let value = to_canonical(&serde_json::to_value(&s).unwrap(), "t").unwrap();
        assert_eq!(
            String::from_utf8(typed.clone()).unwrap(),
            String::from_utf8(value).unwrap()
        );
        assert!(
            String::from_utf8(typed)
                .unwrap()
                .contains("\"z\":\"later\""),
            "the flattened `z` comes after the named one and wins"
        );
    }

    /// Entries given out of order, a key given twice and keys whose
    /// escaped form sorts otherwise than they do (`"` sorts before `#`,
    /// but its escape `\` after), nested: sorted by the keys themselves,
    /// the later of two values kept, as from the JSON map of the same
    /// entries.
    #[test]
    fn entries_in_any_order_come_out_sorted_with_the_last_of_a_repeated_key() {
        struct Entries(Vec<(&'static str, Value)>);
        impl Serialize for Entries {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                for (k, v) in &self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let inner = json!({"z": [1, {"b": 2, "a": 1}], "a\"": "q", "a#": "h"});
        let entries = Entries(vec![
            ("b", json!(1)),
            ("a#", json!(2)),
            ("a\"", inner.clone()),
            ("", json!(null)),
            ("b", json!("later")),
            ("a", json!([{"y": 1, "x": 2}])),
        ]);
        let mut map = serde_json::Map::new();
        for (k, v) in &entries.0 {
            map.insert((*k).to_owned(), v.clone());
        }
        let got = to_canonical(&entries, "t").unwrap();
        assert_eq!(
            String::from_utf8(got.clone()).unwrap(),
            String::from_utf8(to_canonical(&Value::Object(map), "t").unwrap()).unwrap()
        );
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "{\"\":null,\"a\":[{\"x\":2,\"y\":1}],\"a\\\"\":{\"a\\\"\":\"q\",\"a#\":\"h\",\
             \"z\":[1,{\"a\":1,\"b\":2}]},\"a#\":2,\"b\":\"later\"}"
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
