//! Change detection: whether a file may be taken from the parent snapshot
//! without reading it, and whether a file just read may be trusted by the
//! next snapshot's comparison.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tree::{ChangeKey, Content, Entry, Timespec};

/// The modification time of `meta`.
pub fn mtime(meta: &Metadata) -> Timespec {
    Timespec {
        sec: meta.mtime(),
        nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// The status change time of `meta`.
pub fn ctime(meta: &Metadata) -> Timespec {
    Timespec {
        sec: meta.ctime(),
        nsec: meta.ctime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// Whether the file described by `meta` is the one `parent` recorded, unchanged:
/// same size, mtime, ctime and inode. A parent entry without a trusted ctime
/// never matches.
pub fn unchanged(parent: &Entry, meta: &Metadata) -> bool {
    let Content::File { change, .. } = &parent.content else {
        return false;
    };
    parent.meta.size == meta.len()
        && parent.meta.mtime == mtime(meta)
        && change.inode == meta.ino()
        && change.ctime == Some(ctime(meta))
}

/// The change key to record for a file whose content was read starting at
/// `read_start`, with `before` and `after` its metadata around the read.
///
/// The ctime is withheld (so the next snapshot reads the file again) when
/// the file changed during the read, or when it was modified so close to the
/// read that a later write could land with the same timestamps (the racy
/// timestamp problem, as in git's index). The window covers coarse kernel
/// clocks and, for file systems with whole-second timestamps, a second more.
pub fn key_after_read(before: &Metadata, after: &Metadata, read_start: SystemTime) -> ChangeKey {
    let stable = before.len() == after.len()
        && mtime(before) == mtime(after)
        && ctime(before) == ctime(after);
    let newest = mtime(before).max(ctime(before));
    let window = if newest.nsec == 0 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(1)
    };
    let settled = read_start
        .checked_sub(window)
        .is_some_and(|limit| newest < as_timespec(limit));
    ChangeKey {
        inode: before.ino(),
        ctime: (stable && settled).then(|| ctime(before)),
    }
}

fn as_timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(_) => Timespec { sec: 0, nsec: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_file_modified_just_before_its_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let key = key_after_read(&meta, &meta, SystemTime::now());
        assert_eq!(key.ctime, None);
    }

    #[test]
    fn a_file_settled_long_before_its_read_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        let key = key_after_read(&meta, &meta, later);
        assert_eq!(key.ctime, Some(ctime(&meta)));
    }
}
