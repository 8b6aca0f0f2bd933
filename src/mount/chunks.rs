//! The decoded chunks a mount keeps, and the worker that reads ahead.
//!
//! Reading a file sequentially through FUSE costs, per chunk, its decoding
//! and hashing (what `cairn cat` costs too) plus the kernel's copy of every
//! reply into its page cache; with one FUSE thread doing both, one after
//! the other, a mount ran at half the speed of `cat`. So when a file is
//! read in order, the chunks after the one being read are decoded on
//! rayon's threads (as many as cores) while the FUSE thread serves the
//! kernel from the cache.
//!
//! Those threads only decode: the FUSE thread finds each chunk in the
//! catalog (whose connection stays on its thread) and hands over the
//! location. A chunk read ahead is checked against its hash as every chunk
//! is; one that fails is dropped silently, and the read that then needs it
//! reads it again itself and answers `EIO` with the reason, so a damaged
//! chunk ahead never poisons a read of any other chunk. A chunk being read
//! ahead is waited for rather than decoded twice.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::lru::Lru;
use crate::backend::Backend;
use crate::browse::{self, BrowseError};
use crate::id::BlobId;
use crate::pack::BlobLocation;
use crate::store::Store;

/// At most this many bytes of chunks are read ahead of the one being read
/// (and at most a quarter of the cache, so what is read ahead is not
/// evicted before it is used): a few average chunks (1 MiB) keep the
/// worker busy while the FUSE thread serves one.
const AHEAD_BYTES: u64 = 8 << 20;

/// Chunks being read ahead at most; more are not asked for until those
/// are done.
const PENDING: usize = 16;

/// Decoded chunks, least recently used first out, within a byte budget,
/// shared with the threads that read ahead.
pub struct ChunkCache {
    shared: Arc<Shared>,
    ahead_bytes: u64,
}

struct Shared {
    held: Mutex<Held>,
    /// Signalled whenever a chunk read ahead is done.
    done: Condvar,
}

struct Held {
    lru: Lru<BlobId, Arc<Vec<u8>>>,
    /// Chunks being read ahead.
    pending: HashSet<BlobId>,
}

impl ChunkCache {
    /// A cache of at most `bytes` of decoded chunks.
    pub fn new(bytes: u64) -> Self {
        let shared = Arc::new(Shared {
            held: Mutex::new(Held {
                lru: Lru::new(bytes),
                pending: HashSet::new(),
            }),
            done: Condvar::new(),
        });
        Self {
            shared,
            ahead_bytes: AHEAD_BYTES.min(bytes / 4),
        }
    }

    /// How many bytes of chunks to read ahead of the one being read.
    pub fn ahead_bytes(&self) -> u64 {
        self.ahead_bytes
    }

    /// Chunk `id` of the file at `path`, `len` bytes long: from the cache
    /// (waiting for it if it is being read ahead), or read and verified
    /// here. A chunk of another length than its file's chunk list was
    /// opened with is refused (its bytes would land at the wrong offsets).
    pub fn chunk(
        &self,
        store: &Store,
        path: &Path,
        id: &BlobId,
        len: usize,
    ) -> Result<Arc<Vec<u8>>, BrowseError> {
        if let Some(data) = self.cached_or_awaited(id) {
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
        self.shared.held().lru.insert(*id, data.clone(), len as u64);
        Ok(data)
    }

    /// Chunk `id` if it is cached, after it is done if it is being read
    /// ahead; `None` if it must be read (reading ahead failed, or nobody
    /// asked for it).
    fn cached_or_awaited(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut held = self.shared.held();
        while held.pending.contains(id) {
            held = self
                .shared
                .done
                .wait(held)
                .unwrap_or_else(|p| p.into_inner());
        }
        held.lru.get(id)
    }

    /// Starts reading the chunks `ahead` (ids and decoded
    /// lengths) of the file at `path`, skipping those cached or already
    /// asked for. Nothing here fails: a chunk that cannot be found or read
    /// ahead is read (and its failure reported) when it is needed.
    pub fn read_ahead(&self, store: &Store, ahead: &[(BlobId, usize)]) {
        for (id, len) in ahead {
            if self.shared.held().is_known(id) {
                continue;
            }
            let Ok(Some(at)) = store.catalog().locate(id) else {
                continue;
            };
            if at.raw_len as usize != *len {
                continue;
            }
            if !self.start(*id, at, store.backend().clone()) {
                return;
            }
        }
    }

    /// Reads chunk `id` at `at` on a rayon thread, marked pending first
    /// (so a read of it waits); false if enough are pending already.
    fn start(&self, id: BlobId, at: BlobLocation, backend: Backend) -> bool {
        let mut held = self.shared.held();
        if held.pending.len() >= PENDING {
            return false;
        }
        held.pending.insert(id);
        let shared = self.shared.clone();
        rayon::spawn(move || {
            // A panic here would abort the whole mount (rayon's default);
            // caught, the chunk is just not read ahead, and the read that
            // needs it reads it itself.
            let read = || crate::pack::reader::read_blob(&backend, &id, &at);
            let data = std::panic::catch_unwind(AssertUnwindSafe(read));
            shared.finish(id, data.ok().and_then(Result::ok));
        });
        true
    }
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic elsewhere must not stop every later read.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `id` finished, keeping its bytes if they were read, and wakes
    /// whoever waits for it.
    fn finish(&self, id: BlobId, data: Option<Vec<u8>>) {
        let mut held = self.held();
        held.pending.remove(&id);
        if let Some(data) = data {
            let len = data.len() as u64;
            held.lru.insert(id, Arc::new(data), len);
        }
        drop(held);
        self.done.notify_all();
    }
}

impl Held {
    fn is_known(&mut self, id: &BlobId) -> bool {
        self.pending.contains(id) || self.lru.contains(id)
    }
}
