//! The blob pipeline of a capture:
//!
//! ```text
//! walker thread: read, chunk, hash, dedup ──jobs──▶ N compressors ──blobs──▶ pack writer
//! ```
//! The walker hashes each chunk and asks the catalog (and its own set of
//! blobs sent this run) whether the store already has it; only new blobs are
//! sent on. Compressors run on every core and re-check each compressed blob
//! by decompressing it. One writer fills packs sequentially, publishes each
//! sealed pack durably, then records its blobs in one catalog transaction.
//! Blobs travel in batches of up to [`BATCH_BYTES`]: handing each 4 KiB
//! page run of a database over on its own was 12% of the CPU time of its
//! first snapshot (channel operations and the thread switches they cause).
//! Channels are bounded, so memory stays at a few dozen batches whatever
//! the size of the data. On failure no pack is sealed after the error and the
//! temporary files are removed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::trainer::Trainer;
use super::{CaptureError, upload};
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::compress::{Compressor, Dictionary, EncodeError, Encoded};
use crate::crypt::Vault;
use crate::id::{BlobId, PackId};
use crate::pack::writer::SealedPack;
use crate::pack::{BlobKind, PackError, PackWriter};
use crate::progress::Progress;
use crate::store::Staging;
use crate::store::{Store, StoreError};

/// Blobs the walker hands over at once: a batch is sent once it holds this
/// many bytes (so it may pass them by one blob)...
const BATCH_BYTES: usize = 64 << 10;
/// ...and this many blobs.
const BATCH_BLOBS: usize = 32;

/// A new blob on its way to a compressor.
struct Job {
    kind: BlobKind,
    id: BlobId,
    data: Vec<u8>,
}

/// A compressed, verified blob on its way to the pack writer.
struct Ready {
    kind: BlobKind,
    id: BlobId,
    raw_len: u32,
    encoded: Encoded,
}

/// Blob counts from the walker's side.
#[derive(Debug, Default, Clone, Copy)]
pub struct SinkStats {
    /// Data blobs sent to be stored.
    pub data_new: u64,
    /// Raw bytes of those.
    pub data_new_bytes: u64,
    /// Data blobs the store already had.
    pub data_reused: u64,
    /// Tree blobs sent to be stored.
    pub tree_new: u64,
    /// Tree blobs the store already had.
    pub tree_reused: u64,
}

/// What the pack writer stored.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    /// Packs published.
    pub packs: u64,
    /// Their ids: checked again before the snapshot commits.
    pub pack_ids: Vec<crate::id::PackId>,
    /// Bytes in those packs' blobs (after compression).
    pub bytes_stored: u64,
    /// Raw bytes of those blobs.
    pub bytes_raw: u64,
    /// Blobs written.
    pub blobs: u64,
}

/// The walker's handle: hands blobs to the pipeline, skipping known ones.
pub struct BlobSink<'a> {
    jobs: Sender<Vec<Job>>,
    /// Blobs not handed over yet, and their bytes.
    batch: Vec<Job>,
    batch_bytes: usize,
    catalog: &'a Catalog,
    sent: HashSet<BlobId>,
    /// Packs a prune condemned when the capture started: a blob only they
    /// hold is stored again rather than reused, so that the snapshot does
    /// not rest on a pack a later prune deletes (else its fence would have
    /// to copy the blob out just before the commit, racing that prune).
    shunned: HashSet<PackId>,
    /// A lost dictionary: a blob whose located copy was made with it is
    /// stored again (its new copy, made without, then takes over its row).
    lost_dictionary: Option<u16>,
    /// The store's keys: ids are keyed BLAKE3 in an encrypted store.
    vault: Vault,
    /// Counts so far.
    pub stats: SinkStats,
}

impl BlobSink<'_> {
    /// Whether the store has blob `id` outside condemned packs, readable
    /// without a lost dictionary, or this run has already sent it.
    pub fn contains(&self, id: &BlobId) -> Result<bool, CaptureError> {
        if self.sent.contains(id) {
            return Ok(true);
        }
        let present = if self.shunned.is_empty() {
            self.catalog.contains(id).map_err(StoreError::from)?
        } else {
            let copies = self.catalog.copies(id).map_err(StoreError::from)?;
            copies.iter().any(|pack| !self.shunned.contains(pack))
        };
        match self.lost_dictionary {
            Some(number) if present => Ok(!self
                .catalog
                .needs_dictionary(id, number)
                .map_err(StoreError::from)?),
            _ => Ok(present),
        }
    }

    /// Stores `data` as a blob of `kind` unless the store already has it;
    /// returns its id either way.
    pub fn put(&mut self, kind: BlobKind, data: Vec<u8>) -> Result<BlobId, CaptureError> {
        let id = BlobId::from(self.vault.hash(&data));
        let known = self.contains(&id)?;
        let (new, reused) = match kind {
            BlobKind::Data => (&mut self.stats.data_new, &mut self.stats.data_reused),
            BlobKind::Tree => (&mut self.stats.tree_new, &mut self.stats.tree_reused),
        };
        if known {
            *reused += 1;
            return Ok(id);
        }
        *new += 1;
        if kind == BlobKind::Data {
            self.stats.data_new_bytes += data.len() as u64;
        }
        self.sent.insert(id);
        self.batch_bytes += data.len();
        self.batch.push(Job { kind, id, data });
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_BLOBS {
            self.flush()?;
        }
        Ok(id)
    }

    /// Hands the blobs put since the last batch over.
    fn flush(&mut self) -> Result<(), CaptureError> {
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        self.jobs
            .send(batch)
            .map_err(|_| CaptureError::PipelineStopped)
    }
}

