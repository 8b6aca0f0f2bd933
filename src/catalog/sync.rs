//! Bringing the catalog up to date with the store's index objects: one
//! LIST of `index/`, one GET per index object this catalog has not read
//! (in parallel), and the packs of index objects that are gone dropped.
//!
//! Every open does this, so the catalog follows what other processes and
//! other hosts committed and pruned. Gone index objects are forgotten
//! before new ones are read, so that a pack a prune rewrote into a new
//! index object is recorded again, and a blob whose row named a deleted
//! pack falls back on another copy.

use rayon::prelude::*;

use super::{Catalog, CatalogError};
use crate::backend::{Backend, BackendError};
use crate::id::IndexId;
use crate::index::{self, IndexError, IndexedPack};

/// Index objects read at once.
const READ_BATCH: usize = 32;

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Index objects read and recorded.
    pub read: u64,
    /// Packs they named that the catalog did not know.
    pub packs: u64,
    /// Index objects gone from the store and forgotten.
    pub forgotten: u64,
    /// Packs dropped with them.
    pub packs_dropped: u64,
    /// Index objects that could not be used: (key, cause).
    pub damaged: Vec<(String, String)>,
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Listing or reading the store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Syncs `catalog` with the index objects under `index/`. A listing that
/// fails is an error (nothing is forgotten on a short list); a damaged
/// index object is reported and skipped.
pub fn sync(catalog: &mut Catalog, backend: &Backend) -> Result<SyncReport, SyncError> {
    let listing = index::list(backend)?;
    let known = catalog.known_indexes()?;
    let mut report = SyncReport {
        damaged: listing
            .strays
            .iter()
            .map(|k| (k.clone(), "not an index object name".into()))
            .collect(),
        ..SyncReport::default()
    };
    let listed: std::collections::HashSet<IndexId> = listing.objects.iter().copied().collect();
    let gone: Vec<IndexId> = known
        .iter()
        .filter(|id| !listed.contains(id))
        .copied()
        .collect();
    if !gone.is_empty() {
        let forgotten = catalog.forget_indexes(&gone)?;
        report.forgotten = gone.len() as u64;
        report.packs_dropped = forgotten.packs;
    }
    let new: Vec<IndexId> = listing
        .objects
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    // In batches, so that a fresh host holds a few index objects at once.
    for (id, read) in new
        .chunks(READ_BATCH)
        .flat_map(|batch| read_all(backend, batch))
    {
        match read {
            Ok(packs) => {
                report.read += 1;
                report.packs += packs.len() as u64;
                catalog.record_index(&id, &packs)?;
            }
            Err(IndexError::Backend(e)) if !e.is_not_found() => return Err(e.into()),
            // Gone since the listing: superseded by a prune meanwhile.
            Err(IndexError::Backend(_)) => {}
            Err(e) => report.damaged.push((index::key(&id), e.to_string())),
        }
    }
    Ok(report)
}

/// Reads index objects in parallel, each with its outcome.
fn read_all(
    backend: &Backend,
    ids: &[IndexId],
) -> Vec<(IndexId, Result<Vec<IndexedPack>, IndexError>)> {
    ids.par_iter()
        .map(|id| (*id, index::read(backend, id)))
        .collect()
}
