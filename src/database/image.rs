//! Consistent images of live databases.
//!
//! The database is opened read-only and everything cairn reads of it
//! happens inside one read transaction, so the image is exactly one
//! committed state, including commits that still sit in the `-wal` file,
//! while other processes keep writing. Two ways, by journal mode:
//!
//! - **WAL databases are read in place**, page by page through SQLite's
//!   `sqlite_dbpage` table, while the transaction stays open. Writers are
//!   never blocked in WAL mode, so holding the transaction for the whole
//!   capture costs them nothing; only checkpoints cannot pass it, so the
//!   `-wal` may grow by what is written meanwhile. Nothing is copied: no
//!   free space is needed and no byte is read twice.
//! - **Other databases are copied** with SQLite's online backup API in a
//!   single step into a temporary file in the store's `tmp/`, removed when
//!   the [`Image`] is dropped, whatever happened. Their read lock blocks
//!   writers, so it is held only for the copy, not for the compression.
//!   A SQLite built without `sqlite_dbpage` copies WAL databases too.
//!
//! A busy or locked database is retried with backoff until a deadline and
//! then given up on; it is never copied raw. A file that SQLite does not
//! accept as a database is reported as such, so the caller can fall back to
//! storing its bytes.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tempfile::NamedTempFile;

use crate::backend::{Backend, BackendError};
use crate::chunker;
use crate::rawname::escaped;

/// Room left free on the file system of `tmp/` beyond the image itself.
const SPACE_MARGIN: u64 = 16 << 20;
/// First wait after a busy attempt; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Every page of the main database as the open read transaction sees it,
/// in order (`sqlite_dbpage` consumes the `ORDER BY`: no sort).
const PAGES_SQL: &str = "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno";

/// What to capture and how patiently.
#[derive(Debug, Clone)]
pub struct ImageRequest<'a> {
    /// The database file.
    pub path: &'a Path,
    /// Follow a symlink in the last component (only for paths the user named).
    pub follow_symlink: bool,
    /// Size of the database file and its `-wal`, an upper bound of the image.
    pub expected_len: u64,
    /// How long to keep retrying while the database is busy or locked.
    pub timeout: Duration,
}

/// A consistent image of a database, ready to be read once.
#[derive(Debug)]
pub struct Image {
    source: Source,
    /// Its page size.
    pub page_size: u32,
    /// Its length in bytes (a whole number of pages).
    pub len: u64,
}

#[derive(Debug)]
enum Source {
    /// The database itself, with the read transaction open until drop.
    InPlace(Connection),
    /// A copy in `tmp/`, removed on drop.
    Copy(NamedTempFile),
}

/// Why [`Image::for_each_run`] stopped early.
#[derive(Debug)]
pub enum RunsStopped<E> {
    /// Reading the image failed: it is unusable.
    Read(io::Error),
    /// The caller's function failed.
    Sink(E),
}

impl Image {
    /// Hands the image to `each` in order, in runs of `run` bytes (whole
    /// pages when `run` is a multiple of the page size; the last run may be
    /// shorter).
    pub fn for_each_run<E>(
        &self,
        run: usize,
        mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), RunsStopped<E>> {
        match &self.source {
            Source::InPlace(conn) => self.read_in_place(conn, run, &mut each),
            Source::Copy(file) => {
                let reader = file.reopen().map_err(RunsStopped::Read)?;
                for data in chunker::fixed_runs(reader, run) {
                    each(data.map_err(RunsStopped::Read)?).map_err(RunsStopped::Sink)?;
                }
                Ok(())
            }
        }
    }

    /// Reads every page through `sqlite_dbpage` inside the transaction
    /// [`begin_in_place`] opened, checking that they come numbered 1, 2, …
    /// up to the page count read when it began, each of the page size.
    fn read_in_place<E>(
        &self,
        conn: &Connection,
        run: usize,
        each: &mut impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), RunsStopped<E>> {
        let sqlite = |e: rusqlite::Error| RunsStopped::Read(io::Error::other(e));
        let bad = |what: String| RunsStopped::Read(io::Error::other(what));
        let mut stmt = conn.prepare_cached(PAGES_SQL).map_err(sqlite)?;
        let mut rows = stmt.query([]).map_err(sqlite)?;
        let mut batch = Vec::with_capacity(run);
        let mut read = 0u64;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let pgno: i64 = row.get(0).map_err(sqlite)?;
            let page = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(sqlite)?;
            read += 1;
            if u64::try_from(pgno).ok() != Some(read) || page.len() != self.page_size as usize {
                return Err(bad(format!(
                    "sqlite_dbpage gave page {pgno} of {} bytes where page {read} of {} was due",
                    page.len(),
                    self.page_size
                )));
            }
            batch.extend_from_slice(page);
            if batch.len() >= run {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(run));
                each(full).map_err(RunsStopped::Sink)?;
            }
        }
        let expected = self.len / u64::from(self.page_size);
        if read != expected {
            return Err(bad(format!(
                "sqlite_dbpage gave {read} pages of the {expected} the database has"
            )));
        }
        if !batch.is_empty() {
            each(batch).map_err(RunsStopped::Sink)?;
        }
        Ok(())
    }
}

