//! Locating the chunks of a large file while it is written.
//!
//! The walk of a restore looks up where every chunk of the files it hands
//! to the writer is, a batch at a time. For one large file, a database
//! image of 140k page runs, the writer then waited while all of them were
//! looked up (about 14% of the restore, on one core while the other idled),
//! and the locations of all of them were held at once. Such a file's
//! chunks are looked up here instead, a segment at a time, on a thread with
//! its own read-only connection to the catalog, while the segment before is
//! decoded and written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::thread;

use crossbeam_channel::Sender;

use crate::catalog::{Catalog, CatalogError};
use crate::id::BlobId;
use crate::pack::BlobLocation;
use crate::store::Store;

/// Files of more chunks than this are located while they are written
/// (fewer are located with their batch: a thread per file would cost more
/// than it saves).
const WHILE_WRITING: usize = 4096;

/// Chunks located at once: 64 MiB of 4 KiB pages, about 1.2 MB of
/// locations; at most two segments are located ahead of the writer.
const SEGMENT: usize = 16 << 10;

/// Why a segment could not be located.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unlocated {
    /// A chunk the catalog does not know: missing from the store.
    #[error("blob {0} is missing from the store")]
    Missing(BlobId),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Where a restore's catalog is, to open it again on another thread.
pub(super) struct Locator {
    catalog: PathBuf,
}

/// One segment's chunks located, in file order.
type Segment = Result<Vec<(BlobId, BlobLocation)>, Unlocated>;

impl Locator {
    /// The locator of `store`'s catalog; `None` if it cannot be opened a
    /// second time (the walk then locates every file's chunks).
    pub fn of(store: &Store) -> Option<Self> {
        let catalog = store.catalog_path();
        Catalog::open_second(&catalog).ok()?;
        Some(Self { catalog })
    }

    /// `locator`, if it locates a file of `chunks` while it is written.
    pub fn for_file<'l>(locator: Option<&'l Self>, chunks: &[BlobId]) -> Option<&'l Self> {
        locator.filter(|_| chunks.len() > WHILE_WRITING)
    }

    /// Hands `write` the chunks located, a segment at a time, in order,
    /// while the next segment is located; stops at the first error.
    pub fn in_segments<E: From<Unlocated>>(
        &self,
        chunks: &[BlobId],
        mut write: impl FnMut(&[(BlobId, &BlobLocation)]) -> Result<(), E>,
    ) -> Result<(), E> {
        thread::scope(|scope| {
            let (segments, located) = crossbeam_channel::bounded(1);
            scope.spawn(move || self.locate_segments(chunks, &segments));
            // Returning early drops `located`: the locator then stops.
            for segment in located {
                let segment = segment?;
                let refs: Vec<_> = segment.iter().map(|(id, at)| (*id, at)).collect();
                write(&refs)?;
            }
            Ok(())
        })
    }

    /// The locating thread: sends each segment, or the first error.
    fn locate_segments(&self, chunks: &[BlobId], segments: &Sender<Segment>) {
        let catalog = match self.open() {
            Ok(catalog) => catalog,
            Err(e) => {
                let _ = segments.send(Err(e.into()));
                return;
            }
        };
        for segment in chunks.chunks(SEGMENT) {
            let located = locate(&catalog, segment);
            let failed = located.is_err();
            if segments.send(located).is_err() || failed {
                return;
            }
        }
    }

    /// A connection for looking chunks up in id order (see
    /// [`Catalog::use_small_cache`]).
    fn open(&self) -> Result<Catalog, CatalogError> {
        let catalog = Catalog::open_second(&self.catalog)?;
        catalog.use_small_cache()?;
        Ok(catalog)
    }
}

/// Where each chunk of `segment` is, in its order.
fn locate(catalog: &Catalog, segment: &[BlobId]) -> Segment {
    let _consistent_reads = catalog.read_snapshot()?;
    let mut found = HashMap::with_capacity(segment.len());
    locate_into(catalog, segment, &mut found)?;
    segment
        .iter()
        .map(|id| match found.get(id) {
            Some(at) => Ok((*id, at.clone())),
            None => Err(Unlocated::Missing(*id)),
        })
        .collect()
}

/// Adds where each of `chunks` is to `locations` (a blob the catalog does
/// not know is left out: it is missing from the store). Looked up in id
/// order (see [`BlobId::in_id_order`]), each distinct chunk once.
pub(super) fn locate_into(
    catalog: &Catalog,
    chunks: &[BlobId],
    locations: &mut HashMap<BlobId, BlobLocation>,
) -> Result<(), CatalogError> {
    for id in BlobId::in_id_order(chunks) {
        if !locations.contains_key(id)
            && let Some(at) = catalog.locate(id)?
        {
            locations.insert(*id, at);
        }
    }
    Ok(())
}
