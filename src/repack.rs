//! Repacking: copying chosen blobs of some packs into new packs. Prune
//! copies the live blobs of mostly-empty packs, repair the intact blobs of
//! damaged ones, and a snapshot the blobs it reuses from condemned packs.
//!
//! Blobs are copied as stored (still compressed), but checked on the way:
//! a damaged blob must stop the prune rather than be laundered into a
//! fresh pack under a good name. Within one store, a pack whose kept blobs
//! span most of it is proven to be its id and its blobs copied without
//! decoding any ([`proven`]), which was over a quarter of a repacking
//! prune's time. (A pack planted in an unencrypted store by someone who
//! can write to it is moved as it is: such a store has no authenticity to
//! keep; every read and `verify --read-data` still check content against
//! ids.) Any other pack, one that does not prove out, and every pack
//! `copy` reads are read in spans and each blob decoded and checked
//! against its id, which names the damage: copy's check is what keeps a
//! bad source's bytes out of the off-site store. No new pack is published
//! before every blob in it is proven. The
//! new packs are published (durable in `packs/`) but not cataloged here:
//! the caller catalogs them (prune in its single commit transaction), so a
//! crash before that leaves them as unreferenced packs the next prune
//! removes.

use std::borrow::Cow;
use std::collections::HashSet;

use rayon::prelude::*;

use crate::backend::BackendError;
use crate::catalog::CatalogError;
use crate::catalog::prune::PackRow;
use crate::compress::Compression;
use crate::compress::dictionary::Renumbering;
use crate::crash;
use crate::id::{BlobId, PackId};
use crate::pack::writer::PublishedPack;
use crate::pack::{self, BlobKind, BlobLocation, PackError, PackWriter};
use crate::progress::Progress;
use crate::store::Store;

mod proven;

/// Why a repack stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepackError {
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading a pack failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A blob did not check out, or a pack could not be read.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A new pack could not be written: the machine's or the target's
    /// failure, never damage, whatever error kind the write met.
    #[error("writing a new pack: {0}")]
    Write(#[source] PackError),
    /// A blob made with a dictionary the target store was not given.
    #[error("blob {blob} needs a compression dictionary that was not copied to the target")]
    DictionaryNotCarried {
        /// The blob.
        blob: BlobId,
    },
}

impl RepackError {
    /// Whether the store's data stopped the repack (a blob that does not
    /// check out, a pack or dictionary gone): a prune or copy so stopped
    /// exits 4, as any command stopped on damage does.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Pack(e) => e.is_damage(),
            Self::Backend(e) => e.is_damage(),
            Self::Catalog(_) | Self::Write(_) | Self::DictionaryNotCarried { .. } => false,
        }
    }
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

impl Repacked {
    /// Counts a blob copied from `at`.
    fn count(&mut self, at: &BlobLocation) {
        self.bytes += u64::from(at.stored_len);
        self.blobs += 1;
    }
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
    repack_unlike(store, chosen, keep, &HashSet::new(), progress)
}

/// [`repack`] into new packs none of which is one of `avoid` (a capture
/// rescuing blobs from condemned packs: the same blobs in the same order
/// would make the very pack condemned, see `PackWriter::seal_unlike`).
pub fn repack_unlike(
    store: &Store,
    chosen: &[PackRow],
    keep: &dyn Fn(&BlobId) -> bool,
    avoid: &HashSet<PackId>,
    progress: &Progress,
) -> Result<Repacked, RepackError> {
    progress.set_totals(chosen.len() as u64, chosen.iter().map(|p| p.size).sum());
    let target = Target {
        store,
        renumbering: &Renumbering::Same,
        avoid,
        checks_every_blob: false,
    };
    copy_packs(store, &target, chosen, keep, progress)
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
    let target = Target {
        store: to,
        renumbering,
        avoid: &HashSet::new(),
        checks_every_blob: true,
    };
    copy_packs(from, &target, chosen, keep, progress)
}

/// Where repacked blobs go: the store, the dictionary numbers it knows
/// them by, and packs its new ones must not be.
struct Target<'t> {
    store: &'t Store,
    renumbering: &'t Renumbering,
    avoid: &'t HashSet<PackId>,
    /// Decode and check every blob, never trusting a pack's hash: `copy`,
    /// whose check of each blob is what keeps a bad source's bytes out of
    /// the off-site store.
    checks_every_blob: bool,
}

