//! How the walk reaches source files: through open directory handles
//! (`openat`, `statat`, `readlinkat`), never by path below a source.
//!
//! Between listing a directory and reading an entry, another process may
//! replace the entry: a file by a symlink to a secret, by a fifo (an `open`
//! that never returns) or by a device (a read that never ends), a directory
//! by a symlink leading elsewhere. Every entry is therefore opened with
//! `O_NOFOLLOW` (files also `O_NONBLOCK`) relative to its parent's handle,
//! and `fstat` must show the same device, inode and type that the listing
//! saw; otherwise the entry is reported and left out.
//!
//! Files and directories are opened with `O_NOATIME` where the kernel
//! allows it (see [`open_quietly`]): reading a source for a backup must not
//! change it, and with `relatime` the first read after a day writes every
//! inode read back to the disk being protected.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::tree::Timespec;

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (fifo, socket, device), named for messages.
    Special(&'static str),
}

/// The metadata of one entry, as `stat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Type of file.
    pub kind: Kind,
    /// Permission bits with setuid, setgid, sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Timespec,
    /// Status change time.
    pub ctime: Timespec,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
    /// Number of hard links (names) of the file.
    pub nlink: u64,
    /// 512-byte blocks allocated (fewer than the size needs: a sparse file).
    pub blocks: u64,
}

impl FileStat {
    #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
    fn from_raw(st: &rustix::fs::Stat) -> Self {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Special("fifo"),
            FileType::Socket => Kind::Special("socket"),
            FileType::CharacterDevice => Kind::Special("character device"),
            FileType::BlockDevice => Kind::Special("block device"),
            FileType::Unknown => Kind::Special("special file"),
        };
        let time = |sec: i64, nsec: i64| Timespec {
            sec,
            nsec: nsec.clamp(0, 999_999_999) as u32,
        };
        Self {
            kind,
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        }
    }

    /// Whether `other` is the same file system object (device and inode)
    /// of the same kind.
    fn same_object(&self, other: &FileStat) -> bool {
        self.dev == other.dev && self.ino == other.ino && self.kind == other.kind
    }
}

/// The metadata of an open file.
pub fn fstat(file: &File) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rustix::fs::fstat(file)?))
}

/// The metadata of a path the user named, following symlinks: sources and
/// the directories above them are what the user pointed at.
pub fn stat_path(path: &Path) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rustix::fs::statat(
        CWD,
        path,
        AtFlags::empty(),
    )?))
}

/// The metadata of `path` itself, not following a final symlink.
pub fn lstat_path(path: &Path) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rustix::fs::statat(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Opens a file the user named (a source given directly), following symlinks.
pub fn open_file_path(path: &Path, seen: &FileStat) -> io::Result<(File, FileStat)> {
    let fd = open_quietly(CWD, path, file_flags())?;
    checked_file(fd, seen)
}

/// Opens `path` relative to `dir` with `flags`, and without updating its
/// access time when the kernel allows it: `O_NOATIME` is only for the
/// file's owner or a process with `CAP_FOWNER`, and is refused with EPERM
/// otherwise (a user backing up files shared with them), when the file is
/// opened as it always was.
fn open_quietly<P: rustix::path::Arg + Copy>(
    dir: impl std::os::fd::AsFd,
    path: P,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    match rustix::fs::openat(dir, path, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?),
        opened => Ok(opened?),
    }
}

const REPLACED: &str = "replaced while it was being captured (not the entry that was listed)";

fn file_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn checked_file(fd: OwnedFd, seen: &FileStat) -> io::Result<(File, FileStat)> {
    let file = File::from(fd);
    let stat = fstat(&file)?;
    if stat.kind != Kind::File || !stat.same_object(seen) {
        return Err(io::Error::other(REPLACED));
    }
    Ok((file, stat))
}

/// The entry names of the directory at `path` (not following a final
/// symlink), sorted by bytes, read without updating its access time: for
/// the progress count, which checks no identity (it decides nothing).
pub fn names_at(path: &Path) -> io::Result<Vec<OsString>> {
    let fd = open_quietly(CWD, path, dir_flags() | OFlags::NOFOLLOW)?;
    DirHandle { fd }.names()
}

/// An open directory; its entries are reached relative to it.
pub struct DirHandle {
    fd: OwnedFd,
}

impl DirHandle {
    /// Opens a directory the user named (following symlinks) and checks it
    /// is the one `seen` describes.
    pub fn open_path(path: &Path, seen: &FileStat) -> io::Result<Self> {
        let fd = open_quietly(CWD, path, dir_flags())?;
        Self::checked(fd, seen)
    }

