//! The container: one streamable file.
//!
//! ```text
//! "keyshare-bundle/v1\n"                 19 bytes, the magic line
//! manifest length                        8 bytes, unsigned big-endian
//! manifest                               the signed manifest (JSON envelope)
//! entry 1 bytes, entry 2 bytes, ...      exactly manifest.entries[i].length each, in order
//! (end of file)
//! ```
//!
//! The manifest gives every entry's length and SHA-256, so the entries need
//! no headers of their own; a reader streams them, hashing each as it goes,
//! and refuses a short entry, a hash that differs (an altered byte, entries
//! in another order) and any byte after the last entry. Nothing is trusted
//! until [`crate::verify`] has run the TUF client over the result.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use openssl::sha::Sha256;

use keyshare_policy::metadata::{Envelope, Signed};
use keyshare_policy::sign::to_bytes;

use crate::manifest::{Entry, Manifest};
use crate::{Error, Result};

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"keyshare-bundle/v1\n";

/// Largest manifest a reader accepts (64 MiB: about 400,000 entries).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Largest single entry a reader accepts (64 MiB).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// A bundle read and checked against its own manifest, not yet verified.
#[derive(Debug)]
pub struct RawBundle {
    /// The manifest as parsed (signatures not checked yet).
    pub manifest: Envelope<Manifest>,
    /// The entries by path, bytes checked against the manifest.
    pub files: BTreeMap<String, Arc<[u8]>>,
}

/// Writes a bundle: magic, manifest, then each file of `manifest.entries`
/// in order, taken from `files`. `progress` is called with the bytes
/// written so far after each entry. Returns the bundle's size.
///
/// Fails if a listed file is missing from `files` or differs from its entry.
pub fn write_bundle(
    out: &mut dyn Write,
    manifest: &Signed<Manifest>,
    files: &BTreeMap<String, Arc<[u8]>>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let manifest_bytes = to_bytes(manifest)?;
    out.write_all(MAGIC)?;
    out.write_all(&(manifest_bytes.len() as u64).to_be_bytes())?;
    out.write_all(&manifest_bytes)?;
    let mut written = (MAGIC.len() + 8 + manifest_bytes.len()) as u64;
    for entry in &manifest.signed.entries {
        let bytes = files.get(&entry.path).ok_or_else(|| Error::Entry {
            path: entry.path.clone(),
            problem: "listed in the manifest but not given to the writer".into(),
        })?;
        check_entry(entry, bytes)?;
        out.write_all(bytes)?;
        written += bytes.len() as u64;
        progress(written);
    }
    out.flush()?;
    Ok(written)
}

/// The manifest entry describing `bytes` at `path`.
pub fn entry_for(path: &str, bytes: &[u8]) -> Entry {
    Entry {
        path: path.to_owned(),
        length: bytes.len() as u64,
        sha256: keyshare_policy::hash::sha256_hex(bytes),
    }
}

fn check_entry(entry: &Entry, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != entry.length {
        return Err(Error::Entry {
            path: entry.path.clone(),
            problem: format!("{} bytes, the manifest says {}", bytes.len(), entry.length),
        });
    }
    if keyshare_policy::hash::sha256_hex(bytes) != entry.sha256 {
        return Err(Error::Entry {
            path: entry.path.clone(),
            problem: "SHA-256 differs from the manifest (altered, or entries out of order)".into(),
        });
    }
    Ok(())
}

/// Reads a bundle from `input` to its end, checking the container and
/// each entry's length and SHA-256 against the manifest. `progress` is
/// called with the bytes read so far after each entry.
///
/// Never trusts a length before reading the bytes: memory grows with what
/// was actually read.
pub fn read_bundle(input: &mut dyn Read, progress: &mut dyn FnMut(u64)) -> Result<RawBundle> {
    let magic = read_up_to(input, MAGIC.len() as u64)?;
    if !MAGIC.starts_with(&magic) {
        return Err(Error::NotABundle);
    }
    if magic.len() < MAGIC.len() {
        return Err(Error::Container(
            "truncated: the file ends inside the magic line".into(),
        ));
    }
    let mut len = [0u8; 8];
    read_exact(input, &mut len, "the manifest length")?;
    let manifest_len = u64::from_be_bytes(len);
    if manifest_len > MAX_MANIFEST_BYTES {
        return Err(Error::Container(format!(
            "manifest length {manifest_len} is over the limit of {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let manifest_bytes = read_up_to(input, manifest_len)?;
    if manifest_bytes.len() as u64 != manifest_len {
        return Err(Error::Container(format!(
            "truncated: the manifest has {} of its {manifest_len} bytes",
            manifest_bytes.len()
        )));
    }
    let manifest = Envelope::<Manifest>::parse("bundle manifest", &manifest_bytes)
        .map_err(|e| Error::Manifest(e.to_string()))?;
    let mut done = MAGIC.len() as u64 + 8 + manifest_len;
    let mut files = BTreeMap::new();
    for entry in &manifest.signed.entries {
        if entry.length > MAX_ENTRY_BYTES {
            return Err(Error::Entry {
                path: entry.path.clone(),
                problem: format!(
                    "length {} is over the limit of {MAX_ENTRY_BYTES}",
                    entry.length
                ),
            });
        }
        let bytes = read_up_to(input, entry.length)?;
        if (bytes.len() as u64) < entry.length {
            return Err(Error::Container(format!(
                "truncated: entry {} has {} of its {} bytes",
                entry.path,
                bytes.len(),
                entry.length
            )));
        }
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        if hex(&hasher.finish()) != entry.sha256 {
            return Err(Error::Entry {
                path: entry.path.clone(),
                problem: "SHA-256 differs from the manifest (altered, or entries out of order)"
                    .into(),
            });
        }
        done += entry.length;
        progress(done);
        files.insert(entry.path.clone(), Arc::from(bytes));
    }
    let mut extra = [0u8; 1];
    if read_some(input, &mut extra)? != 0 {
        return Err(Error::Container(format!(
            "bytes after the last entry (at offset {done}): the bundle was appended to"
        )));
    }
    Ok(RawBundle { manifest, files })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_exact(input: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Container(format!("truncated: the file ends inside {what}"))
        } else {
            Error::Io(e)
        }
    })
}

/// Reads at most `len` bytes (fewer only at the end of the input).
fn read_up_to(input: &mut dyn Read, len: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}
