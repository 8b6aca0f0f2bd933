//! Whether some process may be adding to the store right now.
//!
//! A running snapshot keeps temporary files in `tmp/` and publishes packs
//! that no snapshot references until it commits; a run that died leaves the
//! same things behind. `verify` runs beside snapshots (all share the store
//! lock) and must not call a running snapshot's files leftovers. So every
//! capture holds `locks/writers.lock` shared from its start until it has
//! committed: an exclusive attempt on that file fails exactly while some
//! capture runs. (The store lock cannot tell: a process's own shared lock
//! on it already refuses its exclusive attempt.) Each temporary file is
//! locked by its writer while open, see `Backend::temp_file`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;

/// A capture's mark, held until dropped (or until its process dies).
#[derive(Debug)]
pub struct WriterMark {
    _file: File,
}

fn path(root: &Path) -> PathBuf {
    root.join("locks").join("writers.lock")
}

/// Marks this process as adding to the store. Waits only while a
/// [`running`] check holds the file for an instant. A new mark file gets
/// the permission bits `file_mode` (the store's).
pub fn announce(root: &Path, file_mode: u32) -> Result<WriterMark, StoreError> {
    let path = path(root);
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    let file = open_mark(&path, file_mode).map_err(io)?;
    file.lock_shared().map_err(io)?;
    Ok(WriterMark { _file: file })
}

/// Opens the mark file, creating it with exactly `file_mode` (whatever the
/// umask) if it is missing; never through a symlink.
fn open_mark(path: &Path, file_mode: u32) -> io::Result<File> {
    use std::fs::Permissions;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file_mode)
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(Permissions::from_mode(file_mode))?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path),
        Err(e) => Err(e),
    }
}

/// Whether some process holds its [`WriterMark`] on the store at `root`,
/// or may (the file cannot be opened or locked: this only words warnings,
/// so it never fails). Opens the file read-only, so it also answers on a
/// store it cannot write.
pub fn running(root: &Path) -> bool {
    let file = match File::open(path(root)) {
        Ok(file) => file,
        // No capture ever ran on this store (or an older cairn's did).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    file.try_lock().is_err()
}

/// Keeps captures from starting while held: the mark file locked
/// exclusively (a capture's [`announce`] waits for it).
#[derive(Debug)]
pub struct Paused {
    _file: File,
}

/// Holds off new captures on the store at `root` if none runs now (`None`
/// if one does): for removing what only captures leave in `tmp/` (a
/// database's private directory), which no lock of their own guards.
pub fn pause(root: &Path, file_mode: u32) -> Result<Option<Paused>, StoreError> {
    let path = path(root);
    let file = open_mark(&path, file_mode).map_err(|source| StoreError::Io {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Paused { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_seen_while_held_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locks")).unwrap();
        assert!(!running(dir.path()), "no file yet");
        let mark = announce(dir.path(), 0o600).unwrap();
        assert!(running(dir.path()));
        let second = announce(dir.path(), 0o600).unwrap();
        drop(mark);
        assert!(running(dir.path()), "the second still runs");
        drop(second);
        assert!(!running(dir.path()));
    }
}
