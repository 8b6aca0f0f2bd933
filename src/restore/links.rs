//! Hard links: the names of one file in a snapshot (one link group)
//! restore as links to one file.
//!
//! The first name of a group that the walk meets is restored as a file;
//! each later name becomes a hard link to it, made after the files of its
//! batch are written (the first name is then in place, in this batch or an
//! earlier one). So a restore of a subset links within the subset, and a
//! group whose first name lies outside it starts with a file inside it.
//! Each name still records its own chunks: a later name that cannot be
//! linked (the first failed, another file system, too many links) is
//! restored as a file of its own and counted as a missed hard link. A
//! later name whose recorded content is not the first's (the file was
//! rewritten between the reads of its names, or the tree was crafted) is
//! restored as a file of its own too: a link group never makes a name
//! show bytes other than its own.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::path::{Path, PathBuf};

use super::execute::Placed;
use super::plan::Item;
use super::target::{self, DirFd};
use crate::tree::Entry;

/// A later name of a hard-linked file, and where its first name went.
pub(super) struct LinkPlaced {
    /// The name to make.
    pub placed: Placed,
    /// The first name, relative to the target.
    pub primary: PathBuf,
}

/// The first name restored of each link group, relative to the target,
/// with a digest of its content. (Paths, not open directories: the groups
/// of a large tree would otherwise hold a descriptor open each.)
#[derive(Default)]
pub(super) struct Primaries {
    by_group: HashMap<u64, (PathBuf, blake3::Hash)>,
}

impl Primaries {
    /// Where the first name of `item`'s link group went, if one was met
    /// before with the same content; otherwise `item` is restored as a
    /// file (and becomes the first if none was met). A database is never
    /// linked: its restore clears the side files around its own name.
    pub fn first_of(&mut self, item: &Item) -> Option<PathBuf> {
        let entry = &item.entry;
        let group = entry.link().filter(|_| entry.database().is_none())?;
        let digest = content_digest(entry);
        match self.by_group.entry(group) {
            Slot::Occupied(first) => {
                let (path, first_digest) = first.get();
                (*first_digest == digest).then(|| path.clone())
            }
            Slot::Vacant(none) => {
                none.insert((item.rel.clone(), digest));
                None
            }
        }
    }
}

/// A digest of what a file entry restores to: its size, chunks and holes.
fn content_digest(entry: &Entry) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    let chunks = entry.chunks().unwrap_or_default();
    hasher.update(&entry.meta.size.to_le_bytes());
    hasher.update(&(chunks.len() as u64).to_le_bytes());
    for chunk in chunks {
        hasher.update(chunk.as_bytes());
    }
    for hole in entry.holes() {
        hasher.update(&hole.offset.to_le_bytes());
        hasher.update(&hole.len.to_le_bytes());
    }
    hasher.finalize()
}

/// The open directory holding `primary` (`root` being the target), and
/// its name there; reuses `near` (the link's own directory) when it is
/// the same.
pub(super) fn primary_place<'p>(
    root: &DirFd,
    primary: &'p Path,
    near: (&Path, &DirFd),
) -> std::io::Result<(DirFd, &'p std::ffi::OsStr)> {
    let dir = primary.parent().unwrap_or(Path::new(""));
    let name = primary.file_name().unwrap_or_default();
    if dir == near.0 {
        return Ok((DirFd::clone(near.1), name));
    }
    Ok((target::open_below(root, dir)?, name))
}
