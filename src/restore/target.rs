//! Writing under the restore target through directory handles.
//!
//! The target is opened once, and every directory below it is opened
//! relative to its parent's handle, one name at a time, with `O_NOFOLLOW`
//! (see `chain`): no path longer than one component is ever resolved, so a
//! path of any length restores (the kernel refuses more than PATH_MAX bytes
//! in one call), and nothing on the way can be a symlink, including one
//! another process swaps in while the restore runs (restoring a home
//! directory as root while its owner is logged in). Entries are then
//! created, given their metadata and renamed relative to that handle, so no
//! later step resolves a path again. A handle kept open stays safe: it was
//! opened below the target without symlinks, and whoever moves that
//! directory elsewhere could already write where it went.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::meta::{self, Misses, OwnerMap};
use crate::rawname::escaped;
use crate::tree::Meta;

/// How every temporary name of a restore starts (see `leftovers`).
pub(super) const TEMP_PREFIX: &str = ".cairn-restore-";

/// An open directory of the target, shared by the entries written into it.
pub type DirFd = Arc<OwnedFd>;

/// Creates the target directory if needed (the user named it: symlinks on
/// the way to it are followed) and opens it.
pub fn create(path: &Path) -> io::Result<DirFd> {
    fs::create_dir_all(path)?;
    Ok(Arc::new(rustix::fs::openat(
        CWD,
        path,
        dir_flags(),
        Mode::empty(),
    )?))
}

/// Opens an existing target to look into it; `None` if there is no
/// directory there (so nothing below it can be in the way).
pub fn open_existing(path: &Path) -> io::Result<Option<DirFd>> {
    match rustix::fs::openat(CWD, path, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(Some(Arc::new(fd))),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in directory `dir`, as they are read, without `.` and `..`.
pub(super) fn names(dir: &DirFd) -> io::Result<impl Iterator<Item = io::Result<OsString>>> {
    use std::os::unix::ffi::OsStrExt;
    let entries = rustix::fs::Dir::read_from(dir.as_ref())?;
    Ok(entries.filter_map(|entry| match entry {
        Ok(entry) => {
            let name = entry.file_name().to_bytes();
            (name != b"." && name != b"..").then(|| Ok(OsStr::from_bytes(name).to_owned()))
        }
        Err(e) => Some(Err(e.into())),
    }))
}

/// Gives an open directory its metadata; returns what it did not get.
pub fn set_dir_meta(dir: &DirFd, meta: &Meta, owners: &OwnerMap) -> io::Result<Misses> {
    use std::os::fd::AsFd;
    meta::apply_fd(dir.as_fd(), meta, owners)
}

/// Opens the directory `rel` below `root` one component at a time,
/// refusing symlinks, as the walk's chain does (see `chain`).
pub fn open_below(root: &DirFd, rel: &Path) -> io::Result<DirFd> {
    let mut dir = Arc::clone(root);
    for name in rel.iter() {
        let flags = dir_flags() | OFlags::NOFOLLOW;
        dir = Arc::new(rustix::fs::openat(&dir, name, flags, Mode::empty())?);
    }
    Ok(dir)
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Where one entry goes: its parent directory's handle and its name.
pub struct Slot {
    parent: Arc<OwnedFd>,
    name: OsString,
}

impl Slot {
    /// The place `name` in the open directory `parent`.
    pub fn new(parent: DirFd, name: &OsStr) -> Self {
        Self {
            parent,
            name: name.to_owned(),
        }
    }

    /// Whether something (of any kind) is at this place now.
    pub fn is_taken(&self) -> io::Result<bool> {
        Ok(self.existing(&self.name)?.is_some())
    }

    /// What kind of thing is at this place now (never following a
    /// symlink); `None` if nothing is.
    pub fn kind(&self) -> io::Result<Option<FileType>> {
        self.existing(&self.name)
    }

    /// Whether the database side file named like this place plus `suffix`
    /// is there.
    pub fn has_sibling(&self, suffix: &str) -> io::Result<bool> {
        let name = crate::database::side_file_name(&self.name, suffix);
        Ok(self.existing(&name)?.is_some())
    }

    fn existing(&self, name: &OsStr) -> io::Result<Option<FileType>> {
        match rustix::fs::statat(&self.parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode as _))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the directory at this place, refusing a symlink.
    pub fn open_dir(&self) -> io::Result<DirFd> {
        let flags = dir_flags() | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(&self.parent, &self.name, flags, Mode::empty())?;
        Ok(Arc::new(fd))
    }

    /// Makes this place a real directory: keeps an existing one, creates a
    /// missing one (0700 until its metadata is applied last), and replaces a
    /// file or symlink only if `replace` (the plan's conflict check allowed it).
    /// Returns whether it created one.
    pub fn make_dir(&self, replace: bool) -> io::Result<bool> {
        match self.kind()? {
            Some(FileType::Directory) => return Ok(false),
            Some(_) if replace => rustix::fs::unlinkat(&self.parent, &self.name, AtFlags::empty())?,
            Some(_) => return Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            None => {}
        }
        rustix::fs::mkdirat(&self.parent, &self.name, Mode::RWXU)?;
        Ok(true)
    }

    /// Removes the files named like this place plus each of `suffixes`
    /// (a database's `-wal`, `-shm`, `-journal`) if they are there; returns
    /// the names removed. Anything there other than a file or symlink is an
    /// error: it would still break the database.
    pub fn remove_siblings(&self, suffixes: &[&str]) -> io::Result<Vec<OsString>> {
        let mut removed = Vec::new();
        for suffix in suffixes {
            let name = crate::database::side_file_name(&self.name, suffix);
            match rustix::fs::unlinkat(&self.parent, &name, AtFlags::empty()) {
                Ok(()) => removed.push(name),
                Err(Errno::NOENT) => {}
                Err(e) => {
                    let why = format!("cannot remove {}: {e}", escaped(&name));
                    return Err(io::Error::other(why));
                }
            }
        }
        Ok(removed)
    }

    /// A new, empty, private temporary file beside this place, locked
    /// while it is written so that no other restore takes it for a
    /// leftover (see `leftovers`).
    pub fn temp_file(&self) -> io::Result<Temp<'_>> {
        self.temp(|name| {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&self.parent, name, flags, Mode::RUSR | Mode::WUSR)?;
            match lock_new_temp(&fd)? {
                true => Ok(Some(File::from(fd))),
                // Another restore removed it as a leftover: take a new name.
                false => Err(Errno::EXIST),
            }
        })
    }

    /// A new temporary hard link, beside this place, to the file `name` in
    /// the directory `dir` (another name of the same file, restored first).
    pub fn temp_link(&self, dir: &DirFd, name: &OsStr) -> io::Result<Temp<'_>> {
        self.temp(|tmp| {
            rustix::fs::linkat(dir, name, &self.parent, tmp, AtFlags::empty()).map(|()| None)
        })
    }

    /// A new temporary symlink to `target` beside this place.
    pub fn temp_symlink(&self, target: &OsStr) -> io::Result<Temp<'_>> {
        self.temp(|name| rustix::fs::symlinkat(target, &self.parent, name).map(|()| None))
    }

    fn temp(
        &self,
        create: impl Fn(&OsStr) -> rustix::io::Result<Option<File>>,
    ) -> io::Result<Temp<'_>> {
        for attempt in 0..16 {
            let name = temp_name(attempt > 0)?;
            match create(&name) {
                Ok(file) => {
                    return Ok(Temp {
                        slot: self,
                        name,
                        file,
                        placed: false,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("could not find a free temporary name"))
    }
}

/// Locks a temporary file just created; `false` if another restore's
/// leftover cleanup took the lock first, or took it and removed the file
/// before this lock (it then has no name left).
fn lock_new_temp(fd: &OwnedFd) -> rustix::io::Result<bool> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(rustix::fs::fstat(fd)?.st_nlink > 0),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A temporary entry beside its final place; removed on drop unless placed.
pub struct Temp<'s> {
    slot: &'s Slot,
    name: OsString,
    file: Option<File>,
    placed: bool,
}

impl Temp<'_> {
    /// The open file (for a temporary file; `None` for a symlink).
    pub fn file(&mut self) -> Option<&mut File> {
        self.file.as_mut()
    }

    /// Gives the entry its metadata (see `meta`); a symlink gets no mode.
    /// Returns what it did not get.
    pub fn apply_meta(&self, meta: &Meta, owners: &OwnerMap) -> io::Result<Misses> {
        use std::os::fd::AsFd;
        match &self.file {
            Some(file) => meta::apply_fd(file.as_fd(), meta, owners),
            None => meta::apply_symlink(self.slot.parent.as_fd(), &self.name, meta, owners),
        }
    }

    /// Renames the entry into its place. Without `replace` nothing there is
    /// ever replaced (`AlreadyExists` if something appeared meanwhile).
    pub fn place(mut self, replace: bool) -> io::Result<()> {
        let (dir, from, to) = (&self.slot.parent, &self.name, &self.slot.name);
        let result = if replace {
            rustix::fs::renameat(dir, from, dir, to)
        } else {
            match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
                // File systems without RENAME_NOREPLACE: a hard link never replaces either.
                Err(Errno::INVAL) => rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())
                    .and_then(|()| rustix::fs::unlinkat(dir, from, AtFlags::empty())),
                other => other,
            }
        };
        result?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.placed {
            let _ = rustix::fs::unlinkat(&self.slot.parent, &self.name, AtFlags::empty());
        }
    }
}

