//! Whether a writer is at work in a database, from the locks it holds.
//!
//! A rollback-journal writer holds a write lock on the database file from
//! its first change until it commits or rolls back (SQLite's RESERVED,
//! PENDING and EXCLUSIVE locks are all `fcntl` write locks on the file).
//! Once its cache spills, uncommitted pages are in the file itself; with
//! `journal_mode=MEMORY` or `OFF` no journal file says so, and a writer
//! idle for two seconds left nothing else to see: a direct read stored a
//! torn, uncommitted state. The locks are read from `/proc/locks`, which
//! takes no lock itself: testing with `F_SETLK` would, for a moment, make
//! a writer's own lock attempt fail with SQLITE_BUSY.

use std::io;

/// Whether some process holds a write lock on the file of device `dev`
/// and inode `ino`; `Ok(false)` where `/proc/locks` does not exist (no
/// proc file system mounted), as before the check was made.
pub fn write_locked(dev: u64, ino: u64) -> io::Result<bool> {
    let table = match std::fs::read_to_string("/proc/locks") {
        Ok(table) => table,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let id = (rustix::fs::major(dev), rustix::fs::minor(dev), ino);
    Ok(table.lines().any(|line| held_write_lock(line) == Some(id)))
}

/// The file (major, minor, inode) of a held write lock that `line` of
/// `/proc/locks` lists (`1: POSIX  ADVISORY  WRITE 1635 fe:00:10010666
/// 1073741825 1073741825`); `None` for a read lock, a waiter (`->`) or a
/// line it cannot read.
fn held_write_lock(line: &str) -> Option<(u32, u32, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(1) == Some(&"->") || fields.get(3) != Some(&"WRITE") {
        return None;
    }
    let mut id = fields.get(5)?.split(':');
    let major = u32::from_str_radix(id.next()?, 16).ok()?;
    let minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let ino = id.next()?.parse().ok()?;
    Some((major, minor, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_held_write_locks_are_read_from_the_table() {
        let held = "1: POSIX  ADVISORY  WRITE 1635 fe:00:10010666 1073741825 1073741825";
        assert_eq!(held_write_lock(held), Some((0xfe, 0, 10_010_666)));
        let ofd = "3: OFDLCK ADVISORY  WRITE -1 08:1a:42 0 EOF";
        assert_eq!(held_write_lock(ofd), Some((8, 0x1a, 42)));
        for other in [
            "2: POSIX  ADVISORY  READ 1635 fe:00:10010666 1073741826 1073742335",
            "2: -> POSIX  ADVISORY  WRITE 1700 fe:00:10010666 1073741825 1073741825",
            "garbage",
            "",
        ] {
            assert_eq!(held_write_lock(other), None, "{other}");
        }
    }

    #[test]
    fn a_lock_this_process_holds_is_seen_and_its_release_too() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(write_locked(meta.dev(), meta.ino()).unwrap());
        conn.execute_batch("COMMIT").unwrap();
        assert!(!write_locked(meta.dev(), meta.ino()).unwrap());
    }
}
