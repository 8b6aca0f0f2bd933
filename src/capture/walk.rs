//! The walk: turns the source directories into tree blobs, bottom up.
//!
//! Each directory is listed in name-byte order and compared entry by entry
//! with the same directory in the parent snapshot, so an unchanged file is
//! taken over without being read (provided the store still holds all of its
//! chunks). Entries are reached through directory handles (see `handle`),
//! so nothing swapped in during the walk is followed. Per-item failures (a
//! file that vanished, an unreadable directory) are reported and left out;
//! only store and pipeline failures stop the walk.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::CaptureError;
use super::attributes::Attributes;
use super::database::SqliteOptions;
use super::excludes::Excludes;
use super::file::Origin;
use super::handle::{self, DirHandle, FileStat, Kind};
use super::listing::{Listed, Listing};
use super::pipeline::BlobSink;
use super::read_ahead::ReadAhead;
use super::report::{self, Reporter, Warning};
use super::sources::SourceNode;
use crate::chunker::ChunkerParams;
use crate::database::SqliteMode;
use crate::id::TreeId;
use crate::pack::BlobKind;
use crate::pack::format::MAX_RAW_LEN;
use crate::progress::Progress;
use crate::rawname::{RawName, escaped};
use crate::snapshot::{MAX_LISTED_LEFT_OUT, Summary};
use crate::store::Store;
use crate::tree::{Content, Entry, Meta, Tree};
use crate::xattrs::At;

/// A directory as the parent snapshot recorded it.
pub struct ParentDir {
    /// Its tree id (known to be in the store: the tree was read from it).
    pub id: TreeId,
    /// Its listing.
    pub tree: Tree,
}

/// State of one walk.
pub struct Walker<'a, 'p> {
    /// The store, for reading parent trees.
    pub store: &'a Store,
    /// Where new blobs go.
    pub sink: &'a mut BlobSink<'p>,
    /// Paths not to capture.
    pub excludes: &'a Excludes,
    /// Where warnings go.
    pub reporter: &'a dyn Reporter,
    /// Live counters.
    pub progress: &'a Progress,
    /// Chunk bounds.
    pub chunker: ChunkerParams,
    /// How databases are treated.
    pub sqlite: SqliteOptions,
    /// Preferred bytes per database chunk (the store's `sqlite.page_run`).
    pub page_run: u32,
    /// Databases met so far (their side files are not stored).
    pub databases_seen: std::collections::HashSet<std::path::PathBuf>,
    /// Counts for the snapshot record.
    pub summary: Summary,
    /// The parent snapshot is intact (catalog::intact): its unchanged
    /// files' chunks need not be looked up one by one.
    pub parent_intact: bool,
    /// Owner names, xattrs and hard links (see `attributes`).
    pub attrs: Attributes,
    /// The parent's trees, read ahead of the walk.
    pub ahead: ReadAhead,
}

pub(super) type Captured = Result<Option<Entry>, CaptureError>;

impl Walker<'_, '_> {
    /// Captures the source layout under `/` (the directories leading to the
    /// sources, then the sources); returns the root tree.
    pub fn capture_layout(
        &mut self,
        path: &Path,
        node: &SourceNode,
        parent: Option<&ParentDir>,
    ) -> Result<TreeId, CaptureError> {
        if node.is_source {
            // Only when `/` itself is the source.
            let root = handle::stat_path(path).and_then(|s| DirHandle::open_path(path, &s));
            let tree = match root {
                Ok(dir) => self.capture_dir(path, &dir, parent)?,
                Err(e) => self.left_out(path, e),
            };
            return match tree {
                Some(tree) => Ok(tree),
                None => self.put_tree(Vec::new()),
            };
        }
        // Children come in name byte order (a BTreeMap of OsStrings).
        let mut listing = Listing::new(parent);
        for (name, child) in &node.children {
            let child_path = path.join(name);
            let before = parent.and_then(|p| p.tree.find(name.as_bytes()));
            // Paths the user named, and the directories above them, are
            // followed if they are symlinks: capture what the user pointed at.
            let stat = match handle::stat_path(&child_path) {
                Ok(stat) => stat,
                Err(e) => {
                    self.left_out::<()>(&child_path, e);
                    continue;
                }
            };
            let entry = if child.is_source {
                self.capture_source(&child_path, name, stat, before)?
            } else {
                let sub = self.parent_subtree(before);
                let tree = self.capture_layout(&child_path, child, sub.as_ref())?;
                self.summary.dirs += 1;
                let mut entry = dir_entry(name, &stat, tree);
                entry.meta.xattrs = self.xattrs_of(&child_path, At::Path(&child_path));
                Some(entry)
            };
            if let Some(entry) = entry {
                listing.push(self.named(entry));
            }
        }
        self.put_listing(listing)
    }

