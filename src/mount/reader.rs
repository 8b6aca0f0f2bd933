//! Reading a file of a snapshot at any offset, lazily.
//!
//! Opening a file looks up the decoded length of each of its chunks in the
//! catalog once and keeps their running totals, so a read at any offset
//! finds the chunks that cover it by binary search and reads only those,
//! never the ones before. Chunks are read through the same verified path
//! as `cairn cat` ([`browse::read_chunk`]: located in the catalog anew,
//! so a chunk a prune moved to another pack is still found, and checked
//! against its hash), and the decoded chunks are kept in a cache bounded
//! in bytes, shared by all open files (a `sqlite3` page read, `tail`, or
//! the kernel's read-ahead of 128 KiB pieces of one 1 MiB chunk, decode it
//! once). A file read in order has its next chunks read ahead
//! ([`chunks`](super::chunks)); a file read at scattered offsets does not,
//! so random reads never fill the cache with chunks nobody asked for.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chunks::ChunkCache;
use crate::browse::{self, BrowseError};
use crate::id::BlobId;
use crate::store::{Store, StoreError};
use crate::tree::{Entry, Hole};

/// An open file: its chunks and where each ends.
#[derive(Debug)]
pub struct OpenFile {
    path: PathBuf,
    chunks: Vec<BlobId>,
    /// `ends[i]`: the offset just past chunk `i` in the file's data, its
    /// bytes outside holes (running totals).
    ends: Vec<u64>,
    /// The holes of a sparse file, sorted and apart: zeros, not stored.
    holes: Vec<Hole>,
    /// `before[i]`: the bytes of the holes before hole `i` (running totals).
    before: Vec<u64>,
    /// The file's size, holes included.
    size: u64,
    /// The chunk after the last one read: a read starting in it (or in
    /// the last one read) continues a sequential read.
    next: usize,
}

/// For each hole, the bytes of the holes before it; one more entry, the
/// bytes of them all, for offsets past the last.
fn holes_before(holes: &[Hole]) -> Vec<u64> {
    let mut total = 0u64;
    let mut out = Vec::with_capacity(holes.len() + 1);
    for hole in holes {
        out.push(total);
        total += hole.len;
    }
    out.push(total);
    out
}

impl OpenFile {
    /// Opens the file `entry` (shown as `path` in messages): finds the
    /// length of each chunk. Fails if one is not in the catalog or if the
    /// lengths do not add up to the recorded size (a read could then
    /// return bytes from the wrong place).
    pub fn open(store: &Store, path: &Path, entry: &Entry) -> Result<Self, BrowseError> {
        let chunks = browse::file_chunks(path, entry)?;
        browse::check_holes(path, entry)?;
        let mut ends = Vec::with_capacity(chunks.len());
        let mut total = 0u64;
        for id in chunks {
            total += chunk_len(store, path, id)?;
            ends.push(total);
        }
        browse::check_data_size(path, entry, total)?;
        Ok(Self {
            path: path.to_owned(),
            chunks: chunks.to_vec(),
            ends,
            holes: entry.holes().to_vec(),
            before: holes_before(entry.holes()),
            size: entry.meta.size,
            next: 0,
        })
    }

