//! A store in a local directory: objects are files under the root, keys
//! are their relative paths.
//!
//! Every object appears whole or not at all and is never changed in place:
//! it is written to a temporary file in the store's `tmp/` (on the same file
//! system), fsynced, renamed to its key (without replacing anything when it
//! is created) and its directory fsynced. A crash at any instant leaves the
//! key absent or complete.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::ObjectInfo;

/// Permission bits of new files unless the store says otherwise: the
/// owner's only.
pub const PRIVATE: u32 = 0o600;

/// Directories of objects every local store has (`packs/XX` besides).
const OBJECT_DIRS: [&str; 4] = ["packs", "snapshots", "protected", "index"];

/// The objects of a store directory.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
    tmp: PathBuf,
    file_mode: u32,
}

impl Local {
    /// The store at `root`; temporary files go to `root/tmp`, and new files
    /// get exactly the permission bits `file_mode` (the store's).
    pub fn new(root: &Path, file_mode: u32) -> Self {
        Self {
            root: root.to_owned(),
            tmp: root.join("tmp"),
            file_mode,
        }
    }

    /// Visits the files under `root` (paths relative to it) until `visit`
    /// returns `false`; whether it visited them all. An absent `root` has
    /// none; empty directories are no files (an init killed before it
    /// wrote a file leaves the 256 `packs/XX`). A directory that cannot be
    /// read is an error naming it: it may hold anything.
    pub fn visit_files(
        root: &Path,
        visit: &mut dyn FnMut(&Path) -> bool,
    ) -> Result<bool, (PathBuf, io::Error)> {
        match fs::symlink_metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err((root.to_owned(), e)),
            Ok(_) => visit_dir(root, Path::new(""), visit),
        }
    }

    /// Creates any missing object directory, including the 256
    /// `packs/XX`, and fsyncs their parents. Always fsyncing (not only when
    /// this process created something) closes the window where another
    /// process created a directory and has not yet made its entry durable
    /// when we write into it. It also lets a store copied by a tool that
    /// drops empty directories open. A reader (`reading`) of a store it
    /// cannot write reads it as it is.
    pub fn prepare(&self, reading: bool) -> io::Result<()> {
        let dirs = OBJECT_DIRS
            .iter()
            .map(|d| self.root.join(d))
            .chain((0..=255u8).map(|b| self.root.join("packs").join(hex::encode([b]))));
        for dir in dirs {
            if !dir.is_dir() {
                match fs::create_dir_all(&dir) {
                    Err(e) if reading && is_unwritable(&e) => return Ok(()),
                    other => other?,
                }
            }
        }
        sync_dir(&self.root.join("packs"))?;
        sync_dir(&self.root)
    }

    /// Best-effort removal of what `prepare` created for an `init` that
    /// failed (empty directories only), so that a retry is not refused as
    /// "not empty".
    pub fn unprepare(&self, remove_root: bool) {
        for b in 0..=255u8 {
            let _ = fs::remove_dir(self.root.join("packs").join(hex::encode([b])));
        }
        for dir in OBJECT_DIRS.iter().chain(&["locks", "tmp"]) {
            let _ = fs::remove_dir(self.root.join(dir));
        }
        if remove_root {
            let _ = fs::remove_dir(&self.root);
        }
    }

    /// The permission bits new files get.
    pub fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// The permission bits of the file of `key`.
    pub fn mode_of(&self, key: &str) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        Ok(fs::metadata(self.path(key))?.permissions().mode() & 0o7777)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Creates `key` holding `bytes`, never replacing a file: `Ok(false)`
    /// if it was already there (the caller compares contents).
    pub fn create(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        let file = self.written_temp(bytes)?;
        self.place(file, key, false)
    }

    /// Writes `key` whole, replacing what is there (readers see the old
    /// file or the new one).
    pub fn replace(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let file = self.written_temp(bytes)?;
        self.place(file, key, true).map(drop)
    }

    /// Makes the staged file `staged` (in this store's `tmp/`) the object
    /// `key`, a content-addressed name: an object already there is the same
    /// and is kept.
    pub fn upload(&self, key: &str, staged: NamedTempFile) -> io::Result<()> {
        staged.as_file().sync_all()?;
        self.place(staged, key, false).map(drop)
    }

    /// A temporary file in `tmp/` holding `bytes`, fsynced.
    fn written_temp(&self, bytes: &[u8]) -> io::Result<NamedTempFile> {
        let mut file = super::temp_file_in(&self.tmp, self.file_mode)?;
        file.as_file_mut().write_all(bytes)?;
        file.as_file().sync_all()?;
        Ok(file)
    }

    /// Renames a fsynced temporary file to `key` and fsyncs the directory;
    /// without `replace`, `Ok(false)` if `key` exists (left as it is).
    fn place(&self, file: NamedTempFile, key: &str, replace: bool) -> io::Result<bool> {
        let dest = self.path(key);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        self.ensure_dir(&dir)?;
        let placed = if replace {
            file.persist(&dest).map(drop)
        } else {
            file.persist_noclobber(&dest).map(drop)
        };
        match placed {
            Ok(()) => {}
            Err(e) if !replace && e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(false);
            }
            Err(e) => return Err(e.error),
        }
        sync_dir(&dir)?;
        Ok(true)
    }

    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        sync_dir(dir.parent().unwrap_or(&self.root))
    }

    /// Makes `to` a second name of the file `from` (a hard link: no bytes
    /// are copied), durably; a `to` already there is left as it is.
    pub fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let dest = self.path(to);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        self.ensure_dir(&dir)?;
        match fs::hard_link(self.path(from), &dest) {
            Ok(()) => sync_dir(&dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The whole file of `key`, which must not exceed `max` bytes.
    pub fn get(&self, key: &str, max: u64) -> io::Result<Vec<u8>> {
        let file = File::open(self.path(key))?;
        // Sized from the file up front (never past `max`), not grown by
        // doubling to up to twice its size.
        let too_large =
            || super::too_large(format!("larger than the {max} bytes such a file may have"));
        let len = file.metadata()?.len();
        if len > max {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(len as usize + 1);
        file.take(max + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// `len` bytes of `key` from `offset`; a short file is an error.
    pub fn get_range(&self, key: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        read_range(&File::open(self.path(key))?, offset, len)
    }

    /// The last `len` bytes of `key` and the file's size, in one open.
    pub fn get_tail(&self, key: &str, len: u64) -> io::Result<(Vec<u8>, u64)> {
        let mut file = File::open(self.path(key))?;
        let size = file.metadata()?.len();
        let start = size.saturating_sub(len);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((size - start) as usize);
        file.read_to_end(&mut buf)?;
        Ok((buf, size))
    }

    /// `key` opened for reading.
    pub fn open(&self, key: &str) -> io::Result<File> {
        File::open(self.path(key))
    }

    /// Every file whose key starts with `prefix` (a directory such as
    /// `packs/`), sorted by key. A listing that fails is an error, never a
    /// short list: callers delete things based on what is absent.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        let dir = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        match walk(&self.root.join(dir), dir, &mut out) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.root.join(dir).exists() => {}
            other => other?,
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// What is stored under `key`, if anything.
    pub fn head(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        match fs::symlink_metadata(self.path(key)) {
            Ok(meta) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: meta.len(),
                modified: meta.modified().ok(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `key` durably (nothing there is not an error).
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `len` bytes of `file` from `offset`; a short file is an error.
pub fn read_range(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Adds every file below `dir` (whose key is `key`) to `out`. A file
/// deleted between the directory read and its stat (a prune or forget
/// beside this run) is left out: it is gone, which is what the listing
/// says.
fn walk(dir: &Path, key: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = format!("{key}/{name}");
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            match walk(&entry.path(), &child, out) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && !entry.path().exists() => {}
                walked => walked?,
            }
        } else {
            out.push(ObjectInfo {
                key: child,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

/// Whether `e` means this process may not write there at all.
fn is_unwritable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// fsync a directory so that a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// [`Local::visit_files`] below `root/dir`.
fn visit_dir(
    root: &Path,
    dir: &Path,
    visit: &mut dyn FnMut(&Path) -> bool,
) -> Result<bool, (PathBuf, io::Error)> {
    let at = root.join(dir);
    let fail = |e| (at.clone(), e);
    for entry in fs::read_dir(&at).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let path = dir.join(entry.file_name());
        let go_on = match entry.file_type().map_err(fail)?.is_dir() {
            true => visit_dir(root, &path, visit)?,
            false => visit(&path),
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A file deleted between the directory read and its stat (a prune
    // beside a snapshot) failed the whole listing with "No such file or
    // directory": the snapshot or verify beside it exited 1.
    #[test]
    fn a_listing_beside_deletions_leaves_out_what_went_and_never_fails() {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::new(dir.path(), 0o644);
        let names: Vec<_> = (0..2000)
            .map(|i| dir.path().join(format!("snapshots/{i:05}.json")))
            .collect();
        fs::create_dir_all(dir.path().join("snapshots")).unwrap();
        for name in &names {
            fs::write(name, b"{}").unwrap();
        }
        std::thread::scope(|s| {
            let deleting = s.spawn(|| names.iter().for_each(|n| fs::remove_file(n).unwrap()));
            while !deleting.is_finished() {
                let listed = local.list("snapshots/").unwrap();
                assert!(listed.len() <= names.len());
            }
        });
        assert!(local.list("snapshots/").unwrap().is_empty());
    }
}
