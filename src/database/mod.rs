//! SQLite databases as a kind of file cairn understands.
//!
//! A database is recognised by its 16-byte header, captured as one committed
//! state (see [`image`]: read directly when quiet, else inside one SQLite
//! read transaction, always through what the walk opened: [`pinned`]), cut
//! into runs of whole pages, and on restore checked with
//! `PRAGMA integrity_check`. What
//! must always hold: a captured image is exactly one committed state of the
//! database (never a torn copy of the file, never missing commits that sit
//! in the `-wal` file), and a restored database never sits beside a stale
//! `-wal`, `-shm` or `-journal` file of an older one.

mod direct;
pub mod image;
mod live;
mod locks;
pub mod pinned;
mod side_copy;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::rawname::escaped;

/// The first bytes of every SQLite database file.
pub const HEADER_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Bytes of the database header that cairn reads (magic and page size).
pub const HEADER_LEN: usize = 18;

/// Suffixes of the files SQLite keeps beside a database. Their committed
/// content is inside a captured image; stale ones beside a restored
/// database would corrupt it.
pub const SIDE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How `cairn snapshot` treats files that start with the SQLite header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteMode {
    /// Capture them as databases (consistent image, page-run chunks).
    #[default]
    Auto,
    /// Store them as plain bytes like any other file.
    Raw,
}

/// Whether `header` (the first bytes of a file) starts like a SQLite database.
pub fn looks_like_database(header: &[u8]) -> bool {
    header.starts_with(HEADER_MAGIC)
}

/// The page size recorded in a database header, if the header is valid.
/// (Offset 16, big-endian u16; the value 1 means 65536.)
pub fn page_size(header: &[u8]) -> Option<u32> {
    if !looks_like_database(header) || header.len() < HEADER_LEN {
        return None;
    }
    let raw = u32::from(u16::from_be_bytes([header[16], header[17]]));
    let size = if raw == 1 { 65536 } else { raw };
    is_valid_page_size(size).then_some(size)
}

/// SQLite page sizes: powers of two from 512 to 65536.
pub fn is_valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (512..=65536).contains(&size)
}

/// The bytes per chunk for a database of `page_size` given the store's
/// preferred run length: whole pages, at least one.
pub fn run_len(page_size: u32, preferred: u32) -> usize {
    let pages = (preferred / page_size).max(1);
    (pages * page_size) as usize
}

/// The name of a database's side file, e.g. `app.db-wal`.
pub fn side_file_name(db_name: &OsStr, suffix: &str) -> OsString {
    let mut name = db_name.to_owned();
    name.push(suffix);
    name
}

/// If `name` is a side file (`X-wal`, `X-shm`, `X-journal`), the name `X`
/// of the database it belongs to.
pub fn database_of_side_file(name: &OsStr) -> Option<&OsStr> {
    let bytes = name.as_bytes();
    SIDE_SUFFIXES.iter().find_map(|suffix| {
        let base = bytes.strip_suffix(suffix.as_bytes())?;
        (!base.is_empty()).then(|| OsStr::from_bytes(base))
    })
}

/// Whether `head` (the first bytes of the file called `name`) looks like
/// what SQLite keeps in a side file of that suffix: empty, or a WAL header,
/// a rollback journal header (or the zeroed one `journal_mode=PERSIST`
/// leaves), or a WAL-index. A file that starts like a database never is.
pub fn is_side_file_content(name: &OsStr, head: &[u8]) -> bool {
    const WAL_MAGIC: [[u8; 4]; 2] = [[0x37, 0x7f, 0x06, 0x82], [0x37, 0x7f, 0x06, 0x83]];
    const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    // The WAL-index header starts with its version, 3007000, in native order.
    let shm_version = 3_007_000u32.to_ne_bytes();
    if head.is_empty() {
        return true;
    }
    if looks_like_database(head) {
        return false;
    }
    let bytes = name.as_bytes();
    if bytes.ends_with(b"-wal") {
        WAL_MAGIC.iter().any(|m| head.starts_with(m))
    } else if bytes.ends_with(b"-journal") {
        head.starts_with(&JOURNAL_MAGIC) || head.iter().take(8).all(|&b| b == 0)
    } else {
        head.starts_with(&shm_version)
    }
}

