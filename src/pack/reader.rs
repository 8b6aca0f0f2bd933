//! Reading packs back: a header (for catalog rebuilds and checks) or a single
//! blob, always verified against its id before it is returned.

use std::io::{self, Read};

use super::format::{self, PackEntry, TRAILER_LEN};
use super::spans::Spans;
use super::{BlobLocation, PackError, key};
use crate::backend::{Backend, Object};
use crate::compress;
use crate::crypt::Vault;
use crate::id::{BlobId, PackId};

/// How much of a pack's end one read fetches: the trailer and the header of
/// a data pack (16 MiB of ~1 MiB chunks: ~1 KiB of header), so most headers
/// cost a single read; tree packs with long headers take a second one.
const TAIL_READ: u64 = 16 * 1024;

/// Reads and checks a pack's header; returns its entries and the file size.
pub fn read_header(backend: &Backend, pack: &PackId) -> Result<(Vec<PackEntry>, u64), PackError> {
    let name = key(pack);
    let (tail, size) = backend.get_tail(&name, TAIL_READ)?;
    let bad = |source| PackError::Format {
        pack: *pack,
        source,
    };
    let trailer = format::decode_trailer(&tail, size).map_err(bad)?;
    check_sealing(backend.vault(), pack, trailer.version)?;
    let header_len = u64::from(trailer.header_len);
    let data_len = size - TRAILER_LEN as u64 - header_len;
    let header = if header_len + TRAILER_LEN as u64 <= tail.len() as u64 {
        let end = tail.len() - TRAILER_LEN;
        tail[end - header_len as usize..end].to_vec()
    } else {
        backend.get_range(&name, data_len, header_len as usize)?
    };
    format::check_header(&header, &trailer).map_err(bad)?;
    let vault = backend.vault();
    let plain = vault
        .open_header(&header)
        .map_err(|source| PackError::Sealed {
            what: "header".into(),
            pack: *pack,
            source,
        })?;
    let entries = format::decode_entries(&plain, data_len, vault.overhead()).map_err(bad)?;
    Ok((entries, size))
}

/// Refuses a pack whose version does not match the store: a plain pack
/// planted in an encrypted store would otherwise be read unauthenticated.
fn check_sealing(vault: &Vault, pack: &PackId, version: u32) -> Result<(), PackError> {
    let (wanted, what) = match vault.is_encrypted() {
        true => (format::SEALED_VERSION, "an encrypted"),
        false => (format::VERSION, "an unencrypted"),
    };
    if version == wanted {
        return Ok(());
    }
    Err(PackError::Sealing {
        pack: *pack,
        version,
        what,
    })
}

/// The inner (compressed or raw) bytes of a blob's stored bytes: opened
/// with the store's key, bound to the blob's id.
fn unseal<'a>(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, PackError> {
    vault
        .open_blob(at.kind.code(), id.as_bytes(), stored)
        .map_err(|source| PackError::Sealed {
            what: format!("blob {id}"),
            pack: at.pack,
            source,
        })
}

/// Reads one blob, decodes it and checks that its BLAKE3 is `id`.
pub fn read_blob(backend: &Backend, id: &BlobId, at: &BlobLocation) -> Result<Vec<u8>, PackError> {
    let stored = backend.get_range(&key(&at.pack), at.offset, at.stored_len as usize)?;
    decode_blob(backend.vault(), id, at, stored)
}

/// Reads one blob and hands its decoded bytes to `consume` as a stream,
/// without holding them whole (a large tree is decoded as it is read).
/// The bytes are counted and hashed on the way; the outer result is `Err`
/// if the blob does not decode to `raw_len` bytes whose BLAKE3 is `id`,
/// whatever `consume` made of them (it must not act on them before this
/// returns), else it is what `consume` returned.
pub fn read_blob_streaming<T, E>(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    consume: impl FnOnce(&mut dyn io::Read) -> Result<T, E>,
) -> Result<Result<T, E>, PackError> {
    let stored = backend.get_range(&key(&at.pack), at.offset, at.stored_len as usize)?;
    decode_streaming(backend.vault(), id, at, &stored, consume)
}

/// [`read_blob_streaming`] of stored bytes already read.
pub fn decode_streaming<T, E>(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
    consume: impl FnOnce(&mut dyn io::Read) -> Result<T, E>,
) -> Result<Result<T, E>, PackError> {
    let decode_error = |source| PackError::Decode {
        blob: *id,
        pack: at.pack,
        source,
    };
    let raw_len = at.raw_len as usize;
    let inner = unseal(vault, id, at, stored)?;
    let decoder = compress::decoder(at.compression, &inner, raw_len).map_err(decode_error)?;
    // One byte more than recorded is enough to tell the length is wrong.
    let mut hashing = Hashing::new(decoder.take(raw_len as u64 + 1), vault.hasher());
    let consumed = consume(&mut hashing);
    let (got, actual) = hashing
        .drain()
        .map_err(|e| decode_error(compress::DecodeError::Zstd(e)))?;
    if got != raw_len {
        return Err(decode_error(compress::DecodeError::Length {
            want: raw_len,
            got,
        }));
    }
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(consumed)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    count: usize,
}

