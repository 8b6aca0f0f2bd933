//! Forgetting snapshots: deleting their record files. The blobs they alone
//! referenced stay in their packs until `prune` removes them, so a forget
//! is cheap and never touches data another snapshot needs.

use super::{key, protect};
use crate::id::SnapshotId;
use crate::store::{Store, StoreError};

/// Why snapshots could not be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// Some of them are protected; nothing was forgotten.
    #[error("{} protected; nothing was forgotten (run `cairn unprotect ID` first)", describe_protected(.0))]
    Protected(Vec<SnapshotId>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe_protected(ids: &[SnapshotId]) -> String {
    let shorts: Vec<String> = ids.iter().map(SnapshotId::short).collect();
    match shorts.as_slice() {
        [one] => format!("snapshot {one} is"),
        _ => format!("snapshots {} are", shorts.join(", ")),
    }
}

/// Deletes the records of `ids`, refusing all of them if any is protected.
/// Records already gone are skipped. Needs the exclusive lock, so that a
/// concurrent `protect` cannot slip in between the check and the delete.
pub fn forget(store: &Store, ids: &[SnapshotId]) -> Result<(), ForgetError> {
    store.require_exclusive("forgetting snapshots")?;
    let protected = protect::protected(store.backend()).map_err(StoreError::from)?;
    let refused: Vec<SnapshotId> = ids
        .iter()
        .filter(|id| protected.contains(id))
        .copied()
        .collect();
    if !refused.is_empty() {
        return Err(ForgetError::Protected(refused));
    }
    for id in ids {
        match store.backend().delete(&key(id)) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(StoreError::from(e).into()),
        }
    }
    Ok(())
}