    /// The size of the file's data (its bytes outside holes).
    fn data_size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The pieces of chunks that cover `len` bytes at `offset` (cut at the
    /// end of the file): (chunk index, offset in the chunk, length).
    pub fn spans(&self, offset: u64, len: u64) -> Vec<(usize, usize, usize)> {
        let end = offset.saturating_add(len).min(self.data_size());
        let mut at = offset;
        let mut i = self.ends.partition_point(|&e| e <= offset);
        let mut out = Vec::new();
        while at < end && i < self.ends.len() {
            let start = self.start(i);
            let take = self.ends[i].min(end) - at;
            out.push((i, (at - start) as usize, take as usize));
            at += take;
            i += 1;
        }
        out
    }

    fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// `len` bytes at `offset` (fewer at the end of the file): zeros where
    /// a hole of a sparse file lies, its data elsewhere.
    pub fn read(
        &mut self,
        store: &Store,
        cache: &ChunkCache,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BrowseError> {
        if self.holes.is_empty() {
            return self.read_data(store, cache, offset, len);
        }
        let end = offset.saturating_add(len).min(self.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let (data_at, until) = self.region(at);
            let n = until.min(end) - at;
            match data_at {
                None => out.resize(out.len() + n as usize, 0),
                Some(from) => {
                    let data = self.read_data(store, cache, from, n)?;
                    out.extend_from_slice(data.as_slice());
                }
            }
            at += n;
        }
        Ok(Bytes::Joined(out))
    }

    /// What lies at offset `at` of the file, and up to where: a hole
    /// (`None`), or data at that offset of the data (`Some`).
    fn region(&self, at: u64) -> (Option<u64>, u64) {
        let i = self.holes.partition_point(|hole| hole.end() <= at);
        let before = self.before.get(i).copied().unwrap_or(0);
        match self.holes.get(i) {
            Some(hole) if at >= hole.offset => (None, hole.end()),
            Some(hole) => (Some(at - before), hole.offset),
            None => (Some(at - before), self.size),
        }
    }

    /// `len` bytes at `offset` of the file's data (fewer at its end). A
    /// read that continues the previous one has the chunks after it read
    /// ahead.
    fn read_data(
        &mut self,
        store: &Store,
        cache: &ChunkCache,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BrowseError> {
        let spans = self.spans(offset, len);
        if let (Some(first), Some(last)) = (spans.first(), spans.last()) {
            if self.continues_at(first.0) {
                cache.read_ahead(store, &self.ahead(last.0 + 1, cache.ahead_bytes()));
            }
            self.next = last.0 + 1;
        }
        let mut pieces = Vec::with_capacity(spans.len());
        for (i, from, take) in spans {
            let data = cache.chunk(store, &self.path, &self.chunks[i], self.len(i))?;
            pieces.push((data, from..from + take));
        }
        Ok(Bytes::of(pieces))
    }

    /// Whether a read starting in chunk `i` continues the last one (in the
    /// chunk it ended in, or the one after): the file is read in order.
    fn continues_at(&self, i: usize) -> bool {
        i + 1 >= self.next && i <= self.next
    }

    fn len(&self, i: usize) -> usize {
        (self.ends[i] - self.start(i)) as usize
    }

    /// The chunks from `from` on, with their lengths, as many as fit in
    /// `budget` bytes.
    fn ahead(&self, from: usize, budget: u64) -> Vec<(BlobId, usize)> {
        let mut left = budget;
        let mut out = Vec::new();
        for i in from..self.chunks.len() {
            let len = self.len(i);
            let Some(rest) = left.checked_sub(len as u64) else {
                break;
            };
            left = rest;
            out.push((self.chunks[i], len));
        }
        out
    }
}

/// The bytes of one read: a piece of one cached chunk as it is (most reads:
/// no copy), or the pieces of several chunks joined.
pub enum Bytes {
    /// Part of one chunk.
    Piece(Arc<Vec<u8>>, Range<usize>),
    /// Parts of several, copied together.
    Joined(Vec<u8>),
}

impl Bytes {
    fn of(mut pieces: Vec<(Arc<Vec<u8>>, Range<usize>)>) -> Self {
        if pieces.len() == 1
            && let Some((data, range)) = pieces.pop()
        {
            return Bytes::Piece(data, range);
        }
        let mut out = Vec::with_capacity(pieces.iter().map(|(_, r)| r.len()).sum());
        for (data, range) in pieces {
            out.extend_from_slice(&data[range]);
        }
        Bytes::Joined(out)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Piece(data, range) => &data[range.clone()],
            Bytes::Joined(data) => data,
        }
    }
}

/// The decoded length of chunk `id` of the file at `path`, from the catalog.
fn chunk_len(store: &Store, path: &Path, id: &BlobId) -> Result<u64, BrowseError> {
    let at = store
        .catalog()
        .locate(id)
        .map_err(StoreError::from)?
        .ok_or_else(|| BrowseError::Missing {
            path: path.to_owned(),
            id: *id,
        })?;
    Ok(u64::from(at.raw_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lens: &[u64]) -> OpenFile {
        let mut total = 0;
        OpenFile {
            path: PathBuf::from("/f"),
            chunks: lens.iter().map(|&l| BlobId::of(&l.to_le_bytes())).collect(),
            ends: lens
                .iter()
                .map(|l| {
                    total += l;
                    total
                })
                .collect(),
            holes: Vec::new(),
            before: holes_before(&[]),
            size: total,
            next: 0,
        }
    }

    #[test]
    fn a_read_covers_only_the_chunks_at_its_offset() {
        let f = file(&[10, 20, 30]);
        assert_eq!(f.spans(0, 5), [(0, 0, 5)]);
        assert_eq!(f.spans(10, 20), [(1, 0, 20)]);
        assert_eq!(f.spans(25, 10), [(1, 15, 5), (2, 0, 5)]);
        assert_eq!(f.spans(5, 100), [(0, 5, 5), (1, 0, 20), (2, 0, 30)]);
        assert_eq!(f.spans(59, 10), [(2, 29, 1)]);
        assert!(f.spans(60, 10).is_empty(), "at the end of the file");
        assert!(f.spans(1000, 10).is_empty(), "past the end of the file");
        assert!(file(&[]).spans(0, 10).is_empty(), "an empty file");
    }

    #[test]
    fn only_reads_in_order_read_ahead_and_no_further_than_the_budget() {
        let mut f = file(&[10, 20, 30, 40]);
        assert!(f.continues_at(0), "the first read of a file");
        f.next = 2;
        assert!(f.continues_at(1) && f.continues_at(2));
        assert!(!f.continues_at(0) && !f.continues_at(3), "a jump");
        let lens = |ahead: Vec<(BlobId, usize)>| ahead.iter().map(|a| a.1).collect::<Vec<_>>();
        assert_eq!(lens(f.ahead(1, 50)), [20, 30]);
        assert_eq!(lens(f.ahead(1, 49)), [20]);
        assert_eq!(lens(f.ahead(2, 10)), [0usize; 0], "a chunk over budget");
        assert_eq!(lens(f.ahead(4, 100)), [0usize; 0], "past the last chunk");
    }

    /// What [`OpenFile::region`] finds by looking the holes up, against a
    /// walk through them all.
    #[test]
    fn regions_found_by_search_are_those_of_a_walk() {
        let holes: Vec<Hole> = [(2, 3), (7, 1), (9, 4)].map(Hole::from).to_vec();
        let mut f = file(&[16 - 8]);
        f.before = holes_before(&holes);
        f.holes = holes.clone();
        f.size = 16;
        for at in 0..16 {
            let mut before = 0;
            let mut walked = (Some(at), 16);
            for hole in &holes {
                if at < hole.offset {
                    walked = (Some(at - before), hole.offset);
                    break;
                }
                if at < hole.end() {
                    walked = (None, hole.end());
                    break;
                }
                before += hole.len;
                walked = (Some(at - before), 16);
            }
            assert_eq!(f.region(at), walked, "at {at}");
        }
    }
}
