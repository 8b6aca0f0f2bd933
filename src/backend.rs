//! The one seam through which the store's immutable files (packs, snapshot
//! records, config) are written, read, listed and deleted.
//!
//! Today it is a local directory; an object store can later implement the
//! same few operations. Everything here is whole-file: a file appears
//! complete under its final name or not at all, and is never changed after.
//! Locks, the catalog and `tmp/` are local and do not go through this seam.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::rawname::escaped;

/// An I/O failure on a store file, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", escaped(path))]
pub struct BackendError {
    /// The file or directory involved.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

impl BackendError {
    /// Whether the file was not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

type Result<T> = std::result::Result<T, BackendError>;

fn at(path: &Path) -> impl FnOnce(io::Error) -> BackendError + '_ {
    move |source| BackendError {
        path: path.to_owned(),
        source,
    }
}

/// A store's object files on the local file system.
#[derive(Debug, Clone)]
pub struct Backend {
    root: PathBuf,
    tmp: PathBuf,
    file_mode: u32,
}

/// Permission bits of new files unless told otherwise: the owner's only.
const PRIVATE: u32 = 0o600;

impl Backend {
    /// The files under `root`; temporary files are staged in `root/tmp`
    /// and created readable by their owner only.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            tmp: root.join("tmp"),
            file_mode: PRIVATE,
        }
    }

    /// The same files, with new ones created with exactly the permission
    /// bits `mode` (whatever the umask): the store's mode.
    pub fn with_file_mode(self, mode: u32) -> Self {
        Self {
            file_mode: mode,
            ..self
        }
    }

    /// The permission bits new files get.
    pub fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// The permission bits of `key`.
    pub fn mode_of(&self, key: &str) -> Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(key);
        let meta = fs::metadata(&path).map_err(at(&path))?;
        Ok(meta.permissions().mode() & 0o7777)
    }

    /// The full path of a store-relative key such as `snapshots/ID.json`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// A new temporary file in `tmp/`, removed when dropped unless published.
    ///
    /// Write to it through [`NamedTempFile::as_file_mut`] (or the `File` of
    /// [`NamedTempFile::into_parts`]), never through its own `Write`: that
    /// adds the path to every error, which the [`BackendError`] names again.
    /// It has the store's file mode, and is locked (`flock`, exclusive)
    /// while open, so that `verify` can tell a file in flight from one an
    /// interrupted run left ([`Backend::temp_state`]).
    pub fn temp_file(&self) -> Result<NamedTempFile> {
        use std::os::unix::fs::PermissionsExt;
        // `make_in` rather than `tempfile_in`, whose errors carry the path too.
        let file = tempfile::Builder::new()
            .prefix("cairn-")
            .suffix(".tmp")
            .make_in(&self.tmp, |path| {
                File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
            })
            .map_err(at(&self.tmp))?;
        if self.file_mode != PRIVATE {
            let mode = fs::Permissions::from_mode(self.file_mode);
            file.as_file()
                .set_permissions(mode)
                .map_err(at(file.path()))?;
        }
        // Blocks only while a `temp_state` check holds it for an instant.
        // Advisory: if the file system refuses, verify only calls the file
        // a leftover while it is written.
        let _ = file.as_file().lock();
        Ok(file)
    }

    /// Whether the entry `name` of `tmp/` is being written by a live
    /// process, was left behind, or is already gone. Never follows a
    /// symlink nor waits on a fifo; an entry that cannot be opened counts
    /// as left behind.
    pub fn temp_state(&self, name: &str) -> TempState {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::open(self.tmp.join(name), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return TempState::Gone,
            Err(_) => return TempState::Left,
        };
        match file.try_lock_shared() {
            Err(std::fs::TryLockError::WouldBlock) => TempState::InUse,
            _ => TempState::Left,
        }
    }

    /// Makes a fully written temporary file visible under `key`, durably:
    /// fsync the file, rename it into place, fsync the directory. A crash at
    /// any point leaves either no file under `key` or the complete one.
    pub fn publish(&self, file: NamedTempFile, key: &str) -> Result<()> {
        file.as_file().sync_all().map_err(at(file.path()))?;
        self.publish_synced(file, key)
    }

    /// [`Backend::publish`] for a file the caller has already fsynced.
    pub fn publish_synced(&self, file: NamedTempFile, key: &str) -> Result<()> {
        let dest = self.path(key);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        self.ensure_dir(&dir)?;
        file.persist(&dest).map_err(|e| BackendError {
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(&dir)
    }

    /// A temporary file in `tmp/` holding `bytes`, ready to publish.
    pub fn write_temp(&self, bytes: &[u8]) -> Result<NamedTempFile> {
        let mut file = self.temp_file()?;
        file.as_file_mut()
            .write_all(bytes)
            .map_err(at(file.path()))?;
        Ok(file)
    }

    /// Writes `bytes` durably as `key` (through a temporary file).
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.publish(self.write_temp(bytes)?, key)
    }

    /// The whole content of `key`, which must not exceed `max` bytes (small
    /// metadata files: a huge one is damage, not something to load).
    pub fn read(&self, key: &str, max: u64) -> Result<Vec<u8>> {
        let path = self.path(key);
        let file = File::open(&path).map_err(at(&path))?;
        // Sized from the file up front (never past `max`), not grown by
        // doubling to up to twice its size.
        let len = file.metadata().map_err(at(&path))?.len();
        let mut bytes = Vec::with_capacity(len.min(max) as usize + 1);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(at(&path))?;
        if bytes.len() as u64 > max {
            return Err(BackendError {
                path,
                source: io::Error::other(format!(
                    "larger than the {max} bytes such a file may have"
                )),
            });
        }
        Ok(bytes)
    }

    /// `len` bytes of `key` from `offset`; a short file is an error.
    pub fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(key);
        let file = File::open(&path).map_err(at(&path))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map_err(at(&path))?;
        Ok(buf)
    }

    /// `key` opened for many ranged reads (restore reads runs of blobs from
    /// the same few packs over and over).
    pub fn open(&self, key: &str) -> Result<OpenFile> {
        let path = self.path(key);
        let file = File::open(&path).map_err(at(&path))?;
        Ok(OpenFile { file, path })
    }

    /// The last `len` bytes of `key` and the file's size, in one open.
    pub fn read_tail(&self, key: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        let path = self.path(key);
        let mut file = File::open(&path).map_err(at(&path))?;
        let size = file.metadata().map_err(at(&path))?.len();
        let start = size.saturating_sub(len);
        file.seek(SeekFrom::Start(start)).map_err(at(&path))?;
        let mut buf = Vec::with_capacity((size - start) as usize);
        file.read_to_end(&mut buf).map_err(at(&path))?;
        Ok((buf, size))
    }

    /// The file names directly in directory `dir` (a key prefix such as
    /// `snapshots`), sorted. A listing that fails is an error, never an
    /// empty list: callers delete things based on what is absent.
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.path(dir);
        let mut names = Vec::new();
        for entry in fs::read_dir(&path).map_err(at(&path))? {
            let entry = entry.map_err(at(&path))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes `key` durably.
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        fs::remove_file(&path).map_err(at(&path))?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// Whether `key` exists (a failure to tell counts as an error).
    pub fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key);
        path.try_exists().map_err(at(&path))
    }

    /// Removes `key` durably and returns its size; `None` if it was
    /// already gone.
    pub fn delete_counted(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key);
        let size = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(at(&path)(e)),
        };
        match self.delete(key) {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes `to` a second name of the file `from` (a hard link: no bytes
    /// are copied), durably. Fails if `to` exists.
    pub fn link(&self, from: &str, to: &str) -> Result<()> {
        let dest = self.path(to);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        self.ensure_dir(&dir)?;
        fs::hard_link(self.path(from), &dest).map_err(at(&dest))?;
        sync_dir(&dir)
    }

    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(at(dir))?;
        sync_dir(dir.parent().unwrap_or(&self.root))
    }
}

/// What an entry of `tmp/` is ([`Backend::temp_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempState {
    /// Locked by the process writing it.
    InUse,
    /// Nobody holds it: an interrupted run left it.
    Left,
    /// Removed since it was listed (a writer finished).
    Gone,
}

/// A store file open for reading.
#[derive(Debug)]
pub struct OpenFile {
    file: File,
    path: PathBuf,
}

impl OpenFile {
    /// The file, to read from the start in order (verify streams packs).
    pub fn into_file(self) -> File {
        self.file
    }

    /// `len` bytes from `offset`; a short file is an error.
    pub fn read_range(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(at(&self.path))?;
        Ok(buf)
    }
}

/// fsync a directory so that a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

impl Backend {
    /// Writes `bytes` durably as `key`, failing with `AlreadyExists` if `key`
    /// is already there (never replaces it).
    pub fn create_new(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let dest = self.path(key);
        let file = self.write_temp(bytes)?;
        file.as_file().sync_all().map_err(at(file.path()))?;
        file.persist_noclobber(&dest).map_err(|e| BackendError {
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(dest.parent().unwrap_or(&self.root))
    }
}
