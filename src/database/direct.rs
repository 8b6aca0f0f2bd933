//! Reading a quiet database straight from the descriptor the walk opened,
//! without SQLite.
//!
//! A database with no `-wal` frames and no rollback journal holds all of
//! its committed state in the file itself. If, in addition, the file was
//! last written long enough ago that any later write must carry a newer
//! timestamp (see [`Timespec::settled_before`]), its bytes can be read as
//! they are and checked afterwards: the file's size, mtime and ctime
//! unchanged and still no side file with content means that no writer
//! touched it while it was read (a WAL writer's commits go to the `-wal`,
//! which does not change the file; a checkpoint or a rollback-journal
//! write changes its mtime). A failed check means: capture it with SQLite.
//!
//! A writer holding a lock on the file is at work whatever the timestamps
//! say (see `locks`): such a database is not quiet.
//!
//! This is the common case of a nightly snapshot, and it is the only way
//! to read a WAL database that no connection has open without creating a
//! `-wal` and `-shm` beside it (SQLite creates both for any reader): a
//! directory the backup user cannot write, a read-only file system (an LVM
//! or ZFS snapshot mounted read-only) and a source that must not be
//! changed all need it. It reads nothing but the file the walk opened.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

use rustix::fs::AtFlags;
use rustix::io::Errno;

use super::{HEADER_MAGIC, is_valid_page_size, side_file_name};
use crate::tree::Timespec;

/// Bytes of the database header read to decide (its first 100 bytes).
const HEADER: usize = 100;

/// The side files whose content means the file alone is not the whole
/// committed state (or a writer is at work).
const BUSY_SIDE_FILES: [&str; 2] = ["-wal", "-journal"];

/// A database found quiet: what the check saw, to compare after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// Page size from the header.
    pub page_size: u32,
    /// Bytes of the database (whole pages).
    pub len: u64,
    stamp: Stamp,
}

/// What changes when a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub size: u64,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

/// How a database looked to [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quietness {
    /// It can be read directly.
    Quiet(Quiet),
    /// Quiet, but written too recently to trust its timestamps yet.
    Unsettled {
        /// In WAL mode (SQLite cannot read it without creating side files).
        wal: bool,
    },
    /// Side files with content, or a header SQLite must interpret.
    NotQuiet,
}

/// Decides whether the database open as `file`, named `name` in the
/// directory `dir`, can be read directly at `read_start`.
pub fn check(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file: &File,
    read_start: SystemTime,
) -> io::Result<Quietness> {
    let st = rustix::fs::fstat(file)?;
    let stamp = stamp_of(&st);
    let Some(Layout {
        page_size,
        len,
        wal,
    }) = layout(file, stamp.size)?
    else {
        return Ok(Quietness::NotQuiet);
    };
    if !side_files_quiet(dir, name)? || writer_at_work(&st)? {
        return Ok(Quietness::NotQuiet);
    }
    // The change time alone: every write sets it to the clock's time, and
    // nobody can set it otherwise (an mtime copied from a host whose clock
    // was ahead, `touch -d` next year, left a database unsettled, and out
    // of every snapshot, until then).
    if !stamp.ctime.settled_before(read_start) {
        return Ok(Quietness::Unsettled { wal });
    }
    Ok(Quietness::Quiet(Quiet {
        page_size,
        len,
        stamp,
    }))
}

/// Whether nothing changed since [`check`] found the database quiet: call
/// it after reading, and use what was read only if it says yes.
pub fn still_quiet(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file: &File,
    quiet: &Quiet,
) -> io::Result<bool> {
    // A writer's lock taken during the read matters only once it writes,
    // which the stamp shows; a lock held from before is seen by `check`.
    Ok(stamp(file)? == quiet.stamp && side_files_quiet(dir, name)?)
}

/// Whether a writer holds a lock on the database `st` describes (see
/// `locks`): its uncommitted pages may be in the file, whatever its
/// timestamps say.
fn writer_at_work(st: &rustix::fs::Stat) -> io::Result<bool> {
    #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
    super::locks::write_locked(st.st_dev as u64, st.st_ino as u64)
}

