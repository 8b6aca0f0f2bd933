//! The walk: turns the source directories into tree blobs, bottom up.
//!
//! Each directory is listed in name-byte order and compared entry by entry
//! with the same directory in the parent snapshot, so an unchanged file is
//! taken over without being read. Per-item failures (a file that vanished,
//! an unreadable directory) are reported and left out; only store and
//! pipeline failures stop the walk.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::SystemTime;

use super::CaptureError;
use super::change;
use super::excludes::Excludes;
use super::pipeline::BlobSink;
use super::report::{self, Reporter, Warning};
use super::sources::{SourceNode, sort_names};
use crate::chunker::{self, ChunkerParams};
use crate::id::{BlobId, TreeId};
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::rawname::RawName;
use crate::snapshot::{MAX_LISTED_LEFT_OUT, Summary};
use crate::store::Store;
use crate::tree::{Content, Entry, Meta, Tree};

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
    /// Counts for the snapshot record.
    pub summary: Summary,
}

impl Walker<'_, '_> {
    /// Captures the source layout under `/`; returns the root tree.
    pub fn capture_layout(
        &mut self,
        path: &Path,
        node: &SourceNode,
        parent: Option<&Tree>,
    ) -> Result<TreeId, CaptureError> {
        if node.is_source {
            // Only when `/` itself is the source; if it cannot be listed the
            // snapshot holds an empty root.
            return match self.capture_dir(path, parent)? {
                Some(tree) => Ok(tree),
                None => self.put_tree(Vec::new()),
            };
        }
        let mut entries = Vec::with_capacity(node.children.len());
        for (name, child) in &node.children {
            let child_path = path.join(name);
            let before = parent.and_then(|t| t.find(name.as_bytes()));
            // Source paths and the directories above them are followed if
            // they are symlinks: the user named them, so capture what they show.
            let meta = match fs::metadata(&child_path) {
                Ok(meta) => meta,
                Err(e) => {
                    self.left_out(&child_path, e);
                    continue;
                }
            };
            let entry = if child.is_source {
                self.capture_entry(&child_path, name, meta, before)?
            } else {
                let sub = self.parent_subtree(before);
                let tree = self.capture_layout(&child_path, child, sub.as_ref())?;
                self.summary.dirs += 1;
                Some(dir_entry(name, &meta, tree))
            };
            entries.extend(entry);
        }
        self.put_tree(entries)
    }

    /// Captures one directory entry whose metadata is `meta`.
    fn capture_entry(
        &mut self,
        path: &Path,
        name: &OsString,
        meta: Metadata,
        before: Option<&Entry>,
    ) -> Result<Option<Entry>, CaptureError> {
        let kind = meta.file_type();
        if kind.is_dir() {
            if self.excludes.is_store(&meta) {
                self.reporter.warn(&Warning::Note {
                    message: format!("{}: the store itself is not captured", path.display()),
                });
                return Ok(None);
            }
            let sub = self.parent_subtree(before);
            let Some(tree) = self.capture_dir(path, sub.as_ref())? else {
                return Ok(None);
            };
            self.summary.dirs += 1;
            Ok(Some(dir_entry(name, &meta, tree)))
        } else if kind.is_file() {
            self.capture_file(path, name, meta, before)
        } else if kind.is_symlink() {
            Ok(self.capture_symlink(path, name, &meta))
        } else {
            self.summary.skipped += 1;
            self.reporter.warn(&Warning::Skipped {
                path: path.to_owned(),
                kind: special_kind(&meta),
            });
            Ok(None)
        }
    }

