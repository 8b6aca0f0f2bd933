//! Prune's index objects: the packs it keeps must stay named by index
//! objects after the ones naming the packs it deletes are gone.
//!
//! An index object that names a pack being deleted is *superseded*: its
//! other packs (and the packs the repack wrote, and any cataloged pack no
//! index object names yet) are written into new index objects before the
//! catalog commit; the superseded objects are deleted after it, and the
//! packs last (durability.md). A superseded object's records are reused
//! for the packs it keeps (one GET each), so no pack header is read but
//! those of unindexed packs.

use std::collections::HashSet;

use super::PruneError;
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::id::{IndexId, PackId};
use crate::index::{self, IndexedPack};
use crate::pack::{self, writer::PublishedPack};

/// The index objects a prune writes and those it supersedes.
#[derive(Debug, Default)]
pub struct Reindex {
    /// New index objects, written to the store, with what each names.
    pub written: Vec<(IndexId, Vec<IndexedPack>)>,
    /// Index objects to delete once the catalog has committed.
    pub superseded: Vec<IndexId>,
}

/// Writes index objects for every pack that stays but would be left
/// unnamed: the kept packs of index objects that name a `removed` pack,
/// the repack's `new_packs`, and cataloged packs no index object names.
/// `removed` is every pack the prune deletes, cataloged or not (a pack an
/// aborted prune already dropped from the catalog is still named by its
/// index objects, and must not be named again as kept).
pub fn write(
    backend: &Backend,
    catalog: &Catalog,
    removed: &[PackId],
    new_packs: &[PublishedPack],
) -> Result<Reindex, PruneError> {
    let gone: HashSet<PackId> = removed.iter().copied().collect();
    let superseded = superseded_by(catalog, removed)?;
    let mut keep: Vec<IndexedPack> = new_packs.iter().cloned().map(IndexedPack::from).collect();
    let mut named: HashSet<PackId> = keep.iter().map(|p| p.id).collect();
    for id in &superseded {
        for pack in kept_packs(backend, catalog, id, &gone)? {
            if named.insert(pack.id) {
                keep.push(pack);
            }
        }
    }
    for id in catalog.unindexed_packs()? {
        if !gone.contains(&id) && named.insert(id) {
            keep.push(from_header(backend, &id)?);
        }
    }
    // Each object takes its packs from `keep`: copying them held every
    // kept pack's entries twice (15 MB at the peak of a prune of a 500 MB
    // SQLite store).
    let counts: Vec<usize> = index::batches(&keep).iter().map(|b| b.len()).collect();
    let mut written = Vec::new();
    let mut rest = keep.into_iter();
    for count in counts {
        let packs: Vec<IndexedPack> = rest.by_ref().take(count).collect();
        written.push((index::write(backend, &packs)?, packs));
    }
    Ok(Reindex {
        written,
        superseded,
    })
}

/// Records the new index objects in the catalog (before the prune's commit
/// drops the removed packs).
pub fn record(catalog: &mut Catalog, reindex: &Reindex) -> Result<(), PruneError> {
    for (id, packs) in &reindex.written {
        catalog.record_index(id, packs)?;
    }
    Ok(())
}

/// Forgets the superseded index objects in the catalog and deletes them
/// from the store (after the prune's commit, before any pack is deleted).
pub fn retire(
    backend: &Backend,
    catalog: &mut Catalog,
    reindex: &Reindex,
) -> Result<(), PruneError> {
    catalog.forget_indexes(&reindex.superseded)?;
    for id in &reindex.superseded {
        backend.delete(&index::key(id))?;
        crate::crash::point("prune-index-deleted");
    }
    Ok(())
}

/// The index objects naming any of `removed`.
fn superseded_by(catalog: &Catalog, removed: &[PackId]) -> Result<Vec<IndexId>, PruneError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for pack in removed {
        for id in catalog.indexes_naming(pack)? {
            if seen.insert(id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The packs index object `id` names that stay: from the object itself,
/// or, if it no longer reads, from the headers of the packs the catalog
/// says it named.
fn kept_packs(
    backend: &Backend,
    catalog: &Catalog,
    id: &IndexId,
    gone: &HashSet<PackId>,
) -> Result<Vec<IndexedPack>, PruneError> {
    if let Ok(packs) = index::read(backend, id) {
        let mut out = Vec::new();
        for pack in packs {
            if stays(catalog, &pack.id, gone)? {
                out.push(pack);
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for pack in catalog.packs_of_index(id)? {
        if stays(catalog, &pack, gone)? {
            out.push(from_header(backend, &pack)?);
        }
    }
    Ok(out)
}

/// Whether a pack a superseded index object names is named again: not if
/// it is going, nor if the catalog no longer has it. A pack the store lost
/// is left out of the catalog (`repair catalog`, a rebuild); naming it
/// again put its blobs back in the catalog, and the next snapshot reused
/// them and committed files it did not have.
fn stays(catalog: &Catalog, pack: &PackId, gone: &HashSet<PackId>) -> Result<bool, PruneError> {
    Ok(!gone.contains(pack) && catalog.has_pack(pack)?)
}

fn from_header(backend: &Backend, id: &PackId) -> Result<IndexedPack, PruneError> {
    let (entries, size) = pack::reader::read_header(backend, id)?;
    Ok(IndexedPack {
        id: *id,
        size,
        entries,
    })
}
