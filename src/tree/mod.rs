//! Tree objects: one per directory, encoded as deterministic bytes.
//!
//! A tree lists a directory's entries sorted by name bytes, each with its
//! metadata and content reference (chunk ids for a file, a subtree id for a
//! directory, the target for a symlink). The same listing always encodes to
//! the same bytes, so an unchanged directory has the same tree id in the next
//! snapshot and costs nothing. Decoding checks what restore relies on: names
//! are single path components, unique and sorted.
//!
//! Since format version 4 an entry also carries what `stat` does not
//! give: the owner's and group's names, extended attributes (ACLs and
//! file capabilities among them), the holes of a sparse file, and a link
//! group tying together the names of one hard-linked file (see `attrs`).
//!
//! Trees are written in a binary form since format version 8 (`binary`);
//! the JSON of versions 1 to 7 (`repr`, `refs`) is still read, told apart
//! by its first byte, so an upgraded store reads its old snapshots.

mod attrs;
mod binary;
mod refs;
mod repr;

use std::cmp::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, TreeId};
use crate::rawname::RawName;

pub use attrs::{Hole, MAX_HOLES, MAX_XATTR_VALUE, Placement, Xattr, data_len, data_regions};
pub use refs::TreeRefs;

/// A point in time with nanoseconds, as the file system reports it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timespec {
    /// Seconds since the Unix epoch (negative before 1970).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

impl Timespec {
    /// A system time as a `Timespec` (the epoch for times before it).
    pub fn of(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsec: d.subsec_nanos(),
            },
            Err(_) => Self { sec: 0, nsec: 0 },
        }
    }

    /// Whether a file last changed at `self` changed long enough before
    /// `read_start` that a later change cannot carry the same timestamps
    /// (the racy timestamp problem, as in git's index). The window covers
    /// coarse kernel clocks and, for file systems with whole-second
    /// timestamps, a second more.
    pub fn settled_before(self, read_start: SystemTime) -> bool {
        let window = if self.nsec == 0 {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        };
        read_start
            .checked_sub(window)
            .is_some_and(|limit| self < Self::of(limit))
    }
}

/// Metadata recorded for every entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (file content; link target length for a symlink; 0 for a directory).
    pub size: u64,
    /// Modification time.
    pub mtime: Timespec,
    /// The owner's user name on the capturing host, if it had one: a
    /// restore on another host gives the file that user's id there.
    pub user: Option<RawName>,
    /// The group's name on the capturing host, likewise.
    pub group: Option<RawName>,
    /// Extended attributes (POSIX ACLs, file capabilities and SELinux
    /// labels among them), sorted by name.
    pub xattrs: Vec<Xattr>,
}

/// What an entry is, with its content reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file.
    File {
        /// Its content, in order.
        chunks: Vec<BlobId>,
        /// What the next snapshot compares to decide whether to read it again.
        change: ChangeKey,
        /// Set when the file was captured as a SQLite database (a consistent
        /// image read in one read transaction, cut into page runs).
        database: Option<DatabaseInfo>,
        /// The file's hard link group: the names in one snapshot that carry
        /// the same group are one file, restored as hard links to it. Each
        /// still lists its own chunks, so any one of them restores alone.
        link: Option<u64>,
        /// Ranges that read as zeros and were never stored (the holes of a
        /// sparse file), sorted; the chunks hold the rest of the file.
        holes: Vec<Hole>,
    },
    /// A directory.
    Dir {
        /// Its listing.
        tree: TreeId,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points, byte for byte.
        target: RawName,
    },
}

/// The inode and ctime of a file when it was captured. With size and mtime
/// they decide whether the next snapshot may reuse the chunk list without
/// reading the file. `ctime` is absent when the file was modified so close
/// to its capture that a later change could go unseen (the racy-timestamp
/// case); such a file is always read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeKey {
    /// Inode number.
    pub inode: u64,
    /// Status change time, if it can be trusted.
    pub ctime: Option<Timespec>,
}

