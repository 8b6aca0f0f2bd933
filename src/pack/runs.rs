//! Reading many blobs of packs in runs: blobs that lie back to back in
//! one pack come back with one read, decoded (and checked) on all cores,
//! and a stream of them is handed on in order while the next batch is
//! read. Restore, `cat` and database images read this way; one blob alone
//! goes through [`super::reader`].

use super::reader::{decode_slice, decode_slice_into};
use super::spans::Spans;
use super::{BlobLocation, PackError, key};
use crate::backend::{Backend, Object};
use crate::id::{BlobId, PackId};

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

/// Reads one run (see [`runs`]: several blobs of one never decode to more
/// than [`MAX_RUN_RAW`], which bounds the buffer) with a single read and decodes each of its
/// blobs, checked against its id, side by side into one buffer (which is
/// then written with one call); long runs are decoded in parallel.
fn read_run(
    files: &mut PackFiles<'_>,
    run: &[(BlobId, &BlobLocation)],
) -> Result<Vec<u8>, PackError> {
    use rayon::prelude::*;
    let Some((_, first)) = run.first() else {
        return Ok(Vec::new());
    };
    let len: u64 = run.iter().map(|(_, at)| u64::from(at.stored_len)).sum();
    let bytes = files.read_range(&first.pack, first.offset, len as usize)?;
    let raw_len: u64 = run.iter().map(|(_, at)| u64::from(at.raw_len)).sum();
    if let [(id, at)] = run
        && raw_len > MAX_RUN_RAW
    {
        // A blob larger than any cairn writes, as its location says: the
        // buffer grows with what really decodes, not to the size claimed.
        return decode_slice(files.backend, id, at, &bytes);
    }
    let mut raw = vec![0u8; raw_len as usize];
    let mut blobs = Vec::with_capacity(run.len());
    let (mut stored_rest, mut raw_rest) = (&bytes[..], &mut raw[..]);
    for (id, at) in run {
        let (stored, tail) = stored_rest.split_at(at.stored_len as usize);
        let (out, raw_tail) = raw_rest.split_at_mut(at.raw_len as usize);
        blobs.push((id, *at, stored, out));
        (stored_rest, raw_rest) = (tail, raw_tail);
    }
    let backend = files.backend;
    let decode = |(id, at, stored, out): &mut (&BlobId, &BlobLocation, &[u8], &mut [u8])| {
        decode_slice_into(backend, id, at, stored, out)
    };
    if blobs.len() < PARALLEL_RUN {
        blobs.iter_mut().try_for_each(decode)?;
    } else {
        blobs.par_iter_mut().try_for_each(decode)?;
    }
    Ok(raw)
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

/// One batch of runs, decoded: per run, its blobs' bytes in order.
type Decoded = Result<Vec<Vec<u8>>, PackError>;

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
        sink(&run)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::test_location as at;

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
