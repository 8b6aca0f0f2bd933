//! Copying the blobs of a pack proven to be its id, without decoding
//! them. A pack of at most [`MAX_SPAN`] whose kept blobs span most of it is
//! checked against its id, the BLAKE3 of the file, which proves its bytes
//! unchanged since they were written: a remote pack read whole, a local
//! one streamed twice, a block at a time (hashed, then hashed again as its
//! blobs are copied, no new pack being published before the second hash
//! matches too). Each copied blob must also be an entry of its header
//! exactly as cataloged and, in an encrypted store, open with the key
//! (bound to its id, so only a key holder made it).

use super::{MAX_SPAN, RepackError, Repacked, Row, Sink};
use crate::backend::BackendError;
use crate::catalog::prune::PackRow;
use crate::compress::Compression;
use crate::crash;
use crate::pack::stream::PackStream;
use crate::pack::{self, BlobLocation};
use crate::store::Store;

/// Where the blobs of a pack that proved to be its id are copied from.
pub(super) enum Proven {
    /// The pack read whole: a remote pack, downloaded once.
    Whole(Vec<u8>),
    /// A local pack, hashed a block at a time and read so again for the
    /// copy: the second read is the page cache's, and no pack is held
    /// whole (one was most of a repacking prune's peak memory).
    Streamed,
}

/// How the pack's blobs can be copied without decoding them, if that is
/// worth it and the pack proves out: its bytes are its id, every row of
/// `blobs` is one of its entries exactly as the catalog has it, and every
/// dictionary they need is at hand. `None` otherwise, failed reads
/// included: the blob by blob path then reads again and names what is
/// wrong.
pub(super) fn proven(store: &Store, pack: &PackRow, blobs: &[Row]) -> Option<Proven> {
    if !worth_reading_whole(pack, blobs) {
        return None;
    }
    let backend = store.backend();
    let (source, entries) = if backend.is_remote() {
        let file = backend.get(&pack::key(&pack.id), pack.size).ok()?;
        let entries = pack::reader::whole_pack_entries(backend.vault(), &pack.id, &file).ok()?;
        (Proven::Whole(file), entries)
    } else {
        let (bytes, id) = stream(store, pack).ok()?.finish(pack.size).ok()?;
        let (entries, size) = pack::reader::read_header(backend, &pack.id).ok()?;
        if id != pack.id || bytes != pack.size || size != pack.size {
            return None;
        }
        crash::point("repack-pack-hashed");
        (Proven::Streamed, entries)
    };
    let listed = blobs.iter().all(|row| is_listed(&entries, pack, row));
    (listed && dictionaries_at_hand(store, blobs)).then_some(source)
}

fn stream(store: &Store, pack: &PackRow) -> Result<PackStream, BackendError> {
    let reader = store.backend().reader(&pack::key(&pack.id))?;
    Ok(PackStream::new(reader, pack.size))
}

/// Whether the pack is small enough to read whole and its kept blobs span
/// at least three quarters of it: the whole file then costs at most a
/// third more bytes than the span the blob by blob path reads (a remote
/// pack's download), and the decoding it saves is most of the pack's.
pub(super) fn worth_reading_whole(pack: &PackRow, blobs: &[Row]) -> bool {
    let start = blobs.first().map_or(0, |(_, at)| at.offset);
    let end = blobs
        .iter()
        .map(|(_, at)| at.offset + u64::from(at.stored_len));
    let span = end.max().unwrap_or(start).saturating_sub(start);
    pack.size <= MAX_SPAN && span.saturating_mul(4) >= pack.size.saturating_mul(3)
}

/// Whether `entries` (the pack's header) has `row` exactly.
fn is_listed(entries: &[pack::PackEntry], pack: &PackRow, (id, at): &Row) -> bool {
    let found = entries.binary_search_by_key(&at.offset, |e| e.offset);
    found.is_ok_and(|i| entries[i].id == *id && BlobLocation::in_pack(pack.id, &entries[i]) == *at)
}

