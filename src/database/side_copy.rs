//! Copying a database and its `-wal` out of the source directory, for the
//! one case SQLite cannot read in place without creating a file there: a
//! `-wal` with commits but no `-shm` beside it, where none can be created
//! (a read-only file system, a directory the backup user cannot write).
//!
//! No connection has such a database open (every WAL connection keeps the
//! `-shm` open), so a copy of both files taken while neither changes is a
//! committed state: the database is read from the descriptor the walk
//! opened, the `-wal` through the walk's directory handle, and both must be
//! settled before and unchanged after (see [`super::direct`]).

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::direct::{Stamp, stamp};
use super::image::{ImageError, ImageRequest};
use super::side_file_name;

/// Copies the database to `dest` and its `-wal` (if any) to `dest-wal`.
/// `Ok(false)` if either was written too recently or changed meanwhile.
pub(super) fn copy_settled(request: &ImageRequest<'_>, dest: &Path) -> Result<bool, ImageError> {
    let read_start = SystemTime::now();
    let read = |e: io::Error| ImageError::Read(e);
    let wal = open_wal(request.dir, request.name).map_err(read)?;
    let before = stamps(request.file, wal.as_ref()).map_err(read)?;
    if !before
        .iter()
        .all(|s| s.mtime.max(s.ctime).settled_before(read_start))
    {
        return Ok(false);
    }
    copy(request.file, dest).map_err(read)?;
    if let Some(wal) = &wal {
        copy(wal, &with_suffix(dest, "-wal")).map_err(read)?;
    }
    Ok(stamps(request.file, wal.as_ref()).map_err(read)? == before)
}

fn stamps(db: &File, wal: Option<&File>) -> io::Result<Vec<Stamp>> {
    let mut all = vec![stamp(db)?];
    if let Some(wal) = wal {
        all.push(stamp(wal)?);
    }
    Ok(all)
}

/// The database's `-wal`, opened without following a symlink; it must be
/// a regular file with one link (never someone else's file linked in).
fn open_wal(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<Option<File>> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, side_file_name(name, "-wal"), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode as _).is_file();
    if !regular || st.st_nlink != 1 {
        return Err(io::Error::other(
            "its -wal is not a plain file (a link or something else): not read",
        ));
    }
    Ok(Some(File::from(fd)))
}

/// Copies all of `from` (by offset: the walk's descriptor is shared) to a
/// new file `to`.
fn copy(from: &File, to: &Path) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut out = File::create_new(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = from.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
