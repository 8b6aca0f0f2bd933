//! Staging files: what a command writes before it becomes a store object
//! (a pack being filled, a record), or never does (a database image being
//! captured or checked). They are local to this host: in the store's
//! `tmp/` for a local store (the same file system, so a finished pack is
//! renamed into place), in the cache directory for a remote one.
//!
//! Each is locked (`flock`, exclusive) by the process writing it while it
//! is open, so that `verify` can tell a file in flight from one an
//! interrupted run left behind, and a prune of a remote store can remove
//! the leftovers beside running processes ([`Staging::clear_left`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::backend::BackendError;
use crate::rawname::escaped;

/// How many new staging files in a row may be removed under their writer
/// before it gives up: something removes them as fast as they are made.
const MAX_REMOVED: u32 = 16;

/// Whether `path` still names `file` (the same inode): not removed, nor
/// replaced, since it was opened.
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(at), Ok(held)) => at.dev() == held.dev() && at.ino() == held.ino(),
        _ => false,
    }
}

/// Where this host stages files for one store.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
    file_mode: u32,
}

/// What an entry of the staging directory is ([`Staging::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempState {
    /// Locked by the process writing it.
    InUse,
    /// Nobody holds it: an interrupted run left it.
    Left,
    /// Removed since it was listed (a writer finished).
    Gone,
}

impl Staging {
    /// Stages in `dir`; new files get exactly the permission bits
    /// `file_mode`.
    pub fn new(dir: PathBuf, file_mode: u32) -> Self {
        Self { dir, file_mode }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn at(&self, path: &Path) -> impl FnOnce(io::Error) -> BackendError {
        let location = escaped(path).to_string();
        move |source| BackendError { location, source }
    }

    /// A new staging file, removed when dropped unless it becomes an
    /// object, and locked while open.
    ///
    /// A file is unlocked for an instant after it is created, and
    /// [`Staging::clear_left`] may take it for a leftover then and remove
    /// it: once locked, it must still be the file its path names, or a new
    /// one is made.
    pub fn file(&self) -> Result<NamedTempFile, BackendError> {
        for _ in 0..MAX_REMOVED {
            let file = crate::backend::temp_file_in(&self.dir, self.file_mode)
                .map_err(self.at(&self.dir))?;
            // Blocks only while a `state` check or `clear_left` holds it
            // for an instant. Advisory: if the file system refuses,
            // verify only calls the file a leftover while it is written,
            // and `clear_left` removes nothing it cannot lock.
            let _ = file.as_file().lock();
            if names(file.path(), file.as_file()) {
                return Ok(file);
            }
        }
        let gone = io::Error::other(format!(
            "each of {MAX_REMOVED} new staging files was removed as soon as it was made"
        ));
        Err(self.at(&self.dir)(gone))
    }

    /// A staging file holding `bytes`.
    pub fn write(&self, bytes: &[u8]) -> Result<NamedTempFile, BackendError> {
        use std::io::Write;
        let mut file = self.file()?;
        let path = file.path().to_owned();
        file.as_file_mut()
            .write_all(bytes)
            .map_err(self.at(&path))?;
        Ok(file)
    }

    /// A private directory for several staging files (a database and its
    /// `-wal`), removed when dropped.
    pub fn dir_for_files(&self) -> Result<tempfile::TempDir, BackendError> {
        tempfile::Builder::new()
            .prefix("cairn-db-")
            .tempdir_in(&self.dir)
            .map_err(|e| self.at(&self.dir)(io::Error::new(e.kind(), e.to_string())))
    }

    /// The names in the staging directory, sorted.
    pub fn names(&self) -> Result<Vec<String>, BackendError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(self.at(&self.dir))? {
            let entry = entry.map_err(self.at(&self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether the entry `name` is being written by a live process, was
    /// left behind, or is already gone. Never follows a symlink nor waits
    /// on a fifo; an entry that cannot be opened counts as left behind.
    pub fn state(&self, name: &str) -> TempState {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::open(self.dir.join(name), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return TempState::Gone,
            Err(_) => return TempState::Left,
        };
        match file.try_lock_shared() {
            Err(std::fs::TryLockError::WouldBlock) => TempState::InUse,
            _ => TempState::Left,
        }
    }

    /// Removes every entry (what interrupted runs left); returns how many
    /// and their bytes. Only with the store held exclusively: otherwise
    /// another process may be writing here.
    pub fn clear(&self) -> Result<(u64, u64), BackendError> {
        let (mut files, mut bytes) = (0, 0);
        for entry in fs::read_dir(&self.dir).map_err(self.at(&self.dir))? {
            let entry = entry.map_err(self.at(&self.dir))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(self.at(&path))?;
            if meta.is_dir() {
                fs::remove_dir_all(&path).map_err(self.at(&path))?;
            } else {
                fs::remove_file(&path).map_err(self.at(&path))?;
            }
            files += 1;
            bytes += meta.len();
        }
        crate::backend::local::sync_dir(&self.dir).map_err(self.at(&self.dir))?;
        Ok((files, bytes))
    }

    /// Removes what interrupted runs left while other processes may be
    /// staging here: each file only once locked by this process and still
    /// at its name (a live process holds its own locked, and makes a new
    /// one if its file was taken between its creation and its lock), and
    /// directories (a capture's private ones, never locked) only with
    /// `dirs`, when no capture can run. Returns how many and their bytes.
    ///
    /// Housekeeping, done after a prune has committed: an entry that cannot
    /// be removed (another user's, immutable) is passed over, as it would
    /// have failed the prune after its work (exit 1, which says nothing was
    /// committed) every time; `verify` still names what stays.
    pub fn clear_left(&self, dirs: bool) -> Result<(u64, u64), BackendError> {
        let (mut files, mut bytes) = (0, 0);
        for name in self.names()? {
            if let Ok(Some(size)) = self.remove_left(&name, dirs) {
                files += 1;
                bytes += size;
            }
        }
        crate::backend::local::sync_dir(&self.dir).map_err(self.at(&self.dir))?;
        Ok((files, bytes))
    }

    /// Removes the entry `name` if nothing holds it (see
    /// [`Staging::clear_left`]); its size if it was removed.
    fn remove_left(&self, name: &str, dirs: bool) -> Result<Option<u64>, BackendError> {
        let path = self.dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.at(&path)(e)),
        };
        let removed = match meta.file_type() {
            t if t.is_dir() && !dirs => return Ok(None),
            t if t.is_dir() => fs::remove_dir_all(&path),
            t if t.is_file() => return self.remove_unlocked_file(&path),
            // A symlink or a fifo: nothing cairn stages.
            _ => fs::remove_file(&path),
        };
        match removed {
            Ok(()) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.at(&path)(e)),
        }
    }

    /// Removes the file at `path` if this process can lock it: the lock
    /// is held until after it is gone, so its writer (if any, between
    /// creating and locking it) finds it gone and makes another.
    fn remove_unlocked_file(&self, path: &Path) -> Result<Option<u64>, BackendError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.at(path)(e.into())),
        };
        if file.try_lock().is_err() || !names(path, &file) {
            return Ok(None);
        }
        let size = file.metadata().map_err(self.at(path))?.len();
        match fs::remove_file(path) {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.at(path)(e)),
        }
    }

    /// Free bytes on the staging file system, if known.
    pub fn free_space(&self) -> Option<u64> {
        let stat = rustix::fs::statvfs(&self.dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}
