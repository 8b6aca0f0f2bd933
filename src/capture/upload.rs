//! The last stage of a capture: sealed packs are uploaded a few at once,
//! and every [`INDEX_BATCH`] packs or five minutes (and at the end) an
//! index object naming the uploaded ones is written to the store, then
//! recorded in the catalog.
//!
//! ```text
//! pack writer ──sealed──▶ uploaders (1 locally, up to 4 remotely) ──published──▶ indexer
//! ```
//! What must hold: a pack is named by an index object only once it is
//! durable in the store, and it is in the catalog (so that later blobs,
//! later runs and the commit can rely on it) only once an index object
//! names it. A run that dies leaves its uploaded packs indexed, batch by
//! batch, for the next run to reuse; only the last batch's packs are lost
//! (unreferenced: the next prune deletes them).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::CaptureError;
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::index::{self, IndexedPack};
use crate::pack::writer::{PublishedPack, SealedPack};
use crate::store::StoreError;

/// Packs named by one index object written during a capture (256 MiB of
/// 16 MiB packs), and the longest a pack waits for its index object: a run
/// that dies loses at most that much upload work. A store gets one index
/// object per snapshot or per batch; prune merges them.
pub const INDEX_BATCH: usize = 16;
const INDEX_AGE: Duration = Duration::from_secs(300);

/// What the indexer recorded.
#[derive(Debug, Default, Clone)]
pub struct Indexed {
    /// Packs uploaded and indexed.
    pub ids: Vec<crate::id::PackId>,
    /// Bytes in those packs' blobs (after compression).
    pub bytes_stored: u64,
}

/// How many packs upload at once: one for a local store (a rename), a few
/// for a remote one, within its connections.
pub fn uploaders(backend: &Backend) -> usize {
    if backend.is_remote() {
        (backend.connections() / 2).clamp(1, 4)
    } else {
        1
    }
}

/// An uploader: publishes every sealed pack it receives, until the channel
/// closes or a publish fails (which raises `abort` and is passed on).
pub fn upload_all(
    backend: &Backend,
    sealed: Receiver<SealedPack>,
    published: Sender<Result<PublishedPack, CaptureError>>,
    abort: &AtomicBool,
) {
    for pack in sealed {
        if abort.load(Ordering::SeqCst) {
            return;
        }
        let result = pack
            .publish(backend)
            .map_err(|e| CaptureError::Store(e.into()));
        let failed = result.is_err();
        if failed {
            abort.store(true, Ordering::SeqCst);
        }
        if published.send(result).is_err() || failed {
            return;
        }
    }
}

/// The indexer: batches published packs into index objects and records
/// each in the catalog.
pub fn index_all(
    backend: &Backend,
    catalog: &Path,
    published: Receiver<Result<PublishedPack, CaptureError>>,
) -> Result<Indexed, CaptureError> {
    let mut catalog = Catalog::open(catalog).map_err(StoreError::from)?;
    let mut out = Indexed::default();
    let mut pending = Vec::new();
    let mut oldest = Instant::now();
    for pack in published {
        let pack = pack?;
        out.ids.push(pack.id);
        out.bytes_stored += pack
            .entries
            .iter()
            .map(|e| u64::from(e.stored_len))
            .sum::<u64>();
        if pending.is_empty() {
            oldest = Instant::now();
        }
        pending.push(pack);
        if pending.len() >= INDEX_BATCH || oldest.elapsed() >= INDEX_AGE {
            flush(backend, &mut catalog, &mut pending)?;
        }
    }
    flush(backend, &mut catalog, &mut pending)?;
    Ok(out)
}

/// Writes an index object for `pending` and records it in the catalog.
fn flush(
    backend: &Backend,
    catalog: &mut Catalog,
    pending: &mut Vec<PublishedPack>,
) -> Result<(), CaptureError> {
    if pending.is_empty() {
        return Ok(());
    }
    let packs: Vec<IndexedPack> = pending.drain(..).map(IndexedPack::from).collect();
    for batch in index::batches(&packs) {
        let id = index::write(backend, batch).map_err(StoreError::from)?;
        catalog.record_index(&id, batch).map_err(StoreError::from)?;
    }
    for _ in &packs {
        crate::crash::point("pack-cataloged");
    }
    Ok(())
}
