//! Capturing a database through SQLite, for when it is not quiet (see
//! [`super::direct`]): a writer is at work or commits sit in its `-wal`.
//!
//! SQLite reads the very file the walk opened, through the directory the
//! walk holds ([`super::pinned`]), and creates nothing beside it. Inside one
//! read transaction, so that the image is one committed state:
//!
//! - **WAL databases are read in place**, page by page through SQLite's
//!   `sqlite_dbpage` table, while the transaction stays open. Writers are
//!   never blocked in WAL mode, so holding the transaction for the whole
//!   capture costs them nothing; only checkpoints cannot pass it, so the
//!   `-wal` may grow by what is written meanwhile.
//! - **Other databases are copied** with SQLite's online backup API in a
//!   single step into a temporary file in the store's `tmp/`. Their read
//!   lock blocks writers, so it is held only for the copy, not for the
//!   compression. A SQLite built without `sqlite_dbpage` copies WAL
//!   databases too.
//!
//! When SQLite cannot use the side files as they are (a `-wal` without its
//! `-shm` that cannot be created: a read-only file system, a directory the
//! backup user cannot write), the database and its `-wal` are copied into
//! a private directory under `tmp/` and read there, provided neither
//! changed while they were copied.

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tempfile::{NamedTempFile, TempDir};

use super::image::{Image, ImageError, ImageRequest, Patience, Source};
use super::pinned::{self, Pin};
use crate::store::Staging;

/// Every page of the main database as the open read transaction sees it,
/// in order (`sqlite_dbpage` consumes the `ORDER BY`: no sort).
pub(super) const PAGES_SQL: &str = "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno";
/// Room left free on the file system of `tmp/` beyond the image itself.
const SPACE_MARGIN: u64 = 16 << 20;

/// Why SQLite could not read the database as it is.
pub(super) enum LiveError {
    /// It could not open or create the side files it needs.
    SideFiles(ImageError),
    /// Anything else.
    Other(ImageError),
}

impl From<ImageError> for LiveError {
    fn from(e: ImageError) -> Self {
        Self::Other(e)
    }
}

/// Captures the database through SQLite, in place when it is a WAL
/// database this SQLite can read page by page, else as a copy in `tmp/`.
pub(super) fn capture<'a>(
    staging: &Staging,
    request: &ImageRequest<'a>,
    patience: &mut Patience,
) -> Result<Image<'a>, LiveError> {
    let st = rustix::fs::fstat(request.file).map_err(|e| ImageError::Read(e.into()))?;
    #[allow(clippy::unnecessary_cast)] // field widths differ between architectures
    let pin = Pin::new(
        request.dir,
        request.name,
        st.st_dev as u64,
        st.st_ino as u64,
    )
    .map_err(ImageError::Read)?;
    let source = open(
        pin.path(),
        pinned::VFS,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
        request,
        &pin,
    )?;
    read_consistently(staging, request, source, Some(pin), None, patience)
}

/// Copies the database and its `-wal` into a private directory under
/// `tmp/` and captures the copy: for a `-wal` SQLite cannot use in place.
/// `Ok(None)` if either file changed while being copied (try again later).
pub(super) fn capture_copied<'a>(
    staging: &Staging,
    request: &ImageRequest<'a>,
    patience: &mut Patience,
) -> Result<Option<Image<'a>>, ImageError> {
    let dir = private_dir(staging, request.expected_len)?;
    let copy = dir.path().join("db");
    if !super::side_copy::copy_settled(request, &copy)? {
        return Ok(None);
    }
    // The copy is private: SQLite may create its -shm and apply the -wal.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
    let source = open(&copy, "unix", flags, request, &()).map_err(|e| match e {
        LiveError::SideFiles(e) | LiveError::Other(e) => e,
    })?;
    match read_consistently(staging, request, source, None, Some(dir), patience) {
        Ok(image) => Ok(Some(image)),
        Err(LiveError::SideFiles(e) | LiveError::Other(e)) => Err(e),
    }
}

/// The read transaction (or backup copy) of an open source connection,
/// retried while the database is busy.
fn read_consistently<'a>(
    staging: &Staging,
    request: &ImageRequest<'a>,
    source: Connection,
    pin: Option<Pin>,
    dir: Option<TempDir>,
    patience: &mut Patience,
) -> Result<Image<'a>, LiveError> {
    loop {
        match begin_in_place(&source) {
            Ok(Some((page_size, pages))) => {
                return Ok(in_place(source, pin, dir, page_size, pages)?);
            }
            Ok(None) => break,
            Err(e) => {
                end_transaction(&source);
                if !is_busy(&e) {
                    return Err(classify(e, request));
                }
            }
        }
        patience.wait()?;
    }
    check_free_space(staging.dir(), request.expected_len)?;
    let file = staging.file().map_err(ImageError::from)?;
    loop {
        match copy_once(&source, file.path()) {
            Ok(StepResult::Done) => return Ok(finish(file)?),
            Ok(_) => {}
            Err(e) if is_busy(&e) => {}
            Err(e) => return Err(classify(e, request)),
        }
        patience.wait()?;
    }
}

/// Opens `path` with `vfs` (read-only for a source: nothing cairn does may
/// change a database). A pinned open that found another file is `Replaced`.
fn open(
    path: &Path,
    vfs: &str,
    mode: OpenFlags,
    request: &ImageRequest<'_>,
    pin: &dyn Replaced,
) -> Result<Connection, LiveError> {
    let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags_and_vfs(path, flags, vfs).map_err(|e| {
        if pin.replaced() {
            LiveError::Other(ImageError::Replaced)
        } else {
            classify(e, request)
        }
    })?;
    // Short waits inside SQLite; the deadline is kept by the callers.
    conn.busy_timeout(Duration::from_millis(50))
        .map_err(ImageError::Sqlite)?;
    Ok(conn)
}

