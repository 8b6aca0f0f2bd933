//! Consistent images of live databases, read through what the walk opened.
//!
//! The image is exactly one committed state of the database, including
//! commits that still sit in the `-wal` file, while other processes keep
//! writing; and it is read from the very file the walk opened, through the
//! directory the walk holds, never by a path another user can redirect.
//! Nothing is ever created or changed beside a source database. Three ways,
//! cheapest first:
//!
//! - **Directly** ([`super::direct`]): a database with no `-wal` frames and
//!   no journal, not written for a while, is read from the walk's
//!   descriptor without SQLite and checked unchanged afterwards. The
//!   nightly common case, and the only way to read an idle WAL database
//!   without creating its side files.
//! - **Through SQLite** ([`super::live`]): in one read transaction, in
//!   place for WAL databases, else copied into `tmp/` with the backup API.
//! - **Through a copy** of the database and its `-wal` (see
//!   [`super::side_copy`]), when SQLite could only read them by creating a
//!   `-shm` where none can be created.
//!
//! A busy or locked database is retried with backoff until a deadline and
//! then given up on; it is never copied raw. A file that SQLite does not
//! accept as a database is reported as such, so the caller can fall back to
//! storing its bytes.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tempfile::{NamedTempFile, TempDir};

use super::direct::{self, Quiet, Quietness};
use super::live::{self, LiveError};
use super::pinned::Pin;
use crate::backend::BackendError;
use crate::chunker;
use crate::rawname::escaped;
use crate::store::Staging;

/// First wait after a busy attempt; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The database to capture, as the walk opened it, and how patiently.
#[derive(Debug, Clone, Copy)]
pub struct ImageRequest<'a> {
    /// Its path, for messages only: nothing is opened by it.
    pub path: &'a Path,
    /// The directory holding it, as the walk opened (and checked) it.
    pub dir: BorrowedFd<'a>,
    /// Its name in `dir`.
    pub name: &'a OsStr,
    /// The database file, open.
    pub file: &'a File,
    /// Size of the database file and its `-wal`, an upper bound of the image.
    pub expected_len: u64,
    /// How long to keep retrying while the database is busy or locked.
    pub timeout: Duration,
}

/// A consistent image of a database, ready to be read once.
#[derive(Debug)]
pub struct Image<'a> {
    pub(super) source: Source<'a>,
    /// Its page size.
    pub page_size: u32,
    /// Its length in bytes (a whole number of pages).
    pub len: u64,
}

#[derive(Debug)]
pub(super) enum Source<'a> {
    /// The file itself, quiet when checked; checked again after reading.
    Direct {
        request: ImageRequest<'a>,
        quiet: Quiet,
    },
    /// Read in place inside the read transaction the connection holds
    /// open until drop. The connection is dropped before its pin and its
    /// private copy (field order).
    InPlace {
        conn: Connection,
        _pin: Option<Pin>,
        _dir: Option<TempDir>,
    },
    /// A copy in `tmp/`, removed on drop.
    Copy(NamedTempFile),
}

/// Why [`Image::for_each_run`] stopped early.
#[derive(Debug)]
pub enum RunsStopped<E> {
    /// Reading the image failed: it is unusable.
    Read(io::Error),
    /// The database was written while it was read directly: what was
    /// handed out is not one committed state. Capture it again with
    /// [`capture_busy`].
    Changed,
    /// The caller's function failed.
    Sink(E),
}

