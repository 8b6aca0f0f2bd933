//! Index objects as damage: one that does not read (wrong hash, bad bytes)
//! would leave its packs out of every catalog built from the store, and a
//! cataloged pack that no index object names is invisible to other hosts.
//! (An index object naming a pack that is gone is not reported here: the
//! missing pack is, with what it takes down.)

use rayon::prelude::*;

use crate::id::PackId;
use crate::index::{self, IndexError};
use crate::store::{Store, StoreError};

/// What the index objects look like.
#[derive(Debug, Default)]
pub struct IndexCheck {
    /// Index objects read.
    pub objects: u64,
    /// Damage: (key, cause).
    pub damaged: Vec<(String, String)>,
    /// Cataloged packs no index object names.
    pub unnamed: Vec<PackId>,
}

/// Reads every index object, and lists the cataloged packs none names.
pub fn check(store: &Store) -> Result<IndexCheck, StoreError> {
    let backend = store.backend();
    let listing = index::list(backend)?;
    // Only whether each reads: the entries of a store's index objects,
    // decoded all at once, were verify's peak (11 MB for 200k blobs).
    let read: Vec<_> = listing
        .objects
        .par_iter()
        .map(|id| (*id, index::read(backend, id).map(drop)))
        .collect();
    let mut out = IndexCheck {
        objects: read.len() as u64,
        ..IndexCheck::default()
    };
    for (id, result) in read {
        match result {
            Ok(_) => {}
            Err(IndexError::Backend(e)) if e.is_not_found() => {}
            Err(IndexError::Backend(e)) => return Err(e.into()),
            Err(e) => out.damaged.push((index::key(&id), e.to_string())),
        }
    }
    // Packs this catalog recorded itself and never saw in an index object.
    // (Comparing with the index objects just listed instead would count
    // the packs of an index object a prune superseded since the catalog was
    // synced.) A capture running here indexes its packs when it commits.
    if !listing.objects.is_empty() && !crate::store::writers::running(store.home()) {
        out.unnamed = store.catalog().unindexed_packs()?;
    }
    Ok(out)
}