    /// The directory that holds the file at `path` (a path the user named:
    /// symlinks are followed to the real file), and the file's name in it,
    /// checked to be the file `seen` describes.
    pub fn containing(path: &Path, seen: &FileStat) -> io::Result<(Self, OsString)> {
        let real = std::fs::canonicalize(path)?;
        let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
            return Err(io::Error::other("has no parent directory"));
        };
        let dir = Self::open_path(parent, &stat_path(parent)?)?;
        let found = dir.lstat(name)?;
        if found.kind != Kind::File || !found.same_object(seen) {
            return Err(io::Error::other(REPLACED));
        }
        Ok((dir, name.to_owned()))
    }

    /// The directory's descriptor, for reading entries relative to it.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    fn checked(fd: OwnedFd, seen: &FileStat) -> io::Result<Self> {
        let stat = FileStat::from_raw(&rustix::fs::fstat(&fd)?);
        if !stat.same_object(seen) {
            return Err(io::Error::other(REPLACED));
        }
        Ok(Self { fd })
    }

    /// The directory's own metadata.
    pub fn stat(&self) -> io::Result<FileStat> {
        Ok(FileStat::from_raw(&rustix::fs::fstat(&self.fd)?))
    }

    /// The entry names, sorted by bytes, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in Dir::read_from(&self.fd)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// The metadata of entry `name`, not following a symlink.
    pub fn lstat(&self, name: &OsStr) -> io::Result<FileStat> {
        let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(FileStat::from_raw(&st))
    }

    /// Opens subdirectory `name`, which must still be the one `seen` describes.
    pub fn open_dir(&self, name: &OsStr, seen: &FileStat) -> io::Result<DirHandle> {
        let fd = open_quietly(&self.fd, name, dir_flags() | OFlags::NOFOLLOW)?;
        Self::checked(fd, seen)
    }

    /// Opens regular file `name` for reading, which must still be the one
    /// `seen` describes; returns it with its current metadata.
    pub fn open_file(&self, name: &OsStr, seen: &FileStat) -> io::Result<(File, FileStat)> {
        let fd = open_quietly(&self.fd, name, file_flags() | OFlags::NOFOLLOW)?;
        checked_file(fd, seen)
    }

    /// The target of symlink `name`, byte for byte.
    pub fn read_link(&self, name: &OsStr) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(&self.fd, name, Vec::new())?.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_symlink_is_never_opened_as_a_file_or_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("secret", dir.path().join("link")).unwrap();
        let root = stat_path(dir.path()).unwrap();
        let h = DirHandle::open_path(dir.path(), &root).unwrap();
        let link = h.lstat(OsStr::new("link")).unwrap();
        assert_eq!(link.kind, Kind::Symlink);
        assert!(h.open_file(OsStr::new("link"), &link).is_err());
        assert!(h.open_dir(OsStr::new("link"), &link).is_err());
        assert_eq!(h.read_link(OsStr::new("link")).unwrap(), b"secret");
    }

    #[test]
    fn an_entry_replaced_after_listing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"old").unwrap();
        let root = stat_path(dir.path()).unwrap();
        let h = DirHandle::open_path(dir.path(), &root).unwrap();
        let seen = h.lstat(OsStr::new("f")).unwrap();
        fs::write(dir.path().join("g"), b"new").unwrap();
        fs::rename(dir.path().join("g"), dir.path().join("f")).unwrap();
        let err = h.open_file(OsStr::new("f"), &seen).unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
    }

    #[test]
    fn a_fifo_swapped_in_does_not_block_the_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"x").unwrap();
        let root = stat_path(dir.path()).unwrap();
        let h = DirHandle::open_path(dir.path(), &root).unwrap();
        let seen = h.lstat(OsStr::new("f")).unwrap();
        fs::remove_file(dir.path().join("f")).unwrap();
        rustix::fs::mknodat(
            CWD,
            dir.path().join("f"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        assert!(h.open_file(OsStr::new("f"), &seen).is_err());
    }

    #[test]
    fn names_are_sorted_by_bytes_without_dot_entries() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b", "a", "B"] {
            fs::write(dir.path().join(n), b"").unwrap();
        }
        let root = stat_path(dir.path()).unwrap();
        let h = DirHandle::open_path(dir.path(), &root).unwrap();
        assert_eq!(h.names().unwrap(), ["B", "a", "b"]);
    }
}
