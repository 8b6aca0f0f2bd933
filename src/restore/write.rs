//! Writing the items of a restore. Files are written to a temporary name in
//! their destination directory, checked blob by blob and against the
//! recorded size, given their metadata, and only then renamed into place: a
//! file in the target is either the old one or the complete restored one.
//! All of it goes through directory handles under the target (see
//! `target`). A file that fails is reported and the others go on.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::early_sync::EarlySync;
use super::execute::{Batch, Placed};
use super::plan::Item;
use super::target::{self, Slot};
use crate::backend::Backend;
use crate::database;
use crate::id::BlobId;
use crate::interrupt::{self, Interrupted};
use crate::pack::{self, BlobLocation, PackError};
use crate::progress::Progress;
use crate::tree::Content;

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
    /// SQLite databases restored (captured as databases).
    pub databases: Vec<PathBuf>,
    /// Stale `-wal`, `-shm` and `-journal` files removed from beside them.
    pub stale_removed: Vec<PathBuf>,
    /// Temporary files that interrupted restores had left in the
    /// directories restored into, removed (see `leftovers`).
    pub leftovers_removed: u64,
}

/// Why one item could not be restored.
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
    #[error("something appeared there during the restore; it was not replaced (use --overwrite)")]
    AppearedMeanwhile,
    /// A signal asked to stop: not a failure of the item (the restore as
    /// a whole reports it).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// What every item's restore needs.
pub(super) struct Ctx<'a> {
    /// The target as the user named it, for reporting paths.
    pub target_path: &'a Path,
    pub backend: &'a Backend,
    pub as_owner: bool,
    pub overwrite: bool,
}

/// Writes the files of `batch` in parallel, then its symlinks, then gives
/// the directories it finishes their metadata, and adds what became of
/// them to `outcome`.
pub(super) fn write_batch(
    ctx: &Ctx<'_>,
    batch: &Batch,
    progress: &Progress,
    outcome: &mut RestoreOutcome,
) {
    // From a remote store, the batch's blobs come in a few GETs per pack.
    let spans = pack::spans::Spans::plan(ctx.backend, batch.locations.values());
    let file_results: Vec<_> = batch
        .files
        .par_iter()
        .map_init(
            || pack::reader::PackFiles::through(ctx.backend, spans.as_ref()),
            |packs, placed| {
                let result = restore_file(ctx, &batch.locations, packs, placed);
                Progress::add(&progress.files, 1);
                Progress::add(&progress.bytes, placed.item.entry.meta.size);
                (&placed.item, result)
            },
        )
        .collect();
    let path_of = |item: &Item| ctx.target_path.join(&item.rel);
    for (item, result) in file_results {
        match result {
            Ok(stale) => {
                outcome.files += 1;
                outcome.bytes += item.entry.meta.size;
                // Only databases have paths to report: no join per file.
                if item.entry.database().is_some() {
                    let path = path_of(item);
                    outcome
                        .stale_removed
                        .extend(stale.into_iter().map(|name| path.with_file_name(name)));
                    outcome.databases.push(path);
                }
            }
            Err(ItemError::Interrupted(_)) => {}
            Err(e) => outcome.failed.push((path_of(item), e.to_string())),
        }
    }
    for placed in &batch.symlinks {
        match restore_symlink(ctx, placed) {
            Ok(()) => outcome.symlinks += 1,
            Err(ItemError::Interrupted(_)) => return,
            Err(e) => outcome.failed.push((path_of(&placed.item), e.to_string())),
        }
    }
    // What is not finished keeps its 0700 until a complete restore.
    if interrupt::requested().is_some() {
        return;
    }
    for (fd, dir) in &batch.finish {
        match target::set_dir_meta(fd, &dir.meta, ctx.as_owner) {
            Ok(()) => outcome.dirs += 1,
            Err(e) => outcome
                .failed
                .push((ctx.target_path.join(&dir.rel), e.to_string())),
        }
    }
}

/// Restores one file into its open directory, reading through `packs`
/// (kept open across the files of one thread); returns the stale database
/// side files it removed.
fn restore_file(
    ctx: &Ctx<'_>,
    locations: &HashMap<BlobId, BlobLocation>,
    packs: &mut pack::reader::PackFiles<'_>,
    placed: &Placed,
) -> Result<Vec<std::ffi::OsString>, ItemError> {
    let item = &placed.item;
    let Content::File {
        chunks, database, ..
    } = &item.entry.content
    else {
        return Ok(Vec::new());
    };
    interrupt::check()?;
    let slot = placed.slot();
    let mut tmp = slot.temp_file()?;
    crate::crash::point("restore-file-started");
    let file = tmp.file().ok_or_else(|| io::Error::other("not a file"))?;
    let located = chunks
        .iter()
        .map(|id| Ok((*id, locations.get(id).ok_or(ItemError::Missing(*id))?)))
        .collect::<Result<Vec<_>, ItemError>>()?;
    // A database is synced before it appears: start writing it back early.
    let mut early = match database {
        Some(_) => Some(EarlySync::new(file)?),
        None => None,
    };
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    // Stopping between two chunks drops `tmp`, which removes the file.
    pack::reader::stream(packs, &located, |data| {
        interrupt::check()?;
        out.write_all(data)?;
        written += data.len() as u64;
        if let Some(early) = &mut early {
            early.wrote(data.len() as u64)?;
        }
        Ok::<_, ItemError>(())
    })?;
    out.flush()?;
    drop(out);
    if let Some(early) = early {
        early.finish()?;
    }
    let meta = &item.entry.meta;
    if written != meta.size {
        return Err(ItemError::Size {
            got: written,
            want: meta.size,
        });
    }
    tmp.apply_meta(meta, ctx.as_owner)?;
    // Replacing a file the user had: after a crash the path must hold the
    // old one or the complete new one, never an empty one. A database is
    // always synced: an application may open it as soon as it appears.
    if (database.is_some() || (ctx.overwrite && slot.is_taken()?))
        && let Some(file) = tmp.file()
    {
        file.sync_all()?;
    }
    if database.is_none() {
        place(tmp, ctx.overwrite)?;
        return Ok(Vec::new());
    }
    // A stale -wal beside the restored image would be replayed into it by
    // the next open and corrupt it: remove side files before the image
    // appears (not after: by then an application may have opened it).
    let stale = slot.remove_siblings(&database::SIDE_SUFFIXES)?;
    place(tmp, ctx.overwrite)?;
    Ok(stale)
}

fn restore_symlink(ctx: &Ctx<'_>, placed: &Placed) -> Result<(), ItemError> {
    let item = &placed.item;
    let Content::Symlink { target } = &item.entry.content else {
        return Ok(());
    };
    interrupt::check()?;
    let slot: Slot = placed.slot();
    let tmp = slot.temp_symlink(target.as_os_str())?;
    tmp.apply_meta(&item.entry.meta, ctx.as_owner)?;
    place(tmp, ctx.overwrite)
}

fn place(tmp: super::target::Temp<'_>, overwrite: bool) -> Result<(), ItemError> {
    tmp.place(overwrite).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ItemError::AppearedMeanwhile,
        _ => ItemError::Io(e),
    })
}
