//! Repacking: copying chosen blobs of some packs into new packs. Prune
//! copies the live blobs of mostly-empty packs, repair the intact blobs of
//! damaged ones, and a snapshot the blobs it reuses from condemned packs.
//!
//! Blobs are copied as stored (still compressed), but each one is decoded
//! and checked against its id on the way: a damaged blob must stop the
//! prune rather than be laundered into a fresh pack under a good name. The
//! new packs are published (durable in `packs/`) but not cataloged here:
//! the caller catalogs them (prune in its single commit transaction), so a
//! crash before that leaves them as unreferenced packs the next prune
//! removes.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::backend::BackendError;
use crate::catalog::CatalogError;
use crate::catalog::prune::PackRow;
use crate::compress::Compression;
use crate::compress::dictionary::Renumbering;
use crate::crash;
use crate::id::BlobId;
use crate::pack::writer::PublishedPack;
use crate::pack::{self, BlobKind, BlobLocation, PackError, PackWriter};
use crate::progress::Progress;
use crate::store::Store;

/// Why a repack stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepackError {
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading a pack failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A blob did not check out, or a new pack could not be written.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A blob made with a dictionary the target store was not given.
    #[error("blob {blob} needs a compression dictionary that was not copied to the target")]
    DictionaryNotCarried {
        /// The blob.
        blob: BlobId,
    },
}

/// What repacking wrote.
#[derive(Debug, Default)]
pub struct Repacked {
    /// The new packs, published and not yet cataloged.
    pub packs: Vec<PublishedPack>,
    /// Stored bytes copied.
    pub bytes: u64,
    /// Blobs copied.
    pub blobs: u64,
}

/// Copies the blobs of `chosen` that `keep` wants into new packs, data and
/// trees apart. Used by prune (keep what is live) and repair (keep what is
/// intact).
pub fn repack(
    store: &Store,
    chosen: &[PackRow],
    keep: &dyn Fn(&BlobId) -> bool,
    progress: &Progress,
) -> Result<Repacked, RepackError> {
    progress.set_totals(chosen.len() as u64, chosen.iter().map(|p| p.size).sum());
    repack_into(store, store, chosen, keep, &Renumbering::Same, progress)
}

/// [`repack`] from the packs `chosen` of store `from` into new packs of
/// store `to` (`cairn copy`): the same checks, the same pack format, blobs
/// made with a dictionary labelled with `to`'s number for it. It counts
/// the packs and bytes it reads in `progress`, but leaves the totals to
/// the caller (a copy goes batch by batch).
pub fn repack_into(
    from: &Store,
    to: &Store,
    chosen: &[PackRow],
    keep: &dyn Fn(&BlobId) -> bool,
    renumbering: &Renumbering,
    progress: &Progress,
) -> Result<Repacked, RepackError> {
    let mut out = Repacked::default();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let mut sink = Sink::new(to, kind, renumbering);
        for pack in chosen.iter().filter(|c| c.kind == kind) {
            progress.working_on(|| format!("pack {}", pack.id.short()));
            copy_blobs(from, pack, keep, &mut sink, &mut out)?;
            Progress::add(&progress.files, 1);
            Progress::add(&progress.bytes, pack.size);
        }
        out.packs.extend(sink.finish()?);
    }
    Ok(out)
}

/// Largest span of a pack read in one go; packs are 16 MiB by default, and
/// a larger span (a store with huge packs) is read blob by blob.
const MAX_SPAN: u64 = 64 << 20;

fn copy_blobs(
    store: &Store,
    pack: &PackRow,
    keep: &dyn Fn(&BlobId) -> bool,
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    let blobs: Vec<_> = store
        .catalog()
        .blobs_in_pack(pack)?
        .into_iter()
        .filter(|(id, _)| keep(id))
        .collect();
    let (Some((_, first)), Some((_, last))) = (blobs.first(), blobs.last()) else {
        return Ok(());
    };
    let start = first.offset;
    let end = last.offset + u64::from(last.stored_len);
    let key = pack::key(&pack.id);
    let read = |offset: u64, len: u64| store.backend().get_range(&key, offset, len as usize);
    // Blobs come in pack order: one sequential read covers them all.
    let span = if end - start <= MAX_SPAN {
        Some(read(start, end - start)?)
    } else {
        None
    };
    let stored = blobs
        .iter()
        .map(|(_, at)| {
            let lo = (at.offset - start) as usize;
            let in_span = span
                .as_ref()
                .and_then(|s| s.get(lo..lo + at.stored_len as usize));
            match in_span {
                Some(bytes) => Ok(Cow::Borrowed(bytes)),
                // Not covered by the span (a row overlapping another): its
                // own read, which fails cleanly if it lies outside the file.
                None => read(at.offset, u64::from(at.stored_len)).map(Cow::Owned),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_all(store, &blobs, &stored)?;
    for ((id, at), stored) in blobs.iter().zip(&stored) {
        sink.add(*id, at.raw_len, at.compression, stored)?;
        out.bytes += u64::from(at.stored_len);
        out.blobs += 1;
    }
    Ok(())
}

/// Proves the bytes are each blob before they are copied under its id,
/// on every core: decoding and hashing each blob was a fifth of a
/// repacking prune, on one core.
fn check_all(
    store: &Store,
    blobs: &[(BlobId, BlobLocation)],
    stored: &[Cow<'_, [u8]>],
) -> Result<(), RepackError> {
    let backend = store.backend();
    blobs
        .par_iter()
        .zip(stored)
        .try_for_each(|((id, at), bytes)| pack::reader::check_stored(backend, id, at, bytes))?;
    Ok(())
}

/// New packs of one kind, sealed and published as each fills.
struct Sink<'s> {
    store: &'s Store,
    kind: BlobKind,
    renumbering: &'s Renumbering,
    writer: Option<PackWriter>,
    done: Vec<PublishedPack>,
}

impl<'s> Sink<'s> {
    fn new(store: &'s Store, kind: BlobKind, renumbering: &'s Renumbering) -> Self {
        Self {
            store,
            kind,
            renumbering,
            writer: None,
            done: Vec::new(),
        }
    }

    fn add(
        &mut self,
        id: BlobId,
        raw_len: u32,
        compression: Compression,
        stored: &[u8],
    ) -> Result<(), RepackError> {
        let compression = self
            .renumbering
            .apply(compression)
            .ok_or(RepackError::DictionaryNotCarried { blob: id })?;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(PackWriter::create(
                self.store.staging(),
                self.kind,
                self.store.backend().vault(),
            )?),
        };
        writer.add_stored(id, raw_len, compression, stored)?;
        if writer.data_len() >= self.store.config().pack.target_size {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> Result<(), RepackError> {
        if let Some(writer) = self.writer.take() {
            let published = writer.seal()?.publish(self.store.backend())?;
            crash::point("prune-pack-written");
            self.done.push(published);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<PublishedPack>, RepackError> {
        self.seal()?;
        Ok(self.done)
    }
}