/// How a file was captured as a SQLite database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseInfo {
    /// The database's page size; its chunks are runs of whole pages.
    pub page_size: u32,
    /// When the image was taken (the read transaction it shows).
    pub captured: Timespec,
    /// Size of the database file itself at capture. The image (the entry's
    /// size) can differ: it includes commits still in the `-wal`.
    pub file_size: u64,
    /// The `-wal` file as it was just before the capture, if there was one:
    /// in WAL mode commits change only it, so the next snapshot must see it
    /// unchanged too before it may reuse this image without capturing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<SideFileKey>,
}

/// Identity of a database's `-wal` file at capture time. An empty `-wal`
/// holds no commits and is recorded as none: SQLite itself creates one when
/// it opens a WAL database, even read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideFileKey {
    /// Inode number.
    pub inode: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time. (Not the ctime: SQLite, running as root, chowns
    /// the `-wal` on every open, which changes its ctime but not its content.)
    pub mtime: Timespec,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "repr::EntryRepr", into = "repr::EntryRepr")]
pub struct Entry {
    /// The name, a single path component.
    pub name: RawName,
    /// Metadata.
    pub meta: Meta,
    /// Kind and content.
    pub content: Content,
}

impl Entry {
    /// The file's chunks, if it is a file.
    pub fn chunks(&self) -> Option<&[BlobId]> {
        match &self.content {
            Content::File { chunks, .. } => Some(chunks),
            _ => None,
        }
    }

    /// The file's hard link group, if it has one.
    pub fn link(&self) -> Option<u64> {
        match &self.content {
            Content::File { link, .. } => *link,
            _ => None,
        }
    }

    /// The holes of the file (none for anything else).
    pub fn holes(&self) -> &[Hole] {
        match &self.content {
            Content::File { holes, .. } => holes,
            _ => &[],
        }
    }

    /// How many bytes of the file its chunks hold: its size less its holes.
    pub fn data_size(&self) -> u64 {
        data_len(self.meta.size, self.holes())
    }

    /// How the file was captured as a database, if it was.
    pub fn database(&self) -> Option<&DatabaseInfo> {
        match &self.content {
            Content::File { database, .. } => database.as_ref(),
            _ => None,
        }
    }

    /// The subtree, if it is a directory.
    pub fn subtree(&self) -> Option<TreeId> {
        match &self.content {
            Content::Dir { tree } => Some(*tree),
            _ => None,
        }
    }

    /// Why this entry cannot be restored, if it decodes but is not what a
    /// restore can make: a symlink that `symlink(2)` refuses (an empty
    /// target, or one holding a NUL byte), or a file whose holes are out of
    /// order, overlap or lie beyond its size. (Not refused by
    /// [`Tree::decode`]: one bad entry must not make its whole directory
    /// unreadable; verify reports it.)
    pub fn defect(&self) -> Option<&'static str> {
        match &self.content {
            Content::Symlink { target } if target.as_bytes().is_empty() => {
                Some("symlink target is empty")
            }
            Content::Symlink { target } if target.as_bytes().contains(&0) => {
                Some("symlink target holds a NUL byte")
            }
            _ => attrs::holes_defect(self.holes(), self.meta.size),
        }
    }
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by name bytes.
    pub entries: Vec<Entry>,
}

/// Why bytes are not a valid tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Not the JSON of a tree.
    #[error("tree does not decode: {0}")]
    Json(#[from] serde_json::Error),
    /// Not the binary form of a tree.
    #[error("tree does not decode: {0}")]
    Binary(String),
    /// A name that is not one path component.
    #[error("tree entry name {0:?} is not a valid file name")]
    BadName(RawName),
    /// Names out of order or repeated.
    #[error("tree entries are not sorted and unique at {0:?}")]
    Unsorted(RawName),
}

