//! Store-wide locks: a kernel `flock` on `locks/store.lock`.
//!
//! Captures and restores share the lock; store-wide rewrites (prune, repair)
//! take it exclusively. The kernel drops a lock when its process dies, so no
//! stale lock ever needs removing.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::StoreError;

/// How a command uses the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Readers and writers of new snapshots: many at once.
    Shared,
    /// Rewrites of the store: alone.
    Exclusive,
}

/// A held lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    mode: LockMode,
}

impl StoreLock {
    /// How the lock is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

const POLL: Duration = Duration::from_millis(50);

/// Takes the lock, waiting up to `wait` for another process to release it.
pub fn acquire(root: &Path, mode: LockMode, wait: Duration) -> Result<StoreLock, StoreError> {
    let path = root.join("locks").join("store.lock");
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // A wait too long to represent is a wait without end.
    let deadline = Instant::now().checked_add(wait);
    loop {
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(StoreLock { _file: file, mode }),
            Err(TryLockError::Error(e)) => return Err(io(e)),
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                thread::sleep(POLL)
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: root.to_owned(),
                    wanted: mode,
                    waited: wait,
                });
            }
        }
    }
}
