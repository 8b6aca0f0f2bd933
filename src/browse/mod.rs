//! Looking around inside a snapshot: finding a path in its trees, walking a
//! directory, reading a file's content, comparing two snapshots ([`diff`])
//! and searching many ([`find`]).
//!
//! Everything here reads trees one directory at a time and hands entries
//! to a callback as it goes, so a listing of a huge tree is never held in
//! memory. Paths are the absolute paths the snapshot recorded; the root
//! tree stands for `/`.

pub mod diff;
pub mod find;

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::bound::{BoundError, Budget, depth_of};
use crate::id::{BlobId, TreeId};
use crate::pack::PackError;
use crate::rawname::escaped;
use crate::store::{Store, StoreError};
use crate::tree::{Content, Entry, Placement};

/// Why a path of a snapshot cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// Nothing at that path in the snapshot.
    #[error("{} is not in the snapshot", escaped(path))]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// A component of the path is not a directory in the snapshot.
    #[error("{} is not a directory in the snapshot", escaped(path))]
    NotADirectory {
        /// The component that is not a directory.
        path: PathBuf,
    },
    /// The path is not a regular file.
    #[error("{} is not a file in the snapshot (it is a {kind})", escaped(path))]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// `..` in a path: snapshots are browsed by their absolute paths.
    #[error("{}: `..` is not allowed in a snapshot path", escaped(path))]
    DotDot {
        /// The path.
        path: PathBuf,
    },
    /// A blob the snapshot needs is missing from the catalog.
    #[error("{}: blob {id} is missing from the store", escaped(path))]
    Missing {
        /// The file.
        path: PathBuf,
        /// The blob.
        id: crate::id::BlobId,
    },
    /// A blob failed to read or verify.
    #[error("{}: {source}", escaped(path))]
    Pack {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<PackError>,
    },
    /// The chunks do not add up to the recorded size.
    #[error(
        "{}: {got} bytes read where the snapshot recorded {want}",
        escaped(path)
    )]
    Size {
        /// The file.
        path: PathBuf,
        /// Bytes read.
        got: u64,
        /// Bytes recorded.
        want: u64,
    },
    /// A file entry that cannot be restored as recorded (see `Entry::defect`).
    #[error("{}: {defect}", escaped(path))]
    Defect {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        defect: &'static str,
    },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
    /// The store failed (a tree that does not read, the catalog).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshot's trees expand beyond what its record allows.
    #[error(transparent)]
    Bound(#[from] BoundError),
}

impl BrowseError {
    /// Whether the store's data is at fault (a blob gone or damaged, an
    /// entry recorded wrongly), not the request or the output.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Missing { .. } | Self::Size { .. } | Self::Defect { .. } => true,
            Self::Pack { source, .. } => source.is_damage(),
            Self::Store(e) => e.is_damage(),
            _ => false,
        }
    }
}

/// What a path of a snapshot names.
// An entry with its owner names and xattrs outweighs a tree id; a lookup
// returns one node, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Node {
    /// The root directory `/`, which has no entry of its own.
    Root(TreeId),
    /// Any other path.
    Entry(Entry),
}

impl Node {
    /// The directory's tree, if this is a directory.
    pub fn tree(&self) -> Option<TreeId> {
        match self {
            Node::Root(id) => Some(*id),
            Node::Entry(e) => e.subtree(),
        }
    }
}

/// What a walk does after visiting an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go into it, if it is a directory.
    Descend,
    /// Do not go into it.
    Skip,
}

/// The kind of an entry, as listings name it.
pub fn kind_name(entry: &Entry) -> &'static str {
    match entry.content {
        Content::File { .. } => "file",
        Content::Dir { .. } => "dir",
        Content::Symlink { .. } => "symlink",
    }
}

