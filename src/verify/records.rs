//! Reading every snapshot record from its file, not from the catalog's
//! cache: damage on disk must show even while a cached copy is intact.

use crate::snapshot::{self, MAX_RECORD_LEN, SnapshotList};
use crate::store::{Store, StoreError};

/// Every record under `snapshots/`: the readable ones, oldest first, and
/// the damaged ones.
pub fn read_all(store: &Store) -> Result<SnapshotList, StoreError> {
    let backend = store.backend();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in backend.list("snapshots")? {
        let key = format!("snapshots/{name}");
        let Some(id) = snapshot::id_of_key(&key) else {
            continue;
        };
        let bytes = match backend.read(&key, MAX_RECORD_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                bad.push((key, e.source.to_string()));
                continue;
            }
        };
        match snapshot::decode(&id, &bytes) {
            Ok(s) => good.push(s),
            Err(e) => bad.push((key, e.to_string())),
        }
    }
    good.sort_by_key(|s| (s.record.time, s.id));
    Ok(SnapshotList {
        snapshots: good,
        unreadable: bad,
    })
}
