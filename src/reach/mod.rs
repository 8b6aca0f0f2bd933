//! Reachability: which blobs a set of snapshots needs, for prune and copy
//! (what to keep, what to carry: [`mark`], on every core) and verify (what
//! must be intact, every entry looked at: [`reach`]).
//!
//! Memory is the constraint (a store of 10M blobs must not need gigabytes),
//! so a live blob is remembered by the first 8 bytes of its id only: a
//! hash set of `u64`, about 16 bytes per blob with the table's slack, so
//! ~150 MiB for 10M blobs. Two different blobs sharing a prefix (odds about
//! n²/2⁶⁵, ~3·10⁻⁶ for 10M blobs) only make a dead blob look live, which
//! keeps it: never the other way round. Trees are remembered by their full
//! id, so that a subtree is read once however many entries or snapshots
//! share it and a prefix collision can never skip one; [`reach`] keeps each
//! one's tally (crate::tally), so that each snapshot's full expansion is
//! known without expanding it (verify judges it against crate::bound).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::id::{BlobId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::rawname::RawName;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};
use crate::tally::{Tallies, Tally};
use crate::tree::{Entry, Tree};

mod mark;

pub use mark::{Marked, mark};

/// Ids are uniform random bits already: hashing them again is wasted work.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The blobs reachable from the snapshots that remain.
#[derive(Default)]
pub struct LiveSet {
    blobs: HashSet<u64, BuildHasherDefault<PrefixHasher>>,
}

fn prefix(id: &BlobId) -> u64 {
    u64::from_le_bytes(LiveSet::prefix_bytes(id))
}

impl std::fmt::Debug for LiveSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveSet({} blobs)", self.blobs.len())
    }
}

impl LiveSet {
    /// The part of `id` the set keeps: its first 8 bytes.
    pub fn prefix_bytes(id: &BlobId) -> [u8; 8] {
        let b = id.as_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// A set of exactly `ids`, for tests.
    #[cfg(test)]
    pub fn of(ids: &[BlobId]) -> Self {
        let mut set = Self::default();
        set.blobs.extend(ids.iter().map(prefix));
        set
    }

    /// Whether `id` is live (or shares its 8-byte prefix with a live blob).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains(&prefix(id))
    }

    /// Distinct live blobs marked.
    pub fn len(&self) -> u64 {
        self.blobs.len() as u64
    }

    /// Whether nothing is live.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Sized once for every blob the store holds (reached ones are fewer):
    /// a table that grows by doubling briefly holds both copies.
    fn sized_for(store: &Store) -> Result<Self, StoreError> {
        let mut set = Self::default();
        let capacity = usize::try_from(store.catalog().blob_count()?).unwrap_or(0);
        set.blobs.reserve(capacity);
        Ok(set)
    }

    /// Marks `id`; whether it was not marked before.
    fn insert(&mut self, id: &BlobId) -> bool {
        self.blobs.insert(prefix(id))
    }
}

/// Something a snapshot needs that cannot be had.
#[derive(Debug)]
pub enum Trouble {
    /// A blob (data or tree) the catalog does not know.
    Missing(BlobId),
    /// A tree that is cataloged but does not read or decode.
    BadTree(TreeId, StoreError),
    /// An entry that decodes but that a restore would refuse (only looked
    /// for by [`reach`]).
    BadEntry {
        /// The tree holding it.
        tree: TreeId,
        /// Its name there.
        name: RawName,
        /// What is wrong with it.
        cause: String,
    },
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(blob) => write!(f, "blob {blob} is in no pack"),
            Self::BadTree(tree, e) => write!(f, "tree {tree} does not read: {e}"),
            Self::BadEntry { tree, name, cause } => write!(
                f,
                "entry {} of tree {tree}: {cause}",
                crate::rawname::escaped(name.as_os_str())
            ),
        }
    }
}

/// How closely [`mark`] looks at what it marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Not at all: blobs are only marked. For a caller that then counts
    /// the marked blobs in a scan of the whole catalog (prune), which is
    /// cheaper than a lookup per blob: 46% of a prune of 200k small files.
    Marks,
    /// That every blob is in the catalog (prune, when its count of the
    /// marked blobs came out short; copy).
    Blobs,
}

