//! Index objects as damage: one that does not read (wrong hash, bad bytes)
//! or that names a pack the store does not hold would mislead every host
//! that builds its catalog from it, and a cataloged pack that no index
//! object names is invisible to them.

use std::collections::HashSet;

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

/// Reads every index object and checks what it names against `packs` (the
/// pack files under `packs/`).
pub fn check(store: &Store, packs: &HashSet<PackId>) -> Result<IndexCheck, StoreError> {
    let backend = store.backend();
    let listing = index::list(backend)?;
    let read: Vec<_> = listing
        .objects
        .par_iter()
        .map(|id| (*id, index::read(backend, id)))
        .collect();
    let mut out = IndexCheck {
        objects: read.len() as u64,
        ..IndexCheck::default()
    };
    let mut named = HashSet::new();
    for (id, result) in read {
        match result {
            Ok(described) => {
                for pack in described {
                    if !packs.contains(&pack.id) {
                        let cause = format!("names pack {} which the store does not hold", pack.id);
                        out.damaged.push((index::key(&id), cause));
                    }
                    named.insert(pack.id);
                }
            }
            Err(IndexError::Backend(e)) if e.is_not_found() => {}
            Err(IndexError::Backend(e)) => return Err(e.into()),
            Err(e) => out.damaged.push((index::key(&id), e.to_string())),
        }
    }
    if !listing.objects.is_empty() {
        let cataloged = store.catalog().packs()?;
        out.unnamed = cataloged
            .into_iter()
            .map(|p| p.id)
            .filter(|id| !named.contains(id))
            .collect();
    }
    Ok(out)
}
