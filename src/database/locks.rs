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

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a reading of `/proc/locks` may be when it is used. Only a lock
/// held since before the database's last write matters (a write after it
/// shows in the timestamps), and a database is read directly only when
/// that write is a second or more old: a reading younger than that holds
/// every such lock. One reading per database cost 4 ms each where 2000
/// locks were held (3000 databases: 13.8 s instead of 0.25).
const MAX_AGE: Duration = Duration::from_millis(500);

/// A file as `/proc/locks` names it: major, minor, inode.
type FileId = (u32, u32, u64);

/// The files write-locked at the last reading, and when it was taken.
static READING: Mutex<Option<(Instant, HashSet<FileId>)>> = Mutex::new(None);

/// Whether some process holds a write lock on the file of device `dev`
/// and inode `ino` (as of a reading at most [`MAX_AGE`] old); `Ok(false)`
/// where `/proc/locks` does not exist (no proc file system mounted), as
/// before the check was made.
pub fn write_locked(dev: u64, ino: u64) -> io::Result<bool> {
    let id = (rustix::fs::major(dev), rustix::fs::minor(dev), ino);
    let mut reading = READING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let fresh = reading
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < MAX_AGE);
    if !fresh {
        *reading = Some((Instant::now(), write_locked_files()?));
    }
    Ok(reading
        .as_ref()
        .is_some_and(|(_, locked)| locked.contains(&id)))
}

/// Every file some process holds a write lock on, now.
fn write_locked_files() -> io::Result<HashSet<FileId>> {
    match std::fs::read_to_string("/proc/locks") {
        Ok(table) => Ok(table.lines().filter_map(held_write_lock).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// The file (major, minor, inode) of a held write lock that `line` of
/// `/proc/locks` lists (`1: POSIX  ADVISORY  WRITE 1635 fe:00:10010666
/// 1073741825 1073741825`); `None` for a read lock, a waiter (`->`) or a
/// line it cannot read.
fn held_write_lock(line: &str) -> Option<FileId> {
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
        // Other tests' readings may be younger than the lock.
        std::thread::sleep(MAX_AGE);
        assert!(write_locked(meta.dev(), meta.ino()).unwrap());
        conn.execute_batch("COMMIT").unwrap();
        std::thread::sleep(MAX_AGE);
        assert!(!write_locked(meta.dev(), meta.ino()).unwrap());
    }
}
