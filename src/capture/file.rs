//! A regular file met by the walk: taken over from the parent snapshot
//! when its metadata says it has not changed (and the store still holds
//! every chunk), else read, chunked and stored; a SQLite database through
//! its own capture (see `database`).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::SystemTime;

use super::CaptureError;
use super::attributes::with_link;
use super::change;
use super::database::{DbOutcome, Opened};
use super::handle::{DirHandle, FileStat};
use super::report::FileChange;
use super::walk::{Captured, Walker, entry_meta};
use crate::chunker;
use crate::database::SqliteMode;
use crate::id::BlobId;
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::rawname::RawName;
use crate::tree::{Content, Entry};
use crate::xattrs::At;

/// How the walk reached a file.
#[derive(Clone, Copy)]
pub(super) struct Origin<'d> {
    /// The directory it was found in; `None` if the user named this path
    /// (symlinks in it were followed).
    pub dir: Option<&'d DirHandle>,
    /// A `NAME-wal` file sits beside it.
    pub wal_beside: bool,
}

impl Walker<'_, '_> {
    /// Captures a regular file: from the parent if unchanged, else by reading it.
    pub(super) fn capture_file(
        &mut self,
        path: &Path,
        name: &OsStr,
        origin: Origin<'_>,
        stat: &FileStat,
        before: Option<&Entry>,
        open: impl FnOnce() -> io::Result<(File, FileStat)>,
    ) -> Captured {
        Progress::add(&self.progress.files, 1);
        if let Some(prev) = before
            && let Some(content) = self.reusable(path, name, prev, stat, origin)?
        {
            self.summary.files_unchanged += 1;
            Progress::add(&self.progress.skipped, stat.size);
            self.reporter.file(path, FileChange::Unchanged);
            let mut meta = entry_meta(stat, prev.meta.size);
            meta.xattrs = prev.meta.xattrs.clone();
            let entry = Entry {
                name: RawName::from_os(name),
                meta,
                content: with_link(content, stat),
            };
            self.note_unchanged_database(path, &entry);
            return Ok(Some(self.count_file(entry)));
        }
        self.progress.working_on_path(path);
        let entry = match self.linked_copy(stat) {
            Some((content, xattrs)) => {
                let mut meta = entry_meta(stat, stat.size);
                meta.xattrs = xattrs;
                let name = RawName::from_os(name);
                Entry {
                    name,
                    meta,
                    content,
                }
            }
            None => match self.read_file(path, name, origin.dir, open)? {
                Some(entry) => self.remember_link(entry, stat),
                None => return Ok(None),
            },
        };
        let change = match before {
            None => FileChange::New,
            Some(prev) if prev.chunks() != entry.chunks() => FileChange::Modified,
            Some(_) => FileChange::Reread,
        };
        self.summary.files_new += u64::from(change == FileChange::New);
        self.summary.files_changed += u64::from(change != FileChange::New);
        *self.summary.files_modified.get_or_insert(0) += u64::from(change == FileChange::Modified);
        self.reporter.file(path, change);
        Ok(Some(self.count_file(entry)))
    }

    /// The parent's content of a file that has not changed since, if the
    /// store still holds every chunk of it (a chunk lost to damage must be
    /// read again from the source, not carried into this snapshot).
    fn reusable(
        &self,
        path: &Path,
        name: &OsStr,
        prev: &Entry,
        stat: &FileStat,
        origin: Origin<'_>,
    ) -> Result<Option<Content>, CaptureError> {
        // A file stored as plain bytes (by an older cairn, or with --sqlite
        // raw) that has a -wal beside it may be a WAL database whose
        // commits never touch it: read it again, as a database now.
        let unchanged = match prev.database() {
            Some(_) => self.database_unchanged((path, name, origin.dir), prev, stat),
            None => {
                change::unchanged(prev, stat)
                    && !(origin.wal_beside && self.sqlite.mode == SqliteMode::Auto)
            }
        };
        if !unchanged || self.may_hold_more(path, name, stat, origin.dir) {
            return Ok(None);
        }
        // A chunk the store lost (repair dropped it) must not be referenced
        // again: the file is read anew instead, which heals the store.
        if !self.parent_intact {
            for id in prev.chunks().unwrap_or_default() {
                if !self.sink.contains(id)? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(prev.content.clone()))
    }

    /// Reads, chunks and stores a file (a database through its own
    /// capture; any other file again if it changed while read, see
    /// `consistent`). The metadata recorded is the one of the file actually
    /// opened, taken before the read that was kept.
    fn read_file(
        &mut self,
        path: &Path,
        name: &OsStr,
        dir: Option<&DirHandle>,
        open: impl FnOnce() -> io::Result<(File, FileStat)>,
    ) -> Captured {
        let read_start = SystemTime::now();
        let (file, before) = match open() {
            Ok(opened) => opened,
            Err(e) => return Ok(self.left_out(path, e)),
        };
        let xattrs = self.xattrs_of(path, At::Fd(file.as_fd()));
        if self.is_database(&file) {
            let opened = Opened {
                path,
                name,
                file: &file,
                stat: &before,
                dir,
            };
            match self.capture_database(&opened)? {
                DbOutcome::Captured(mut entry) => {
                    entry.meta.xattrs = xattrs;
                    return Ok(Some(*entry));
                }
                DbOutcome::LeftOut => return Ok(None),
                DbOutcome::NotADatabase => {}
            }
        }
        let read = match self.read_consistently(path, &file, before, read_start)? {
            Ok(read) => read,
            Err(e) => return Ok(self.left_out(path, e)),
        };
        let mut meta = entry_meta(&read.stat, read.size);
        meta.xattrs = xattrs;
        Ok(Some(Entry {
            name: RawName::from_os(name),
            meta,
            content: Content::File {
                chunks: read.chunks,
                change: read.change,
                database: None,
                link: None,
                holes: read.holes,
            },
        }))
    }

    /// Chunks `reader` into the store. The outer error stops the walk (the
    /// store failed); the inner one is the source's read error, which only
    /// leaves this item out.
    pub(super) fn store_content(
        &mut self,
        reader: impl io::Read,
        size_hint: u64,
    ) -> Result<io::Result<(Vec<BlobId>, u64)>, CaptureError> {
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let params = self.chunker;
        for chunk in chunker::chunks(reader, size_hint, &params) {
            let data = match chunk {
                Ok(data) => data,
                Err(e) => return Ok(Err(e)),
            };
            size += data.len() as u64;
            Progress::add(&self.progress.bytes, data.len() as u64);
            chunks.push(self.sink.put(BlobKind::Data, data)?);
            if chunks.len() == 1 {
                crate::crash::point("file-first-chunk");
            }
        }
        self.summary.bytes_read += size;
        Ok(Ok((chunks, size)))
    }
}
