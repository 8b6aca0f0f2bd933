//! Executing a restore plan. Files are written to a temporary name in their
//! destination directory, checked blob by blob and against the recorded
//! size, given their metadata, and only then renamed into place: a file in
//! the target is either the old one or the complete restored one. A file
//! that fails is reported and the others go on.

use std::collections::HashMap;
use std::fs::{self, File, FileTimes, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, fchown, lchown};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;
use rayon::prelude::*;
use tempfile::{Builder, NamedTempFile};

use super::plan::{Item, RestorePlan};
use super::{RestoreError, RestoreOptions};
use crate::backend::Backend;
use crate::id::BlobId;
use crate::pack::{self, BlobLocation, PackError};
use crate::progress::Progress;
use crate::store::Store;
use crate::tree::{Content, Meta, Timespec};

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreOutcome {
    /// Files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Items that failed, with the reason; everything else was restored.
    pub failed: Vec<(PathBuf, String)>,
}

/// Why one file could not be restored.
#[derive(Debug, thiserror::Error)]
enum ItemError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("blob {0} is missing from the store")]
    Missing(BlobId),
    #[error("restored {got} bytes where the snapshot recorded {want}")]
    Size { got: u64, want: u64 },
    #[error("a file appeared there during the restore; it was not replaced (use --overwrite)")]
    AppearedMeanwhile,
}

const TEMP_PREFIX: &str = ".cairn-restore-";

/// Carries out `plan`, refusing (before writing anything) if something is in
/// the way and `options.overwrite` is not set.
pub fn execute(
    store: &Store,
    plan: RestorePlan,
    options: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome, RestoreError> {
    if !plan.blockers.is_empty() {
        return Err(RestoreError::Blocked {
            blockers: plan.blockers,
        });
    }
    if !plan.conflicts.is_empty() && !options.overwrite {
        return Err(RestoreError::Conflicts {
            conflicts: plan.conflicts,
        });
    }
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| RestoreError::Io { path, source }
    };
    fs::create_dir_all(&plan.target).map_err(io_at(&plan.target))?;
    for dir in &plan.dirs {
        make_real_dir(&dir.path).map_err(io_at(&dir.path))?;
    }
    let as_owner = rustix::process::geteuid().is_root();
    let backend = store.backend();
    let mut outcome = RestoreOutcome::default();
    let file_results: Vec<_> = plan
        .files
        .par_iter()
        .map(|item| {
            let r = restore_file(backend, &plan.locations, item, as_owner, options.overwrite);
            Progress::add(&progress.files, 1);
            Progress::add(&progress.bytes, item.entry.meta.size);
            (item, r)
        })
        .collect();
    for (item, result) in file_results {
        match result {
            Ok(()) => {
                outcome.files += 1;
                outcome.bytes += item.entry.meta.size;
            }
            Err(e) => outcome.failed.push((item.path.clone(), e.to_string())),
        }
    }
    for item in &plan.symlinks {
        match restore_symlink(item, as_owner, options.overwrite) {
            Ok(()) => outcome.symlinks += 1,
            Err(e) => outcome.failed.push((item.path.clone(), e.to_string())),
        }
    }
    // Deepest first, so setting a parent's mtime is the last touch it gets.
    for item in plan.dirs.iter().rev() {
        match apply_path_meta(&item.path, &item.entry.meta, as_owner) {
            Ok(()) => outcome.dirs += 1,
            Err(e) => outcome.failed.push((item.path.clone(), e.to_string())),
        }
    }
    Ok(outcome)
}

/// Makes `path` a real directory: keeps an existing one, replaces a file or
/// symlink (the plan's conflict check allowed that), never follows a link.
fn make_real_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::DirBuilder::new().mode(0o700).create(path)
}

fn restore_file(
    backend: &Backend,
    locations: &HashMap<BlobId, BlobLocation>,
    item: &Item,
    as_owner: bool,
    overwrite: bool,
) -> Result<(), ItemError> {
    let Content::File { chunks, .. } = &item.entry.content else {
        return Ok(());
    };
    let mut tmp = temp_beside(&item.path)?;
    let mut written = 0u64;
    for id in chunks {
        let at = locations.get(id).ok_or(ItemError::Missing(*id))?;
        let data = pack::reader::read_blob(backend, id, at)?;
        tmp.write_all(&data)?;
        written += data.len() as u64;
    }
    let meta = &item.entry.meta;
    if written != meta.size {
        return Err(ItemError::Size {
            got: written,
            want: meta.size,
        });
    }
    apply_file_meta(tmp.as_file(), meta, as_owner)?;
    if overwrite && fs::symlink_metadata(&item.path).is_ok() {
        // Replacing a file the user had: it must be the old one or the
        // complete new one after a crash, never an empty one.
        tmp.as_file().sync_all()?;
    }
    put_in_place(tmp, &item.path, overwrite)
}

/// Renames a finished temporary file into place. Without `overwrite` it never
/// replaces anything: a file that appeared since the plan was checked stays.
fn put_in_place<F>(tmp: NamedTempFile<F>, path: &Path, overwrite: bool) -> Result<(), ItemError> {
    let result = if overwrite {
        tmp.persist(path).map(drop)
    } else {
        tmp.persist_noclobber(path).map(drop)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            Err(ItemError::AppearedMeanwhile)
        }
        Err(e) => Err(e.error.into()),
    }
}

fn restore_symlink(item: &Item, as_owner: bool, overwrite: bool) -> Result<(), ItemError> {
    let Content::Symlink { target } = &item.entry.content else {
        return Ok(());
    };
    let dir = parent_of(&item.path);
    let tmp: NamedTempFile<()> = Builder::new()
        .prefix(TEMP_PREFIX)
        .make_in(dir, |p| std::os::unix::fs::symlink(target.as_path(), p))?;
    if as_owner {
        lchown(
            tmp.path(),
            Some(item.entry.meta.uid),
            Some(item.entry.meta.gid),
        )?;
    }
    let t = file_time(item.entry.meta.mtime);
    filetime::set_symlink_file_times(tmp.path(), t, t)?;
    put_in_place(tmp, &item.path, overwrite)
}

fn temp_beside(path: &Path) -> io::Result<NamedTempFile> {
    Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent_of(path))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Owner first (chown clears setuid bits), then mode, then mtime.
fn apply_file_meta(file: &File, meta: &Meta, as_owner: bool) -> io::Result<()> {
    if as_owner {
        fchown(file, Some(meta.uid), Some(meta.gid))?;
    }
    file.set_permissions(Permissions::from_mode(meta.mode))?;
    file.set_times(FileTimes::new().set_modified(system_time(meta.mtime)))
}

fn apply_path_meta(path: &Path, meta: &Meta, as_owner: bool) -> io::Result<()> {
    if as_owner {
        lchown(path, Some(meta.uid), Some(meta.gid))?;
    }
    fs::set_permissions(path, Permissions::from_mode(meta.mode))?;
    filetime::set_file_mtime(path, file_time(meta.mtime))
}

fn file_time(t: Timespec) -> FileTime {
    FileTime::from_unix_time(t.sec, t.nsec)
}

fn system_time(t: Timespec) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec));
    let moved = if t.sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.sec.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
    };
    moved
        .and_then(|s| s.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}