/// Whether `stored`, the bytes of `row`, open with the store's key (always
/// in an unencrypted store): bound to the blob's id, only a key holder
/// made them.
fn opens(store: &Store, stored: &[u8], (id, at): &Row) -> bool {
    let vault = store.backend().vault();
    !vault.is_encrypted()
        || vault
            .open_blob(at.kind.code(), id.as_bytes(), stored)
            .is_ok()
}

/// Whether every store dictionary the blobs were made with can be read: a
/// blob whose dictionary is lost is damage, which stops the repack as the
/// blob by blob path does.
fn dictionaries_at_hand(store: &Store, blobs: &[Row]) -> bool {
    let numbers: std::collections::BTreeSet<u16> = blobs
        .iter()
        .filter(|(_, at)| matches!(at.compression, Compression::Dictionary(_)))
        .map(|(_, at)| at.compression.dictionary())
        .collect();
    numbers
        .into_iter()
        .all(|n| store.backend().dictionary(n).is_ok())
}

/// The stored bytes of the blob at `at` in `file`, a pack read whole whose
/// header lists it ([`is_listed`]: its entries tile the file's data, so the
/// range lies within it).
fn stored_in<'f>(file: &'f [u8], at: &BlobLocation) -> &'f [u8] {
    let start = at.offset as usize;
    &file[start..start + at.stored_len as usize]
}

/// Copies `blobs` (in pack order) out of a pack that is [`proven`].
pub(super) fn copy_proven(
    store: &Store,
    pack: &PackRow,
    source: Proven,
    blobs: &[Row],
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    match source {
        Proven::Whole(file) => {
            for row in blobs {
                copy_one(store, row, stored_in(&file, &row.1), sink, out)?;
                sink.seal_if_full()?;
            }
            Ok(())
        }
        Proven::Streamed => copy_streamed(store, pack, blobs, sink, out),
    }
}

/// Copies `blobs` out of a local pack read again a block at a time. No
/// pack the sink fills meanwhile is sealed until the second read proves the
/// same bytes again: bytes that changed since the first read stop the
/// repack with nothing they went into published (nor cataloged).
fn copy_streamed(
    store: &Store,
    pack: &PackRow,
    blobs: &[Row],
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    let kept = blobs.iter().map(|(_, at)| u64::from(at.stored_len)).sum();
    sink.make_room(blobs.len(), kept)?;
    let mut stream = stream(store, pack)?;
    let mut stored = Vec::new();
    for row in blobs {
        let at = &row.1;
        stream
            .read_at(at.offset, at.stored_len as usize, &mut stored, pack.size)
            .map_err(|why| read_again_failed(pack, &stream, &why))?;
        copy_one(store, row, &stored, sink, out)?;
    }
    match stream.finish(pack.size) {
        Ok((bytes, id)) if (bytes, id) == (pack.size, pack.id) => sink.seal_if_full(),
        Ok(_) => Err(changed(pack, "content no longer matches its id").into()),
        Err(why) => Err(read_again_failed(pack, &stream, &why).into()),
    }
}

/// The failure of reading a proven pack again: the machine's if the read
/// failed, else damage (the pack changed since it proved out).
fn read_again_failed(pack: &PackRow, stream: &PackStream, why: &str) -> BackendError {
    if !stream.read_failed() {
        return changed(pack, why);
    }
    BackendError {
        location: pack::key(&pack.id),
        source: std::io::Error::other(format!("reading it again to repack it: {why}")),
    }
}

/// A pack that read differently the second time: damage.
fn changed(pack: &PackRow, why: &str) -> BackendError {
    BackendError {
        location: pack::key(&pack.id),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("changed while it was repacked: {why}"),
        ),
    }
}

/// Copies one blob of a proven pack, its bytes `stored`: a sealed blob that
/// does not open is damage, named as the blob by blob path names it.
fn copy_one(
    store: &Store,
    row: &Row,
    stored: &[u8],
    sink: &mut Sink<'_>,
    out: &mut Repacked,
) -> Result<(), RepackError> {
    let (id, at) = row;
    if !opens(store, stored, row) {
        pack::reader::check_stored(store.backend(), id, at, stored)?;
    }
    sink.add(*id, at.raw_len, at.compression, stored)?;
    out.count(at);
    Ok(())
}