/// What [`reach`] found.
#[derive(Debug, Default)]
pub struct Reached {
    /// Every blob reached.
    pub live: LiveSet,
    /// Every tree reached, with its tally.
    pub trees: Tallies,
    /// Each trouble, with the first snapshot found to need it.
    pub troubles: Vec<(SnapshotId, Trouble)>,
    /// What each snapshot's trees hold, fully expanded, in the order given.
    pub tallies: Vec<(SnapshotId, Tally)>,
}

/// Walks every tree of `snapshots` (each subtree once), marks the blobs
/// they reach and checks each entry: every blob is in the catalog the
/// first time it is reached (a blob whose prefix collides with an earlier
/// one is not; store-format/durability.md bounds what that can cost), and
/// nothing a restore would refuse is there (a file whose recorded size is
/// not the sum of its chunks' lengths, a symlink with an empty or
/// NUL-holding target). One catalog lookup per chunk of each file listed in
/// a distinct tree. Troubles are collected, not fatal; only a failing
/// catalog stops the walk.
pub fn reach(
    store: &Store,
    snapshots: &[Snapshot],
    progress: &Progress,
) -> Result<Reached, StoreError> {
    let _read = store.catalog().read_snapshot()?;
    let mut reached = Reached {
        live: LiveSet::sized_for(store)?,
        ..Reached::default()
    };
    for snapshot in snapshots {
        let tally = walk_snapshot(store, snapshot, &mut reached)?;
        reached.tallies.push((snapshot.id, tally));
        Progress::add(&progress.files, 1);
    }
    Ok(reached)
}

/// Tallies the trees of `snapshot`, reading and checking each tree not
/// met before.
fn walk_snapshot(
    store: &Store,
    snapshot: &Snapshot,
    reached: &mut Reached,
) -> Result<Tally, StoreError> {
    let Reached {
        live,
        trees,
        troubles,
        ..
    } = reached;
    let mut walker = TreeChecker {
        store,
        live,
        note: &mut |t: Trouble| troubles.push((snapshot.id, t)),
    };
    trees.tally(snapshot.record.tree, &mut |id| walker.read(id))
}

/// What a tree that cannot be read means: a trouble, or (the catalog
/// failing) the end of the walk.
fn unread(id: TreeId, e: StoreError) -> Result<Trouble, StoreError> {
    match e {
        StoreError::BlobMissing(blob) => Ok(Trouble::Missing(blob)),
        e @ StoreError::Catalog(_) => Err(e),
        e => Ok(Trouble::BadTree(id, e)),
    }
}

/// Reads trees for a tally, marking and checking what they reference.
struct TreeChecker<'a> {
    store: &'a Store,
    live: &'a mut LiveSet,
    note: &'a mut dyn FnMut(Trouble),
}

impl TreeChecker<'_> {
    /// Tree `id`, its blobs marked; `None` (with the trouble noted) if it
    /// cannot be read.
    fn read(&mut self, id: TreeId) -> Result<Option<Tree>, StoreError> {
        self.live.insert(&id.as_blob());
        let tree = match self.store.load_tree(&id) {
            Ok(tree) => tree,
            Err(e) => {
                (self.note)(unread(id, e)?);
                return Ok(None);
            }
        };
        for entry in &tree.entries {
            if let Some(cause) = self.check_entry(entry)? {
                (self.note)(Trouble::BadEntry {
                    tree: id,
                    name: entry.name.clone(),
                    cause,
                });
            }
        }
        Ok(Some(tree))
    }

    /// Marks a file's chunks, noting those the catalog lacks, and says
    /// what a restore would refuse about the entry, if anything.
    fn check_entry(&mut self, entry: &Entry) -> Result<Option<String>, StoreError> {
        if let Some(defect) = entry.defect() {
            return Ok(Some(defect.to_owned()));
        }
        let mut sum = Some(0u64);
        for chunk in BlobId::in_id_order(entry.chunks().unwrap_or_default()) {
            let first = self.live.insert(chunk);
            match self.store.catalog().raw_len(chunk)? {
                Some(len) => sum = sum.map(|s| s.saturating_add(u64::from(len))),
                None => {
                    sum = None;
                    if first {
                        (self.note)(Trouble::Missing(*chunk));
                    }
                }
            }
        }
        // A file's chunks hold its size less its holes.
        Ok(sum
            .filter(|&sum| entry.chunks().is_some() && sum != entry.data_size())
            .map(|sum| {
                format!(
                    "the file's chunks hold {sum} bytes where its entry records {}",
                    entry.data_size()
                )
            }))
    }
}
