//! The last check before a snapshot is committed: every blob its trees
//! reference is still in the store.
//!
//! A capture reuses blobs it did not store itself: an intact parent's
//! unchanged files and every unchanged subtree without any lookup, other
//! chunks after one catalog lookup made early in the run, and its own new
//! packs stay unreferenced until the record exists. All of that is sound
//! only if nothing was removed in between. The shared store lock keeps prune
//! and repair out, but a lock file deleted under a running snapshot (a
//! tmpfiles cleaner) or a future lock-free store does not.
//!
//! SQLite counts every removal of a blob row (catalog::intact), and a prune
//! drops rows before it deletes pack files. So if the count still stands
//! where it stood before the capture looked anything up, nothing it reuses
//! can be gone and the check costs one query. If it moved, every blob
//! reachable from the new root tree is checked to be in the catalog and its
//! pack to exist, before the record is written; a missing one fails the
//! snapshot, committing nothing.

use std::collections::HashSet;

use super::CaptureError;
use crate::id::{BlobId, PackId, TreeId};
use crate::store::{Store, StoreError};

/// How many times the blobs are checked again while removals keep
/// happening before the snapshot gives up.
const ROUNDS: usize = 3;

/// Makes sure every blob reachable from `root` is still stored, given the
/// removal count `started` read before the capture looked anything up
/// (`None` if it could not be read). Returns the count at which that was
/// established, for marking the snapshot intact.
pub(super) fn ensure_present(
    store: &Store,
    root: TreeId,
    started: Option<u64>,
) -> Result<Option<u64>, CaptureError> {
    let mut known = started;
    for _ in 0..ROUNDS {
        let now = store.catalog().removals().map_err(StoreError::from)?;
        if now.is_some() && now == known {
            return Ok(now);
        }
        check_reachable(store, root)?;
        if now.is_none() {
            return Ok(None);
        }
        known = now;
    }
    Err(CaptureError::StoreChanging(ROUNDS))
}

/// Walks the trees from `root` (each once) and checks every tree and
/// chunk. Chunks are looked up at each reference, not remembered: memory
/// stays that of the tree ids whatever the size of the snapshot.
fn check_reachable(store: &Store, root: TreeId) -> Result<(), CaptureError> {
    let mut check = Presence {
        store,
        packs: HashSet::new(),
    };
    let mut seen = HashSet::new();
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        check.blob(&id.as_blob())?;
        let tree = store.load_tree(&id)?;
        for entry in &tree.entries {
            pending.extend(entry.subtree());
            for chunk in entry.chunks().unwrap_or_default() {
                check.blob(chunk)?;
            }
        }
    }
    Ok(())
}

/// Blob lookups, remembering which packs were found to exist.
struct Presence<'a> {
    store: &'a Store,
    packs: HashSet<PackId>,
}

impl Presence<'_> {
    /// The blob's catalog row, and its pack in the store.
    fn blob(&mut self, id: &BlobId) -> Result<(), CaptureError> {
        let gone = |why: String| CaptureError::BlobGone { blob: *id, why };
        let Some(at) = self.store.catalog().locate(id).map_err(StoreError::from)? else {
            return Err(gone("no longer in the catalog".into()));
        };
        if self.packs.contains(&at.pack) {
            return Ok(());
        }
        let key = crate::pack::key(&at.pack);
        if self
            .store
            .backend()
            .head(&key)
            .map_err(StoreError::from)?
            .is_none()
        {
            return Err(gone(format!("its pack {key} is gone")));
        }
        self.packs.insert(at.pack);
        Ok(())
    }
}
