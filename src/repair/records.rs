//! Mending snapshot records damaged in the store from the copies this
//! host's catalog checked: a record is content-addressed (its id is the
//! hash of its bytes), so a cached copy that still hashes to the id is the
//! record, and writing it back changes nothing but the damage.

use crate::backend::Backend;
use crate::id::SnapshotId;
use crate::snapshot::{self, MAX_RECORD_LEN};
use crate::store::{Store, StoreError};

/// Writes back every record whose file in the store is there but not the
/// catalog's checked copy (cut short, altered, not opening with the key),
/// and returns their keys, sorted; in a dry run only names them. A record
/// gone from the store is never written back: it was forgotten.
pub fn mend(store: &Store, dry_run: bool) -> Result<Vec<String>, StoreError> {
    let backend = store.backend();
    let mut cached: Vec<(SnapshotId, Vec<u8>)> =
        store.catalog().cached_snapshots()?.into_iter().collect();
    cached.sort();
    let mut mended = Vec::new();
    for (id, copy) in cached {
        let key = snapshot::key(&id);
        if !is_record(backend, &id, &copy) || !is_damaged(backend, &key, &copy)? {
            continue;
        }
        if !dry_run {
            backend.replace_sealed(&key, copy)?;
        }
        mended.push(key);
    }
    Ok(mended)
}

/// Whether `copy` is the record `id` names (a catalog can be edited too).
fn is_record(backend: &Backend, id: &SnapshotId, copy: &[u8]) -> bool {
    snapshot::decode(backend.vault(), id, copy).is_ok()
}

/// Whether the file at `key` is there but does not read as `copy`.
fn is_damaged(backend: &Backend, key: &str, copy: &[u8]) -> Result<bool, StoreError> {
    match backend.get_sealed(key, MAX_RECORD_LEN) {
        Ok(Ok(there)) => Ok(there != copy),
        Ok(Err(_)) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        // Cut short as it is read: damaged. Anything else: the machine's.
        Err(e) if e.is_damage() => Ok(true),
        Err(e) => Err(e.into()),
    }
}