/// Runs `walk` with a sink feeding compressors (small blobs with the
/// dictionary `trainer` gives) and a pack writer, then waits for every
/// blob to be durable and cataloged. If `walk` fails, nothing more is
/// sealed and its error is returned.
pub fn run<T>(
    store: &Store,
    trainer: &Trainer,
    progress: &Progress,
    walk: impl FnOnce(&mut BlobSink<'_>) -> Result<T, CaptureError>,
) -> Result<(T, SinkStats, WriterStats), CaptureError> {
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let (job_tx, job_rx) = bounded::<Vec<Job>>(workers * 2);
    let (ready_tx, ready_rx) = bounded::<Compressed>(workers * 2);
    let abort = Arc::new(AtomicBool::new(false));
    let level = store.config().compression.level;
    let shunned = super::present::condemned_known(store, store.catalog())?;
    let out = PackOutput {
        backend: store.backend().clone(),
        staging: store.staging().clone(),
        catalog: store.catalog_path(),
        target: store.config().pack.target_size,
        condemned: shunned.clone(),
    };

    thread::scope(|scope| {
        let writer = scope.spawn(|| write_packs(&out, ready_rx, &abort, progress));
        let compressors: Vec<_> = (0..workers)
            .map(|_| {
                let (rx, tx) = (job_rx.clone(), ready_tx.clone());
                let vault = store.backend().vault();
                scope.spawn(move || compress_jobs(level, vault, trainer, rx, tx))
            })
            .collect();
        drop((job_rx, ready_tx));

        let mut sink = BlobSink {
            jobs: job_tx,
            batch: Vec::new(),
            batch_bytes: 0,
            catalog: store.catalog(),
            sent: HashSet::new(),
            shunned,
            lost_dictionary: trainer.lost_dictionary(),
            vault: store.backend().vault().clone(),
            stats: SinkStats::default(),
        };
        let walked = walk(&mut sink).and_then(|t| sink.flush().map(|()| t));
        let stats = sink.stats;
        if walked.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        drop(sink);
        // A thread that died without reporting (a panic) may have dropped a
        // blob the trees already reference: never let that reach a commit.
        let crashed = compressors.into_iter().any(|c| c.join().is_err());
        let written = writer.join().unwrap_or(Err(CaptureError::PipelineStopped));
        // A pipeline failure explains a walker's "pipeline stopped", so it wins.
        let (t, w) = match (walked, written) {
            (Err(CaptureError::PipelineStopped), Err(e)) => return Err(e),
            (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
            (Ok(t), Ok(w)) => (t, w),
        };
        let sent = stats.data_new + stats.tree_new;
        if crashed || w.blobs != sent {
            return Err(CaptureError::BlobsLost {
                sent,
                written: w.blobs,
            });
        }
        Ok((t, stats, w))
    })
}

/// A batch of blobs compressed, or why one could not be.
type Compressed = Result<Vec<Ready>, CaptureError>;

fn compress_jobs(
    level: i32,
    vault: &Vault,
    trainer: &Trainer,
    jobs: Receiver<Vec<Job>>,
    ready: Sender<Compressed>,
) {
    let mut compressor = match Compressor::new(level) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(CaptureError::Compress(e)));
            return;
        }
    };
    for batch in jobs {
        let result: Compressed = batch
            .into_iter()
            .map(|job| {
                let dictionary = trainer.dictionary_for(job.kind, &job.data);
                compress_one(&mut compressor, job, dictionary.as_deref())
                    .and_then(|ready| seal(vault, ready))
            })
            .collect();
        let failed = result.is_err();
        if ready.send(result).is_err() || failed {
            return;
        }
    }
}

