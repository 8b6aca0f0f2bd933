//! `restore --tar`: a restore written as a tar stream instead of into a
//! directory.
//!
//! Entries come in the order of the snapshot's walk (each directory before
//! its contents, nothing held but the directories still to visit), with
//! mode, owner (ids and names), mtime,
//! symlink targets and names byte for byte. Names and link targets longer
//! than the 100 bytes of a tar header use GNU long-name entries; mtimes carry
//! their nanoseconds, and xattrs, ACLs and holes their own records, in a PAX
//! extended header (see `tar_pax`), so GNU tar (`--xattrs --acls`) extracts
//! what a restore to a directory writes. The later names of a hard-linked
//! file are hard link entries to the first name in the stream. File content
//! is streamed chunk by chunk, each verified against its hash.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tar::{Builder, EntryType, Header};

use super::links::Primaries;
use super::plan::{Item, walk_selection};
use super::tar_pax::{Records, sparse_map};
use super::{RestoreError, Selection};
use crate::browse::{
    BrowseError, check_data_size, check_holes, check_within_size, file_chunks, read_chunk,
};
use crate::interrupt::Interrupted;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{Content, Meta, data_regions};

/// What went into the stream.
#[derive(Debug, Default)]
pub struct TarOutcome {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Files written as hard links to an earlier name (counted in `files`).
    pub hardlinks: u64,
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
    let mut links = Primaries::default();
    walk_selection(store, snapshot, selection, |item| {
        append(store, &mut tar, &item, &mut links, &mut outcome)
    })?;
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(RestoreError::Tar)?;
    Ok(outcome)
}

/// Writes the tar stream into the new file `path`: under a temporary name
/// beside it, fsynced, and linked into place only when complete (never over
/// an existing file), so a failed run leaves no truncated archive.
pub fn write_file(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    path: &Path,
) -> Result<TarOutcome, RestoreError> {
    let io_error = |what: &'static str, note: &'static str, source| RestoreError::TarFile {
        what,
        note,
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp = tempfile::Builder::new()
        .prefix(".cairn-tar-")
        .tempfile_in(dir.unwrap_or(Path::new(".")))
        .map_err(|e| io_error("creating a temporary file beside", "", e))?;
    // A signal stops the stream between two reads; the temporary file goes.
    let _cleanup = crate::interrupt::Cleanup::start();
    let written = write(
        store,
        snapshot,
        selection,
        io::BufWriter::new(tmp.as_file()),
    );
    let outcome = match (written, crate::interrupt::requested()) {
        (_, Some(signal)) => {
            let (signal, path) = (Interrupted(signal), path.to_owned());
            return Err(RestoreError::TarInterrupted { signal, path });
        }
        (written, None) => written?,
    };
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_error("writing", "", e))?;
    tmp.persist_noclobber(path)
        .map_err(|e| io_error("creating", " (it must not exist yet)", e.error))?;
    Ok(outcome)
}

fn append<W: Write>(
    store: &Store,
    tar: &mut Builder<W>,
    item: &Item,
    links: &mut Primaries,
    outcome: &mut TarOutcome,
) -> Result<(), RestoreError> {
    let meta = &item.entry.meta;
    let mut records = Records::of(meta);
    let mut header = header_for(meta, Header::new_gnu());
    match &item.entry.content {
        Content::Dir { .. } => {
            append_records(tar, &records)?;
            header.set_entry_type(EntryType::Directory);
            append_named(tar, &mut header, &item.rel, None, io::empty())
                .map_err(RestoreError::Tar)?;
            outcome.dirs += 1;
        }
        Content::Symlink { target } => {
            append_records(tar, &records)?;
            header.set_entry_type(EntryType::Symlink);
            let target = Some(target.as_path());
            append_named(tar, &mut header, &item.rel, target, io::empty())
                .map_err(RestoreError::Tar)?;
            outcome.symlinks += 1;
        }
        Content::File { .. } => match links.first_of(item) {
            Some(first) => {
                append_records(tar, &records)?;
                header.set_entry_type(EntryType::Link);
                append_named(tar, &mut header, &item.rel, Some(&first), io::empty())
                    .map_err(RestoreError::Tar)?;
                outcome.files += 1;
                outcome.hardlinks += 1;
            }
            None => {
                append_file(store, tar, item, &mut records, header.clone())?;
                outcome.files += 1;
                outcome.bytes += meta.size;
            }
        },
    }
    Ok(())
}

