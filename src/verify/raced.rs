//! Damage a snapshot's walk found because other processes changed the
//! store under it. `forget` beside verify can remove a snapshot verify has
//! listed, and a prune (on a local store, one run shared, in two phases)
//! then drops its trees and blobs from the catalog as the walk reaches
//! them; or a prune moves a tree to a new pack and deletes the old one
//! between the catalog's answer and the read. The walk then finds blobs
//! the catalog lacks and trees whose pack is gone, on a store that lost
//! nothing. The pack checks never see those packs (no longer cataloged
//! when they run), so the recheck must hear of these findings too
//! ([`super::recheck`]).

use std::collections::HashMap;

use super::{DamageKind, Report};
use crate::id::{SnapshotId, TreeId};
use crate::pack::PackError;
use crate::reach::Trouble;
use crate::store::{Store, StoreError};

/// Damage (by key: a blob id in hex) that other processes changing the
/// store explain.
#[derive(Debug, Default, Clone)]
pub struct Raced {
    /// Needed only by snapshots that have been forgotten since the listing.
    pub forgotten: Vec<String>,
    /// Trees whose pack was gone when the walk read them, and that read now.
    pub moved: Vec<String>,
}

impl Raced {
    /// Whether nothing was explained so.
    pub fn is_empty(&self) -> bool {
        self.forgotten.is_empty() && self.moved.is_empty()
    }

    /// How many findings were explained so.
    pub fn len(&self) -> usize {
        self.forgotten.len() + self.moved.len()
    }

    /// Whether the damage keyed `key` is among them.
    pub fn explains(&self, key: &str) -> bool {
        self.forgotten.iter().chain(&self.moved).any(|k| k == key)
    }
}

/// The trees among `troubles` that did not read because their pack was
/// gone: all a prune can do to a tree (any other failure is the tree's).
pub fn unread_trees(troubles: &[(SnapshotId, Trouble)]) -> Vec<TreeId> {
    let pack_gone =
        |e: &StoreError| matches!(e, StoreError::Pack(PackError::Io(e)) if e.is_not_found());
    (troubles.iter())
        .filter_map(|(_, t)| match t {
            Trouble::BadTree(tree, e) if pack_gone(e) => Some(*tree),
            _ => None,
        })
        .collect()
}

/// The blob damage of `report` that other processes explain: every
/// snapshot that needs it has been forgotten since the listing, or it is
/// a tree whose pack was gone and that reads now. A blob also needed by a
/// snapshot still there is damage, whichever snapshot's walk met it.
pub fn raced(store: &Store, report: &Report) -> Raced {
    let mut gone = HashMap::new();
    let mut raced = Raced::default();
    for d in report.damage.iter().filter(|d| d.kind == DamageKind::Blob) {
        if is_unread_tree_that_reads_now(store, report, &d.key) {
            raced.moved.push(d.key.clone());
        } else if !d.affected.is_empty()
            && (d.affected.iter()).all(|a| is_gone(store, &a.snapshot, &mut gone))
        {
            raced.forgotten.push(d.key.clone());
        }
    }
    raced
}

fn is_unread_tree_that_reads_now(store: &Store, report: &Report, key: &str) -> bool {
    (report.unread_trees.iter())
        .find(|tree| tree.as_blob().to_hex() == key)
        .is_some_and(|tree| store.load_tree(tree).is_ok())
}

/// Whether `snapshot`'s record has been removed since the listing; asked
/// once per snapshot. A store that cannot answer has not removed it.
fn is_gone(store: &Store, snapshot: &SnapshotId, known: &mut HashMap<SnapshotId, bool>) -> bool {
    *known.entry(*snapshot).or_insert_with(|| {
        (store.backend())
            .head(&crate::snapshot::key(snapshot))
            .is_ok_and(|found| found.is_none())
    })
}