/// The canonical absolute form of a snapshot path: `/` joined with its
/// normal components (`.` and repeated slashes dropped, `..` refused).
pub fn snapshot_path(path: &Path) -> Result<PathBuf, BrowseError> {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(BrowseError::DotDot {
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(out)
}

/// Finds `path` (absolute, as in [`snapshot_path`]) in the tree `root`.
pub fn lookup(store: &Store, root: &TreeId, path: &Path) -> Result<Node, BrowseError> {
    let path = snapshot_path(path)?;
    let mut node = Node::Root(*root);
    let mut at = PathBuf::from("/");
    for name in path.components().skip(1) {
        let Some(tree) = node.tree() else {
            return Err(BrowseError::NotADirectory { path: at });
        };
        at.push(name);
        let listing = store.load_tree(&tree)?;
        let entry = listing
            .find(name.as_os_str().as_encoded_bytes())
            .ok_or_else(|| BrowseError::NotFound { path: at.clone() })?;
        node = Node::Entry(entry.clone());
    }
    Ok(node)
}

/// Visits every entry below the directory `tree` (whose path is `base`),
/// depth first in name order, parents before their contents. Entries are
/// counted against `budget` as listings are read, and no directory deeper
/// than [`MAX_DEPTH`](crate::bound::MAX_DEPTH) is entered. Only the
/// listings on the way down to the current entry are held, on a stack of
/// our own (no recursion, however deep the tree).
pub fn walk(
    store: &Store,
    tree: &TreeId,
    base: &Path,
    budget: &mut Budget,
    visit: &mut dyn FnMut(&Path, &Entry) -> Result<Flow, BrowseError>,
) -> Result<(), BrowseError> {
    let base_depth = depth_of(base);
    let mut stack = vec![(base.to_path_buf(), listing(store, tree, budget)?)];
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let path = dir.join(entry.name.as_path());
        let flow = visit(&path, &entry)?;
        if flow == Flow::Descend
            && let Some(sub) = entry.subtree()
        {
            budget.enter(base_depth + stack.len() as u64)?;
            let entries = listing(store, &sub, budget)?;
            stack.push((path, entries));
        }
    }
    Ok(())
}

/// The entries of tree `id`, counted against `budget`.
pub fn listing(
    store: &Store,
    id: &TreeId,
    budget: &mut Budget,
) -> Result<std::vec::IntoIter<Entry>, BrowseError> {
    let entries = store.load_tree(id)?.entries;
    budget.spend(entries.len())?;
    Ok(entries.into_iter())
}

/// Writes the content of the file `entry` (at `path`) to `out`, chunk by
/// chunk, each checked against its hash; fails if the total differs from
/// the recorded size.
pub fn write_content(
    store: &Store,
    path: &Path,
    entry: &Entry,
    out: &mut dyn Write,
) -> Result<u64, BrowseError> {
    let chunks = file_chunks(path, entry)?;
    check_holes(path, entry)?;
    let mut place = Placement::new(entry.holes());
    let mut written = 0u64;
    let mut data_read = 0u64;
    for id in chunks {
        let data = read_chunk(store, path, id)?;
        data_read += data.len() as u64;
        check_within_size(path, entry, data_read)?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (at, len) = place.next_run(rest.len() as u64);
            write_zeros(out, at.saturating_sub(written))?;
            let (run, more) = rest.split_at(len as usize);
            out.write_all(run).map_err(BrowseError::Output)?;
            written = at + len;
            rest = more;
        }
    }
    check_data_size(path, entry, data_read)?;
    write_zeros(out, entry.meta.size.saturating_sub(written))?;
    Ok(entry.meta.size)
}

/// Writes `n` zero bytes: a hole of a sparse file, as a reader sees it.
fn write_zeros(out: &mut dyn Write, mut n: u64) -> Result<(), BrowseError> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    while n > 0 {
        let len = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..len]).map_err(BrowseError::Output)?;
        n -= len as u64;
    }
    Ok(())
}

/// Fails if the holes of file `entry` (at `path`) are not what its size
/// allows (see [`Entry::defect`]).
pub fn check_holes(path: &Path, entry: &Entry) -> Result<(), BrowseError> {
    match entry.defect() {
        Some(defect) => Err(BrowseError::Defect {
            path: path.to_owned(),
            defect,
        }),
        None => Ok(()),
    }
}

/// The chunks of a file entry; an error naming `path` for anything else.
pub fn file_chunks<'e>(path: &Path, entry: &'e Entry) -> Result<&'e [BlobId], BrowseError> {
    match &entry.content {
        Content::File { chunks, .. } => Ok(chunks),
        _ => Err(BrowseError::NotAFile {
            path: path.to_owned(),
            kind: kind_name(entry),
        }),
    }
}

/// One chunk of the file at `path`, read and checked against its id.
pub fn read_chunk(store: &Store, path: &Path, id: &BlobId) -> Result<Vec<u8>, BrowseError> {
    let at = store
        .catalog()
        .locate(id)
        .map_err(StoreError::from)?
        .ok_or_else(|| BrowseError::Missing {
            path: path.to_owned(),
            id: *id,
        })?;
    crate::pack::reader::read_blob(store.backend(), id, &at).map_err(|source| BrowseError::Pack {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Fails unless `read` bytes of chunks is what the snapshot recorded:
/// the file's size less its holes.
pub fn check_data_size(path: &Path, entry: &Entry, read: u64) -> Result<(), BrowseError> {
    size_check(path, entry, read, read == entry.data_size())
}

/// Fails if `read` bytes of chunks are already more than the snapshot
/// recorded: checked before a chunk is passed on, so that no byte beyond
/// the recorded size reaches the reader of a damaged file.
pub fn check_within_size(path: &Path, entry: &Entry, read: u64) -> Result<(), BrowseError> {
    size_check(path, entry, read, read <= entry.data_size())
}

fn size_check(path: &Path, entry: &Entry, read: u64, ok: bool) -> Result<(), BrowseError> {
    if ok {
        return Ok(());
    }
    Err(BrowseError::Size {
        path: path.to_owned(),
        got: read,
        want: entry.data_size(),
    })
}

/// `dir/below`, or `dir` itself when `below` is empty (the whole directory
/// `dir`): joining an empty path would add a trailing slash.
pub fn join_below(dir: &Path, below: &Path) -> PathBuf {
    if below.as_os_str().is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_paths_are_absolute_and_normal() {
        assert_eq!(
            snapshot_path(Path::new("var//lib/./app")).unwrap(),
            Path::new("/var/lib/app")
        );
        assert_eq!(snapshot_path(Path::new("/")).unwrap(), Path::new("/"));
        assert!(matches!(
            snapshot_path(Path::new("/var/../etc")),
            Err(BrowseError::DotDot { .. })
        ));
    }
}
