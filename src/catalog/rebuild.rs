//! Rebuilding the blob index from the packs' own headers.
//!
//! Runs whenever the catalog is not marked complete: it is new (deleted, or
//! never built), or an earlier rebuild was interrupted. Every step is
//! idempotent (packs already recorded are skipped), so a rebuild cut short
//! is finished by the next one and two processes may rebuild at once.
//! Packs whose header cannot be read are skipped and reported: their blobs
//! stay unreachable until repaired, and snapshots that need them say so.

use super::Catalog;
use crate::backend::Backend;
use crate::pack::{self, PackError, writer::PublishedPack};
use crate::store::StoreError;

/// What a rebuild found.
#[derive(Debug, Default)]
pub struct RebuildReport {
    /// Packs recorded.
    pub packs: u64,
    /// Blobs recorded (including duplicates across packs, counted once per pack).
    pub blobs: u64,
    /// Packs left out, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// Records every readable pack under `packs/` that the catalog lacks. A
/// listing that fails stops the rebuild before the catalog is marked
/// complete, so the next open tries again.
pub fn rebuild(catalog: &mut Catalog, backend: &Backend) -> Result<RebuildReport, StoreError> {
    let listing = pack::list::list(backend)?;
    let mut report = RebuildReport {
        unreadable: listing.strays,
        ..RebuildReport::default()
    };
    for id in listing.packs {
        if catalog.has_pack(&id)? {
            continue;
        }
        match pack::reader::read_header(backend, &id) {
            Ok((entries, size)) => {
                let kind = entries.first().map_or(pack::BlobKind::Data, |e| e.kind);
                report.packs += 1;
                report.blobs += entries.len() as u64;
                catalog.record_pack(&PublishedPack {
                    id,
                    kind,
                    entries,
                    size,
                })?;
            }
            Err(e @ (PackError::Format { .. } | PackError::Io(_))) => {
                report.unreadable.push((pack::key(&id), e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    catalog.mark_complete()?;
    Ok(report)
}
