//! Tree objects: one per directory, encoded as deterministic JSON.
//!
//! A tree lists a directory's entries sorted by name bytes, each with its
//! metadata and content reference (chunk ids for a file, a subtree id for a
//! directory, the target for a symlink). The same listing always encodes to
//! the same bytes, so an unchanged directory has the same tree id in the next
//! snapshot and costs nothing. Decoding checks what restore relies on: names
//! are single path components, unique and sorted.

use std::cmp::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, TreeId};
use crate::rawname::RawName;

/// A point in time with nanoseconds, as the file system reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[serde(try_from = "EntryRepr", into = "EntryRepr")]
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

    /// Why no symlink can be made of this entry, if it is a symlink that
    /// decodes but that `symlink(2)` refuses: an empty target, or one
    /// holding a NUL byte. (Not refused by [`Tree::decode`]: one bad link
    /// must not make its whole directory unreadable; verify reports it.)
    pub fn link_defect(&self) -> Option<&'static str> {
        match &self.content {
            Content::Symlink { target } if target.as_bytes().is_empty() => {
                Some("symlink target is empty")
            }
            Content::Symlink { target } if target.as_bytes().contains(&0) => {
                Some("symlink target holds a NUL byte")
            }
            _ => None,
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

    /// The canonical bytes of this tree. Entries must be sorted (as
    /// [`Tree::new`] makes them); the id of a tree is the BLAKE3 of these bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = TreeEncoder::new();
        for entry in &self.entries {
            encoder.push(entry);
        }
        encoder.finish()
    }

    /// Decodes and validates tree bytes read from the store.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        serde_json::from_slice::<Tree>(bytes)?.validated()
    }

    /// [`Tree::decode`] from a stream: a large tree is never held as bytes
    /// beside its entries.
    pub fn decode_from(reader: impl std::io::Read) -> Result<Self, TreeError> {
        let reader = std::io::BufReader::with_capacity(1 << 16, reader);
        serde_json::from_reader::<_, Tree>(reader)?.validated()
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

/// The canonical bytes of a tree, encoded an entry at a time, so that a
/// directory of many files is never held as entries and as bytes at once.
/// The bytes are those serde gives for [`Tree`]: `{"entries":[` the entries
/// joined by `,` then `]}`.
pub struct TreeEncoder {
    bytes: Vec<u8>,
    empty: bool,
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
            bytes: br#"{"entries":["#.to_vec(),
            empty: true,
        }
    }

    /// Appends `entry`, which must sort after the entries before it.
    pub fn push(&mut self, entry: &Entry) {
        if !self.empty {
            self.bytes.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut self.bytes, entry)
            .expect("an entry is plain structs with string keys: encoding cannot fail");
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no entry was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The tree's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(b"]}");
        self.bytes
    }
}

/// The JSON shape of an entry: flat, with only the fields its type uses.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    name: RawName,
    #[serde(rename = "type")]
    kind: KindRepr,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: Timespec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inode: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctime: Option<Timespec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<BlobId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sqlite: Option<DatabaseInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<TreeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<RawName>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum KindRepr {
    File,
    Dir,
    Symlink,
}

impl From<Entry> for EntryRepr {
    fn from(e: Entry) -> Self {
        let mut repr = EntryRepr {
            name: e.name,
            kind: KindRepr::File,
            mode: e.meta.mode,
            uid: e.meta.uid,
            gid: e.meta.gid,
            size: e.meta.size,
            mtime: e.meta.mtime,
            inode: None,
            ctime: None,
            chunks: None,
            sqlite: None,
            tree: None,
            target: None,
        };
        match e.content {
            Content::File {
                chunks,
                change,
                database,
            } => {
                repr.chunks = Some(chunks);
                repr.sqlite = database;
                repr.inode = Some(change.inode);
                repr.ctime = change.ctime;
            }
            Content::Dir { tree } => {
                repr.kind = KindRepr::Dir;
                repr.tree = Some(tree);
            }
            Content::Symlink { target } => {
                repr.kind = KindRepr::Symlink;
                repr.target = Some(target);
            }
        }
        repr
    }
}

impl TryFrom<EntryRepr> for Entry {
    type Error = String;

