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
//! once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lru::Lru;
use crate::browse::{self, BrowseError};
use crate::id::BlobId;
use crate::store::{Store, StoreError};
use crate::tree::Entry;

/// An open file: its chunks and where each ends.
#[derive(Debug)]
pub struct OpenFile {
    path: PathBuf,
    chunks: Vec<BlobId>,
    /// `ends[i]`: the offset just past chunk `i` (running totals).
    ends: Vec<u64>,
}

impl OpenFile {
    /// Opens the file `entry` (shown as `path` in messages): finds the
    /// length of each chunk. Fails if one is not in the catalog or if the
    /// lengths do not add up to the recorded size (a read could then
    /// return bytes from the wrong place).
    pub fn open(store: &Store, path: &Path, entry: &Entry) -> Result<Self, BrowseError> {
        let chunks = browse::file_chunks(path, entry)?;
        let mut ends = Vec::with_capacity(chunks.len());
        let mut total = 0u64;
        for id in chunks {
            total += chunk_len(store, path, id)?;
            ends.push(total);
        }
        browse::check_size(path, entry, total)?;
        Ok(Self {
            path: path.to_owned(),
            chunks: chunks.to_vec(),
            ends,
        })
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The pieces of chunks that cover `len` bytes at `offset` (cut at the
    /// end of the file): (chunk index, offset in the chunk, length).
    pub fn spans(&self, offset: u64, len: u64) -> Vec<(usize, usize, usize)> {
        let end = offset.saturating_add(len).min(self.size());
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

    /// `len` bytes at `offset` (fewer at the end of the file).
    pub fn read(
        &self,
        store: &Store,
        cache: &mut ChunkCache,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, BrowseError> {
        let mut out = Vec::with_capacity(len.min(self.size()) as usize);
        for (i, from, take) in self.spans(offset, len) {
            let want = (self.ends[i] - self.start(i)) as usize;
            let data = cache.chunk(store, &self.path, &self.chunks[i], want)?;
            out.extend_from_slice(&data[from..from + take]);
        }
        Ok(out)
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

/// Decoded chunks, least recently used first out, within a byte budget.
#[derive(Debug)]
pub struct ChunkCache {
    lru: Lru<BlobId, Arc<Vec<u8>>>,
}

impl ChunkCache {
    /// A cache of at most `bytes` of decoded chunks.
    pub fn new(bytes: u64) -> Self {
        Self {
            lru: Lru::new(bytes),
        }
    }

    /// Chunk `id` of the file at `path`, `len` bytes long: from the cache,
    /// or read and verified. A chunk of another length than its file's
    /// chunk list was opened with is refused (its bytes would land at the
    /// wrong offsets).
    fn chunk(
        &mut self,
        store: &Store,
        path: &Path,
        id: &BlobId,
        len: usize,
    ) -> Result<Arc<Vec<u8>>, BrowseError> {
        if let Some(data) = self.lru.get(id) {
            return Ok(data);
        }
        let data = browse::read_chunk(store, path, id)?;
        if data.len() != len {
            return Err(BrowseError::Size {
                path: path.to_owned(),
                got: data.len() as u64,
                want: len as u64,
            });
        }
        let data = Arc::new(data);
        self.lru.insert(*id, data.clone(), len as u64);
        Ok(data)
    }
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
}