/// Reads the database in runs of `run` bytes (the last may be shorter).
pub fn read_runs<E>(
    file: &File,
    quiet: &Quiet,
    run: usize,
    mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
) -> Result<(), super::image::RunsStopped<E>> {
    use super::image::RunsStopped;
    let mut offset = 0u64;
    while offset < quiet.len {
        let want = (quiet.len - offset).min(run as u64) as usize;
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, offset)
            .map_err(RunsStopped::Read)?;
        offset += want as u64;
        each(buf).map_err(RunsStopped::Sink)?;
    }
    Ok(())
}

/// The stamp of an open file.
pub(super) fn stamp(file: &File) -> io::Result<Stamp> {
    Ok(stamp_of(&rustix::fs::fstat(file)?))
}

/// The stamp in a file's metadata.
fn stamp_of(st: &rustix::fs::Stat) -> Stamp {
    let time = |sec: i64, nsec: i64| Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    };
    #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
    Stamp {
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

/// What the header says about the file.
struct Layout {
    page_size: u32,
    len: u64,
    wal: bool,
}

/// The layout of the database if its header is one this reader
/// understands: a rollback-journal (1) or WAL (2) database whose file is a
/// whole number of pages and agrees with the page count the header records
/// (when the header's count is valid).
fn layout(file: &File, size: u64) -> io::Result<Option<Layout>> {
    let mut header = [0u8; HEADER];
    match file.read_exact_at(&mut header, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let raw = u32::from(u16::from_be_bytes([header[16], header[17]]));
    let page_size = if raw == 1 { 65536 } else { raw };
    let versions_known = header[18] == header[19] && matches!(header[18], 1 | 2);
    if !header.starts_with(HEADER_MAGIC) || !is_valid_page_size(page_size) || !versions_known {
        return Ok(None);
    }
    let pages = size / u64::from(page_size);
    let whole = pages > 0 && size.is_multiple_of(u64::from(page_size));
    // The in-header page count is valid only when "version-valid-for"
    // matches the change counter (SQLite file format, section 1.3.7).
    let recorded = be32(28);
    let counted_ok = recorded == 0 || be32(92) != be32(24) || u64::from(recorded) == pages;
    Ok((whole && counted_ok).then_some(Layout {
        page_size,
        len: size,
        wal: header[18] == 2,
    }))
}

/// Whether no `-wal` or `-journal` with content sits beside the database.
fn side_files_quiet(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    for suffix in BUSY_SIDE_FILES {
        let side = side_file_name(name, suffix);
        match rustix::fs::statat(dir, &side, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_size == 0 => {}
            Ok(_) => return Ok(false),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(5)
    }

    fn database(dir: &std::path::Path, mode: &str) -> std::path::PathBuf {
        let path = dir.join("a.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", mode).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        path
    }

    fn quietness(dir: &std::path::Path, path: &std::path::Path, at: SystemTime) -> Quietness {
        let d = File::open(dir).unwrap();
        let f = File::open(path).unwrap();
        check(d.as_fd(), OsStr::new("a.db"), &f, at).unwrap()
    }

    #[test]
    fn a_closed_wal_database_is_quiet_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "WAL");
        let Quietness::Quiet(q) = quietness(dir.path(), &path, later()) else {
            panic!("not quiet");
        };
        let f = File::open(&path).unwrap();
        let mut bytes = Vec::new();
        read_runs::<()>(&f, &q, 3000, |run| {
            bytes.extend(run);
            Ok(())
        })
        .unwrap();
        assert_eq!(bytes, std::fs::read(&path).unwrap());
    }

    #[test]
    fn an_open_wal_with_frames_or_a_recent_write_is_not_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "WAL");
        assert_eq!(
            quietness(dir.path(), &path, SystemTime::now()),
            Quietness::Unsettled { wal: true }
        );
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!(quietness(dir.path(), &path, later()), Quietness::NotQuiet);
    }

    #[test]
    fn a_file_that_is_not_whole_pages_is_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "DELETE");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(quietness(dir.path(), &path, later()), Quietness::NotQuiet);
    }
}
