//! What the walk records beyond `stat`: owner names, extended attributes
//! and hard link groups (format version 4; holes are found where files
//! are read, see `consistent`).
//!
//! Hard links: the names of one file (same device and inode) get the same
//! link group, derived from the device and inode so that an unchanged
//! directory encodes to the same tree next time. Its content is read once:
//! a later name of a file already read in this walk, unchanged since,
//! takes that read's chunks. Every name keeps its own chunk list, so each
//! restores alone (a subset, an older reader).

use std::collections::HashMap;
use std::path::Path;

use super::handle::{DirHandle, FileStat};
use super::report::Warning;
use super::walk::Walker;
use crate::owners::Accounts;
use crate::rawname::escaped;
use crate::tree::{Content, Entry, Meta, Timespec, Xattr};
use crate::xattrs::{self, At};

/// The walk's state for metadata beyond `stat`.
#[derive(Default)]
pub struct Attributes {
    /// The capturing host's user and group names.
    accounts: Accounts,
    /// Files with more than one name read in this walk, by device and
    /// inode, with what their read recorded.
    linked: HashMap<(u64, u64), Linked>,
    /// Whether the parent snapshot recorded every file's xattrs and holes
    /// (format 4 on): only then may an unchanged file take them over.
    parent_complete: bool,
}

/// A hard-linked file as it was read, for its other names.
struct Linked {
    size: u64,
    mtime: Timespec,
    ctime: Timespec,
    content: Content,
    xattrs: Vec<Xattr>,
}

impl Attributes {
    /// The state of a walk on this host, with a parent snapshot whose
    /// trees are complete (or not).
    pub fn new(parent_complete: bool) -> Self {
        Self {
            accounts: Accounts::of_host(),
            linked: HashMap::new(),
            parent_complete,
        }
    }

    /// Whether the parent recorded every file's xattrs and holes.
    pub fn parent_complete(&self) -> bool {
        self.parent_complete
    }

    /// Records the names of `meta`'s owner and group.
    pub fn name_owner(&self, meta: &mut Meta) {
        meta.user = self.accounts.user_name(meta.uid).cloned();
        meta.group = self.accounts.group_name(meta.gid).cloned();
    }
}

/// The link group of a file with more than one name: a 64-bit digest of
/// its device and inode, the same every snapshot while they stay the same.
pub fn link_group(stat: &FileStat) -> Option<u64> {
    if stat.nlink < 2 {
        return None;
    }
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&stat.dev.to_le_bytes());
    key[8..].copy_from_slice(&stat.ino.to_le_bytes());
    let digest = blake3::hash(&key);
    let mut group = [0u8; 8];
    group.copy_from_slice(&digest.as_bytes()[..8]);
    Some(u64::from_le_bytes(group))
}

/// `content` with the link group of the file `stat` describes.
pub fn with_link(mut content: Content, stat: &FileStat) -> Content {
    if let Content::File { link, .. } = &mut content {
        *link = link_group(stat);
    }
    content
}

impl Walker<'_, '_> {
    /// The extended attributes at `at` (of `path`, for the warning). One
    /// that cannot be read leaves the entry without its attributes, with
    /// a warning, and counts in the summary (exit 3).
    pub(super) fn xattrs_of(&mut self, path: &Path, at: At<'_>) -> Vec<Xattr> {
        match xattrs::read(at) {
            Ok(xattrs) => xattrs,
            Err(e) => {
                self.summary.xattrs_unread += 1;
                self.reporter.warn(&Warning::Note {
                    message: format!(
                        "{}: extended attributes could not be read ({e}); stored without them",
                        escaped(path)
                    ),
                });
                Vec::new()
            }
        }
    }

    /// Whether an unchanged file may hold what a parent from before format
    /// 4 did not record: xattrs, or holes (fewer blocks than its size
    /// needs). Such a file is read again, once.
    pub(super) fn may_hold_more(
        &self,
        path: &Path,
        name: &std::ffi::OsStr,
        stat: &FileStat,
        dir: Option<&DirHandle>,
    ) -> bool {
        if self.attrs.parent_complete() {
            return false;
        }
        let at = match dir {
            Some(dir) => At::Entry {
                dir: dir.as_fd(),
                name,
            },
            None => At::Path(path),
        };
        stat.blocks.saturating_mul(512) < stat.size
            || !matches!(xattrs::read(at), Ok(x) if x.is_empty())
    }

    /// Another name of a file this walk has read, unchanged since: its
    /// read's content and xattrs, without reading it again.
    pub(super) fn linked_copy(&self, stat: &FileStat) -> Option<(Content, Vec<Xattr>)> {
        let seen = self.attrs.linked.get(&(stat.dev, stat.ino))?;
        let same = seen.size == stat.size && seen.mtime == stat.mtime && seen.ctime == stat.ctime;
        same.then(|| (with_link(seen.content.clone(), stat), seen.xattrs.clone()))
    }

    /// Gives a file just read its link group, and remembers it for its
    /// other names if it has any (and its read can be trusted).
    pub(super) fn remember_link(&mut self, mut entry: Entry, stat: &FileStat) -> Entry {
        entry.content = with_link(entry.content, stat);
        let Content::File { change, .. } = &entry.content else {
            return entry;
        };
        if let (Some(_), Some(ctime)) = (entry.link(), change.ctime) {
            let linked = Linked {
                size: entry.meta.size,
                mtime: entry.meta.mtime,
                ctime,
                content: entry.content.clone(),
                xattrs: entry.meta.xattrs.clone(),
            };
            self.attrs.linked.insert((stat.dev, stat.ino), linked);
        }
        entry
    }
}
