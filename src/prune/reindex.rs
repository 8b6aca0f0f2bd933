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
    /// New index objects, written to the store, with the packs each names.
    pub written: Vec<(IndexId, Vec<PackId>)>,
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
    let mut objects = Objects::new(backend);
    for pack in new_packs {
        objects.add(IndexedPack::from(pack.clone()))?;
    }
    for id in &superseded {
        for pack in kept_packs(backend, catalog, id, &gone)? {
            objects.add(pack)?;
        }
    }
    for id in catalog.unindexed_packs()? {
        if !gone.contains(&id) && !objects.named.contains(&id) {
            objects.add(from_header(backend, &id)?)?;
        }
    }
    Ok(Reindex {
        written: objects.finish()?,
        superseded,
    })
}

/// Index objects written as their packs come, each as soon as it is full:
/// holding every kept pack's entries until the end was most of a prune's
/// memory beside its catalog commit (15 MB for a 500 MB SQLite store).
struct Objects<'b> {
    backend: &'b Backend,
    batcher: index::Batcher,
    named: HashSet<PackId>,
    written: Vec<(IndexId, Vec<PackId>)>,
}

impl<'b> Objects<'b> {
    fn new(backend: &'b Backend) -> Self {
        Self {
            backend,
            batcher: index::Batcher::default(),
            named: HashSet::new(),
            written: Vec::new(),
        }
    }

    /// Names `pack` in an object, unless one of these already does.
    fn add(&mut self, pack: IndexedPack) -> Result<(), PruneError> {
        if !self.named.insert(pack.id) {
            return Ok(());
        }
        match self.batcher.push(pack) {
            Some(full) => self.write(&full),
            None => Ok(()),
        }
    }

    fn write(&mut self, packs: &[IndexedPack]) -> Result<(), PruneError> {
        let id = index::write(self.backend, packs)?;
        self.written
            .push((id, packs.iter().map(|p| p.id).collect()));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<(IndexId, Vec<PackId>)>, PruneError> {
        if let Some(last) = self.batcher.take() {
            self.write(&last)?;
        }
        Ok(self.written)
    }
}

/// Records the new index objects in the catalog, after the commit that
/// catalogs the repack's new packs: every pack they name is cataloged by
/// then (the kept ones are never among the removed).
pub fn record(catalog: &mut Catalog, reindex: &Reindex) -> Result<(), PruneError> {
    for (id, packs) in &reindex.written {
        catalog.record_index_of_cataloged(id, packs)?;
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