impl<R: io::Read> Hashing<R> {
    fn new(inner: R, hasher: blake3::Hasher) -> Self {
        Self {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Reads what is left; returns the byte count and the hash of all.
    fn drain(mut self) -> io::Result<(usize, BlobId)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.count, BlobId::from(self.hasher.finalize())))
    }
}

impl<R: io::Read> io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n;
        Ok(n)
    }
}

/// Decodes stored bytes read from `at` and checks them against `id`.
pub fn decode_blob(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: Vec<u8>,
) -> Result<Vec<u8>, PackError> {
    if vault.is_encrypted() {
        return decode_slice(vault, id, at, &stored);
    }
    let raw = compress::decode_owned(at.compression, stored, at.raw_len as usize);
    checked(vault, id, at, raw)
}

/// [`decode_blob`] for stored bytes that are part of a larger read: a
/// compressed blob is decoded straight from them, without a copy first.
fn decode_slice(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
) -> Result<Vec<u8>, PackError> {
    let inner = unseal(vault, id, at, stored)?;
    let raw = match inner {
        std::borrow::Cow::Owned(owned) => {
            compress::decode_owned(at.compression, owned, at.raw_len as usize)
        }
        std::borrow::Cow::Borrowed(slice) => {
            compress::decode(at.compression, slice, at.raw_len as usize)
        }
    };
    checked(vault, id, at, raw)
}

/// The decoded blob, if it decoded and its BLAKE3 is `id`.
fn checked(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    raw: Result<Vec<u8>, compress::DecodeError>,
) -> Result<Vec<u8>, PackError> {
    let raw = raw.map_err(|source| PackError::Decode {
        blob: *id,
        pack: at.pack,
        source,
    })?;
    let actual = BlobId::from(vault.hash(&raw));
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(raw)
}

/// Checks stored bytes read from `at` against `id` without keeping the
/// decoded blob: for copying blobs as stored (repacking) after proving them.
pub fn check_stored(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
) -> Result<(), PackError> {
    let stored = unseal(vault, id, at, stored)?;
    let actual = match at.compression {
        compress::Compression::None if stored.len() == at.raw_len as usize => {
            BlobId::from(vault.hash(&stored))
        }
        _ => {
            let raw = compress::decode(at.compression, &stored, at.raw_len as usize).map_err(
                |source| PackError::Decode {
                    blob: *id,
                    pack: at.pack,
                    source,
                },
            )?;
            BlobId::from(vault.hash(&raw))
        }
    };
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(())
}

/// Largest span of a pack read in one go when blobs lie back to back.
pub const MAX_RUN: u64 = 4 << 20;

/// Largest decoded size of one run: what it holds in memory at once.
pub const MAX_RUN_RAW: u64 = 16 << 20;

