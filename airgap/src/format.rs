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
//! no headers of their own; a [`Reader`] streams them, hashing each as it
//! goes, and refuses a short entry, a hash that differs (an altered byte,
//! entries in another order) and any byte after the last entry. Nothing is
//! trusted until [`crate::verify`] has run the TUF client over the result.
//!
//! Memory is bounded whatever the file claims: every length it states is
//! checked against a fixed cap before anything is read or reserved for it
//! ([`MAX_MANIFEST_BYTES`], [`MAX_ENTRY_BYTES`], [`MAX_BUNDLE_BYTES`]),
//! entries stream through a small buffer, and afterwards they are read
//! back one at a time from a [`Source`] (the bundle file, or a copy of it),
//! each checked against the manifest again.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use openssl::sha::Sha256;

use keyshare_policy::metadata::{Envelope, Signed};
use keyshare_policy::sign::to_bytes;

use crate::manifest::{Entry, Manifest};
use crate::{Error, Result};

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"keyshare-bundle/v1\n";

/// Largest manifest a reader accepts (16 MiB: about 80,000 entries, four
/// times the bundle of 10,000 namespaces). Parsed, a manifest takes about
/// twice its size in memory while it is checked.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Largest single entry a reader accepts (16 MiB: more than any metadata
/// file a TUF client accepts without a listed length, and than any trust
/// document).
pub const MAX_ENTRY_BYTES: u64 = 16 << 20;

/// Most bytes all entries of a bundle may claim together (4 GiB: about
/// a hundred times the bundle of 10,000 namespaces).
pub const MAX_BUNDLE_BYTES: u64 = 4 << 30;

/// Bytes read from the input at a time.
const CHUNK: usize = 64 << 10;

/// Random access to a bundle's bytes: the bundle file, a copy of it, or a
/// buffer. Entries are read back from it one at a time after the bundle
/// was read through once, each checked against the manifest again (so a
/// file that changes in between is refused, not believed).
pub trait Source: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end,
    /// none past it.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl Source for std::fs::File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match std::os::unix::fs::FileExt::read_at(self, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Source for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let rest = self.get(start..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), rest.get(..n)) {
            to.copy_from_slice(from);
        }
        Ok(n)
    }
}

/// A [`Source`] read from its start, as a stream.
#[derive(Debug)]
pub struct SourceReader<'a> {
    source: &'a dyn Source,
    at: u64,
}

impl<'a> SourceReader<'a> {
    /// Reads `source` from offset 0.
    pub fn new(source: &'a dyn Source) -> Self {
        Self { source, at: 0 }
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(self.at, buf)?;
        self.at = self.at.saturating_add(n as u64);
        Ok(n)
    }
}

/// Writes a bundle: magic, manifest, then each file of `manifest.entries`
/// in order, taken from `files`. `progress` is called with the bytes
/// written so far after each entry. Returns the bundle's size.
///
/// Fails if a listed file is missing from `files` or differs from its
/// entry, and, before writing anything, if the bundle would break a cap a
/// reader enforces (so no bundle is exported that no replica would read).
pub fn write_bundle(
    out: &mut dyn Write,
    manifest: &Signed<Manifest>,
    files: &BTreeMap<String, Arc<[u8]>>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    check_claims(&manifest.signed)?;
    let manifest_bytes = to_bytes(manifest)?;
    if manifest_bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::Manifest(format!(
            "{} with {} entries, more than the {} a manifest may have",
            claimed(manifest_bytes.len() as u64),
            manifest.signed.entries.len(),
            cap(MAX_MANIFEST_BYTES)
        )));
    }
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
        return Err(altered(entry));
    }
    Ok(())
}

fn altered(entry: &Entry) -> Error {
    Error::Entry {
        path: entry.path.clone(),
        problem: "SHA-256 differs from the manifest (altered, or entries out of order)".into(),
    }
}

