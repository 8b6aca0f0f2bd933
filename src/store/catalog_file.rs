//! Where a run's catalog comes from. Normally `catalog.db` in the store,
//! opened read-write: created with the store's file mode, rebuilt from the
//! packs when it is incomplete, and set aside (`catalog.db.broken-TIME`)
//! and rebuilt when it is no catalog at all. On a store that cannot be
//! written (a read-only mount, another user's store, a full disk for a
//! reader) it is opened read-only, or, if that fails, replaced for this run
//! by a private catalog in a temporary directory outside the store. The
//! catalog is a cache, so every one of these gives the same answers.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{CATALOG, StoreError, lock};
use crate::backend::Backend;
use crate::catalog::rebuild::{RebuildReport, rebuild};
use crate::catalog::sync::{SyncReport, sync};
use crate::catalog::{Catalog, CatalogError};

/// How the command may use the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// It writes: the catalog must be the store's own, writable.
    Write,
    /// It reads a store it could write: the store's catalog, read-only
    /// only if it cannot be written (a full disk).
    Read,
    /// It reads a store nothing may write here.
    ReadOnly,
}

/// The catalog a run uses.
pub(super) struct Opened {
    /// The connection.
    pub catalog: Catalog,
    /// Its file (in the store, or in `private`).
    pub path: PathBuf,
    /// The temporary directory of a private catalog, removed when dropped.
    pub private: Option<TempDir>,
    /// What the user should hear about.
    pub notices: Vec<String>,
}

/// Opens the catalog of the store at `root` for `access`.
pub(super) fn open(
    root: &Path,
    backend: &Backend,
    file_mode: u32,
    access: Access,
) -> Result<Opened, StoreError> {
    let path = root.join(CATALOG);
    if access == Access::ReadOnly {
        return read_only(&path, backend);
    }
    match in_place(&path, backend, file_mode) {
        Err(e) if access == Access::Read && is_unwritable(&e) => {
            let mut opened = read_only(&path, backend)?;
            let note = format!("{e}; reading the catalog read-only for this run");
            opened.notices.insert(0, note);
            Ok(opened)
        }
        other => other,
    }
}

/// The store's own catalog, read-write.
fn in_place(path: &Path, backend: &Backend, file_mode: u32) -> Result<Opened, StoreError> {
    let mut notices = Vec::new();
    let mut catalog = match open_writable(path, file_mode) {
        Err(StoreError::Catalog(e)) if e.is_garbage() => {
            if let Some(aside) = set_aside(path)? {
                notices.push(format!(
                    "{} is not a usable catalog ({e}); moved it to {} and rebuilt the catalog from the packs",
                    path.display(),
                    aside.display()
                ));
            }
            open_writable(path, file_mode)?
        }
        other => other?,
    };
    if catalog.is_complete()? {
        let synced = sync(&mut catalog, backend)?;
        notices.extend(sync_notices(&synced));
    } else {
        let report = rebuild(&mut catalog, backend)?;
        notices.extend(rebuild_notices(&report, notices.is_empty()));
    }
    Ok(Opened {
        catalog,
        path: path.to_owned(),
        private: None,
        notices,
    })
}

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

/// Moves a catalog that is no catalog, with its `-wal` and `-shm`, to
/// `catalog.db.broken-TIME`; `None` if another process moved it first.
/// Processes that find it broken at once take turns through a lock on the
/// file itself, and each moves it only if the path still names the file it
/// locked, so none moves the fresh catalog another one made.
fn set_aside(path: &Path) -> Result<Option<PathBuf>, StoreError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    file.lock().map_err(io(path))?;
    if !lock::is_still_at(&file, path).map_err(io(path))? {
        return Ok(None);
    }
    let aside = free_aside_name(path);
    // The side files first: a catalog created at `path` meanwhile must
    // never meet the broken one's -wal.
    for side in ["-wal", "-shm", ""] {
        let (from, to) = (with_suffix(path, side), with_suffix(&aside, side));
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) if !side.is_empty() => {}
            Err(e) => return Err(io(&from)(e.into())),
        }
    }
    crate::backend::local::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(|source| {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(Some(aside))
}

/// `catalog.db.broken-<UTC time>`, with a counter if that is taken.
fn free_aside_name(path: &Path) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    let base = with_suffix(path, &format!(".broken-{stamp}"));
    let taken = |p: &PathBuf| {
        ["", "-wal", "-shm"]
            .iter()
            .any(|s| with_suffix(p, s).exists())
    };
    std::iter::once(base.clone())
        .chain((2..1000).map(|n| with_suffix(&base, &format!("-{n}"))))
        .find(|p| !taken(p))
        .unwrap_or(base)
}

