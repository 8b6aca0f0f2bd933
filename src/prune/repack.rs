//! Repacking: copying the live blobs of mostly-empty packs into new packs.
//!
//! Blobs are copied as stored (still compressed), but each one is decoded
//! and checked against its id on the way: a damaged blob must stop the
//! prune rather than be laundered into a fresh pack under a good name. The
//! new packs are published (durable in `packs/`) but not cataloged here;
//! the catalog learns of them in prune's single commit transaction, so a
//! crash before it leaves them as unreferenced packs the next prune removes.

use super::PruneError;
use super::choose::PackChoice;
use super::mark::LiveSet;
use crate::catalog::prune::PackRow;
use crate::compress::Encoded;
use crate::crash;
use crate::pack::writer::PublishedPack;
use crate::pack::{self, BlobKind, PackWriter};
use crate::progress::Progress;
use crate::store::Store;

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

/// Copies the live blobs of `chosen` into new packs, data and trees apart.
pub fn repack(
    store: &Store,
    chosen: &[PackChoice],
    live: &LiveSet,
    progress: &Progress,
) -> Result<Repacked, PruneError> {
    let mut out = Repacked::default();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let mut sink = Sink::new(store, kind);
        for choice in chosen.iter().filter(|c| c.kind == kind) {
            copy_live_blobs(store, choice, live, &mut sink, &mut out)?;
            Progress::add(&progress.files, 1);
        }
        out.packs.extend(sink.finish()?);
    }
    Ok(out)
}

fn copy_live_blobs(
    store: &Store,
    choice: &PackChoice,
    live: &LiveSet,
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), PruneError> {
    let row = PackRow {
        rowid: choice.rowid,
        id: choice.id,
        kind: choice.kind,
        size: choice.size,
    };
    let key = pack::key(&choice.id);
    for (id, at) in store.catalog().blobs_in_pack(&row)? {
        if !live.contains(&id) {
            continue;
        }
        let stored = store
            .backend()
            .read_range(&key, at.offset, at.stored_len as usize)
            .map_err(pack::PackError::from)?;
        // Decoding proves the stored bytes are the blob; the copy is then
        // of the very bytes checked.
        pack::reader::decode_blob(&id, &at, stored.clone())?;
        let encoded = Encoded {
            compression: at.compression,
            bytes: stored,
        };
        sink.add(id, at.raw_len, &encoded)?;
        out.bytes += u64::from(at.stored_len);
        out.blobs += 1;
    }
    Ok(())
}

/// New packs of one kind, sealed and published as each fills.
struct Sink<'s> {
    store: &'s Store,
    kind: BlobKind,
    writer: Option<PackWriter>,
    done: Vec<PublishedPack>,
}

impl<'s> Sink<'s> {
    fn new(store: &'s Store, kind: BlobKind) -> Self {
        Self {
            store,
            kind,
            writer: None,
            done: Vec::new(),
        }
    }

    fn add(
        &mut self,
        id: crate::id::BlobId,
        raw_len: u32,
        blob: &Encoded,
    ) -> Result<(), PruneError> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self
                .writer
                .insert(PackWriter::create(self.store.backend(), self.kind)?),
        };
        writer.add(id, raw_len, blob)?;
        if writer.data_len() >= self.store.config().pack.target_size {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> Result<(), PruneError> {
        if let Some(writer) = self.writer.take() {
            let published = writer.seal()?.publish(self.store.backend())?;
            crash::point("prune-pack-written");
            self.done.push(published);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<PublishedPack>, PruneError> {
        self.seal()?;
        Ok(self.done)
    }
}
