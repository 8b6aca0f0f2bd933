//! Opening `catalog.db`: read-write (creating it), or read-only for a store
//! that cannot be written; and telling a file that is no catalog at all
//! (to be moved aside and rebuilt) from one that merely cannot be written
//! here (a read-only or full file system).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{Catalog, CatalogError, schema, sqlite};
use crate::store::space;

/// How long a writer waits for another process's catalog transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Below this many free bytes, an I/O error of SQLite's is taken for a
/// full disk (SQLite reports a -shm it cannot allocate as a plain I/O
/// error, and hides the errno).
const NEARLY_FULL: u64 = 1 << 20;

impl Catalog {
    /// Opens (creating if needed) the catalog, brings its schema up to date
    /// and checks that it is a catalog's.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite(path))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(path))?;
        let mut catalog = Self {
            conn,
            path: path.to_owned(),
            read_only: false,
        };
        schema::check_existing(&catalog)?;
        catalog.configure()?;
        schema::migrate(&mut catalog)?;
        schema::check(&catalog)?;
        Ok(catalog)
    }

    /// Opens an existing catalog without writing or creating anything: as
    /// an ordinary read-only reader first (which also sees transactions
    /// still in `-wal`, but needs a `-shm` it can use), else, when there
    /// is no `-wal` content to miss, as an immutable file (no locks, no
    /// side files). For stores nothing can write, or not this user.
    pub fn open_read_only(path: &Path) -> Result<Self, CatalogError> {
        match Self::open_uri(path, "mode=ro") {
            Ok(catalog) => Ok(catalog),
            Err(e) if has_wal_content(path) => Err(e),
            Err(_) => Self::open_uri(path, "immutable=1"),
        }
    }

    /// A second, read-only connection to a catalog this process has open
    /// (and may be writing): never `immutable`, which would let SQLite read
    /// pages the other connection is changing.
    pub fn open_second(path: &Path) -> Result<Self, CatalogError> {
        Self::open_uri(path, "mode=ro")
    }

    fn open_uri(path: &Path, params: &str) -> Result<Self, CatalogError> {
        let uri = format!("file:{}?{params}", uri_path(path));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags).map_err(sqlite(path))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(path))?;
        let catalog = Self {
            conn,
            path: path.to_owned(),
            read_only: true,
        };
        schema::check(&catalog)?;
        Ok(catalog)
    }

    fn configure(&self) -> Result<(), CatalogError> {
        self.use_wal()?;
        // FULL: a committed pack record survives power loss, so a durable
        // snapshot never references blobs the catalog has forgotten.
        self.conn
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(sqlite(&self.path))?;
        self.use_large_cache()
    }

    /// Puts a new catalog in WAL mode. The switch needs the file to itself,
    /// and SQLite answers "database is locked" at once rather than waiting
    /// for the busy timeout: copies racing into one new target failed so.
    /// Tried again until the busy timeout has passed; a no-op once in WAL.
    fn use_wal(&self) -> Result<(), CatalogError> {
        let started = std::time::Instant::now();
        loop {
            match self.conn.execute_batch("PRAGMA journal_mode = WAL;") {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                done => return done.map_err(sqlite(&self.path)),
            }
        }
    }

    /// Shrinks SQLite's page cache from 16 MiB to 2 MiB, for a command whose
    /// many lookups come in id order (verify and restore look a file's
    /// chunks up sorted): the 16 MiB serve a snapshot's walk, whose lookups
    /// of each file's chunks come in random order and found the pages of
    /// the index cached. Measured on a store of a 500 MB database and 8
    /// nights: verify's peak RSS 89 → 72 MiB and 3.4 → 2.5 s, restore's
    /// 78 → 76 MiB; on 200k small files (random lookups, one chunk each)
    /// verify 54 → 43 MiB for 8% more time, restore 39 → 29 MiB.
    pub fn use_small_cache(&self) -> Result<(), CatalogError> {
        self.cache_kib(2048)
    }

    /// The page cache of 16 MiB a catalog opens with (see [`Catalog::use_small_cache`]):
    /// for a phase that writes many rows, whose pages a small cache would
    /// spill to the WAL before the commit (a repacking prune took 50% longer).
    pub fn use_large_cache(&self) -> Result<(), CatalogError> {
        self.cache_kib(16384)
    }

    /// The small page cache until the guard is dropped, then the large one
    /// again: for a phase of many lookups in no order of ids that are
    /// mostly present (a database's page runs, looked up every night).
    pub fn small_cache_while(&self) -> Result<SmallCache<'_>, CatalogError> {
        self.use_small_cache()?;
        Ok(SmallCache(self))
    }

    fn cache_kib(&self, kib: u32) -> Result<(), CatalogError> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib};"))
            .map_err(sqlite(&self.path))
    }

    /// Whether this connection only reads (see [`Catalog::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// The catalog's small page cache, while it lives (see
/// [`Catalog::small_cache_while`]).
pub struct SmallCache<'a>(&'a Catalog);

impl Drop for SmallCache<'_> {
    fn drop(&mut self) {
        // Only a cache size: a failure leaves the small one, still correct.
        let _ = self.0.use_large_cache();
    }
}

impl CatalogError {
    /// Whether the file is no usable catalog at all (not SQLite, damaged,
    /// or another schema): a cache like this can only be set aside and
    /// rebuilt.
    pub fn is_garbage(&self) -> bool {
        match self {
            Self::Schema { .. } => true,
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
            ),
            _ => false,
        }
    }

    /// Whether SQLite could not write (or create its side files) where the
    /// catalog is: a read-only, foreign or full store, which a reader can
    /// still read with a read-only catalog.
    pub fn is_unwritable(&self) -> bool {
        match self {
            Self::DiskFull { .. } => true,
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    ErrorCode::ReadOnly
                        | ErrorCode::CannotOpen
                        | ErrorCode::PermissionDenied
                        | ErrorCode::SystemIoFailure
                )
            ),
            _ => false,
        }
    }
}

/// The free bytes of the file system holding `path` when `e` means it is
/// full: SQLite said so, or an I/O error came with almost nothing free.
pub(super) fn full_disk(path: &Path, e: &rusqlite::Error) -> Option<u64> {
    let code = e.sqlite_error_code()?;
    if !matches!(code, ErrorCode::DiskFull | ErrorCode::SystemIoFailure) {
        return None;
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let free = space::free_bytes(dir.unwrap_or(Path::new("."))).ok()?;
    (code == ErrorCode::DiskFull || free < NEARLY_FULL).then_some(free)
}

/// Whether `path-wal` holds frames a reader of the main file alone would
/// miss.
fn has_wal_content(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `path` as the path part of a SQLite URI: every byte but unreserved
/// ones and `/` percent-encoded, so `?`, `#` and `%` in a store's path
/// mean nothing to SQLite.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether SQLite said the database is locked by another connection.
fn is_busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_sqlite_would_read_as_uri_syntax() {
        let path = Path::new("/srv/a b/c?d#e%f/é");
        assert_eq!(uri_path(path), "/srv/a%20b/c%3Fd%23e%25f/%C3%A9");
    }
}