    fn try_from(r: EntryRepr) -> Result<Self, String> {
        for t in [Some(r.mtime), r.ctime].into_iter().flatten() {
            if t.nsec >= 1_000_000_000 {
                return Err(format!(
                    "entry {:?}: nanoseconds {} out of range",
                    r.name, t.nsec
                ));
            }
        }
        let missing = |field: &str| format!("entry {:?}: missing {field}", r.name);
        if let Some(db) = &r.sqlite {
            if !matches!(r.kind, KindRepr::File) {
                return Err(format!("entry {:?}: sqlite info on a non-file", r.name));
            }
            if !crate::database::is_valid_page_size(db.page_size) {
                return Err(format!(
                    "entry {:?}: sqlite page size {} is not a power of two in 512..=65536",
                    r.name, db.page_size
                ));
            }
        }
        let content = match r.kind {
            KindRepr::File => Content::File {
                chunks: r.chunks.ok_or_else(|| missing("chunks"))?,
                change: ChangeKey {
                    inode: r.inode.ok_or_else(|| missing("inode"))?,
                    ctime: r.ctime,
                },
                database: r.sqlite,
            },
            KindRepr::Dir => Content::Dir {
                tree: r.tree.ok_or_else(|| missing("tree"))?,
            },
            KindRepr::Symlink => Content::Symlink {
                target: r.target.ok_or_else(|| missing("target"))?,
            },
        };
        Ok(Entry {
            name: r.name,
            meta: Meta {
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                size: r.size,
                mtime: r.mtime,
            },
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            mode: 0o644,
            uid: 1000,
            gid: 100,
            size: 3,
            mtime: Timespec {
                sec: 1_700_000_000,
                nsec: 5,
            },
        }
    }

    fn file(name: &[u8]) -> Entry {
        Entry {
            name: RawName::from_bytes(name.to_vec()),
            meta: meta(),
            content: Content::File {
                chunks: vec![BlobId::of(b"abc")],
                change: ChangeKey {
                    inode: 7,
                    ctime: Some(Timespec { sec: 1, nsec: 2 }),
                },
                database: None,
            },
        }
    }

    #[test]
    fn the_same_entries_in_any_order_encode_to_the_same_bytes() {
        let a = Tree::new(vec![file(b"b"), file(b"a"), file(b"\xff")]);
        let b = Tree::new(vec![file(b"\xff"), file(b"a"), file(b"b")]);
        assert_eq!(a.encode(), b.encode());
        assert_eq!(Tree::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn golden_file_entry_encoding() {
        let tree = Tree::new(vec![file(b"a")]);
        let want = concat!(
            r#"{"entries":[{"name":"a","type":"file","mode":420,"uid":1000,"gid":100,"size":3,"#,
            r#""mtime":{"sec":1700000000,"nsec":5},"inode":7,"ctime":{"sec":1,"nsec":2},"#,
            r#""chunks":["6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"]}]}"#
        );
        assert_eq!(String::from_utf8(tree.encode()).unwrap(), want);
    }

    #[test]
    fn golden_database_entry_encoding() {
        let mut entry = file(b"app.db");
        if let Content::File { database, .. } = &mut entry.content {
            *database = Some(DatabaseInfo {
                page_size: 4096,
                captured: Timespec { sec: 9, nsec: 1 },
                file_size: 2,
                wal: Some(SideFileKey {
                    inode: 8,
                    size: 32,
                    mtime: Timespec { sec: 3, nsec: 4 },
                }),
            });
        }
        let tree = Tree::new(vec![entry]);
        let want = concat!(
            r#"{"entries":[{"name":"app.db","type":"file","mode":420,"uid":1000,"gid":100,"size":3,"#,
            r#""mtime":{"sec":1700000000,"nsec":5},"inode":7,"ctime":{"sec":1,"nsec":2},"#,
            r#""chunks":["6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"],"#,
            r#""sqlite":{"page_size":4096,"captured":{"sec":9,"nsec":1},"file_size":2,"#,
            r#""wal":{"inode":8,"size":32,"mtime":{"sec":3,"nsec":4}}}}]}"#
        );
        assert_eq!(String::from_utf8(tree.encode()).unwrap(), want);
        assert_eq!(Tree::decode(want.as_bytes()).unwrap(), tree);
        let bad = want.replace("4096", "4000");
        assert!(Tree::decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn the_entry_by_entry_encoding_is_serdes_encoding_of_the_tree() {
        let link = Entry {
            name: RawName::from_bytes(b"l\n\xfe".to_vec()),
            meta: meta(),
            content: Content::Symlink {
                target: RawName::from_bytes(b"../x".to_vec()),
            },
        };
        for entries in [vec![], vec![file(b"a")], vec![file(b"a"), link, file(b"z")]] {
            let tree = Tree::new(entries);
            assert_eq!(tree.encode(), serde_json::to_vec(&tree).unwrap());
        }
    }

    #[test]
    fn a_streamed_tree_decodes_and_is_checked_as_one_in_memory() {
        let tree = Tree::new(vec![file(b"b"), file(b"a")]);
        let bytes = tree.encode();
        assert_eq!(Tree::decode_from(&bytes[..]).unwrap(), tree);
        let unsorted = Tree {
            entries: vec![file(b"b"), file(b"a")],
        };
        assert!(Tree::decode_from(&unsorted.encode()[..]).is_err());
        assert!(Tree::decode_from(&bytes[..bytes.len() - 1]).is_err());
        assert!(Tree::decode_from(&[&bytes[..], b"x"].concat()[..]).is_err());
    }

    #[test]
    fn all_kinds_round_trip() {
        let dir = Entry {
            name: RawName::from_bytes(b"d".to_vec()),
            meta: meta(),
            content: Content::Dir {
                tree: TreeId::of(b"t"),
            },
        };
        let link = Entry {
            name: RawName::from_bytes(b"l".to_vec()),
            meta: meta(),
            content: Content::Symlink {
                target: RawName::from_bytes(b"../\xfe".to_vec()),
            },
        };
        let tree = Tree::new(vec![link, dir, file(b"f")]);
        assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
        assert!(tree.find(b"f").unwrap().chunks().is_some());
        assert!(tree.find(b"x").is_none());
    }

    #[test]
    fn unsorted_duplicate_and_path_like_names_are_refused() {
        let dup = Tree {
            entries: vec![file(b"a"), file(b"a")],
        };
        assert!(matches!(
            Tree::decode(&dup.encode()),
            Err(TreeError::Unsorted(_))
        ));
        let unsorted = Tree {
            entries: vec![file(b"b"), file(b"a")],
        };
        assert!(Tree::decode(&unsorted.encode()).is_err());
        for bad in [&b".."[..], b"a/b", b""] {
            let t = Tree {
                entries: vec![file(bad)],
            };
            assert!(matches!(
                Tree::decode(&t.encode()),
                Err(TreeError::BadName(_))
            ));
        }
    }

    #[test]
    fn a_file_without_chunks_or_a_dir_without_tree_is_refused() {
        let json = br#"{"entries":[{"name":"a","type":"dir","mode":0,"uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0}}]}"#;
        assert!(Tree::decode(json).is_err());
        let json = br#"{"entries":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0},"inode":1}]}"#;
        assert!(Tree::decode(json).is_err());
    }
}