/// A size a file claims, for a message: `201.0 GB`, `12.3 MB`, `512 bytes`.
pub(crate) fn claimed(bytes: u64) -> String {
    for (unit, name) in [(1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB")] {
        if bytes >= unit {
            return format!("{}.{} {name}", bytes / unit, bytes % unit / (unit / 10));
        }
    }
    format!("{bytes} bytes")
}

/// A cap, for a message: `16 MiB`, `4 GiB`.
pub(crate) fn cap(bytes: u64) -> String {
    for (shift, name) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {name}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Checks what the manifest claims against the caps, before anything is
/// read for it; returns the entries' total length.
fn check_claims(manifest: &Manifest) -> Result<u64> {
    let mut total: u64 = 0;
    for e in &manifest.entries {
        if e.length > MAX_ENTRY_BYTES {
            return Err(Error::Manifest(format!(
                "entry `{}` claims {}, more than the {} an entry may have",
                e.path,
                claimed(e.length),
                cap(MAX_ENTRY_BYTES)
            )));
        }
        total = total.saturating_add(e.length);
    }
    if total > MAX_BUNDLE_BYTES {
        return Err(Error::Manifest(format!(
            "the entries claim {} in all, more than the {} a bundle may hold",
            claimed(total),
            cap(MAX_BUNDLE_BYTES)
        )));
    }
    Ok(total)
}

/// Reads the magic line, the manifest length and the manifest, copying
/// them to `copy`. Returns the parsed manifest (signatures not checked)
/// and the header's length.
fn read_header(input: &mut dyn Read, copy: &mut dyn Write) -> Result<(Envelope<Manifest>, u64)> {
    let mut magic = Vec::with_capacity(MAGIC.len());
    input.take(MAGIC.len() as u64).read_to_end(&mut magic)?;
    if !MAGIC.starts_with(&magic) {
        return Err(Error::NotABundle);
    }
    if magic.len() < MAGIC.len() {
        return Err(Error::Container(
            "truncated: the file ends inside the magic line".into(),
        ));
    }
    let mut len = [0u8; 8];
    input.read_exact(&mut len).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Container("truncated: the file ends inside the manifest length".into())
        } else {
            Error::Io(e)
        }
    })?;
    let manifest_len = u64::from_be_bytes(len);
    if manifest_len > MAX_MANIFEST_BYTES {
        return Err(Error::Container(format!(
            "the manifest claims {}, more than the {} a manifest may have",
            claimed(manifest_len),
            cap(MAX_MANIFEST_BYTES)
        )));
    }
    // Within the cap: reserving the claimed length is bounded.
    let mut bytes = Vec::with_capacity(usize::try_from(manifest_len).unwrap_or(0));
    input.take(manifest_len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != manifest_len {
        return Err(Error::Container(format!(
            "truncated: the manifest has {} of its {manifest_len} bytes",
            bytes.len()
        )));
    }
    copy.write_all(MAGIC)
        .and_then(|()| copy.write_all(&len))
        .and_then(|()| copy.write_all(&bytes))
        .map_err(Error::Copy)?;
    let (signed, signatures) = crate::manifest::parse(&bytes).map_err(Error::Manifest)?;
    drop(bytes);
    let manifest = crate::manifest::envelope(signed, signatures).map_err(Error::Manifest)?;
    Ok((manifest, MAGIC.len() as u64 + 8 + manifest_len))
}

/// Reads only a bundle's header and returns its manifest, unverified (its
/// claims checked against the caps). Reads at most
/// [`MAX_MANIFEST_BYTES`] and a few bytes more.
pub fn read_manifest(input: &mut dyn Read) -> Result<Envelope<Manifest>> {
    let (manifest, _) = read_header(input, &mut io::sink())?;
    check_claims(&manifest.signed)?;
    Ok(manifest)
}

/// Reads a bundle in one pass, with bounded memory: the header when
/// opened, then each entry in manifest order, either into memory
/// ([`Reader::read_entry`], at most [`MAX_ENTRY_BYTES`]) or only through
/// ([`Reader::skip_entry`]); [`Reader::finish`] streams the rest and checks
/// the end of the file. Every byte read is also written to `copy` (a file
/// the bundle is imported into, or [`io::sink`]). Each entry is hashed as
/// it streams and refused at its first missing byte or a SHA-256 that
/// differs from the manifest's.
pub struct Reader<'a> {
    input: &'a mut dyn Read,
    copy: &'a mut dyn Write,
    progress: &'a mut dyn FnMut(u64, u64),
    manifest: Envelope<Manifest>,
    header_len: u64,
    total: u64,
    next: usize,
    done: u64,
    buf: Vec<u8>,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("next", &self.next)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<'a> Reader<'a> {
    /// Reads the header: the magic line, the manifest length (at most
    /// [`MAX_MANIFEST_BYTES`]) and the manifest, whose entries may each
    /// claim at most [`MAX_ENTRY_BYTES`] and together
    /// [`MAX_BUNDLE_BYTES`]. `progress(done, total)` is called after each
    /// entry, `total` being the size the manifest gives the bundle.
    pub fn open(
        input: &'a mut dyn Read,
        copy: &'a mut dyn Write,
        progress: &'a mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let (manifest, header_len) = read_header(input, copy)?;
        let total = header_len.saturating_add(check_claims(&manifest.signed)?);
        progress(header_len, total);
        Ok(Self {
            input,
            copy,
            progress,
            manifest,
            header_len,
            total,
            next: 0,
            done: header_len,
            buf: vec![0; CHUNK],
        })
    }

    /// The manifest, as read (its signature is not checked here).
    pub fn manifest(&self) -> &Envelope<Manifest> {
        &self.manifest
    }

    /// The entry the next read is for.
    pub fn peek(&self) -> Option<&Entry> {
        self.manifest.signed.entries.get(self.next)
    }

    /// Reads the next entry into memory, checked.
    pub fn read_entry(&mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.stream_entry(Some(&mut bytes))?;
        Ok(bytes)
    }

    /// Reads the next entry through (to `copy` only), checked.
    pub fn skip_entry(&mut self) -> Result<()> {
        self.stream_entry(None)
    }

    fn stream_entry(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<()> {
        let Some(entry) = self.manifest.signed.entries.get(self.next) else {
            return Err(Error::Container("no entry left to read".into()));
        };
        if let Some(keep) = keep.as_deref_mut() {
            // Within MAX_ENTRY_BYTES (checked when opened).
            keep.reserve_exact(usize::try_from(entry.length).unwrap_or(0));
        }
        let mut hasher = Sha256::new();
        let mut left = entry.length;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let buf = self.buf.get_mut(..want).unwrap_or_default();
            let n = read_some(self.input, buf)?;
            let Some(got) = buf.get(..n).filter(|g| !g.is_empty()) else {
                return Err(Error::Container(format!(
                    "truncated: entry {} has {} of its {} bytes",
                    entry.path,
                    entry.length - left,
                    entry.length
                )));
            };
            hasher.update(got);
            self.copy.write_all(got).map_err(Error::Copy)?;
            if let Some(keep) = keep.as_deref_mut() {
                keep.extend_from_slice(got);
            }
            left -= n as u64;
            self.done += n as u64;
        }
        if hex(&hasher.finish()) != entry.sha256 {
            return Err(altered(entry));
        }
        self.next += 1;
        (self.progress)(self.done, self.total);
        Ok(())
    }

    /// Reads every entry left through, then checks that the file ends
    /// there. Returns the manifest and where each entry is.
    pub fn finish(mut self) -> Result<(Envelope<Manifest>, Layout)> {
        while self.next < self.manifest.signed.entries.len() {
            self.skip_entry()?;
        }
        let mut extra = [0u8; 1];
        if read_some(self.input, &mut extra)? != 0 {
            return Err(Error::Container(format!(
                "bytes after the last entry (at offset {}): the bundle was appended to",
                self.done
            )));
        }
        self.copy.flush().map_err(Error::Copy)?;
        let layout = Layout::new(&self.manifest.signed, self.header_len);
        Ok((self.manifest, layout))
    }
}

