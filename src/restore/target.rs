//! Writing under the restore target through directory handles.
//!
//! The target is opened once. Every directory the restore writes into is
//! opened relative to it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`:
//! the kernel refuses any path that would leave the target or pass through
//! a symlink, including one that another process swaps in while the restore
//! runs (restoring a home directory as root while its owner is logged in).
//! Entries are then created, given their metadata and renamed relative to
//! that handle, so no later step resolves a path again.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, RenameFlags, ResolveFlags, Timestamps, UTIME_OMIT};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::rawname::escaped;
use crate::tree::{Meta, Timespec};

const TEMP_PREFIX: &str = ".cairn-restore-";

/// The restore target, open.
pub struct Target {
    fd: OwnedFd,
}

impl Target {
    /// Creates the target directory if needed (the user named it: symlinks
    /// on the way to it are followed) and opens it.
    pub fn create(path: &Path) -> io::Result<Self> {
        fs::create_dir_all(path)?;
        let fd = rustix::fs::openat(CWD, path, dir_flags(), Mode::empty())?;
        Ok(Self { fd })
    }

    /// Opens directory `rel` (relative to the target; empty for the target
    /// itself), refusing symlinks anywhere on the way and any escape.
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.fd, rel, dir_flags(), Mode::empty(), resolve) {
            Err(Errno::NOSYS) => self.dir_by_components(rel),
            result => Ok(result?),
        }
    }

    /// The same as [`Target::dir`] for kernels without `openat2` (before
    /// Linux 5.6): one `O_NOFOLLOW` open per path component.
    fn dir_by_components(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())?;
        for c in rel.components() {
            match c {
                Component::CurDir => {}
                Component::Normal(name) => {
                    fd = rustix::fs::openat(
                        &fd,
                        name,
                        dir_flags() | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )?;
                }
                _ => return Err(io::Error::other("path leaves the restore target")),
            }
        }
        Ok(fd)
    }

    /// Applies owner (if `as_owner`), mode and mtime to directory `rel`,
    /// through its own handle (never following a symlink).
    pub fn apply_dir_meta(&self, rel: &Path, meta: &Meta, as_owner: bool) -> io::Result<()> {
        set_fd_meta(self.dir(rel)?, meta, as_owner)
    }

    /// The place of entry `rel`: its parent directory, opened, and its name.
    pub fn slot(&self, rel: &Path) -> io::Result<Slot> {
        self.slot_via(&mut Parents::default(), rel)
    }

    /// [`Target::slot`], reusing the parent directory of the previous call
    /// through `parents` when it is the same: files are restored directory
    /// by directory, and opening the parent for each cost two of a small
    /// file's eleven system calls. A handle kept open stays safe: it was
    /// opened beneath the target without symlinks, and whoever moves that
    /// directory elsewhere could already write where it went.
    pub fn slot_via(&self, parents: &mut Parents, rel: &Path) -> io::Result<Slot> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::other("no file name"))?
            .to_owned();
        let dir = rel.parent().unwrap_or(Path::new(""));
        let parent = match &parents.last {
            Some((path, fd)) if path == dir => Arc::clone(fd),
            _ => {
                let fd = Arc::new(self.dir(dir)?);
                parents.last = Some((dir.to_owned(), Arc::clone(&fd)));
                fd
            }
        };
        Ok(Slot { parent, name })
    }
}

/// The directory handle [`Target::slot_via`] opened last, kept for the next.
#[derive(Default)]
pub struct Parents {
    last: Option<(PathBuf, Arc<OwnedFd>)>,
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
    /// Whether something (of any kind) is at this place now.
    pub fn is_taken(&self) -> io::Result<bool> {
        match rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes this place a real directory: keeps an existing one, creates a
    /// missing one (0700 until its metadata is applied last), and replaces a
    /// file or symlink only if `replace` (the plan's conflict check allowed it).
    pub fn make_dir(&self, replace: bool) -> io::Result<()> {
        match rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode as _).is_dir() => {
                return Ok(());
            }
            Ok(_) if replace => rustix::fs::unlinkat(&self.parent, &self.name, AtFlags::empty())?,
            Ok(_) => return Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(rustix::fs::mkdirat(&self.parent, &self.name, Mode::RWXU)?)
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

    /// A new, empty, private temporary file beside this place.
    pub fn temp_file(&self) -> io::Result<Temp<'_>> {
        self.temp(|name| {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(&self.parent, name, flags, Mode::RUSR | Mode::WUSR)
                .map(|fd| Some(File::from(fd)))
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

    /// Gives the entry its owner (if `as_owner`: chown clears setuid bits,
    /// so it goes first), mode and mtime. Symlinks get owner and mtime only.
    pub fn apply_meta(&self, meta: &Meta, as_owner: bool) -> io::Result<()> {
        match &self.file {
            Some(file) => set_fd_meta(file, meta, as_owner),
            None => {
                if as_owner {
                    rustix::fs::chownat(
                        &self.slot.parent,
                        &self.name,
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                let times = mtime_only(meta.mtime);
                Ok(rustix::fs::utimensat(
                    &self.slot.parent,
                    &self.name,
                    &times,
                    AtFlags::SYMLINK_NOFOLLOW,
                )?)
            }
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

fn set_fd_meta(fd: impl rustix::fd::AsFd, meta: &Meta, as_owner: bool) -> io::Result<()> {
    if as_owner {
        rustix::fs::fchown(
            &fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode as _))?;
    Ok(rustix::fs::futimens(&fd, &mtime_only(meta.mtime))?)
}

/// Sets the modification time and leaves the access time as it is.
fn mtime_only(t: Timespec) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: t.sec,
            tv_nsec: i64::from(t.nsec),
        },
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
    fn a_symlink_inside_the_target_is_never_passed_through() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        let target = Target::create(dir.path()).unwrap();
        assert!(target.dir(Path::new("sub")).is_err());
        assert!(target.slot(Path::new("sub/file")).is_err());
        assert!(target.dir(Path::new("../")).is_err());
    }

    #[test]
    fn slots_through_one_parents_cache_land_in_their_own_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a")).unwrap();
        fs::create_dir_all(dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        let target = Target::create(dir.path()).unwrap();
        let mut parents = Parents::default();
        for rel in ["a/1", "a/2", "b/3", "a/4"] {
            let slot = target.slot_via(&mut parents, Path::new(rel)).unwrap();
            slot.temp_file().unwrap().place(false).unwrap();
        }
        let names = |d: &str| {
            let mut n: Vec<_> = fs::read_dir(dir.path().join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names("a"), ["1", "2", "4"]);
        assert_eq!(names("b"), ["3"]);
        assert!(target.slot_via(&mut parents, Path::new("link/5")).is_err());
    }

    #[test]
    fn a_temp_file_is_removed_unless_placed_and_placing_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::create(dir.path()).unwrap();
        let slot = target.slot(Path::new("f")).unwrap();
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