    /// Captures a directory's content; `None` if it cannot be listed.
    fn capture_dir(
        &mut self,
        path: &Path,
        parent: Option<&Tree>,
    ) -> Result<Option<TreeId>, CaptureError> {
        let names = match list_sorted(path) {
            Ok(names) => names,
            Err(e) => {
                self.left_out(path, e);
                return Ok(None);
            }
        };
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            if self.excludes.matches(&child, &name) {
                continue;
            }
            let meta = match fs::symlink_metadata(&child) {
                Ok(meta) => meta,
                Err(e) => {
                    self.left_out(&child, e);
                    continue;
                }
            };
            let before = parent.and_then(|t| t.find(name.as_bytes()));
            entries.extend(self.capture_entry(&child, &name, meta, before)?);
        }
        self.put_tree(entries).map(Some)
    }

    /// Captures a regular file: from the parent if unchanged, else by reading it.
    fn capture_file(
        &mut self,
        path: &Path,
        name: &OsString,
        meta: Metadata,
        before: Option<&Entry>,
    ) -> Result<Option<Entry>, CaptureError> {
        Progress::add(&self.progress.files, 1);
        if let Some(prev) = before.filter(|p| change::unchanged(p, &meta))
            && let Content::File { chunks, change } = &prev.content
        {
            self.summary.files_unchanged += 1;
            return Ok(Some(self.count_file(Entry {
                name: RawName::from_os(name),
                meta: entry_meta(&meta, meta.len()),
                content: Content::File {
                    chunks: chunks.clone(),
                    change: change.clone(),
                },
            })));
        }
        let Some(entry) = self.read_file(path, name)? else {
            return Ok(None);
        };
        if before.is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        Ok(Some(self.count_file(entry)))
    }

    /// Reads, chunks and stores a file. The metadata recorded is the one of
    /// the file actually opened, taken before reading.
    fn read_file(&mut self, path: &Path, name: &OsString) -> Result<Option<Entry>, CaptureError> {
        let read_start = SystemTime::now();
        let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m)));
        let (file, before) = match opened {
            Ok(x) => x,
            Err(e) => {
                self.left_out(path, e);
                return Ok(None);
            }
        };
        let mut chunks: Vec<BlobId> = Vec::new();
        let mut size = 0u64;
        let params = self.chunker;
        for chunk in chunker::chunks(&file, before.len(), &params) {
            let data = match chunk {
                Ok(data) => data,
                Err(e) => {
                    self.left_out(path, e);
                    return Ok(None);
                }
            };
            size += data.len() as u64;
            Progress::add(&self.progress.bytes, data.len() as u64);
            chunks.push(self.sink.put(BlobKind::Data, data)?);
        }
        self.summary.bytes_read += size;
        let after = file.metadata().unwrap_or_else(|_| before.clone());
        Ok(Some(Entry {
            name: RawName::from_os(name),
            meta: entry_meta(&before, size),
            content: Content::File {
                chunks,
                change: change::key_after_read(&before, &after, read_start),
            },
        }))
    }

    fn capture_symlink(&mut self, path: &Path, name: &OsString, meta: &Metadata) -> Option<Entry> {
        match fs::read_link(path) {
            Ok(target) => {
                self.summary.symlinks += 1;
                Some(Entry {
                    name: RawName::from_os(name),
                    meta: entry_meta(meta, target.as_os_str().len() as u64),
                    content: Content::Symlink {
                        target: RawName::from_path(&target),
                    },
                })
            }
            Err(e) => {
                self.left_out(path, e);
                None
            }
        }
    }

    fn count_file(&mut self, entry: Entry) -> Entry {
        self.summary.files += 1;
        self.summary.total_bytes += entry.meta.size;
        entry
    }

    fn put_tree(&mut self, entries: Vec<Entry>) -> Result<TreeId, CaptureError> {
        let bytes = Tree::new(entries).encode();
        Ok(self.sink.put(BlobKind::Tree, bytes)?.as_tree())
    }

    /// The parent's listing of a directory, if it had one that still reads.
    /// A damaged parent tree only costs re-reading: it is reported, not fatal.
    fn parent_subtree(&self, before: Option<&Entry>) -> Option<Tree> {
        let id = before?.subtree()?;
        match self.store.load_tree(&id) {
            Ok(tree) => Some(tree),
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

    fn left_out(&mut self, path: &Path, cause: io::Error) {
        self.summary.errors += 1;
        if self.summary.left_out.len() < MAX_LISTED_LEFT_OUT {
            self.summary.left_out.push(RawName::from_path(path));
        }
        self.reporter.warn(&report::left_out(path, cause));
    }
}

fn list_sorted(path: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(path)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    sort_names(&mut names);
    Ok(names)
}

fn entry_meta(meta: &Metadata, size: u64) -> Meta {
    Meta {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size,
        mtime: change::mtime(meta),
    }
}

fn dir_entry(name: &OsString, meta: &Metadata, tree: TreeId) -> Entry {
    Entry {
        name: RawName::from_os(name),
        meta: entry_meta(meta, 0),
        content: Content::Dir { tree },
    }
}

fn special_kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}
