//! Change detection: whether a file may be taken from the parent snapshot
//! without reading it, and whether a file just read may be trusted by the
//! next snapshot's comparison.

use std::time::SystemTime;

use super::handle::FileStat;
use crate::tree::{ChangeKey, Content, Entry, Timespec};

/// Whether the file described by `stat` is the one `parent` recorded,
/// unchanged: same size, mtime, ctime and inode. A parent entry without a
/// trusted ctime never matches.
pub fn unchanged(parent: &Entry, stat: &FileStat) -> bool {
    unchanged_at_size(parent, stat, parent.meta.size)
}

/// [`unchanged`] for an entry whose recorded file size is `size` (a
/// database entry's size is its image's, not its file's).
pub fn unchanged_at_size(parent: &Entry, stat: &FileStat, size: u64) -> bool {
    let Content::File { change, .. } = &parent.content else {
        return false;
    };
    size == stat.size
        && parent.meta.mtime == stat.mtime
        && change.inode == stat.ino
        && change.ctime == Some(stat.ctime)
}

/// The change key to record for a file whose content was read starting at
/// `read_start`, with `before` and `after` its metadata around the read.
///
/// The ctime is withheld (so the next snapshot reads the file again) when
/// the file changed during the read, or when it was modified so close to the
/// read that a later write could land with the same timestamps (the racy
/// timestamp problem, as in git's index). The window covers coarse kernel
/// clocks and, for file systems with whole-second timestamps, a second more.
pub fn key_after_read(before: &FileStat, after: &FileStat, read_start: SystemTime) -> ChangeKey {
    let stable =
        before.size == after.size && before.mtime == after.mtime && before.ctime == after.ctime;
    let settled = settled(before.mtime.max(before.ctime), read_start);
    ChangeKey {
        inode: before.ino,
        ctime: (stable && settled).then_some(before.ctime),
    }
}

/// Whether a file last changed at `newest` changed long enough before
/// `read_start` that a later change cannot carry the same timestamps.
pub fn settled(newest: Timespec, read_start: SystemTime) -> bool {
    newest.settled_before(read_start)
}

/// A system time as a [`Timespec`] (the epoch for times before it).
pub fn as_timespec(t: SystemTime) -> Timespec {
    Timespec::of(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::handle::stat_path;
    use std::fs;
    use std::time::Duration;

    #[test]
    fn a_file_modified_just_before_its_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let stat = stat_path(&path).unwrap();
        let key = key_after_read(&stat, &stat, SystemTime::now());
        assert_eq!(key.ctime, None);
    }

    #[test]
    fn a_file_settled_long_before_its_read_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let stat = stat_path(&path).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        let key = key_after_read(&stat, &stat, later);
        assert_eq!(key.ctime, Some(stat.ctime));
    }

    #[test]
    fn a_file_that_changed_during_its_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let before = stat_path(&path).unwrap();
        let mut after = before.clone();
        after.size += 1;
        let later = SystemTime::now() + Duration::from_secs(5);
        assert_eq!(key_after_read(&before, &after, later).ctime, None);
    }
}