    /// A path the user named, already `stat`ed through any symlink.
    fn capture_source(
        &mut self,
        path: &Path,
        name: &OsStr,
        stat: FileStat,
        before: Option<&Entry>,
    ) -> Captured {
        match stat.kind {
            Kind::Dir => self.capture_subdir(path, name, &stat, before, || {
                DirHandle::open_path(path, &stat)
            }),
            Kind::File => {
                let origin = Origin {
                    dir: None,
                    wal_beside: super::database::wal_key(path).is_some(),
                };
                self.capture_file(path, name, origin, &stat, before, || {
                    handle::open_file_path(path, &stat)
                })
            }
            Kind::Special(kind) => Ok(self.skip(path, kind)),
            Kind::Symlink => Ok(self.left_out(path, io::Error::other("symlink loop"))),
        }
    }

    /// An entry of an open directory.
    fn capture_child(
        &mut self,
        dir: &DirHandle,
        path: &Path,
        name: &OsStr,
        before: Option<&Entry>,
        wal_beside: bool,
    ) -> Captured {
        let stat = match dir.lstat(name) {
            Ok(stat) => stat,
            Err(e) => return Ok(self.left_out(path, e)),
        };
        if self.excludes.is_too_large(&stat) {
            return Ok(None);
        }
        match stat.kind {
            Kind::Dir if self.excludes.is_mount_point(dir, &stat) => {
                self.mount_point((path, dir, name), &stat)
            }
            Kind::Dir => {
                self.capture_subdir(path, name, &stat, before, || dir.open_dir(name, &stat))
            }
            Kind::File => {
                let origin = Origin {
                    dir: Some(dir),
                    wal_beside,
                };
                self.capture_file(path, name, origin, &stat, before, || {
                    dir.open_file(name, &stat)
                })
            }
            Kind::Symlink => Ok(self.capture_symlink(dir, path, name, &stat)),
            Kind::Special(kind) => Ok(self.skip(path, kind)),
        }
    }

    fn capture_subdir(
        &mut self,
        path: &Path,
        name: &OsStr,
        stat: &FileStat,
        before: Option<&Entry>,
        open: impl FnOnce() -> io::Result<DirHandle>,
    ) -> Captured {
        if self.excludes.is_store(stat) {
            self.reporter.warn(&Warning::Note {
                message: format!("{}: the store itself is not captured", escaped(path)),
            });
            return Ok(None);
        }
        // No reader enters a deeper directory (crate::bound), and the walk
        // recurses: a user's deep tree must not end root's snapshot.
        if crate::bound::depth_of(path) > crate::bound::MAX_DEPTH {
            let why = format!(
                "nested deeper than {} directories, which no reader enters",
                crate::bound::MAX_DEPTH
            );
            return Ok(self.left_out(path, io::Error::other(why)));
        }
        let dir = match open() {
            Ok(dir) => dir,
            Err(e) => return Ok(self.left_out(path, e)),
        };
        let sub = self.parent_subtree(before);
        let Some(tree) = self.capture_dir(path, &dir, sub.as_ref())? else {
            return Ok(None);
        };
        self.summary.dirs += 1;
        let mut entry = dir_entry(name, stat, tree);
        entry.meta.xattrs = self.xattrs_of(path, At::Fd(dir.as_fd()));
        Ok(Some(entry))
    }

    /// Captures a directory's content; `None` if it cannot be listed.
    /// Neither its names nor its entries are held beside the tree's bytes
    /// (see `listing`): a directory of 300k files needed 270 MiB.
    fn capture_dir(
        &mut self,
        path: &Path,
        dir: &DirHandle,
        parent: Option<&ParentDir>,
    ) -> Result<Option<TreeId>, CaptureError> {
        let names = match dir.names() {
            Ok(names) => names,
            Err(e) => return Ok(self.left_out(path, e)),
        };
        let names = self.excludes.names_to_take(dir, names);
        let with_wal = self.names_with_wal(&names);
        let mut listing = Listing::new(parent);
        for name in names {
            let child = path.join(&name);
            if self.excludes.matches(&child, &name)
                || self.is_side_file_of_database(dir, &child, &name)
            {
                continue;
            }
            let before = parent.and_then(|p| p.tree.find(name.as_bytes()));
            let wal_beside = with_wal.binary_search(&name).is_ok();
            if let Some(entry) = self.capture_child(dir, &child, &name, before, wal_beside)? {
                listing.push(self.named(entry));
            }
            if listing.encoded_len() > MAX_RAW_LEN as usize {
                return Ok(self.tree_too_large(path, listing.encoded_len()));
            }
        }
        match self.put_listing(listing) {
            Err(CaptureError::TreeTooLarge(len)) => Ok(self.tree_too_large(path, len)),
            other => other.map(Some),
        }
    }

