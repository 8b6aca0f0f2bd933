//! Naming what damage costs: for each damaged blob or tree, the snapshots
//! and file paths that depend on it. Each snapshot's trees are walked, but
//! a subtree is examined once however many snapshots share it (results are
//! remembered by tree id), so this costs about one walk of the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;

use crate::browse::join_below;
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::rawname::RawName;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::when::SnapshotTime;

/// At most this many paths are listed per snapshot and damage (all are counted).
pub const MAX_PATHS: usize = 100;

/// A snapshot that needs something damaged, and where.
#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// When it was taken.
    pub time: SnapshotTime,
    /// Paths of files (or whole directories) that cannot be restored intact.
    pub paths: Vec<RawName>,
    /// Further paths not listed.
    pub more_paths: u64,
}

/// Paths under one tree that hit damage: (path relative to the tree, damage).
type Hits = Rc<Vec<(PathBuf, usize)>>;

/// What is damaged: blobs, and entries by the tree holding them, each with
/// the index of its damage.
pub struct Damaged<'a> {
    /// Lost or damaged blobs (data and trees).
    pub blobs: &'a HashMap<BlobId, usize>,
    /// Entries a restore would refuse.
    pub entries: &'a HashMap<TreeId, Vec<(RawName, usize)>>,
}

impl Damaged<'_> {
    fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.entries.is_empty()
    }
}

/// Recursive, but only over snapshots whose trees nest no deeper than
/// [`MAX_DEPTH`](crate::bound::MAX_DEPTH) (verify leaves the others out).
struct Walker<'s> {
    store: &'s Store,
    damaged: &'s Damaged<'s>,
    memo: HashMap<TreeId, Hits>,
}

impl Walker<'_> {
    /// Every damaged thing under `tree`, remembered by tree id.
    fn hits(&mut self, tree: &TreeId) -> Hits {
        if let Some(hits) = self.memo.get(tree) {
            return hits.clone();
        }
        let hits = Rc::new(self.examine(tree));
        self.memo.insert(*tree, hits.clone());
        hits
    }

    fn examine(&mut self, tree: &TreeId) -> Vec<(PathBuf, usize)> {
        if let Some(&damage) = self.damaged.blobs.get(&tree.as_blob()) {
            return vec![(PathBuf::new(), damage)];
        }
        // A tree that does not load is itself damage found by the structure
        // check (and in `blobs`); anything else here has nothing to add.
        let Ok(loaded) = self.store.load_tree(tree) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, usize)> = (self.damaged.entries.get(tree).into_iter())
            .flatten()
            .map(|(name, d)| (name.as_path().to_path_buf(), *d))
            .collect();
        for entry in &loaded.entries {
            let name = entry.name.as_path();
            if let Some(sub) = entry.subtree() {
                let below = self.hits(&sub);
                out.extend(below.iter().map(|(p, d)| (join_below(name, p), *d)));
            }
            let mut seen = HashSet::new();
            for chunk in entry.chunks().unwrap_or_default() {
                if let Some(&d) = self.damaged.blobs.get(chunk)
                    && seen.insert(d)
                {
                    out.push((name.to_path_buf(), d));
                }
            }
        }
        out
    }
}

/// For each of `damages` (indexed as in `damaged`), the snapshots among
/// `snapshots` that depend on it, with paths.
pub fn attribute(
    store: &Store,
    snapshots: &[Snapshot],
    damaged: &Damaged<'_>,
    damages: usize,
) -> Vec<Vec<Affected>> {
    let mut out: Vec<BTreeMap<SnapshotId, Affected>> = vec![BTreeMap::new(); damages];
    if damaged.is_empty() {
        return vec![Vec::new(); damages];
    }
    let mut walker = Walker {
        store,
        damaged,
        memo: HashMap::new(),
    };
    for snapshot in snapshots {
        for (path, damage) in walker.hits(&snapshot.record.tree).iter() {
            let affected = out[*damage].entry(snapshot.id).or_insert_with(|| Affected {
                snapshot: snapshot.id,
                time: snapshot.record.time,
                paths: Vec::new(),
                more_paths: 0,
            });
            if affected.paths.len() < MAX_PATHS {
                affected
                    .paths
                    .push(RawName::from_path(&Path::new("/").join(path)));
            } else {
                affected.more_paths += 1;
            }
        }
    }
    out.into_iter()
        .map(|m| {
            let mut affected: Vec<Affected> = m.into_values().collect();
            affected.sort_by_key(|a| (a.time, a.snapshot));
            affected
        })
        .collect()
}
