//! Inode numbers and what they stand for.
//!
//! A number is derived from what a node *is*, not from when it was first
//! seen: a namespace directory from its path, a snapshot's root from the
//! directory holding it and the snapshot id, a directory inside a snapshot
//! from the directory holding it and its tree and name, and any other
//! entry from the tree (directory listing) holding it and its name (a file
//! of a hard link group from the group and its content, so its names share
//! one). A directory has one number per path: the kernel keeps one dentry
//! per directory inode and moves it to where it was last looked up, so a
//! directory shared by two snapshots (or a snapshot under `snapshots/` and
//! `hosts/HOST/`) made `..` lead into whichever was browsed last. Trees are
//! content-addressed, so a file that did not change between two snapshots
//! has the same number in both (`diff -r` of two nights then skips it
//! without reading, as it should: same tree and name, same bytes), and
//! numbers are the same after a remount. A listing can give every child
//! its number without remembering it; only what the kernel looked up is
//! kept in the table, until the kernel forgets it, so memory follows what
//! is in use, not the size of the store. Numbers are 63 bits of BLAKE3: a
//! collision among the entries of one mount is as likely as a BLAKE3
//! collision at 63 bits (for a billion entries, about one in twenty
//! million).

use std::collections::HashMap;
use std::path::PathBuf;

use fuser::INodeNo;

use super::names::Dir;
use crate::id::{SnapshotId, TreeId};
use crate::tree::{Entry, Timespec};

/// The kernel's fixed number for the mount point.
pub const ROOT: u64 = 1;

/// A node of the mount. (Entries are the big variant, and the common one:
/// boxing them would only add an allocation per lookup.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Node {
    /// A namespace directory (`snapshots/`, `by-date/2026/`, ...).
    Dir(Dir),
    /// The `latest` link in a namespace directory.
    Latest(Dir),
    /// A snapshot's root directory.
    Snapshot {
        /// The number of the namespace directory holding it.
        within: u64,
        /// The snapshot.
        id: SnapshotId,
        /// Its root tree.
        tree: TreeId,
        /// When it was taken (the directory's times).
        time: Timespec,
    },
    /// An entry inside a snapshot.
    Entry {
        /// The number of the directory holding it.
        within: u64,
        /// The tree that lists it.
        parent: TreeId,
        /// The entry.
        entry: Entry,
    },
}

impl Node {
    /// Its inode number (see the module documentation).
    pub fn ino(&self) -> u64 {
        let mut h = blake3::Hasher::new();
        match self {
            Node::Dir(Dir::Root) => return ROOT,
            Node::Dir(dir) => h.update(b"dir\0").update(dir.path().as_bytes()),
            Node::Latest(dir) => h.update(b"latest\0").update(dir.path().as_bytes()),
            Node::Snapshot { within, id, .. } => h
                .update(b"snapshot\0")
                .update(&within.to_le_bytes())
                .update(id.as_bytes()),
            Node::Entry {
                within,
                parent,
                entry,
            } => return entry_ino(*within, parent, entry),
        };
        number(h)
    }
}

/// The number of `entry` of the directory numbered `within`, listed by
/// `parent` (what [`Node::ino`] gives its `Node::Entry`, without building
/// one). A directory's is made of `within`, so it is one per path. The names
/// of one hard link group share it: it is then made of the group and of
/// everything the kernel is told of the file (its metadata, holes and
/// chunks), since the first node seen under a number answers for all. A
/// group's file in two snapshots, its mode or owner changed in between,
/// showed the first one's in both; with other holes, the first's bytes.
pub fn entry_ino(within: u64, parent: &TreeId, entry: &Entry) -> u64 {
    let mut h = blake3::Hasher::new();
    if let Some(tree) = entry.subtree() {
        h.update(b"dir\0").update(&within.to_le_bytes());
        h.update(tree.as_bytes()).update(entry.name.as_bytes());
        return number(h);
    }
    match (entry.link(), entry.chunks()) {
        (Some(link), Some(chunks)) => {
            h.update(b"link\0").update(&link.to_le_bytes());
            hash_meta(&mut h, &entry.meta);
            h.update(&(entry.holes().len() as u64).to_le_bytes());
            for hole in entry.holes() {
                h.update(&hole.offset.to_le_bytes())
                    .update(&hole.len.to_le_bytes());
            }
            for chunk in chunks {
                h.update(chunk.as_bytes());
            }
        }
        _ => {
            h.update(b"entry\0").update(parent.as_bytes());
            h.update(entry.name.as_bytes());
        }
    }
    number(h)
}

/// Every field of `meta`, variable-length ones with their lengths.
fn hash_meta(h: &mut blake3::Hasher, meta: &crate::tree::Meta) {
    for n in [meta.mode, meta.uid, meta.gid] {
        h.update(&n.to_le_bytes());
    }
    h.update(&meta.size.to_le_bytes());
    h.update(&meta.mtime.sec.to_le_bytes());
    h.update(&meta.mtime.nsec.to_le_bytes());
    h.update(&(meta.xattrs.len() as u64).to_le_bytes());
    let names = [&meta.user, &meta.group].map(|n| n.as_ref().map(|n| n.as_bytes()));
    let xattrs = meta
        .xattrs
        .iter()
        .flat_map(|x| [Some(x.name.as_bytes()), Some(x.value.as_bytes())]);
    for field in names.into_iter().chain(xattrs) {
        match field {
            Some(bytes) => h.update(&(bytes.len() as u64).to_le_bytes()).update(bytes),
            None => h.update(&u64::MAX.to_le_bytes()),
        };
    }
}

/// 63 bits of the hash, clear of 0 and of the root's 1.
fn number(h: blake3::Hasher) -> u64 {
    let bytes: [u8; 8] = h.finalize().as_bytes()[..8]
        .try_into()
        .expect("a BLAKE3 digest has 32 bytes");
    (u64::from_le_bytes(bytes) >> 1).max(ROOT + 1)
}

/// A node the kernel holds, with where it was first found (for messages).
#[derive(Debug)]
pub struct Known {
    /// The node.
    pub node: Node,
    /// Its path below the mount point.
    pub path: PathBuf,
    lookups: u64,
}

/// The nodes the kernel holds references to, by number.
#[derive(Debug)]
pub struct Inodes {
    known: HashMap<u64, Known>,
}

impl Default for Inodes {
    fn default() -> Self {
        let root = Known {
            node: Node::Dir(Dir::Root),
            path: PathBuf::new(),
            lookups: 1,
        };
        Self {
            known: HashMap::from([(ROOT, root)]),
        }
    }
}

impl Inodes {
    /// The node numbered `ino`, if the kernel holds it.
    pub fn get(&self, ino: INodeNo) -> Option<&Known> {
        self.known.get(&ino.0)
    }

    /// Records one more kernel reference to `node` (a lookup answered);
    /// returns its number.
    pub fn remember(&mut self, node: Node, path: PathBuf) -> u64 {
        let ino = node.ino();
        let known = self.known.entry(ino).or_insert(Known {
            node,
            path,
            lookups: 0,
        });
        known.lookups += 1;
        ino
    }

    /// The kernel dropped `count` references to `ino`. The root stays.
    pub fn forget(&mut self, ino: INodeNo, count: u64) {
        if ino.0 == ROOT {
            return;
        }
        if let Some(known) = self.known.get_mut(&ino.0) {
            known.lookups = known.lookups.saturating_sub(count);
            if known.lookups == 0 {
                self.known.remove(&ino.0);
            }
        }
    }

    /// How many nodes are held.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether only the root is held.
    pub fn is_empty(&self) -> bool {
        self.known.len() <= 1
    }
}