/// Compresses one blob; the compressor proves the result decodes back to
/// it, so a compressor fault stops the run before the blob reaches a pack.
fn compress_one(
    compressor: &mut Compressor,
    job: Job,
    dictionary: Option<&Dictionary>,
) -> Result<Ready, CaptureError> {
    let raw_len = job.data.len() as u32;
    let encoded = compressor
        .encode(job.data, dictionary)
        .map_err(|e| match e {
            EncodeError::Zstd(e) => CaptureError::Compress(e),
            EncodeError::RoundTrip(detail) => {
                CaptureError::Store(StoreError::Pack(PackError::CompressorFault {
                    blob: job.id,
                    detail,
                }))
            }
        })?;
    Ok(Ready {
        kind: job.kind,
        id: job.id,
        raw_len,
        encoded,
    })
}

/// Seals a compressed blob with the store's key (nothing for a plain
/// store), here on the compressing threads rather than in the one writer.
fn seal(vault: &Vault, mut ready: Ready) -> Result<Ready, CaptureError> {
    ready.encoded.bytes = vault
        .seal_blob(
            ready.kind.code(),
            ready.id.as_bytes(),
            std::mem::take(&mut ready.encoded.bytes),
        )
        .map_err(|e| CaptureError::Store(StoreError::Pack(PackError::Seal(e))))?;
    Ok(ready)
}

/// Where the pack writer puts packs (what it needs of the store: the
/// store itself holds this thread's catalog connection and stays behind).
struct PackOutput {
    backend: Backend,
    staging: Staging,
    catalog: PathBuf,
    target: u64,
    /// Packs condemned when the capture started: no pack is sealed as one
    /// of them (see `PackWriter::seal_unlike`).
    condemned: HashSet<PackId>,
}

/// The pack writer and the upload stage behind it (see `upload`).
fn write_packs(
    out: &PackOutput,
    ready: Receiver<Compressed>,
    abort: &AtomicBool,
    progress: &Progress,
) -> Result<WriterStats, CaptureError> {
    let uploaders = upload::uploaders(&out.backend);
    let (sealed_tx, sealed_rx) = bounded::<SealedPack>(uploaders);
    let (done_tx, done_rx) = unbounded();
    thread::scope(|scope| {
        let workers: Vec<_> = (0..uploaders)
            .map(|_| {
                let (rx, tx) = (sealed_rx.clone(), done_tx.clone());
                scope.spawn(move || upload::upload_all(&out.backend, rx, tx, abort))
            })
            .collect();
        drop((sealed_rx, done_tx));
        let indexer = scope.spawn(|| upload::index_all(&out.backend, &out.catalog, done_rx));
        let filled = fill_packs(out, ready, abort, progress, &sealed_tx);
        drop(sealed_tx);
        let crashed = workers.into_iter().any(|w| w.join().is_err());
        let indexed = indexer
            .join()
            .unwrap_or(Err(CaptureError::PipelineStopped))?;
        let mut stats = filled?;
        if crashed {
            return Err(CaptureError::PipelineStopped);
        }
        stats.packs = indexed.ids.len() as u64;
        stats.pack_ids = indexed.ids;
        stats.bytes_stored = indexed.bytes_stored;
        Ok(stats)
    })
}

/// The blobs of a batch one by one, or its error.
fn flatten(batch: Compressed) -> Vec<Result<Ready, CaptureError>> {
    match batch {
        Ok(blobs) => blobs.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e)],
    }
}

/// Fills packs from the compressed blobs, one open pack per blob kind, and
/// hands each sealed pack to the uploaders.
fn fill_packs(
    out: &PackOutput,
    ready: Receiver<Compressed>,
    abort: &AtomicBool,
    progress: &Progress,
    sealed: &Sender<SealedPack>,
) -> Result<WriterStats, CaptureError> {
    let mut open: [Option<PackWriter>; 2] = [None, None];
    let mut stats = WriterStats::default();
    let seal = |pack: PackWriter| -> Result<(), CaptureError> {
        let pack = pack.seal_unlike(&out.condemned).map_err(StoreError::from)?;
        sealed.send(pack).map_err(|_| CaptureError::PipelineStopped)
    };
    for blob in ready.into_iter().flat_map(flatten) {
        if abort.load(Ordering::SeqCst) {
            return Ok(stats);
        }
        let blob = blob?;
        let slot = &mut open[blob.kind as usize];
        if slot.is_none() {
            let pack = PackWriter::create(&out.staging, blob.kind, out.backend.vault());
            *slot = Some(pack.map_err(StoreError::from)?);
        }
        let Some(pack) = slot.as_mut() else { continue };
        pack.add(blob.id, blob.raw_len, &blob.encoded)
            .map_err(StoreError::from)?;
        stats.bytes_raw += u64::from(blob.raw_len);
        stats.blobs += 1;
        Progress::add(&progress.stored, blob.encoded.bytes.len() as u64);
        if pack.is_full(out.target)
            && let Some(full) = slot.take()
        {
            seal(full)?;
        }
    }
    if abort.load(Ordering::SeqCst) {
        return Ok(stats);
    }
    for pack in open.into_iter().flatten() {
        seal(pack)?;
    }
    Ok(stats)
}