    /// The names that have a `NAME-wal` beside them, sorted (only when
    /// databases are looked for).
    fn names_with_wal(&self, names: &[OsString]) -> Vec<OsString> {
        if self.sqlite.mode != SqliteMode::Auto {
            return Vec::new();
        }
        let mut bases: Vec<OsString> = names
            .iter()
            .filter_map(|n| n.as_bytes().strip_suffix(b"-wal"))
            .map(|base| OsStr::from_bytes(base).to_owned())
            .collect();
        bases.sort();
        bases
    }

    fn tree_too_large<T>(&mut self, path: &Path, len: usize) -> Option<T> {
        let why =
            format!("directory listing of {len} bytes exceeds the {MAX_RAW_LEN}-byte tree limit");
        self.left_out(path, io::Error::other(why))
    }

    fn capture_symlink(
        &mut self,
        dir: &DirHandle,
        path: &Path,
        name: &OsStr,
        stat: &FileStat,
    ) -> Option<Entry> {
        match dir.read_link(name) {
            Ok(target) => {
                self.summary.symlinks += 1;
                let mut meta = entry_meta(stat, target.len() as u64);
                let at = At::Entry {
                    dir: dir.as_fd(),
                    name,
                };
                meta.xattrs = self.xattrs_of(path, at);
                Some(Entry {
                    name: RawName::from_os(name),
                    meta,
                    content: Content::Symlink {
                        target: RawName::from_bytes(target),
                    },
                })
            }
            Err(e) => self.left_out(path, e),
        }
    }

    /// `entry` with the names of its owner and group.
    fn named(&self, mut entry: Entry) -> Entry {
        self.attrs.name_owner(&mut entry.meta);
        entry
    }

    pub(super) fn count_file(&mut self, entry: Entry) -> Entry {
        self.summary.files += 1;
        self.summary.total_bytes += entry.meta.size;
        entry
    }

    pub(super) fn put_tree(&mut self, entries: Vec<Entry>) -> Result<TreeId, CaptureError> {
        self.put_tree_bytes(Tree::new(entries).encode())
    }

    /// Stores a finished listing: the parent's tree when it is the same
    /// (a named database's directory lists every page run of it: encoding
    /// that again only to find the parent's bytes doubled a no-change
    /// snapshot's memory), else its new bytes.
    fn put_listing(&mut self, listing: Listing) -> Result<TreeId, CaptureError> {
        match listing.finish() {
            Listed::AsParent(id) => {
                self.sink.stats.tree_reused += 1;
                Ok(id)
            }
            Listed::Encoded(bytes) => self.put_tree_bytes(bytes),
        }
    }

    fn put_tree_bytes(&mut self, bytes: Vec<u8>) -> Result<TreeId, CaptureError> {
        if bytes.len() > MAX_RAW_LEN as usize {
            return Err(CaptureError::TreeTooLarge(bytes.len()));
        }
        Ok(self.sink.put(BlobKind::Tree, bytes)?.as_tree())
    }

    /// The parent's listing of a directory, if it had one that still reads.
    /// A damaged parent tree only costs re-reading: it is reported, not fatal.
    fn parent_subtree(&mut self, before: Option<&Entry>) -> Option<ParentDir> {
        let id = before?.subtree()?;
        if let Some(tree) = self.ahead.take(&id) {
            return Some(ParentDir { id, tree });
        }
        match self.store.load_tree(&id) {
            Ok(tree) => Some(ParentDir { id, tree }),
            Err(e) => {
                self.reporter.warn(&Warning::Note {
                    message: format!(
                        "parent tree {id} unreadable, files below it are read again: {e}"
                    ),
                });
                None
            }
        }
    }

    fn skip<T>(&mut self, path: &Path, kind: &'static str) -> Option<T> {
        self.summary.skipped += 1;
        self.reporter.warn(&Warning::Skipped {
            path: path.to_owned(),
            kind,
        });
        None
    }

    /// Records that `path` is left out of the snapshot because of `cause`.
    pub(super) fn left_out<T>(&mut self, path: &Path, cause: io::Error) -> Option<T> {
        self.summary.errors += 1;
        if self.summary.left_out.len() < MAX_LISTED_LEFT_OUT {
            self.summary.left_out.push(RawName::from_path(path));
        }
        self.reporter.warn(&report::left_out(path, cause));
        None
    }
}

pub(super) fn entry_meta(stat: &FileStat, size: u64) -> Meta {
    Meta {
        mode: stat.mode,
        uid: stat.uid,
        gid: stat.gid,
        size,
        mtime: stat.mtime,
        user: None,
        group: None,
        xattrs: Vec::new(),
    }
}

pub(super) fn dir_entry(name: &OsStr, stat: &FileStat, tree: TreeId) -> Entry {
    Entry {
        name: RawName::from_os(name),
        meta: entry_meta(stat, 0),
        content: Content::Dir { tree },
    }
}
