//! Completing a catalog that is not marked complete: it is new (deleted,
//! never built, or this host's first look at a remote store), or an earlier
//! rebuild was interrupted.
//!
//! The store's index objects say what it holds (one GET each, see
//! [`super::sync`]). A store with no index objects at all was written by a
//! cairn before format 3: its packs' own headers are read instead, one per
//! pack. Every step is idempotent (what is recorded is skipped), so a
//! rebuild cut short is finished by the next one and two processes may
//! rebuild at once. Packs whose header cannot be read are skipped and
//! reported: their blobs stay unreachable until repaired, and snapshots
//! that need them say so. (`repair catalog` reads every pack header, see
//! [`from_pack_headers`].)

use super::Catalog;
use super::sync::{self, SyncError};
use crate::backend::{Backend, BackendError};
use crate::index::IndexedPack;
use crate::pack::{self, PackError, writer::PublishedPack};

/// What a rebuild found.
#[derive(Debug, Default)]
pub struct RebuildReport {
    /// Index objects read.
    pub indexes: u64,
    /// Packs recorded from index objects.
    pub packs: u64,
    /// Packs recorded from their own headers.
    pub from_headers: u64,
    /// Blobs recorded from headers (duplicates across packs counted once
    /// per pack).
    pub blobs: u64,
    /// Index objects or packs left out, with the reason.
    pub unreadable: Vec<(String, String)>,
}

impl RebuildReport {
    /// Where the packs came from, for messages: `6 packs`, `2 index
    /// objects (40 packs)`, or both.
    pub fn describe(&self) -> String {
        let indexed = format!("{} index objects ({} packs)", self.indexes, self.packs);
        match (self.indexes, self.from_headers) {
            (0, h) => format!("{h} packs"),
            (_, 0) => indexed,
            (_, h) => format!("{indexed} and {h} pack headers"),
        }
    }
}

/// Why a rebuild stopped (and left the catalog incomplete, for the next
/// open to try again).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Reading the index objects failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Listing or reading the store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] super::CatalogError),
    /// A pack read failed otherwise than by being unreadable.
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// Completes `catalog` from the store's index objects, or from its pack
/// headers when it has none, and marks it complete. A listing that fails
/// stops the rebuild before the catalog is marked complete.
pub fn rebuild(catalog: &mut Catalog, backend: &Backend) -> Result<RebuildReport, RebuildError> {
    let synced = sync::sync(catalog, backend)?;
    let mut report = RebuildReport {
        indexes: synced.read,
        packs: synced.packs,
        unreadable: synced.damaged,
        ..RebuildReport::default()
    };
    let listing = pack::list::list(backend)?;
    if crate::index::list(backend)?.objects.is_empty() {
        from_pack_headers(catalog, backend, &listing, &mut report)?;
    }
    drop_missing_packs(catalog, &listing, &mut report)?;
    catalog.mark_complete()?;
    Ok(report)
}

/// Drops from the catalog the packs an index object names but `packs/`
/// does not hold (deleted behind cairn's back, lost to damage): a catalog
/// that listed them would let the next snapshot reuse blobs that are gone.
fn drop_missing_packs(
    catalog: &mut Catalog,
    listing: &pack::list::Listing,
    report: &mut RebuildReport,
) -> Result<(), RebuildError> {
    let missing = listing.lacking(catalog.packs()?.into_iter().map(|p| p.id));
    for id in &missing {
        let why = "named by an index object but missing from the store; left out".to_owned();
        report.unreadable.push((pack::key(id), why));
    }
    Ok(catalog.drop_lost_packs(&missing)?)
}

/// `repair catalog`: completes a fresh `catalog` from the index objects
/// that read, then from the header of every pack they do not name, and
/// writes an index object naming those packs. Damaged index objects are
/// deleted first (a crash right after leaves their packs unnamed until the
/// repair is run again). A store whose index objects are all lost is
/// indexed anew. Packs an index object names that the store does not hold
/// are left out, as a rebuild leaves them out (their spare copies, if any,
/// take over).
pub fn repair(catalog: &mut Catalog, backend: &Backend) -> Result<RebuildReport, RebuildError> {
    let synced = sync::sync(catalog, backend)?;
    let mut report = RebuildReport {
        indexes: synced.read,
        packs: synced.packs,
        unreadable: Vec::new(),
        ..RebuildReport::default()
    };
    // Damaged index objects go first: an index object written below for
    // the same packs could have the very name of a damaged one.
    for (key, cause) in synced.damaged {
        if key.starts_with("index/") && key.len() == "index/".len() + 64 {
            backend.delete(&key)?;
        }
        report.unreadable.push((
            key,
            format!("{cause} (deleted: its packs are indexed from their headers)"),
        ));
    }
    let listing = pack::list::list(backend)?;
    let recorded = from_pack_headers(catalog, backend, &listing, &mut report)?;
    for chunk in crate::index::batches(&recorded) {
        let id = crate::index::write(backend, chunk)?;
        catalog.record_index(&id, chunk)?;
    }
    drop_missing_packs(catalog, &listing, &mut report)?;
    catalog.mark_complete()?;
    Ok(report)
}

/// Records every readable pack of `listing` (of `packs/`) that the
/// catalog lacks, from its header; returns them.
fn from_pack_headers(
    catalog: &mut Catalog,
    backend: &Backend,
    listing: &pack::list::Listing,
    report: &mut RebuildReport,
) -> Result<Vec<IndexedPack>, RebuildError> {
    report.unreadable.extend(listing.strays.iter().cloned());
    let mut recorded = Vec::new();
    for &id in &listing.packs {
        if catalog.has_pack(&id)? {
            continue;
        }
        match pack::reader::read_header(backend, &id) {
            Ok((entries, size)) => {
                let kind = entries.first().map_or(pack::BlobKind::Data, |e| e.kind);
                report.from_headers += 1;
                report.blobs += entries.len() as u64;
                let pack = PublishedPack {
                    id,
                    kind,
                    entries,
                    size,
                };
                catalog.record_pack(&pack)?;
                recorded.push(IndexedPack::from(pack));
            }
            Err(e @ (PackError::Format { .. } | PackError::Io(_))) => {
                report.unreadable.push((pack::key(&id), e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(recorded)
}
