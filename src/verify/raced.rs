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
//!
//! Such a finding only ever brings another pass, which walks the store as
//! it is then: a blob that a snapshot still there needs is found again
//! there. Only after the last pass is one left out of the damage, and a
//! finding put down to forgotten snapshots only if a fresh walk of every
//! snapshot listed then meets no trouble and does not reach it
//! ([`still_reached`]): `affected` leaves out snapshots a reader may not
//! expand, and paths through trees that do not read.

use std::collections::{HashMap, HashSet};

use super::{DamageKind, Report};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::pack::PackError;
use crate::progress::Progress;
use crate::reach::{LiveSet, Trouble};
use crate::store::{Store, StoreError};

/// Blob damage that other processes changing the store may explain.
#[derive(Debug, Default, Clone)]
pub struct Raced {
    /// Needed only by snapshots forgotten since the listing.
    pub forgotten: HashSet<BlobId>,
    /// Trees whose pack was gone when the walk read them, and that read now.
    pub moved: HashSet<BlobId>,
}

impl Raced {
    /// Whether nothing was explained so.
    pub fn is_empty(&self) -> bool {
        self.forgotten.is_empty() && self.moved.is_empty()
    }

    /// Whether the damage keyed `key` (a blob id in hex) is among them.
    pub fn explains(&self, key: &str) -> bool {
        key.parse::<BlobId>()
            .is_ok_and(|b| self.forgotten.contains(&b) || self.moved.contains(&b))
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

/// The blob damage of `report` that other processes may explain: trees
/// whose pack was gone and that read now, and (unless the run was asked
/// about some snapshots only: one of them forgotten, nothing would be
/// left to check) blobs whose every snapshot is gone since the listing.
pub fn raced(store: &Store, report: &Report, asked: bool) -> Raced {
    let blobs = || {
        (report.damage.iter())
            .filter(|d| d.kind == DamageKind::Blob)
            .filter_map(|d| Some((d.key.parse::<BlobId>().ok()?, d)))
    };
    let unread: HashSet<BlobId> = report.unread_trees.iter().map(TreeId::as_blob).collect();
    let moved: HashSet<BlobId> = blobs()
        .filter(|(b, _)| unread.contains(b) && reads_now(store, b))
        .map(|(b, _)| b)
        .collect();
    let mut forgotten = HashSet::new();
    let candidates: Vec<_> = blobs()
        .filter(|(b, d)| !asked && !moved.contains(b) && !d.affected.is_empty())
        .collect();
    if let Some(gone) = (!candidates.is_empty())
        .then(|| gone_since(store, report))
        .flatten()
    {
        forgotten = (candidates.into_iter())
            .filter(|(_, d)| d.affected.iter().all(|a| gone.contains(&a.snapshot)))
            .map(|(b, _)| b)
            .collect();
    }
    Raced { forgotten, moved }
}

fn reads_now(store: &Store, tree: &BlobId) -> bool {
    store.load_tree(&tree.as_tree()).is_ok()
}

/// The snapshots the pass listed whose records are gone now, leaving out
/// any whose tree a record written since holds (`tag` writes the same tree
/// under a new id and deletes the old record); `None` if the store cannot
/// say (nothing is then taken for gone).
fn gone_since(store: &Store, report: &Report) -> Option<HashSet<SnapshotId>> {
    let now: HashSet<SnapshotId> = (store.backend().list("snapshots/").ok()?.into_iter())
        .filter_map(|o| crate::snapshot::id_of_key(&o.key))
        .collect();
    let retagged: HashSet<TreeId> = (now.iter())
        .filter(|id| !report.listed.contains_key(id))
        .map(|id| tree_of(store, id))
        .collect::<Option<_>>()?;
    Some(
        (report.listed.iter())
            .filter(|&(id, tree)| !now.contains(id) && !retagged.contains(tree))
            .map(|(id, _)| *id)
            .collect(),
    )
}

fn tree_of(store: &Store, id: &SnapshotId) -> Option<TreeId> {
    let key = crate::snapshot::key(id);
    match super::records::read_one(store.backend(), &key)? {
        Ok(snapshot) => Some(snapshot.record.tree),
        Err(_) => None,
    }
}

/// Every blob the snapshots listed now reach, if walking them all meets no
/// trouble (else `None`: nothing may then be put down to forgotten
/// snapshots).
pub fn still_reached(store: &mut Store, progress: &Progress) -> Option<LiveSet> {
    let list = super::records::read_all_then_sync(store).ok()?;
    let reached = crate::reach::reach(store, &list.snapshots, progress).ok()?;
    let whole = reached.troubles.is_empty() && list.unreadable.is_empty();
    whole.then_some(reached.live)
}

/// A map from each listed snapshot to its tree (for [`gone_since`]).
pub fn listed(snapshots: &[crate::snapshot::Snapshot]) -> HashMap<SnapshotId, TreeId> {
    snapshots.iter().map(|s| (s.id, s.record.tree)).collect()
}