impl Image<'_> {
    /// Hands the image to `each` in order, in runs of `run` bytes (whole
    /// pages when `run` is a multiple of the page size; the last run may be
    /// shorter).
    pub fn for_each_run<E>(
        &self,
        run: usize,
        mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), RunsStopped<E>> {
        match &self.source {
            Source::Direct { request, quiet } => {
                direct::read_runs(request.file, quiet, run, each)?;
                crate::crash::point("database-read-directly");
                match direct::still_quiet(request.dir, request.name, request.file, quiet) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(RunsStopped::Changed),
                    Err(e) => Err(RunsStopped::Read(e)),
                }
            }
            Source::InPlace { conn, .. } => self.read_in_place(conn, run, &mut each),
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
    /// `live` opened, checking that they come numbered 1, 2, … up to the
    /// page count read when it began, each of the page size.
    fn read_in_place<E>(
        &self,
        conn: &Connection,
        run: usize,
        each: &mut impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), RunsStopped<E>> {
        let sqlite = |e: rusqlite::Error| RunsStopped::Read(io::Error::other(e));
        let bad = |what: String| RunsStopped::Read(io::Error::other(what));
        let mut stmt = conn.prepare_cached(live::PAGES_SQL).map_err(sqlite)?;
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
    /// A WAL database that no connection holds open kept being written
    /// (its connections come and go): SQLite cannot read it without making
    /// side files, and a direct read needs a second without writes.
    #[error(
        "was written again within a second each time it was looked at for {0:?} (--sqlite-timeout), \
         by connections that do not stay open (a WAL database SQLite cannot read then without \
         creating its -wal and -shm); not copied raw"
    )]
    NeverSettled(Duration),
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
    /// Another file took its name after the walk opened it.
    #[error("replaced while it was being captured (not the file that was listed)")]
    Replaced,
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
    /// Reading the file or its directory failed.
    #[error("{0}")]
    Read(io::Error),
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

/// Takes a consistent image of the database `request` names: directly if
/// it is quiet, else through SQLite.
pub fn capture<'a>(staging: &Staging, request: &ImageRequest<'a>) -> Result<Image<'a>, ImageError> {
    let mut patience = Patience::new(request.timeout);
    loop {
        let quietness = direct::check(request.dir, request.name, request.file, SystemTime::now())
            .map_err(ImageError::Read)?;
        let unsettled_wal = match quietness {
            Quietness::Quiet(quiet) => return Ok(direct_image(*request, quiet)),
            Quietness::Unsettled { wal } => wal,
            Quietness::NotQuiet => false,
        };
        if let Some(image) = through_sqlite(staging, request, &mut patience, unsettled_wal)? {
            return Ok(image);
        }
        patience.wait().map_err(|busy| match unsettled_wal {
            true => ImageError::NeverSettled(request.timeout),
            false => busy,
        })?;
    }
}

/// Takes an image through SQLite only: for a database that changed while
/// it was read directly.
pub fn capture_busy<'a>(
    staging: &Staging,
    request: &ImageRequest<'a>,
) -> Result<Image<'a>, ImageError> {
    let mut patience = Patience::new(request.timeout);
    loop {
        if let Some(image) = through_sqlite(staging, request, &mut patience, false)? {
            return Ok(image);
        }
        patience.wait()?;
    }
}

/// SQLite in place, else a copy with the `-wal`; `None` to try again
/// later. An idle WAL database written moments ago has no side files that
/// SQLite could use without creating them, so it only waits to settle.
fn through_sqlite<'a>(
    staging: &Staging,
    request: &ImageRequest<'a>,
    patience: &mut Patience,
    unsettled_wal: bool,
) -> Result<Option<Image<'a>>, ImageError> {
    match live::capture(staging, request, patience) {
        Ok(image) => Ok(Some(image)),
        Err(LiveError::Other(e)) => Err(e),
        Err(LiveError::SideFiles(_)) if unsettled_wal => Ok(None),
        Err(LiveError::SideFiles(_)) => live::capture_copied(staging, request, patience),
    }
}

fn direct_image(request: ImageRequest<'_>, quiet: Quiet) -> Image<'_> {
    Image {
        page_size: quiet.page_size,
        len: quiet.len,
        source: Source::Direct { request, quiet },
    }
}

/// The deadline and backoff of retries while the database is busy.
pub(super) struct Patience {
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
    pub(super) fn wait(&mut self) -> Result<(), ImageError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ImageError::Busy(self.timeout));
        }
        thread::sleep(self.backoff.min(self.deadline - now));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }
}