/// Where each entry of a bundle is, found by path: offsets in manifest
/// order and the entries' indexes sorted by path.
#[derive(Debug)]
pub struct Layout {
    offsets: Vec<u64>,
    by_path: Vec<usize>,
}

impl Layout {
    fn new(manifest: &Manifest, header_len: u64) -> Self {
        let mut at = header_len;
        let offsets = manifest
            .entries
            .iter()
            .map(|e| {
                let start = at;
                at = at.saturating_add(e.length);
                start
            })
            .collect();
        let mut by_path: Vec<usize> = (0..manifest.entries.len()).collect();
        by_path.sort_unstable_by(|a, b| {
            let path = |i: &usize| manifest.entries.get(*i).map(|e| e.path.as_str());
            path(a).cmp(&path(b))
        });
        Self { offsets, by_path }
    }

    /// The entry at `path` of `manifest` (the one this layout was made
    /// from), and its offset in the bundle.
    pub fn find<'m>(&self, manifest: &'m Manifest, path: &str) -> Option<(&'m Entry, u64)> {
        let at = self
            .by_path
            .binary_search_by(|i| {
                manifest
                    .entries
                    .get(*i)
                    .map(|e| e.path.as_str())
                    .cmp(&Some(path))
            })
            .ok()?;
        let i = *self.by_path.get(at)?;
        Some((manifest.entries.get(i)?, *self.offsets.get(i)?))
    }

    /// Reads the entry at `path` from `source`, checking its length and
    /// SHA-256 against the manifest again; `None` when the manifest has no
    /// such entry.
    pub fn read(
        &self,
        manifest: &Manifest,
        source: &dyn Source,
        path: &str,
    ) -> Result<Option<Vec<u8>>> {
        let Some((entry, offset)) = self.find(manifest, path) else {
            return Ok(None);
        };
        // Within MAX_ENTRY_BYTES (checked when the bundle was read).
        let mut bytes = vec![0u8; usize::try_from(entry.length).unwrap_or(0)];
        let mut filled = 0;
        while let Some(rest) = bytes.get_mut(filled..).filter(|r| !r.is_empty()) {
            let n = source.read_at(offset.saturating_add(filled as u64), rest)?;
            if n == 0 {
                return Err(Error::Entry {
                    path: entry.path.clone(),
                    problem: "the bundle file is shorter than when it was read (it changed)".into(),
                });
            }
            filled += n;
        }
        if keyshare_policy::hash::sha256_hex(&bytes) != entry.sha256 {
            return Err(Error::Entry {
                path: entry.path.clone(),
                problem:
                    "SHA-256 differs from the manifest (the bundle file changed after it was read)"
                        .into(),
            });
        }
        Ok(Some(bytes))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_messages() {
        assert_eq!(claimed(201_000_000_000), "201.0 GB");
        assert_eq!(claimed(1_073_741_824), "1.0 GB");
        assert_eq!(claimed(12_345_678), "12.3 MB");
        assert_eq!(claimed(2_500), "2.5 kB");
        assert_eq!(claimed(999), "999 bytes");
        assert_eq!(cap(MAX_ENTRY_BYTES), "16 MiB");
        assert_eq!(cap(MAX_BUNDLE_BYTES), "4 GiB");
        assert_eq!(cap(1000), "1000 bytes");
    }
}
