//! The store's directories: created by `init`, recreated by every open
//! (tools that copy trees may drop empty directories), removed again by an
//! `init` that failed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Directories every store has.
const SUBDIRS: [&str; 5] = ["packs", "snapshots", "protected", "locks", "tmp"];

/// Creates any missing store directory, including the 256 `packs/XX`, and
/// fsyncs their parents. Always fsyncing (not only when this process created
/// something) closes the window where another process created a directory
/// and has not yet made its entry durable when we write into it. It also
/// lets a store copied by a tool that drops empty directories open. A
/// reader (`reading`) of a store it cannot write reads it as it is.
pub(super) fn ensure_layout(root: &Path, reading: bool) -> Result<(), StoreError> {
    let io = |path: PathBuf| move |source| StoreError::Io { path, source };
    let dirs = SUBDIRS
        .iter()
        .map(|d| root.join(d))
        .chain((0..=255u8).map(|b| root.join("packs").join(hex::encode([b]))));
    for dir in dirs {
        if !dir.is_dir() {
            match fs::create_dir_all(&dir) {
                Err(e) if reading && is_unwritable(&e) => return Ok(()),
                other => other.map_err(io(dir.clone()))?,
            }
        }
    }
    crate::backend::sync_dir(&root.join("packs"))?;
    crate::backend::sync_dir(root)?;
    Ok(())
}

/// Whether `e` means this process may not write there at all.
fn is_unwritable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// Best-effort removal of a layout `init` created (empty directories only).
pub(super) fn remove_layout(root: &Path, created_root: bool) {
    for b in 0..=255u8 {
        let _ = fs::remove_dir(root.join("packs").join(hex::encode([b])));
    }
    for dir in SUBDIRS {
        let _ = fs::remove_dir(root.join(dir));
    }
    if created_root {
        let _ = fs::remove_dir(root);
    }
}

pub(super) fn is_empty_or_absent(root: &Path) -> Result<bool, StoreError> {
    let io = |source| StoreError::Io {
        path: root.to_owned(),
        source,
    };
    match fs::read_dir(root) {
        Ok(mut entries) => match entries.next() {
            None => Ok(true),
            Some(entry) => {
                entry.map_err(io)?;
                Ok(false)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(e)),
    }
}
