//! Reachability: which blobs a set of snapshots needs, for prune (what to
//! keep) and verify (what must be intact).
//!
//! Memory is the constraint (a store of 10M blobs must not need gigabytes),
//! so a live blob is remembered by the first 8 bytes of its id only: a
//! hash set of `u64`, about 16 bytes per blob with the table's slack, so
//! ~150 MiB for 10M blobs. Two different blobs sharing a prefix (odds about
//! n²/2⁶⁵, ~3·10⁻⁶ for 10M blobs) only make a dead blob look live, which
//! keeps it: never the other way round. Trees are remembered by their full
//! id, so that a subtree is walked once however many snapshots share it and
//! a prefix collision can never skip one.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::id::{BlobId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};

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
    trees: HashSet<TreeId>,
}

fn prefix(id: &BlobId) -> u64 {
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl std::fmt::Debug for LiveSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LiveSet({} blobs, {} trees)",
            self.blobs.len(),
            self.trees.len()
        )
    }
}

impl LiveSet {
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

    /// Whether tree `id` was reached.
    pub fn has_tree(&self, id: &TreeId) -> bool {
        self.trees.contains(id)
    }

    /// Trees reached.
    pub fn trees(&self) -> u64 {
        self.trees.len() as u64
    }

    /// Marks `id`; true if it was not marked before.
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
}

/// What [`reach`] found.
#[derive(Debug, Default)]
pub struct Reached {
    /// Every blob reached.
    pub live: LiveSet,
    /// Each trouble, with the first snapshot found to need it.
    pub troubles: Vec<(SnapshotId, Trouble)>,
}

/// Walks every tree of `snapshots` (each subtree once) and marks the blobs
/// they reach. Every blob is checked to be in the catalog the first time it
/// is reached (a blob whose prefix collides with an earlier one is not;
/// store-format/durability.md bounds what that can cost). Troubles are
/// collected, not fatal; only a failing catalog stops the walk.
pub fn reach(
    store: &Store,
    snapshots: &[Snapshot],
    progress: &Progress,
) -> Result<Reached, StoreError> {
    let _read = store.catalog().read_snapshot()?;
    let mut reached = Reached::default();
    // Sized once for every blob the store holds (reached ones are fewer): a
    // table that grows by doubling briefly holds both copies.
    let capacity = usize::try_from(store.catalog().blob_count()?).unwrap_or(0);
    reached.live.blobs.reserve(capacity);
    for snapshot in snapshots {
        walk_snapshot(store, snapshot, &mut reached)?;
        Progress::add(&progress.files, 1);
    }
    Ok(reached)
}

fn walk_snapshot(
    store: &Store,
    snapshot: &Snapshot,
    reached: &mut Reached,
) -> Result<(), StoreError> {
    let Reached { live, troubles } = reached;
    let mut note = |t: Trouble| troubles.push((snapshot.id, t));
    let mut pending = vec![snapshot.record.tree];
    while let Some(tree_id) = pending.pop() {
        if !live.trees.insert(tree_id) {
            continue;
        }
        live.insert(&tree_id.as_blob());
        let tree = match store.load_tree(&tree_id) {
            Ok(tree) => tree,
            Err(StoreError::BlobMissing(blob)) => {
                note(Trouble::Missing(blob));
                continue;
            }
            Err(e @ StoreError::Catalog(_)) => return Err(e),
            Err(e) => {
                note(Trouble::BadTree(tree_id, e));
                continue;
            }
        };
        for entry in &tree.entries {
            pending.extend(entry.subtree());
            for chunk in entry.chunks().unwrap_or_default() {
                if live.insert(chunk) && !store.catalog().contains(chunk)? {
                    note(Trouble::Missing(*chunk));
                }
            }
        }
    }
    Ok(())
}
