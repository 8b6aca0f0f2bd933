//! Live counters for a long operation, updated from any thread and polled
//! by the command line's progress display.
//!
//! Besides what is done, an operation sets what there is to do when it
//! knows (`set_totals`; a snapshot counts its sources on a thread of its
//! own while it runs, as restic does, but only if a display asked for
//! totals), and the item it is working on.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters of a running capture, restore, verify or repack.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items done: files (capture, restore) or packs (verify, repack).
    pub files: AtomicU64,
    /// Bytes of file content read (capture) or written (restore), or of
    /// packs read (verify).
    pub bytes: AtomicU64,
    /// Bytes written to packs (capture only).
    pub stored: AtomicU64,
    /// Bytes of files taken from the parent snapshot without being read
    /// (capture only): done, though not read.
    pub skipped: AtomicU64,
    /// Items to do in all, when known.
    pub files_total: AtomicU64,
    /// Bytes to do in all, when known.
    pub bytes_total: AtomicU64,
    /// The totals are set and final.
    totals_known: AtomicBool,
    /// A display wants totals (a snapshot counts its sources only then).
    totals_wanted: AtomicBool,
    /// The item being worked on.
    current: Mutex<Option<String>>,
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

    /// Starts counting afresh (a new phase of the same operation).
    pub fn restart(&self) {
        self.files.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Sets what there is to do, final.
    pub fn set_totals(&self, items: u64, bytes: u64) {
        self.files_total.store(items, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Relaxed);
    }

    /// Items and bytes to do, and whether those are final (a count still
    /// running gives what it found so far).
    pub fn totals(&self) -> (u64, u64, bool) {
        (
            self.files_total.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed),
            self.totals_known.load(Ordering::Relaxed),
        )
    }

    /// Asks the operation to count what it has to do, if that costs work.
    pub fn want_totals(&self) {
        self.totals_wanted.store(true, Ordering::Relaxed);
    }

    /// Whether a display asked for totals.
    pub fn totals_wanted(&self) -> bool {
        self.totals_wanted.load(Ordering::Relaxed)
    }

    /// Notes the item now being worked on (only when a display asked).
    pub fn working_on(&self, item: impl FnOnce() -> String) {
        if !self.totals_wanted() {
            return;
        }
        if let Ok(mut current) = self.current.lock() {
            *current = Some(item());
        }
    }

    /// Notes the file now being worked on.
    pub fn working_on_path(&self, path: &Path) {
        self.working_on(|| path.to_string_lossy().into_owned());
    }

    /// The item being worked on, if known.
    pub fn current(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }
}
