//! Live counters for a long operation, updated from any thread and polled
//! by the command line's progress bar.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a running capture or restore.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files done.
    pub files: AtomicU64,
    /// Bytes of file content read (capture) or written (restore).
    pub bytes: AtomicU64,
    /// Bytes written to packs (capture only).
    pub stored: AtomicU64,
}

impl Progress {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Current values: (files, bytes, stored).
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.stored.load(Ordering::Relaxed),
        )
    }
}