/// A regular file; one with holes in GNU sparse format 1.0 (its data
/// preceded by a map of where it goes, under a stand-in name that the
/// `GNU.sparse.name` record replaces).
fn append_file<W: Write>(
    store: &Store,
    tar: &mut Builder<W>,
    item: &Item,
    records: &mut Records,
    mut header: Header,
) -> Result<(), RestoreError> {
    let (entry, size) = (&item.entry, item.entry.meta.size);
    header.set_entry_type(EntryType::Regular);
    crate::crash::point("tar-file-started");
    let content = ContentReader::new(store, item);
    if entry.holes().is_empty() {
        append_records(tar, records)?;
        header.set_size(size);
        return append_named(tar, &mut header, &item.rel, None, content).map_err(content_error);
    }
    check_holes(&item.source, entry)?;
    let map = sparse_map(&data_regions(entry.holes(), size), size);
    records.sparse(&item.rel, size);
    append_records(tar, records)?;
    // GNU tar reads sparse format 1.0 only in a POSIX (ustar) header.
    let mut header = header_for(&entry.meta, Header::new_ustar());
    header.set_entry_type(EntryType::Regular);
    header.set_size(map.len() as u64 + entry.data_size());
    let stand_in = match item.rel.parent() {
        Some(dir) => dir.join("GNUSparseFile.0"),
        None => "GNUSparseFile.0".into(),
    };
    let stand_in = stand_in.join(item.rel.file_name().unwrap_or_default());
    let content = io::Cursor::new(map).chain(content);
    append_named(tar, &mut header, &stand_in, None, content).map_err(content_error)
}

/// Appends `header` and `data` as the entry `path` (a link to `target`),
/// preceded by GNU long-name entries for a name or target longer than its
/// header field. Written here, not by tar-rs: it puts a UTF-8 cut of a long
/// name in the header, and fails on a name whose first byte is not UTF-8.
/// Readers take the long entry's name; the header keeps the first bytes.
fn append_named<W: Write>(
    tar: &mut Builder<W>,
    header: &mut Header,
    path: &Path,
    target: Option<&Path>,
    data: impl Read,
) -> io::Result<()> {
    put_name(
        tar,
        &mut header.as_old_mut().name,
        path,
        EntryType::GNULongName,
    )?;
    if let Some(target) = target {
        let field = &mut header.as_old_mut().linkname;
        put_name(tar, field, target, EntryType::GNULongLink)?;
    }
    header.set_cksum();
    tar.append(header, data)
}

/// Puts `name` in a header's `field`, as much of it as fits, after a GNU
/// long-name entry of `kind` holding it whole when it does not.
fn put_name<W: Write>(
    tar: &mut Builder<W>,
    field: &mut [u8],
    name: &Path,
    kind: EntryType,
) -> io::Result<()> {
    let bytes = name.as_os_str().as_bytes();
    if bytes.len() > field.len() {
        let mut long = Header::new_gnu();
        long.as_old_mut().name[..LONG_LINK.len()].copy_from_slice(LONG_LINK);
        long.set_mode(0o644);
        long.set_uid(0);
        long.set_gid(0);
        long.set_mtime(0);
        long.set_size(bytes.len() as u64 + 1);
        long.set_entry_type(kind);
        long.set_cksum();
        tar.append(&long, bytes.chain(&[0][..]))?;
    }
    let kept = bytes.len().min(field.len());
    field.fill(0);
    field[..kept].copy_from_slice(&bytes[..kept]);
    Ok(())
}

/// The name GNU tar gives its long-name entries.
const LONG_LINK: &[u8] = b"././@LongLink";

/// `header` (a new GNU or ustar header) with the fields of `meta`.
fn header_for(meta: &Meta, mut header: Header) -> Header {
    header.set_mode(meta.mode);
    header.set_uid(u64::from(meta.uid));
    header.set_gid(u64::from(meta.gid));
    // Names that are not UTF-8 or longer than the header's 32 bytes are
    // left out: the ids remain.
    let text = |name: &Option<crate::rawname::RawName>| {
        name.as_ref()
            .and_then(|n| std::str::from_utf8(n.as_bytes()).ok().map(str::to_owned))
    };
    if let Some(user) = text(&meta.user) {
        let _ = header.set_username(&user);
    }
    if let Some(group) = text(&meta.group) {
        let _ = header.set_groupname(&group);
    }
    header.set_mtime(u64::try_from(meta.mtime.sec).unwrap_or(0));
    header.set_size(0);
    header
}

/// A PAX extended header for the next entry holding `records`.
fn append_records<W: Write>(tar: &mut Builder<W>, records: &Records) -> Result<(), RestoreError> {
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header
        .set_path("PaxHeader")
        .and_then(|()| {
            header.set_mode(0o644);
            header.set_size(records.bytes().len() as u64);
            header.set_cksum();
            tar.append(&header, records.bytes())
        })
        .map_err(RestoreError::Tar)
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
        check_within_size(path, entry, self.read)?;
        Ok(true)
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // Asked to stop (a tar file, under `interrupt::Cleanup`): fail the
        // stream; `write_file` says why.
        crate::interrupt::check().map_err(io::Error::other)?;
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

/// A file's content that could not be read, as the error it was: damage
/// in the store stays damage (exit 4, as `cat` and a restore into a
/// directory say it), and the path it names is not named twice.
fn content_error(e: io::Error) -> RestoreError {
    match e.downcast::<BrowseError>() {
        Ok(browse) => RestoreError::Content(browse),
        Err(e) => RestoreError::Tar(e),
    }
}
