//! What interrupted restores leave behind, and removing it.
//!
//! A restore writes each file under a temporary name beside its place
//! (`.cairn-restore-` 12 hex digits `-` a counter, see `target`). One
//! stopped by a signal removes the file it was writing, but one killed
//! outright (`kill -9`, power loss) cannot, so the next restore into the
//! same target removes such files from the directories it restores into.
//! Only regular files and symlinks named exactly so are removed, never
//! anything else, and never a file that a running restore is writing: each
//! one holds an exclusive `flock` on its temporary file until the file is
//! in place, and a file is removed only while holding that lock.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::target::{DirFd, TEMP_PREFIX};

/// Hex digits in the random part of a temporary name.
const RANDOM_DIGITS: usize = 12;

/// Whether `name` is exactly a temporary name a restore gives a file.
pub(super) fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX.as_bytes()) else {
        return false;
    };
    let Some((random, counter)) = rest.split_at_checked(RANDOM_DIGITS) else {
        return false;
    };
    let Some(counter) = counter.strip_prefix(b"-") else {
        return false;
    };
    random
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !counter.is_empty()
        && counter.iter().all(u8::is_ascii_digit)
}

/// Removes the leftovers of interrupted restores from directory `dir`;
/// returns how many it removed. Best effort: an entry that cannot be
/// listed, opened or removed is left as it is (it is only a leftover).
pub(super) fn remove_leftovers(dir: &DirFd) -> u64 {
    let Ok(listing) = Dir::read_from(dir.as_ref()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in listing.flatten() {
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if is_temp_name(name.as_bytes()) && remove_if_abandoned(dir, name).unwrap_or(false) {
            removed += 1;
        }
    }
    removed
}

/// Removes `name` if it is a symlink, or a regular file that no running
/// restore holds locked.
fn remove_if_abandoned(dir: &DirFd, name: &OsStr) -> io::Result<bool> {
    let st = rustix::fs::statat(dir.as_ref(), name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        // A restore's temporary symlink lives for a few system calls; one
        // still there was left behind.
        FileType::Symlink => {}
        FileType::RegularFile => return remove_unlocked_file(dir, name),
        _ => return Ok(false),
    }
    rustix::fs::unlinkat(dir.as_ref(), name, AtFlags::empty())?;
    Ok(true)
}

/// Removes regular file `name` while holding its lock, if nobody else
/// holds it (the lock is dropped with the descriptor afterwards).
fn remove_unlocked_file(dir: &DirFd, name: &OsStr) -> io::Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir.as_ref(), name, flags, Mode::empty())?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(false);
    }
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    rustix::fs::unlinkat(dir.as_ref(), name, AtFlags::empty())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_temporary_names_are_recognised() {
        for good in [
            ".cairn-restore-0123456789ab-0",
            ".cairn-restore-ffffffffffff-123",
        ] {
            assert!(is_temp_name(good.as_bytes()), "{good}");
        }
        for bad in [
            ".cairn-restore-0123456789ab-",
            ".cairn-restore-0123456789ab",
            ".cairn-restore-0123456789AB-1",
            ".cairn-restore-0123456789a-1",
            ".cairn-restore-0123456789abc-1",
            ".cairn-restore-0123456789ab-1x",
            ".cairn-restore-0123456789ab-1-2",
            "x.cairn-restore-0123456789ab-1",
            ".cairn-restore-notes",
        ] {
            assert!(!is_temp_name(bad.as_bytes()), "{bad}");
        }
    }
}
