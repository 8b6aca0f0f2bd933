//! Consistent images of live databases.
//!
//! The database is opened read-only and copied with SQLite's online backup
//! API in a single step: the whole copy happens inside one read transaction,
//! so the image is exactly one committed state, including commits that
//! still sit in the `-wal` file, while other processes keep writing. The
//! image goes to a temporary file in the store's `tmp/`, which is removed
//! when the [`Image`] is dropped, whatever happened.
//!
//! A busy or locked database is retried with backoff until a deadline and
//! then given up on; it is never copied raw. A file that SQLite does not
//! accept as a database is reported as such, so the caller can fall back to
//! storing its bytes.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tempfile::NamedTempFile;

use crate::backend::{Backend, BackendError};

/// Room left free on the file system of `tmp/` beyond the image itself.
const SPACE_MARGIN: u64 = 16 << 20;
/// First wait after a busy attempt; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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

/// A captured image in `tmp/`, removed on drop.
#[derive(Debug)]
pub struct Image {
    file: NamedTempFile,
    /// Its page size.
    pub page_size: u32,
    /// Its length in bytes (a whole number of pages).
    pub len: u64,
}

impl Image {
    /// The image, opened for reading from the start.
    pub fn reader(&self) -> io::Result<File> {
        self.file.reopen()
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
        dir.display()
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

/// Takes a consistent image of the database at `request.path` into the
/// store's `tmp/`.
pub fn capture(backend: &Backend, request: &ImageRequest<'_>) -> Result<Image, ImageError> {
    check_free_space(&backend.path("tmp"), request.expected_len)?;
    let source = open_source(request)?;
    let file = backend.temp_file()?;
    let deadline = Instant::now() + request.timeout;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match copy_once(&source, file.path()) {
            Ok(StepResult::Done) => return finish(file),
            Ok(_) => {}
            Err(e) if is_busy(&e) => {}
            Err(e) => return Err(classify(e, request.path)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ImageError::Busy(request.timeout));
        }
        thread::sleep(backoff.min(deadline - now));
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
        file,
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
