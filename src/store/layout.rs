//! The directories of a store's home on this host: `locks/` and `tmp/` (the
//! store directory of a local store, the cache directory of a remote one).
//! The object directories of a local store are the backend's
//! (`Backend::prepare`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Directories every home has.
const HOME_DIRS: [&str; 2] = ["locks", "tmp"];

/// Marks a cache directory as such, so that backup tools skip it
/// (<https://bford.info/cachedir/>).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by cairn: the catalog and\n\
# staging files of a remote store, rebuilt from the store when deleted.\n";

/// Creates any missing home directory. A reader (`reading`) of a home it
/// cannot write reads what is there.
pub(super) fn ensure_home_layout(home: &Path, reading: bool) -> Result<(), StoreError> {
    let io = |path: PathBuf| move |source| StoreError::Io { path, source };
    for dir in HOME_DIRS.iter().map(|d| home.join(d)) {
        if !dir.is_dir() {
            match fs::create_dir_all(&dir) {
                Err(e) if reading && is_unwritable(&e) => return Ok(()),
                other => other.map_err(io(dir.clone()))?,
            }
        }
    }
    Ok(())
}

/// [`ensure_home_layout`] for the cache directory of a remote store, which
/// also gets a `CACHEDIR.TAG`.
pub(super) fn ensure_cache_layout(home: &Path, reading: bool) -> Result<(), StoreError> {
    ensure_home_layout(home, reading)?;
    let tag = home.join("CACHEDIR.TAG");
    if !tag.exists() {
        let _ = fs::write(&tag, CACHEDIR_TAG);
    }
    Ok(())
}

/// Whether `e` means this process may not write there at all.
pub(super) fn is_unwritable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}
