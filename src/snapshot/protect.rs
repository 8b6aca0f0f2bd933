//! Protection: an empty file `protected/ID` marks snapshot ID as one that
//! neither a retention policy nor `forget ID` may remove. A marker is
//! separate from the record because records are immutable (their id is
//! their hash).

use std::collections::HashSet;

use crate::backend::Backend;
use crate::backend::BackendError;
use crate::id::SnapshotId;

/// The store key of `id`'s marker.
fn key(id: &SnapshotId) -> String {
    format!("protected/{id}")
}

/// Every protected snapshot id. Names that are not ids are ignored.
pub fn protected(backend: &Backend) -> Result<HashSet<SnapshotId>, BackendError> {
    Ok(backend
        .list("protected/")?
        .iter()
        .filter_map(|o| o.key.strip_prefix("protected/")?.parse().ok())
        .collect())
}

/// Marks `id` protected (durably); protecting twice is harmless. Returns
/// false, leaving no mark, when the record is gone once the mark is
/// written: a forget elsewhere (another host, or a cache dir of its own)
/// deleted it after reading the protections, and its mark would have
/// protected nothing while `protect` said "protected".
pub fn protect(backend: &Backend, id: &SnapshotId) -> Result<bool, BackendError> {
    backend.create(&key(id), b"")?;
    crate::crash::point("protect-marked");
    if backend.head(&super::key(id))?.is_some() {
        return Ok(true);
    }
    backend.delete(&key(id))?;
    Ok(false)
}

/// Removes `id`'s protection; returns whether it was protected.
pub fn unprotect(backend: &Backend, id: &SnapshotId) -> Result<bool, BackendError> {
    Ok(backend.delete_counted(&key(id))?.is_some())
}