fn copy_packs(
    from: &Store,
    to: &Target<'_>,
    chosen: &[PackRow],
    keep: &dyn Fn(&BlobId) -> bool,
    progress: &Progress,
) -> Result<Repacked, RepackError> {
    let mut out = Repacked::default();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let mut sink = Sink::new(to, kind);
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
/// the blobs of a larger one (a store with huge packs) are read in spans of
/// at most this (a blob larger still alone).
const MAX_SPAN: u64 = 64 << 20;

/// Blobs larger than this, decoded, are checked one at a time: every core
/// decoding a tree of up to 1 GiB at once is too much memory.
const MAX_CHECKED_AT_ONCE: u32 = 64 << 20;

type Row = (BlobId, BlobLocation);

fn copy_blobs(
    store: &Store,
    pack: &PackRow,
    keep: &dyn Fn(&BlobId) -> bool,
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    let blobs: Vec<Row> = store
        .catalog()
        .blobs_in_pack(pack)?
        .into_iter()
        .filter(|(id, _)| keep(id))
        .collect();
    if blobs.is_empty() {
        return Ok(());
    }
    let proven = match sink.to.checks_every_blob {
        true => None,
        false => proven::proven(store, pack, &blobs),
    };
    if let Some(source) = proven {
        return proven::copy_proven(store, pack, source, &blobs, sink, out);
    }
    let key = pack::key(&pack.id);
    for run in spans(&blobs) {
        copy_run(store, &key, run, sink, out)?;
    }
    Ok(())
}

/// `blobs` (in pack order) cut into runs that each span at most
/// [`MAX_SPAN`] of the pack, a larger blob being a run of its own.
fn spans(blobs: &[Row]) -> Vec<&[Row]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let ends = blobs.get(i).is_none_or(|(_, next)| {
            let first = blobs[start].1.offset;
            next.offset < first || next.offset + u64::from(next.stored_len) > first + MAX_SPAN
        });
        if ends {
            runs.push(&blobs[start..i]);
            start = i;
        }
    }
    runs
}