/// Why no image was taken.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// SQLite does not accept the file as a database (corrupt, encrypted,
    /// or only the header is SQLite's). Its bytes can still be stored.
    #[error("not a readable SQLite database ({0})")]
    NotADatabase(String),
    /// Writers kept it busy or locked past the deadline.
    #[error("the database stayed busy or locked for {0:?} (--sqlite-timeout); not copied raw")]
    Busy(Duration),
    /// A writer crashed mid-transaction and left a hot journal, which only
    /// a read-write connection may roll back; cairn never writes to a
    /// source database.
    #[error(
        "has a hot journal (a writer crashed mid-transaction); open it once with its application or `sqlite3` to roll it back, then snapshot again"
    )]
    HotJournal,
    /// The file went away before it could be opened.
    #[error("vanished before it could be captured")]
    Vanished,
    /// The image would not fit in `tmp/`.
    #[error(
        "not enough free space in {} for a {need}-byte database image ({free} bytes free)",
        escaped(dir)
    )]
    NoSpace {
        /// The store's `tmp/`.
        dir: PathBuf,
        /// Bytes needed (with a margin).
        need: u64,
        /// Bytes available.
        free: u64,
    },
    /// SQLite failed otherwise (permissions, I/O).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The temporary file failed.
    #[error(transparent)]
    Temp(#[from] BackendError),
    /// The image SQLite wrote is not what it should be.
    #[error("the captured image is unusable: {0}")]
    BadImage(String),
}

/// Takes a consistent image of the database at `request.path`: in place
/// for a WAL database, else copied into the store's `tmp/`.
pub fn capture(backend: &Backend, request: &ImageRequest<'_>) -> Result<Image, ImageError> {
    let source = open_source(request)?;
    let mut patience = Patience::new(request.timeout);
    loop {
        match begin_in_place(&source) {
            Ok(Some((page_size, pages))) => return in_place(source, page_size, pages),
            Ok(None) => break,
            Err(e) => {
                end_transaction(&source);
                if !is_busy(&e) {
                    return Err(classify(e, request.path));
                }
            }
        }
        patience.wait()?;
    }
    check_free_space(&backend.path("tmp"), request.expected_len)?;
    let file = backend.temp_file()?;
    loop {
        match copy_once(&source, file.path()) {
            Ok(StepResult::Done) => return finish(file),
            Ok(_) => {}
            Err(e) if is_busy(&e) => {}
            Err(e) => return Err(classify(e, request.path)),
        }
        patience.wait()?;
    }
}

/// The deadline and backoff of retries while the database is busy.
struct Patience {
    timeout: Duration,
    deadline: Instant,
    backoff: Duration,
}

impl Patience {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: Instant::now() + timeout,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Sleeps before the next attempt, or gives up past the deadline.
    fn wait(&mut self) -> Result<(), ImageError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ImageError::Busy(self.timeout));
        }
        thread::sleep(self.backoff.min(self.deadline - now));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(())
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

fn in_place(source: Connection, page_size: u32, pages: u64) -> Result<Image, ImageError> {
    if !super::is_valid_page_size(page_size) {
        return Err(ImageError::BadImage(format!(
            "SQLite reports a page size of {page_size}"
        )));
    }
    Ok(Image {
        source: Source::InPlace(source),
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

/// Opens the source read-only: nothing cairn does may change a database.
fn open_source(request: &ImageRequest<'_>) -> Result<Connection, ImageError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !request.follow_symlink {
        flags |= OpenFlags::SQLITE_OPEN_NOFOLLOW;
    }
    let conn =
        Connection::open_with_flags(request.path, flags).map_err(|e| classify(e, request.path))?;
    // Short waits inside SQLite; the deadline is kept by the loop above.
    conn.busy_timeout(Duration::from_millis(50))?;
    Ok(conn)
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

fn finish(file: NamedTempFile) -> Result<Image, ImageError> {
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
fn classify(e: rusqlite::Error, path: &Path) -> ImageError {
    if e.sqlite_error()
        .is_some_and(|s| s.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK)
    {
        return ImageError::HotJournal;
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            ImageError::NotADatabase(e.to_string())
        }
        Some(ErrorCode::CannotOpen) if !path.exists() => ImageError::Vanished,
        _ => ImageError::Sqlite(e),
    }
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
