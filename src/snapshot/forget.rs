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

/// What a forget did: the records it deleted, and those it put back
/// because another process protected them meanwhile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// Snapshots whose records are gone: deleted now, or already gone.
    pub forgotten: Vec<SnapshotId>,
    /// Snapshots protected while the forget ran: their records are back.
    pub kept_protected: Vec<SnapshotId>,
}

/// Deletes the records of `ids`, refusing all of them if any is protected.
/// Records already gone are skipped. No lock keeps a `protect` (from this
/// or another host) out between the check and the delete, so protection is
/// read again afterwards and a record protected meanwhile is put back: the
/// result says which, so that no report counts it as forgotten.
pub fn forget(store: &Store, ids: &[SnapshotId]) -> Result<Forgotten, ForgetError> {
    let protected = protect::protected(store.backend()).map_err(StoreError::from)?;
    let refused: Vec<SnapshotId> = ids
        .iter()
        .filter(|id| protected.contains(id))
        .copied()
        .collect();
    if !refused.is_empty() {
        return Err(ForgetError::Protected(refused));
    }
    crate::crash::point("forget-checked");
    let mut deleted = Vec::new();
    for id in ids {
        if let Some(record) = delete_record(store, id)? {
            deleted.push((*id, record));
        }
    }
    let protected = protect::protected(store.backend()).map_err(StoreError::from)?;
    let kept_protected = put_back(store, &deleted, &protected)?;
    let forgotten = (ids.iter())
        .filter(|id| !kept_protected.contains(id))
        .copied()
        .collect();
    Ok(Forgotten {
        forgotten,
        kept_protected,
    })
}

/// Writes back the records of `deleted` that are `protected` now; returns
/// their ids.
fn put_back(
    store: &Store,
    deleted: &[(SnapshotId, Vec<u8>)],
    protected: &std::collections::HashSet<SnapshotId>,
) -> Result<Vec<SnapshotId>, ForgetError> {
    let mut kept = Vec::new();
    for (id, record) in deleted.iter().filter(|(id, _)| protected.contains(id)) {
        store
            .backend()
            .create(&key(id), record)
            .map_err(StoreError::from)?;
        kept.push(*id);
    }
    Ok(kept)
}

/// Deletes one record, returning its bytes (`None`: already gone).
fn delete_record(store: &Store, id: &SnapshotId) -> Result<Option<Vec<u8>>, ForgetError> {
    let record = match store.backend().get(&key(id), super::MAX_RECORD_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(StoreError::from(e).into()),
    };
    match store.backend().delete(&key(id)) {
        Ok(()) => Ok(Some(record)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(StoreError::from(e).into()),
    }
}