/// Splits `blobs` (in the order they are wanted) into runs that lie back to
/// back in one pack, span at most [`MAX_RUN`] bytes and decode to at most
/// [`MAX_RUN_RAW`] (a single larger blob is a run of its own), so that each
/// run is one read: a database image cut into thousands of page runs is
/// stored in order and comes back in a few large reads, not one per page.
pub fn runs<'a>(blobs: &'a [(BlobId, &'a BlobLocation)]) -> Vec<&'a [(BlobId, &'a BlobLocation)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut raw = 0u64;
    for (i, (_, at)) in blobs.iter().enumerate() {
        let joins = i > start && {
            let (_, first) = blobs[start];
            let (_, prev) = blobs[i - 1];
            let end = prev.offset + u64::from(prev.stored_len);
            at.pack == first.pack
                && at.offset == end
                && end + u64::from(at.stored_len) - first.offset <= MAX_RUN
                && raw + u64::from(at.raw_len) <= MAX_RUN_RAW
        };
        if i > start && !joins {
            out.push(&blobs[start..i]);
            start = i;
            raw = 0;
        }
        raw += u64::from(at.raw_len);
    }
    if start < blobs.len() {
        out.push(&blobs[start..]);
    }
    out
}

/// Pack files kept open across reads: a file's chunks alternate between a
/// few packs (unchanged data in old packs, changes in new ones), and
/// opening a pack per run cost as much as reading it.
pub struct PackFiles<'b> {
    backend: &'b Backend,
    /// Where runs of a remote store are read from, when they were planned.
    spans: Option<&'b Spans<'b>>,
    open: Vec<(PackId, Object)>,
}

/// Packs kept open by one [`PackFiles`].
const OPEN_PACKS: usize = 16;

impl<'b> PackFiles<'b> {
    /// None open yet.
    pub fn new(backend: &'b Backend) -> Self {
        Self::through(backend, None)
    }

    /// None open yet; runs inside `spans` are read from them (see
    /// [`Spans`]: a few requests per pack instead of one per run).
    pub fn through(backend: &'b Backend, spans: Option<&'b Spans<'b>>) -> Self {
        Self {
            backend,
            spans,
            open: Vec::new(),
        }
    }

    /// `len` bytes of `pack` from `offset`: from its span if one was
    /// planned, else with a read of the open pack.
    fn read_range(&mut self, pack: &PackId, offset: u64, len: usize) -> Result<Vec<u8>, PackError> {
        if let Some(read) = self.spans.and_then(|s| s.read(pack, offset, len)) {
            return Ok(read?);
        }
        Ok(self.get(pack)?.read_range(offset, len)?)
    }

    fn get(&mut self, pack: &PackId) -> Result<&Object, PackError> {
        let i = match self.open.iter().position(|(id, _)| id == pack) {
            Some(i) => i,
            None => {
                if self.open.len() == OPEN_PACKS {
                    self.open.remove(0);
                }
                self.open.push((*pack, self.backend.open(&key(pack))?));
                self.open.len() - 1
            }
        };
        Ok(&self.open[i].1)
    }
}

/// Runs with fewer blobs than this are decoded on the calling thread:
/// handing tiny runs to other threads costs more than it saves.
const PARALLEL_RUN: usize = 16;

/// Reads one run (see [`runs`]) with a single read and decodes each of its
/// blobs, checked against its id; long runs are decoded in parallel.
pub fn read_run(
    files: &mut PackFiles<'_>,
    run: &[(BlobId, &BlobLocation)],
) -> Result<Vec<Vec<u8>>, PackError> {
    use rayon::prelude::*;
    let Some((_, first)) = run.first() else {
        return Ok(Vec::new());
    };
    let len: u64 = run.iter().map(|(_, at)| u64::from(at.stored_len)).sum();
    let bytes = files.read_range(&first.pack, first.offset, len as usize)?;
    let mut slices = Vec::with_capacity(run.len());
    let mut rest = &bytes[..];
    for (id, at) in run {
        let (stored, tail) = rest.split_at(at.stored_len as usize);
        slices.push((id, *at, stored));
        rest = tail;
    }
    let vault = files.backend.vault();
    let decode =
        |(id, at, stored): &(&BlobId, &BlobLocation, &[u8])| decode_slice(vault, id, at, stored);
    if slices.len() < PARALLEL_RUN {
        slices.iter().map(decode).collect()
    } else {
        slices.par_iter().map(decode).collect()
    }
}

/// How much decoded data [`stream`] decodes ahead of its consumer in one
/// batch (at least one run, so up to [`MAX_RUN_RAW`]); two batches are held
/// at once, one being consumed and the next being decoded. 4 MiB made the
/// 300 MB database restore 20% slower (more, smaller hand-offs); 8 MiB
/// holds at most ~16 MiB per file being restored, 48 MiB with huge runs.
const AHEAD_RAW: u64 = 8 << 20;

/// Hands the decoded, checked content of `blobs` to `sink` in order, while
/// the next batch of runs is read and decoded on all cores: restoring one
/// large file (a database image broken into thousands of runs by the pages
/// that changed) used to decode on one thread and write in between. A batch
/// of one run (every small file) is read through `files`, which the caller
/// keeps open across files.
pub fn stream<E: From<PackError> + Send>(
    files: &mut PackFiles<'_>,
    blobs: &[(BlobId, &BlobLocation)],
    mut sink: impl FnMut(&[u8]) -> Result<(), E> + Send,
) -> Result<(), E> {
    let runs = runs(blobs);
    let mut pending: Option<Decoded> = None;
    for batch in batches(&runs) {
        let next = match pending.take() {
            None => decode_batch(files, batch),
            Some(ready) => {
                let (written, next) =
                    rayon::join(|| consume(ready, &mut sink), || decode_batch(files, batch));
                written?;
                next
            }
        };
        pending = Some(next);
    }
    match pending {
        Some(ready) => consume(ready, &mut sink),
        None => Ok(()),
    }
}

/// One batch of runs, decoded: per run, its blobs in order.
type Decoded = Result<Vec<Vec<Vec<u8>>>, PackError>;

type Run<'a> = &'a [(BlobId, &'a BlobLocation)];

/// Consecutive runs grouped so that each group decodes to about
/// [`AHEAD_RAW`] (a single larger run is a group of its own).
fn batches<'r, 'a>(runs: &'r [Run<'a>]) -> Vec<&'r [Run<'a>]> {
    let mut out = Vec::new();
    let (mut start, mut raw) = (0, 0u64);
    for (i, run) in runs.iter().enumerate() {
        raw += run.iter().map(|(_, at)| u64::from(at.raw_len)).sum::<u64>();
        if raw >= AHEAD_RAW {
            out.push(&runs[start..=i]);
            (start, raw) = (i + 1, 0);
        }
    }
    if start < runs.len() {
        out.push(&runs[start..]);
    }
    out
}

fn decode_batch(files: &mut PackFiles<'_>, batch: &[Run<'_>]) -> Decoded {
    use rayon::prelude::*;
    if let [run] = batch {
        return Ok(vec![read_run(files, run)?]);
    }
    let (backend, spans) = (files.backend, files.spans);
    batch
        .par_iter()
        .map_init(
            || PackFiles::through(backend, spans),
            |files, run| read_run(files, run),
        )
        .collect()
}

fn consume<E: From<PackError>>(
    ready: Decoded,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    for run in ready? {
        for blob in run {
            sink(&blob)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    fn at(pack: u8, offset: u64, len: u32) -> BlobLocation {
        BlobLocation {
            pack: PackId::from_bytes([pack; 32]),
            kind: super::super::BlobKind::Data,
            offset,
            stored_len: len,
            raw_len: len,
            compression: Compression::None,
        }
    }

    #[test]
    fn a_streamed_blob_is_checked_for_its_length_and_hash_whatever_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::local(dir.path(), 0o600);
        let raw: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let packed = zstd::bulk::compress(&raw, 3).unwrap();
        let pack = PackId::from_bytes([7; 32]);
        let path = dir.path().join(key(&pack));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, [&b"pad"[..], &packed].concat()).unwrap();
        let at = BlobLocation {
            offset: 3,
            stored_len: packed.len() as u32,
            raw_len: raw.len() as u32,
            compression: Compression::Zstd,
            ..at(7, 0, 0)
        };
        let id = BlobId::of(&raw);
        let first_ten = |r: &mut dyn io::Read| {
            let mut head = vec![0u8; 10];
            r.read_exact(&mut head).map(|()| head)
        };
        let head = read_blob_streaming(&backend, &id, &at, first_ten).unwrap();
        assert_eq!(head.unwrap(), raw[..10]);
        let other = BlobId::of(b"other");
        let wrong = read_blob_streaming(&backend, &other, &at, first_ten);
        assert!(matches!(wrong, Err(PackError::HashMismatch { .. })));
        for raw_len in [raw.len() - 1, raw.len() + 1] {
            let at = BlobLocation {
                raw_len: raw_len as u32,
                ..at
            };
            let wrong = read_blob_streaming(&backend, &id, &at, first_ten);
            assert!(matches!(wrong, Err(PackError::Decode { .. })), "{raw_len}");
        }
    }

    #[test]
    fn runs_join_back_to_back_blobs_of_one_pack_only() {
        let locs = [
            at(1, 0, 10),
            at(1, 10, 10),
            at(1, 30, 5),
            at(2, 35, 5),
            at(2, 40, 5),
        ];
        let blobs: Vec<_> = locs.iter().map(|l| (BlobId::of(b"x"), l)).collect();
        let lens: Vec<usize> = runs(&blobs).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [2, 1, 2]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn runs_stop_at_the_size_limit() {
        let big = (MAX_RUN / 2) as u32;
        let locs = [
            at(1, 0, big),
            at(1, u64::from(big), big),
            at(1, 2 * u64::from(big), big),
        ];
        let blobs: Vec<_> = locs.iter().map(|l| (BlobId::of(b"x"), l)).collect();
        let lens: Vec<usize> = runs(&blobs).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [2, 1]);
    }

    #[test]
    fn batches_hold_about_the_ahead_size_and_every_run_once() {
        let quarter = (AHEAD_RAW / 4) as u32;
        let locs: Vec<_> = (0..10u64).map(|i| at(i as u8, 0, quarter)).collect();
        let blobs: Vec<_> = locs.iter().map(|l| (BlobId::of(b"x"), l)).collect();
        let runs = runs(&blobs);
        let lens: Vec<usize> = batches(&runs).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [4, 4, 2]);
        assert!(batches(&[]).is_empty());
    }
}