impl Tree {
    /// A tree of `entries` in canonical (name byte) order.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Self { entries }
    }

    /// The canonical bytes of this tree (the binary form). Entries must
    /// be sorted (as [`Tree::new`] makes them); the id of a tree is the
    /// BLAKE3 of these bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = TreeEncoder::new();
        for entry in &self.entries {
            encoder.push(entry);
        }
        encoder.finish()
    }

    /// The JSON form that format versions 1 to 7 wrote, which cairn still
    /// reads and no longer writes: for tests of that reading.
    pub fn encode_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates tree bytes read from the store, in either form.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let mut rest = bytes;
        match is_binary(&mut rest)? {
            true => Self::from_binary(rest, rest.len()),
            false => serde_json::from_slice::<Tree>(bytes)?.validated(),
        }
    }

    /// [`Tree::decode`] from a stream of `len` bytes: a large tree is never
    /// held as bytes beside its entries.
    pub fn decode_from(reader: impl std::io::Read, len: usize) -> Result<Self, TreeError> {
        let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
        match is_binary(&mut reader)? {
            true => Self::from_binary(reader, len),
            false => serde_json::from_reader::<_, Tree>(reader)?.validated(),
        }
    }

    fn from_binary(input: impl std::io::BufRead, len: usize) -> Result<Self, TreeError> {
        let entries = binary::decode_entries(input, len).map_err(TreeError::Binary)?;
        Self { entries }.validated()
    }

    /// The tree if its entries are what restore relies on.
    fn validated(self) -> Result<Self, TreeError> {
        let tree = self;
        for pair in tree.entries.windows(2) {
            if pair[0].name.as_bytes().cmp(pair[1].name.as_bytes()) != Ordering::Less {
                return Err(TreeError::Unsorted(pair[1].name.clone()));
            }
        }
        if let Some(bad) = tree.entries.iter().find(|e| !e.name.is_valid_entry_name()) {
            return Err(TreeError::BadName(bad.name.clone()));
        }
        Ok(tree)
    }

    /// The entry called `name`, if any (binary search: entries are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// A form a tree is read in from the store: whole ([`Tree`]), or only
/// what it references ([`TreeRefs`]) for a walk that needs no more.
pub trait TreeForm: Sized {
    /// From the tree's bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, TreeError>;
    /// From a stream of the tree's `len` bytes (a large tree).
    fn from_reader(reader: impl std::io::Read, len: usize) -> Result<Self, TreeError>;
}

impl TreeForm for Tree {
    fn from_bytes(bytes: &[u8]) -> Result<Self, TreeError> {
        Tree::decode(bytes)
    }
    fn from_reader(reader: impl std::io::Read, len: usize) -> Result<Self, TreeError> {
        Tree::decode_from(reader, len)
    }
}

impl TreeForm for TreeRefs {
    fn from_bytes(bytes: &[u8]) -> Result<Self, TreeError> {
        TreeRefs::decode(bytes)
    }
    fn from_reader(reader: impl std::io::Read, len: usize) -> Result<Self, TreeError> {
        TreeRefs::decode_from(reader, len)
    }
}

/// Whether tree bytes (whole, or a stream) are in the binary form: if they
/// start with its magic, which is then consumed; otherwise (JSON, which
/// never starts with 0xFF) nothing is. A binary form this code does not
/// know is an error.
fn is_binary(reader: &mut impl std::io::BufRead) -> Result<bool, TreeError> {
    let io = |e: std::io::Error| TreeError::Binary(e.to_string());
    if reader.fill_buf().map_err(io)?.first() != binary::MAGIC.first() {
        return Ok(false);
    }
    let mut got = Vec::with_capacity(binary::MAGIC.len());
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut *reader, 4), &mut got).map_err(io)?;
    match got == binary::MAGIC {
        true => Ok(true),
        false => Err(TreeError::Binary(format!("unknown tree form {got:02x?}"))),
    }
}

/// The canonical bytes of a tree, encoded an entry at a time, so that a
/// directory of many files is never held as entries and as bytes at once.
/// The bytes are [`Tree::encode`]'s: the magic, then each entry.
pub struct TreeEncoder {
    bytes: Vec<u8>,
}

impl Default for TreeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeEncoder {
    /// An encoder of a tree with no entries yet.
    pub fn new() -> Self {
        Self {
            bytes: binary::MAGIC.to_vec(),
        }
    }

    /// Appends `entry`, which must sort after the entries before it.
    pub fn push(&mut self, entry: &Entry) {
        binary::push_entry(&mut self.bytes, entry);
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no entry was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == binary::MAGIC.len()
    }

    /// The tree's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod binary_tests;