/// A temporary name no other restore picks: a random part drawn once per
/// process and a counter (one random draw per file was a system call
/// each). Once the process's part has been seen in a directory, later
/// names are predictable, so a name that turns out taken (`fresh`: someone
/// may be squatting the next ones) is retried with a new random draw.
fn temp_name(fresh: bool) -> io::Result<OsString> {
    static RANDOM: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let draw = || -> io::Result<String> {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(hex::encode(bytes))
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    if fresh {
        return Ok(OsString::from(format!("{TEMP_PREFIX}{}-{n}", draw()?)));
    }
    let random = match RANDOM.get() {
        Some(random) => random,
        None => {
            let drawn = draw()?;
            RANDOM.get_or_init(|| drawn)
        }
    };
    Ok(OsString::from(format!("{TEMP_PREFIX}{random}-{n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_inside_the_target_is_never_opened_as_a_directory() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        let target = create(dir.path()).unwrap();
        let slot = Slot::new(target, OsStr::new("sub"));
        assert!(slot.open_dir().is_err());
        assert_eq!(slot.kind().unwrap(), Some(FileType::Symlink));
        assert!(slot.make_dir(false).is_err());
    }

    #[test]
    fn a_temp_file_is_removed_unless_placed_and_placing_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let target = create(dir.path()).unwrap();
        let slot = Slot::new(target, OsStr::new("f"));
        drop(slot.temp_file().unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        fs::write(dir.path().join("f"), b"mine").unwrap();
        let tmp = slot.temp_file().unwrap();
        let err = tmp.place(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"mine");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
