//! Troubles a snapshot's walk met because the store changed under it. A
//! prune beside verify (on a local store, one run shared, in two phases)
//! can forget and prune a snapshot verify has listed, whose trees and
//! blobs then leave the catalog as the walk reaches them; or move a tree
//! to a new pack and delete the old one between the catalog's answer and
//! the read. The walk then finds blobs the catalog lacks and trees that
//! do not read, on a store that lost nothing: the pack checks never see
//! those packs (no longer cataloged when they run), so the recheck must
//! hear of these findings too ([`super::recheck`]).

use std::collections::HashMap;

use crate::id::SnapshotId;
use crate::reach::Trouble;
use crate::store::{Store, StoreError};

/// The damage keys (blob ids in hex, as [`super::found`] names them) of
/// the `troubles` other processes may explain: met walking a snapshot
/// whose record is gone by now, or a tree that did not read and reads now.
pub fn raced(store: &Store, troubles: &[(SnapshotId, Trouble)]) -> Result<Vec<String>, StoreError> {
    let mut gone = HashMap::new();
    let mut keys = Vec::new();
    for (snapshot, trouble) in troubles {
        let blob = match trouble {
            Trouble::Missing(blob) => *blob,
            Trouble::BadTree(tree, _) => tree.as_blob(),
            // A tree that reads holds it: nothing moved.
            Trouble::BadEntry { .. } => continue,
        };
        if is_gone(store, snapshot, &mut gone)? || reads_now(store, trouble) {
            keys.push(blob.to_hex());
        }
    }
    Ok(keys)
}

/// Whether `snapshot`'s record has been removed (a forget) since the
/// listing; asked once per snapshot.
fn is_gone(
    store: &Store,
    snapshot: &SnapshotId,
    known: &mut HashMap<SnapshotId, bool>,
) -> Result<bool, StoreError> {
    if let Some(&gone) = known.get(snapshot) {
        return Ok(gone);
    }
    let gone = (store.backend())
        .head(&crate::snapshot::key(snapshot))?
        .is_none();
    known.insert(*snapshot, gone);
    Ok(gone)
}

/// Whether a tree that did not read reads now: its pack was deleted
/// under the read and the catalog places it elsewhere, or the read failed
/// for a moment.
fn reads_now(store: &Store, trouble: &Trouble) -> bool {
    matches!(trouble, Trouble::BadTree(tree, _) if store.load_tree(tree).is_ok())
}