/// Whether a pinned open found another file than the walk's.
trait Replaced {
    fn replaced(&self) -> bool;
}

impl Replaced for Pin {
    fn replaced(&self) -> bool {
        Pin::replaced(self)
    }
}

impl Replaced for () {
    fn replaced(&self) -> bool {
        false
    }
}

/// Opens a read transaction and, for a WAL database this SQLite can read
/// page by page, leaves it open and returns the page size and count it
/// sees. `None`, with no transaction left open, means: copy it instead.
fn begin_in_place(source: &Connection) -> rusqlite::Result<Option<(u32, u64)>> {
    source.execute_batch("BEGIN")?;
    // The first read starts the read transaction: every later read sees
    // the committed state this one saw.
    let pages: i64 = source.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let mode: String = source.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    // Preparing it is the test that this SQLite has `sqlite_dbpage`; the
    // statement is cached for the read.
    if !mode.eq_ignore_ascii_case("wal") || source.prepare_cached(PAGES_SQL).is_err() {
        source.execute_batch("ROLLBACK")?;
        return Ok(None);
    }
    let page_size: i64 = source.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let invalid = || rusqlite::Error::IntegralValueOutOfRange(0, page_size);
    let page_size = u32::try_from(page_size).map_err(|_| invalid())?;
    let pages =
        u64::try_from(pages).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, pages))?;
    Ok(Some((page_size, pages)))
}

fn in_place<'a>(
    conn: Connection,
    pin: Option<Pin>,
    dir: Option<TempDir>,
    page_size: u32,
    pages: u64,
) -> Result<Image<'a>, ImageError> {
    if !super::is_valid_page_size(page_size) {
        return Err(ImageError::BadImage(format!(
            "SQLite reports a page size of {page_size}"
        )));
    }
    Ok(Image {
        source: Source::InPlace {
            conn,
            _pin: pin,
            _dir: dir,
        },
        page_size,
        len: pages * u64::from(page_size),
    })
}

/// Ends a transaction an attempt left open, so the next can begin.
fn end_transaction(source: &Connection) {
    if !source.is_autocommit() {
        // A failed rollback leaves the transaction open; the next BEGIN
        // then fails and reports it.
        let _ = source.execute_batch("ROLLBACK");
    }
}

/// One attempt: the whole database in one backup step, that is in one read
/// transaction of the source. `More` cannot happen with -1 but is retried
/// like `Busy` rather than trusted.
fn copy_once(source: &Connection, dest: &Path) -> rusqlite::Result<StepResult> {
    let mut dest = Connection::open(dest)?;
    // The image is a scratch file: no journal, no syncs.
    dest.pragma_update(None, "journal_mode", "OFF")?;
    dest.pragma_update(None, "synchronous", "OFF")?;
    let backup = Backup::new(source, &mut dest)?;
    backup.step(-1)
}

fn finish<'a>(file: NamedTempFile) -> Result<Image<'a>, ImageError> {
    let bad = |what: String| ImageError::BadImage(what);
    let mut header = [0u8; super::HEADER_LEN];
    let mut reader = file.reopen().map_err(|e| bad(e.to_string()))?;
    io::Read::read_exact(&mut reader, &mut header).map_err(|e| bad(e.to_string()))?;
    let page_size = super::page_size(&header).ok_or_else(|| bad("no valid header".to_owned()))?;
    let len = reader.metadata().map_err(|e| bad(e.to_string()))?.len();
    if len % u64::from(page_size) != 0 {
        return Err(bad(format!(
            "{len} bytes is not a whole number of {page_size}-byte pages"
        )));
    }
    Ok(Image {
        source: Source::Copy(file),
        page_size,
        len,
    })
}

/// Lock conflicts that go away: busy, locked, and SQLite's WAL-index
/// protocol race.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// Sorts SQLite's refusals into what the caller does about them.
fn classify(e: rusqlite::Error, request: &ImageRequest<'_>) -> LiveError {
    let extended = e.sqlite_error().map(|s| s.extended_code);
    if extended == Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK) {
        return LiveError::Other(ImageError::HotJournal);
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            LiveError::Other(ImageError::NotADatabase(e.to_string()))
        }
        Some(ErrorCode::CannotOpen) if !exists(request.dir, request.name) => {
            LiveError::Other(ImageError::Vanished)
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly) => {
            LiveError::SideFiles(ImageError::Sqlite(e))
        }
        _ => LiveError::Other(ImageError::Sqlite(e)),
    }
}

fn exists(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// A private staging directory with room for a `len`-byte database.
fn private_dir(staging: &Staging, len: u64) -> Result<TempDir, ImageError> {
    check_free_space(staging.dir(), len)?;
    Ok(staging.dir_for_files()?)
}

fn check_free_space(dir: &Path, expected_len: u64) -> Result<(), ImageError> {
    let Ok(stat) = rustix::fs::statvfs(dir) else {
        // Not knowable here: the copy itself will report a full disk.
        return Ok(());
    };
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let need = expected_len.saturating_add(SPACE_MARGIN);
    if free < need {
        return Err(ImageError::NoSpace {
            dir: dir.to_owned(),
            need,
            free,
        });
    }
    Ok(())
}
