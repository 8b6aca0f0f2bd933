//! Store-wide locks: a kernel `flock` on `locks/store.lock` and on the
//! store directory itself.
//!
//! Captures and restores share the lock; store-wide rewrites (prune, repair)
//! take it exclusively. The kernel drops a lock when its process dies, so no
//! stale lock ever needs removing.
//!
//! A lock on a file guards nothing once the file is gone from its path: a
//! process that opens the path afterwards (after a tmpfiles cleaner or an
//! operator removed it) creates a new file and locks that one. So after
//! taking the file's lock we check that the path still names the file we
//! locked, and start over if not; and we lock the store directory too,
//! which cannot be deleted or replaced while the store exists. The file
//! lock stays because older cairn versions lock only the file.
//!
//! A store that cannot be written at all (a read-only mount, or a store of
//! another user) needs no lock for reading: [`LockMode::Read`] then goes on
//! without one and says why.

use std::fs::{File, OpenOptions, Permissions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::StoreError;
use crate::crash;

/// How a command uses the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Commands that only read: many at once, and none at all needed on a
    /// store nothing can write.
    Read,
    /// Writers of new snapshots and markers: many at once.
    Shared,
    /// Rewrites of the store: alone.
    Exclusive,
}

/// A held lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: Option<File>,
    _dir: Option<File>,
    mode: LockMode,
    unlocked: Option<Unwritable>,
}

impl StoreLock {
    /// How the lock is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Why this reader holds no lock: the store cannot be written.
    pub fn unlocked(&self) -> Option<&Unwritable> {
        self.unlocked.as_ref()
    }

    /// Lets go of the lock now, for a reader that lives for hours (a
    /// mount) and must not keep prune out meanwhile.
    pub fn release(&mut self) {
        self._file = None;
        self._dir = None;
    }
}

/// Why the lock file could not be opened for writing.
#[derive(Debug)]
pub struct Unwritable {
    /// The lock file.
    pub path: PathBuf,
    /// What the OS said.
    pub source: io::Error,
}

impl Unwritable {
    /// Whether the store's file system is mounted read-only (rather than
    /// the store belonging to someone else): then no process can change it.
    pub fn is_read_only_mount(&self) -> bool {
        self.source.kind() == io::ErrorKind::ReadOnlyFilesystem
    }

    /// What a reader without the lock tells the user about the store at
    /// `root`.
    pub fn notice(&self, root: &Path) -> String {
        if self.is_read_only_mount() {
            format!(
                "store {} is on a read-only file system: reading it without a lock (nothing can change it meanwhile)",
                root.display()
            )
        } else {
            format!(
                "store {} is not writable by this user ({}: {}): reading it without a lock, so a prune or repair running meanwhile could disturb this read",
                root.display(),
                self.path.display(),
                self.source
            )
        }
    }
}

const POLL: Duration = Duration::from_millis(50);

/// How many times in a row the lock file may turn out replaced before we
/// give up: a file that keeps being replaced means some program is
/// removing it as fast as we lock it.
const MAX_REPLACED: u32 = 16;

/// Takes the lock, waiting up to `wait` for another process to release it.
/// A lock file this process creates gets the permission bits `file_mode`.
pub fn acquire(
    root: &Path,
    mode: LockMode,
    wait: Duration,
    file_mode: u32,
) -> Result<StoreLock, StoreError> {
    let path = root.join("locks").join("store.lock");
    // A wait too long to represent is a wait without end.
    let deadline = Instant::now().checked_add(wait);
    let locked = |_| StoreError::Locked {
        path: root.to_owned(),
        wanted: mode,
        waited: wait,
    };
    let file = match lock_file(&path, mode, deadline, file_mode) {
        Ok(file) => file,
        Err(Failure::Unwritable(source)) if mode == LockMode::Read => {
            return Ok(StoreLock {
                _file: None,
                _dir: None,
                mode,
                unlocked: Some(Unwritable { path, source }),
            });
        }
        Err(Failure::Unwritable(source)) => {
            return Err(StoreError::NotWritable {
                path: root.to_owned(),
                file: path,
                source,
            });
        }
        Err(Failure::Busy) => return Err(locked(())),
        Err(Failure::Replaced) => return Err(StoreError::LockReplaced { path }),
        Err(Failure::Io(source)) => return Err(StoreError::Io { path, source }),
    };
    let dir = File::open(root).map_err(|source| StoreError::Io {
        path: root.to_owned(),
        source,
    })?;
    match wait_for(&dir, mode, deadline) {
        Ok(true) => Ok(StoreLock {
            _file: Some(file),
            _dir: Some(dir),
            mode,
            unlocked: None,
        }),
        Ok(false) => Err(locked(())),
        Err(source) => Err(StoreError::Io {
            path: root.to_owned(),
            source,
        }),
    }
}

/// Why the lock file was not locked.
enum Failure {
    /// It cannot be opened for writing: a read-only store.
    Unwritable(io::Error),
    /// Another process holds it.
    Busy,
    /// It was replaced after each of [`MAX_REPLACED`] locks.
    Replaced,
    /// Anything else.
    Io(io::Error),
}

/// Locks the file at `path`, making sure that what is locked is the file
/// the path names once the lock is held.
fn lock_file(
    path: &Path,
    mode: LockMode,
    deadline: Option<Instant>,
    file_mode: u32,
) -> Result<File, Failure> {
    for _ in 0..MAX_REPLACED {
        let file = open_lock_file(path, file_mode)?;
        crash::point("lock-opened");
        if !wait_for(&file, mode, deadline).map_err(Failure::Io)? {
            return Err(Failure::Busy);
        }
        if is_still_at(&file, path).map_err(Failure::Io)? {
            return Ok(file);
        }
    }
    Err(Failure::Replaced)
}

/// Opens (creating if needed) the lock file for writing, never through a
/// symbolic link.
fn open_lock_file(path: &Path, file_mode: u32) -> Result<File, Failure> {
    let classify = |e: io::Error| match e.kind() {
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
            Failure::Unwritable(e)
        }
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Failure::Io(io::Error::other(
                "is a symbolic link; the lock file must be a plain file (remove it, cairn creates a new one)",
            ))
        }
        _ => Failure::Io(e),
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file_mode)
        .open(path)
    {
        Ok(file) => {
            // Exactly the store's mode, whatever the umask.
            file.set_permissions(Permissions::from_mode(file_mode))
                .map_err(Failure::Io)?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(classify),
        Err(e) => Err(classify(e)),
    }
}

/// Whether `path` still names the open `file` (same device and inode).
pub(super) fn is_still_at(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(there) => Ok(there.dev() == held.dev() && there.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes `file`'s lock, polling until `deadline`; false if it stayed busy.
fn wait_for(file: &File, mode: LockMode, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let attempt = match mode {
            LockMode::Read | LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(true),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                thread::sleep(POLL)
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
        }
    }
}
