//! `catalog.db` in the store: created with the store's file mode (SQLite
//! gives its `-wal` and `-shm` the database file's mode), and brought to
//! that mode when an older cairn made it world-readable.

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::catalog::Catalog;

/// Opens `catalog.db` read-write, creating it (and so its `-wal` and
/// `-shm`, which SQLite gives the database file's mode) with the store's
/// file mode, and bringing an existing one's mode in line with it.
pub(super) fn open_writable(path: &Path, file_mode: u32) -> Result<Catalog, StoreError> {
    create_with_mode(path, file_mode)?;
    Ok(Catalog::open(path)?)
}

fn create_with_mode(path: &Path, file_mode: u32) -> Result<(), StoreError> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file_mode)
        .open(path);
    match created {
        Ok(file) => file.set_permissions(Permissions::from_mode(file_mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            follow_mode(path, file_mode);
            Ok(())
        }
        Err(e) => Err(e),
    }
    .map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Gives an existing catalog and its side files the store's mode (an
/// older cairn created `catalog.db` world-readable). Best effort: a
/// catalog this user does not own keeps its mode.
fn follow_mode(path: &Path, file_mode: u32) {
    for side in ["", "-wal", "-shm"] {
        let file = with_suffix(path, side);
        if fs::symlink_metadata(&file).is_ok_and(|m| m.is_file() && m.mode() & 0o777 != file_mode) {
            let _ = fs::set_permissions(&file, Permissions::from_mode(file_mode));
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
