//! The prune journal, `prune-journal.json`: the plan, written durably before
//! prune acts and removed when it has finished.
//!
//! Correctness does not rest on it: the catalog transaction is prune's
//! commit point and every state a crash can leave is one the next prune
//! cleans up anyway (new packs not yet cataloged and old packs no longer
//! cataloged are both unreferenced packs). What the journal gives is a
//! record: the next run says that it is finishing an interrupted prune and
//! what that prune meant to do, and `prune --dry-run` shows it pending.
//! It is never trusted for what to delete: the next run marks afresh,
//! because snapshots taken since the crash may need blobs the old plan
//! called dead.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::id::PackId;
use crate::store::StoreError;
use crate::when::SnapshotTime;

const KEY: &str = "prune-journal.json";
const MAX_LEN: u64 = 256 << 20;

/// A prune's plan as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Journal format version, 1.
    pub version: u32,
    /// When the prune started.
    pub started: SnapshotTime,
    /// Packs to delete outright.
    pub delete: Vec<PackId>,
    /// Packs to repack, then delete.
    pub repack: Vec<PackId>,
    /// Packs no catalog row names, to delete.
    pub unreferenced: Vec<PackId>,
}

/// Writes `journal` durably (replacing an older one).
pub fn write(backend: &Backend, journal: &Journal) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(journal)
        .expect("a journal is plain structs: encoding cannot fail");
    bytes.push(b'\n');
    Ok(backend.replace_sealed(KEY, bytes)?)
}

/// The journal of an interrupted prune, if there is one. A journal that
/// does not decode is reported as `Err` text, not trusted.
pub fn read(backend: &Backend) -> Result<Option<Result<Journal, String>>, StoreError> {
    match backend.get_opened(KEY, MAX_LEN) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(|e| format!("{KEY} does not decode: {e}")),
        )),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the journal: the prune it describes has finished.
pub fn remove(backend: &Backend) -> Result<(), StoreError> {
    Ok(backend.delete(KEY)?)
}
