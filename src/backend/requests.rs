//! Counting what a remote store is asked for: requests cost money on S3,
//! so summaries and `--json` report them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Relaxed is enough for counters read once at the end.
pub(crate) const ORDER: Ordering = Ordering::Relaxed;

/// Requests a remote store has served so far: on S3 they cost money.
#[derive(Debug, Default)]
pub struct Counters {
    /// GET requests (whole objects and ranges).
    pub gets: AtomicU64,
    /// PUT requests (multipart uploads count each part, start and end).
    pub puts: AtomicU64,
    /// LIST requests (pages of up to 1000 keys).
    pub lists: AtomicU64,
    /// DELETE requests.
    pub deletes: AtomicU64,
    /// HEAD requests.
    pub heads: AtomicU64,
    /// Bytes received.
    pub bytes_down: AtomicU64,
    /// Bytes sent.
    pub bytes_up: AtomicU64,
}

impl Counters {
    pub(super) fn put(&self, bytes: u64) {
        self.puts.fetch_add(1, ORDER);
        self.bytes_up.fetch_add(bytes, ORDER);
    }

    pub(super) fn add_requests(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, ORDER);
    }

    /// The counts now.
    pub fn read(&self) -> RequestStats {
        RequestStats {
            get: self.gets.load(ORDER),
            put: self.puts.load(ORDER),
            list: self.lists.load(ORDER),
            delete: self.deletes.load(ORDER),
            head: self.heads.load(ORDER),
            bytes_down: self.bytes_down.load(ORDER),
            bytes_up: self.bytes_up.load(ORDER),
        }
    }
}

/// Requests made and bytes moved, as reported in summaries and `--json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestStats {
    /// GET requests.
    pub get: u64,
    /// PUT requests.
    pub put: u64,
    /// LIST requests.
    pub list: u64,
    /// DELETE requests.
    pub delete: u64,
    /// HEAD requests.
    pub head: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
}

impl RequestStats {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.delete + self.head
    }
}