/// A catalog for a store this run cannot write: the store's own, read-only,
/// if it is whole; else a private one.
fn read_only(path: &Path, backend: &Backend) -> Result<Opened, StoreError> {
    let cause = match Catalog::open_read_only(path) {
        Ok(catalog) if catalog.is_complete()? => {
            return Ok(Opened {
                catalog,
                path: path.to_owned(),
                private: None,
                notices: Vec::new(),
            });
        }
        Ok(_) => "it is incomplete".to_owned(),
        Err(e) => e.to_string(),
    };
    private(path, backend, &cause)
}

/// A catalog in a new temporary directory outside the store, for this run
/// only: a copy of the store's (with its `-wal`, so nothing committed is
/// missed) if that opens, else an empty one; then completed from the packs.
fn private(path: &Path, backend: &Backend, cause: &str) -> Result<Opened, StoreError> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-catalog-")
        .tempdir()
        .map_err(|source| StoreError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let copy = dir.path().join(CATALOG);
    let copied = copy_catalog(path, &copy).is_ok();
    let mut catalog = match Catalog::open(&copy) {
        Ok(catalog) => catalog,
        Err(e) if copied && (e.is_garbage() || matches!(e, CatalogError::NewerSchema { .. })) => {
            remove_catalog_files(&copy)?;
            Catalog::open(&copy)?
        }
        Err(e) => return Err(e.into()),
    };
    let report = match catalog.is_complete()? {
        true => None,
        false => Some(rebuild(&mut catalog, backend)?),
    };
    let how = match (&report, copied) {
        (None, _) => "a copy of it".to_owned(),
        (Some(r), true) => format!("a copy of it completed from {}", r.describe()),
        (Some(r), false) => format!("a catalog rebuilt from {}", r.describe()),
    };
    let mut notices = vec![format!(
        "{} cannot be used where it is ({cause}) and the store cannot be written: using {how} in {} for this run only",
        path.display(),
        dir.path().display()
    )];
    if let Some(r) = &report {
        notices.extend(rebuild_notices(r, false));
    }
    Ok(Opened {
        catalog,
        path: copy,
        private: Some(dir),
        notices,
    })
}

fn copy_catalog(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    match fs::copy(with_suffix(from, "-wal"), with_suffix(to, "-wal")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map(drop),
    }
}

/// Removes a catalog file and its side files (absent ones are fine).
pub(super) fn remove_catalog_files(path: &Path) -> Result<(), StoreError> {
    for side in ["", "-wal", "-shm"] {
        let file = with_suffix(path, side);
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path: file, source }),
        }
    }
    Ok(())
}

/// What a sync tells the user: index objects it could not use (anything
/// else is routine).
fn sync_notices(report: &SyncReport) -> Vec<String> {
    let damaged = report.damaged.iter();
    damaged
        .map(|(key, cause)| format!("{key} left out of the catalog: {cause}; `cairn repair catalog` reads the packs themselves"))
        .collect()
}

/// What a rebuild tells the user: a summary (unless another notice says
/// it) and the packs it had to leave out.
fn rebuild_notices(report: &RebuildReport, summary: bool) -> Vec<String> {
    let mut notices = Vec::new();
    if summary && (report.packs + report.from_headers > 0 || !report.unreadable.is_empty()) {
        notices.push(format!(
            "catalog.db was missing or incomplete: rebuilt it from {}",
            report.describe()
        ));
    }
    for (key, cause) in &report.unreadable {
        notices.push(format!(
            "{key} left out of the rebuilt catalog: {cause}; `cairn repair catalog` reads the packs themselves"
        ));
    }
    notices
}

/// Whether opening failed because nothing may be written where the
/// catalog is (a reader can then still read it read-only).
fn is_unwritable(e: &StoreError) -> bool {
    match e {
        StoreError::Catalog(e) => e.is_unwritable(),
        StoreError::Io { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::PermissionDenied
                | io::ErrorKind::StorageFull
        ),
        _ => false,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
