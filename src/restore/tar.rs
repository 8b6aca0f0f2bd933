//! `restore --tar`: a restore written as a tar stream instead of into a
//! directory.
//!
//! Entries come in the order of the snapshot's walk (each directory before
//! its contents, nothing held but the directories still to visit), with
//! mode, owner, mtime,
//! symlink targets and names byte for byte. Names and link targets longer
//! than the 100 bytes of a tar header use GNU long-name entries; mtimes carry
//! their nanoseconds in a PAX `mtime` record, so GNU tar extracts exactly
//! what a restore to a directory writes. File content is streamed chunk by
//! chunk, each verified against its hash.

use std::io::{self, Read, Write};

use tar::{Builder, EntryType, Header};

use super::plan::{Item, walk_selection};
use super::{RestoreError, Selection};
use crate::browse::{BrowseError, check_data_size, file_chunks, read_chunk};
use crate::rawname::escaped;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{Content, Meta};

/// What went into the stream.
#[derive(Debug, Default)]
pub struct TarOutcome {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Writes the `selection` of `snapshot` as a tar stream to `out`, entry by
/// entry as the walk meets them. The selection is walked once first, so an
/// unreadable tree or a missing included path stops it before any byte.
pub fn write(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    out: impl Write,
) -> Result<TarOutcome, RestoreError> {
    walk_selection(store, snapshot, selection, |_| Ok(()))?;
    let mut tar = Builder::new(out);
    let mut outcome = TarOutcome::default();
    walk_selection(store, snapshot, selection, |item| {
        append(store, &mut tar, &item, &mut outcome)
    })?;
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(RestoreError::Tar)?;
    Ok(outcome)
}

fn append<W: Write>(
    store: &Store,
    tar: &mut Builder<W>,
    item: &Item,
    outcome: &mut TarOutcome,
) -> Result<(), RestoreError> {
    let meta = &item.entry.meta;
    append_mtime_record(tar, meta).map_err(RestoreError::Tar)?;
    let mut header = header_for(meta);
    match &item.entry.content {
        Content::Dir { .. } => {
            header.set_entry_type(EntryType::Directory);
            tar.append_data(&mut header, &item.rel, io::empty())
                .map_err(RestoreError::Tar)?;
            outcome.dirs += 1;
        }
        Content::Symlink { target } => {
            header.set_entry_type(EntryType::Symlink);
            tar.append_link(&mut header, &item.rel, target.as_path())
                .map_err(RestoreError::Tar)?;
            outcome.symlinks += 1;
        }
        Content::File { .. } => {
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.size);
            let content = ContentReader::new(store, item);
            tar.append_data(&mut header, &item.rel, content)
                .map_err(|e| content_error(e, item))?;
            outcome.files += 1;
            outcome.bytes += meta.size;
        }
    }
    Ok(())
}

fn header_for(meta: &Meta) -> Header {
    let mut header = Header::new_gnu();
    header.set_mode(meta.mode);
    header.set_uid(u64::from(meta.uid));
    header.set_gid(u64::from(meta.gid));
    header.set_mtime(u64::try_from(meta.mtime.sec).unwrap_or(0));
    header.set_size(0);
    header
}

/// A PAX extended header for the next entry holding its exact mtime.
fn append_mtime_record<W: Write>(tar: &mut Builder<W>, meta: &Meta) -> io::Result<()> {
    let value = decimal_seconds(meta.mtime.sec, meta.mtime.nsec);
    let record = pax_record("mtime", &value);
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_path("PaxHeader")?;
    header.set_mode(0o644);
    header.set_size(record.len() as u64);
    header.set_cksum();
    tar.append(&header, record.as_bytes())
}

/// `sec + nsec / 10^9` as a decimal, the way PAX times are written: before
/// 1970 the whole value is negative (-1.25 is sec -2, nsec 750000000).
fn decimal_seconds(sec: i64, nsec: u32) -> String {
    let total = i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

/// `"LEN key=value\n"`, where LEN counts the whole record, its own digits included.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len += 1;
    }
    format!("{len} {key}={value}\n")
}

/// The content of a file as a reader, fetched one verified chunk at a
/// time (a file is never held in memory whole).
struct ContentReader<'a> {
    store: &'a Store,
    item: &'a Item,
    next: usize,
    chunk: Vec<u8>,
    pos: usize,
    read: u64,
}

impl<'a> ContentReader<'a> {
    fn new(store: &'a Store, item: &'a Item) -> Self {
        Self {
            store,
            item,
            next: 0,
            chunk: Vec::new(),
            pos: 0,
            read: 0,
        }
    }

    /// Loads the next chunk; `false` at the end (after checking the size).
    fn refill(&mut self) -> Result<bool, BrowseError> {
        let (path, entry) = (&self.item.source, &self.item.entry);
        let chunks = file_chunks(path, entry)?;
        let Some(id) = chunks.get(self.next) else {
            check_data_size(path, entry, self.read)?;
            return Ok(false);
        };
        self.chunk = read_chunk(self.store, path, id)?;
        self.pos = 0;
        self.next += 1;
        self.read += self.chunk.len() as u64;
        Ok(true)
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if !self.refill().map_err(io::Error::other)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn content_error(e: io::Error, item: &Item) -> RestoreError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BrowseError>())
    {
        Some(_) => RestoreError::Selection(format!("{}: {e}", escaped(&item.source))),
        None => RestoreError::Tar(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_before_1970_are_negative_decimals() {
        assert_eq!(decimal_seconds(5, 1), "5.000000001");
        assert_eq!(decimal_seconds(-2, 750_000_000), "-1.250000000");
        assert_eq!(decimal_seconds(-1, 250_000_000), "-0.750000000");
        assert_eq!(
            decimal_seconds(-2_000_000_000, 250_000_001),
            "-1999999999.749999999"
        );
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("mtime", "1.5"), "13 mtime=1.5\n");
        let r = pax_record("mtime", "1767323045.123456789");
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
        let long = "x".repeat(95);
        let r = pax_record("path", &long);
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }
}
