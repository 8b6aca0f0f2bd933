//! Reading every snapshot record from its file, not from the catalog's
//! cache: damage on disk must show even while a cached copy is intact.

use crate::backend::Backend;
use crate::snapshot::{self, MAX_RECORD_LEN, Snapshot, SnapshotList};
use crate::store::{Store, StoreError};

/// Every record under `snapshots/`: the readable ones, oldest first, and
/// the damaged ones.
pub fn read_all(store: &Store) -> Result<SnapshotList, StoreError> {
    use rayon::prelude::*;
    let backend = store.backend();
    let keys: Vec<String> = backend
        .list("snapshots/")?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| snapshot::id_of_key(k).is_some())
        .collect();
    let read: Vec<Option<Result<Snapshot, (String, String)>>> =
        keys.par_iter().map(|key| read_one(backend, key)).collect();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for result in read.into_iter().flatten() {
        match result {
            Ok(s) => good.push(s),
            Err(damaged) => bad.push(damaged),
        }
    }
    good.sort_by_key(|s| (s.record.time, s.id));
    Ok(SnapshotList {
        snapshots: good,
        unreadable: bad,
        // Read from the files themselves: an altered one is unreadable.
        altered_in_store: Vec::new(),
    })
}

/// Every record ([`read_all`]), listed *before* the catalog of a remote
/// store is brought up to date: a snapshot another host commits meanwhile
/// writes its index objects before its record, so every blob a listed
/// snapshot needs is then cataloged (listed after, it could need blobs the
/// catalog has not seen yet, and be reported as losing them).
pub fn read_all_then_sync(store: &mut Store) -> Result<SnapshotList, StoreError> {
    let list = read_all(store)?;
    if store.backend().is_remote() {
        let backend = store.backend().clone();
        crate::catalog::sync::sync(store.catalog_mut(), &backend)?;
    }
    Ok(list)
}

/// The record at `key`; `None` if it is gone since the listing, the key
/// and the cause if it is damaged.
pub(super) fn read_one(backend: &Backend, key: &str) -> Option<Result<Snapshot, (String, String)>> {
    let id = snapshot::id_of_key(key)?;
    let bytes = match backend.get_opened(key, MAX_RECORD_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return None,
        Err(e) => return Some(Err((key.to_owned(), e.source.to_string()))),
    };
    Some(
        snapshot::decode(backend.vault(), &id, &bytes).map_err(|e| (key.to_owned(), e.to_string())),
    )
}