/// Copies one run of a pack's blobs, read in one go and checked first.
fn copy_run(
    store: &Store,
    key: &str,
    run: &[Row],
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    let read = |offset: u64, len: u64| store.backend().get_range(key, offset, len as usize);
    let start = run.first().map_or(0, |(_, at)| at.offset);
    let end = run
        .iter()
        .map(|(_, at)| at.offset + u64::from(at.stored_len))
        .max()
        .unwrap_or(start);
    let span = read(start, end - start)?;
    let stored = run
        .iter()
        .map(|(_, at)| {
            let lo = at.offset.checked_sub(start).map(|lo| lo as usize);
            let in_span = lo.and_then(|lo| span.get(lo..lo + at.stored_len as usize));
            match in_span {
                Some(bytes) => Ok(Cow::Borrowed(bytes)),
                // Not covered by the span (a row overlapping another): its
                // own read, which fails cleanly if it lies outside the file.
                None => read(at.offset, u64::from(at.stored_len)).map(Cow::Owned),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_all(store, run, &stored)?;
    for ((id, at), stored) in run.iter().zip(&stored) {
        sink.add(*id, at.raw_len, at.compression, stored)?;
        sink.seal_if_full()?;
        out.count(at);
    }
    Ok(())
}

/// Proves the bytes are each blob before they are copied under its id,
/// on every core (decoding and hashing each blob was a fifth of a
/// repacking prune, on one core), but one at a time where a blob is large.
/// The error is the first bad blob's in pack order, whichever thread met
/// it: the same damage is named the same way on every run.
fn check_all(store: &Store, run: &[Row], stored: &[Cow<'_, [u8]>]) -> Result<(), RepackError> {
    let backend = store.backend();
    let check = |((id, at), bytes): (&Row, &Cow<'_, [u8]>)| {
        pack::reader::check_stored(backend, id, at, bytes)
    };
    if run.iter().any(|(_, at)| at.raw_len > MAX_CHECKED_AT_ONCE) {
        run.iter().zip(stored).try_for_each(check)?;
    } else {
        let checked: Vec<_> = run.par_iter().zip(stored).map(check).collect();
        checked.into_iter().collect::<Result<(), _>>()?;
    }
    Ok(())
}

/// New packs of one kind, each sealed and published once full and every
/// blob in it proven.
struct Sink<'s> {
    to: &'s Target<'s>,
    kind: BlobKind,
    writer: Option<PackWriter>,
    done: Vec<PublishedPack>,
}

impl<'s> Sink<'s> {
    fn new(to: &'s Target<'s>, kind: BlobKind) -> Self {
        Self {
            to,
            kind,
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
            .to
            .renumbering
            .apply(compression)
            .ok_or(RepackError::DictionaryNotCarried { blob: id })?;
        let store = self.to.store;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                PackWriter::create(store.staging(), self.kind, store.backend().vault())
                    .map_err(RepackError::Write)?,
            ),
        };
        writer
            .add_stored(id, raw_len, compression, stored)
            .map_err(RepackError::Write)?;
        Ok(())
    }

    /// Seals the open pack (all of it proven) if `blobs` more blobs of
    /// `bytes` would take it past its target size or its most blobs:
    /// they go in unsealed until all of them are proven, and a pack of
    /// more than `MAX_BLOBS` blobs could not be indexed.
    fn make_room(&mut self, blobs: usize, bytes: u64) -> Result<(), RepackError> {
        let target = self.to.store.config().pack.target_size;
        match &self.writer {
            Some(writer) if !writer.has_room(target, blobs, bytes) => self.seal(),
            _ => Ok(()),
        }
    }

    /// Seals and publishes the open pack if it is full: called only once
    /// every blob in it is proven, so that no pack holding a blob still to
    /// be proven is ever published.
    fn seal_if_full(&mut self) -> Result<(), RepackError> {
        let target = self.to.store.config().pack.target_size;
        match &self.writer {
            Some(writer) if writer.is_full(target) => self.seal(),
            _ => Ok(()),
        }
    }

    fn seal(&mut self) -> Result<(), RepackError> {
        if let Some(writer) = self.writer.take() {
            let sealed = writer
                .seal_unlike(self.to.avoid)
                .map_err(RepackError::Write)?;
            let published = sealed
                .publish(self.to.store.backend())
                .map_err(RepackError::Write)?;
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

#[cfg(test)]
mod tests {
    use super::proven::worth_reading_whole;
    use super::*;
    use crate::id::PackId;

    fn row(offset: u64, stored_len: u32) -> Row {
        let at = BlobLocation {
            pack: PackId::from_bytes([0; 32]),
            kind: BlobKind::Data,
            offset,
            stored_len,
            raw_len: stored_len,
            compression: Compression::None,
        };
        (BlobId::of(&offset.to_le_bytes()), at)
    }

    fn pack_of(size: u64) -> PackRow {
        PackRow {
            rowid: 1,
            id: PackId::from_bytes([0; 32]),
            kind: BlobKind::Data,
            size,
        }
    }

    #[test]
    fn a_pack_is_read_whole_only_where_its_kept_blobs_span_three_quarters_of_it() {
        const MIB: u64 = 1 << 20;
        let pack = pack_of(16 * MIB);
        let spread = [row(0, 1000), row(12 * MIB - 1000, 1000)];
        assert!(worth_reading_whole(&pack, &spread));
        let short = [row(0, 1000), row(12 * MIB - 1001, 1000)];
        assert!(!worth_reading_whole(&pack, &short));
        assert!(!worth_reading_whole(&pack, &[row(MIB, 1000)]));
        let huge = pack_of(MAX_SPAN + 1);
        assert!(!worth_reading_whole(
            &huge,
            &[row(0, (MAX_SPAN - 48) as u32)]
        ));
    }

    #[test]
    fn a_read_that_finds_a_pack_gone_is_damage_and_a_write_that_does_is_not() {
        let gone = || {
            PackError::Io(BackendError {
                location: "packs/ab/ab.pack".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        };
        assert!(RepackError::Pack(gone()).is_damage());
        // A staging directory removed under a prune, a target bucket that
        // is not there: the machine's failure, exit 1.
        assert!(!RepackError::Write(gone()).is_damage());
    }

    #[test]
    fn a_huge_pack_is_read_in_spans_of_at_most_max_span_and_a_larger_blob_alone() {
        const MIB: u64 = 1 << 20;
        let half = (MAX_SPAN / 2) as u32;
        let rows = [
            row(0, MIB as u32),
            row(MIB, half),
            row(MIB + u64::from(half), half),
            row(MIB + 2 * u64::from(half), 2 * MAX_SPAN as u32),
            row(MIB + 2 * u64::from(half) + 2 * MAX_SPAN, 10),
        ];
        let lengths: Vec<usize> = spans(&rows).iter().map(|r| r.len()).collect();
        assert_eq!(lengths, [2, 1, 1, 1]);
        assert!(spans(&[]).is_empty());
    }
}