/// Why a database failed its check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// SQLite could not open or read it.
    #[error("{}: cannot be checked: {source}", escaped(path))]
    Sqlite {
        /// The database file.
        path: std::path::PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// `PRAGMA integrity_check` reported problems.
    #[error("{}: integrity_check failed: {}", escaped(path), escaped(&problems.join("; ")))]
    Damaged {
        /// The database file.
        path: std::path::PathBuf,
        /// What SQLite reported (the first lines).
        problems: Vec<String>,
    },
}

/// Runs `PRAGMA integrity_check` on the database file at `path`. The file
/// is opened immutable and read-only, so the check creates no `-wal` or
/// `-shm` file beside it and changes nothing.
pub fn integrity_check(path: &Path) -> Result<(), CheckError> {
    let sqlite = |source| CheckError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(immutable_uri(path), flags).map_err(sqlite)?;
    let mut stmt = conn.prepare("PRAGMA integrity_check(20)").map_err(sqlite)?;
    let lines = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sqlite)?;
    if lines == ["ok"] {
        Ok(())
    } else {
        Err(CheckError::Damaged {
            path: path.to_owned(),
            problems: lines,
        })
    }
}

/// [`integrity_check`] of each database, in parallel (each check reads
/// its whole file), in the order given.
pub fn integrity_check_all(paths: &[PathBuf]) -> Vec<(PathBuf, Result<(), CheckError>)> {
    use rayon::prelude::*;
    paths
        .par_iter()
        .map(|p| (p.clone(), integrity_check(p)))
        .collect()
}

/// A `file:` URI for `path` with `immutable=1`. Every byte outside a small
/// safe set is percent-encoded, so any file name (even one that is not
/// UTF-8) reaches SQLite intact.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_read_from_the_header_and_one_means_64_kib() {
        let mut header = HEADER_MAGIC.to_vec();
        header.extend_from_slice(&[0x10, 0x00]);
        assert_eq!(page_size(&header), Some(4096));
        header[16..18].copy_from_slice(&[0, 1]);
        assert_eq!(page_size(&header), Some(65536));
        header[16..18].copy_from_slice(&[0x0f, 0xff]);
        assert_eq!(page_size(&header), None);
        assert_eq!(page_size(b"SQLite format 3\0"), None, "too short");
        assert_eq!(page_size(b"not a database at all"), None);
    }

    #[test]
    fn runs_are_whole_pages_and_at_least_one_page() {
        assert_eq!(run_len(4096, 16384), 16384);
        assert_eq!(run_len(4096, 4096), 4096);
        assert_eq!(run_len(1024, 4096), 4096);
        assert_eq!(run_len(4096, 10000), 8192);
        assert_eq!(run_len(65536, 4096), 65536);
    }

    #[test]
    fn side_files_are_recognised_by_suffix() {
        assert_eq!(
            database_of_side_file(OsStr::new("app.db-wal")),
            Some(OsStr::new("app.db"))
        );
        assert_eq!(
            database_of_side_file(OsStr::new("x-journal")),
            Some(OsStr::new("x"))
        );
        assert_eq!(database_of_side_file(OsStr::new("-wal")), None);
        assert_eq!(database_of_side_file(OsStr::new("app.db")), None);
        assert_eq!(side_file_name(OsStr::new("a"), "-shm"), OsStr::new("a-shm"));
    }

    #[test]
    fn side_files_are_recognised_by_content_too() {
        let wal = OsStr::new("a.db-wal");
        assert!(is_side_file_content(wal, &[]));
        assert!(is_side_file_content(wal, &[0x37, 0x7f, 0x06, 0x82, 0, 0]));
        assert!(!is_side_file_content(wal, b"a log line\n"));
        assert!(!is_side_file_content(wal, b"SQLite format 3\0"));
        let journal = OsStr::new("a.db-journal");
        assert!(is_side_file_content(journal, &[0; 16]));
        assert!(is_side_file_content(
            journal,
            &[0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]
        ));
        assert!(!is_side_file_content(journal, b"journal entry"));
        let shm = OsStr::new("a.db-shm");
        assert!(is_side_file_content(shm, &3_007_000u32.to_ne_bytes()));
        assert!(!is_side_file_content(shm, b"text"));
    }

    #[test]
    fn uris_escape_everything_sqlite_could_misread() {
        let path = Path::new(OsStr::from_bytes(b"/t/a b?c#d%\xff.db"));
        assert_eq!(
            immutable_uri(path),
            "file:/t/a%20b%3Fc%23d%25%FF.db?immutable=1"
        );
    }
}
