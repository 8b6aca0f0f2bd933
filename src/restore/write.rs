//! Writing the items of a restore. Files are written to a temporary name in
//! their destination directory, checked blob by blob and against the
//! recorded size, given their metadata, and only then renamed into place: a
//! file in the target is either the old one or the complete restored one.
//! All of it goes through directory handles under the target (see
//! `target`). A file that fails is reported and the others go on.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::early_sync::EarlySync;
use super::execute::{Batch, Placed};
use super::links::{LinkPlaced, primary_place};
use super::locate::{Locator, Unlocated};
use super::meta::{Misses, OwnerMap, Skipped};
use super::plan::Item;
use super::sparse::SparseOut;
use super::target::{self, DirFd, Slot};
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
    /// Files restored as hard links to another name of the same file
    /// (counted in `files` too).
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Items that failed, with the reason; everything else was restored.
    pub failed: Vec<(PathBuf, String)>,
    /// Of those, files whose data in the store is damaged (a blob missing,
    /// not decoding or not matching its id, or adding up to another size
    /// than recorded), as opposed to a target that refused the write.
    pub damaged: u64,
    /// Of those, files that need a pack the store does not have (lost, or
    /// on a shared store possibly deleted by another host's prune while
    /// this host's catalog still placed blobs in it).
    pub pack_gone: u64,
    /// SQLite databases restored (captured as databases).
    pub databases: Vec<PathBuf>,
    /// Stale `-wal`, `-shm` and `-journal` files removed from beside them.
    pub stale_removed: Vec<PathBuf>,
    /// Temporary files that interrupted restores had left in the
    /// directories restored into, removed (see `leftovers`).
    pub leftovers_removed: u64,
    /// Metadata the target or this process's privileges did not allow
    /// (owners, xattrs, hard links), counted by kind.
    pub skipped: Skipped,
    /// Hard-linked files whose restore failed, relative to the target: a
    /// later name of their group must not be linked to whatever is at
    /// their path (the old file `--overwrite` did not replace, or one that
    /// appeared there), but restored as a file of its own.
    unwritten_links: HashSet<PathBuf>,
}

impl RestoreOutcome {
    /// Damage when the store's data of some file is damaged (as `verify`
    /// would say), else partial when items failed (each is in `failed`);
    /// everything else is restored either way.
    pub fn outcome(&self) -> crate::outcome::Outcome {
        let failed = crate::outcome::Outcome::partial_if(self.failed.len() as u64);
        crate::outcome::Outcome::damage_if(self.damaged).worst(failed)
    }
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
    #[error("the catalog failed: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("restored {got} bytes where the snapshot recorded {want}")]
    Size { got: u64, want: u64 },
    #[error("{0}")]
    Defect(&'static str),
    #[error("something appeared there during the restore; it was not replaced (use --overwrite)")]
    AppearedMeanwhile,
    /// A signal asked to stop: not a failure of the item (the restore as
    /// a whole reports it).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl From<Unlocated> for ItemError {
    fn from(e: Unlocated) -> Self {
        match e {
            Unlocated::Missing(id) => Self::Missing(id),
            Unlocated::Catalog(e) => Self::Catalog(e),
        }
    }
}

impl ItemError {
    /// Whether the store's data is at fault, not the target or the
    /// connection to the store. An entry with a defect (holes that overlap,
    /// an empty symlink target) was recorded wrongly: verify calls it
    /// damage too.
    fn is_damage(&self) -> bool {
        match self {
            Self::Missing(_) | Self::Size { .. } | Self::Defect(_) => true,
            Self::Pack(e) => e.is_damage(),
            _ => false,
        }
    }

    /// Whether a pack the catalog names is not in the store.
    fn is_pack_gone(&self) -> bool {
        matches!(self, Self::Pack(PackError::Io(e)) if e.is_not_found())
    }
}

/// What every item's restore needs.
pub(super) struct Ctx<'a> {
    /// The target as the user named it, for reporting paths.
    pub target_path: &'a Path,
    /// The target, to reach the first names of hard links from.
    pub root: DirFd,
    pub backend: &'a Backend,
    pub owners: OwnerMap,
    /// `--sparse`: leave blocks of zeros unwritten.
    pub zeros_as_holes: bool,
    pub overwrite: bool,
    /// Locates the chunks of large files while they are written.
    pub locator: Option<Locator>,
    /// The spans of packs held for every batch and large file (remote).
    pub spans: pack::spans::SpanCache,
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
    outcome.failed.extend(batch.failed_dirs.iter().cloned());
    // From a remote store, the batch's blobs come in a few GETs per pack.
    let spans = pack::spans::Spans::plan(ctx.backend, &ctx.spans, batch.locations.values());
    let file_results: Vec<_> = batch
        .files
        .par_iter()
        .map_init(
            || pack::runs::PackFiles::through(ctx.backend, spans.as_ref()),
            |packs, placed| {
                progress
                    .working_on(|| ctx.target_path.join(&placed.item.rel).display().to_string());
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
            Ok((stale, misses)) => {
                note_misses(ctx, item, misses, outcome);
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
            Err(e) => {
                if item.entry.link().is_some() {
                    outcome.unwritten_links.insert(item.rel.clone());
                }
                outcome.damaged += u64::from(e.is_damage());
                outcome.pack_gone += u64::from(e.is_pack_gone());
                outcome.failed.push((path_of(item), e.to_string()));
            }
        }
    }
    write_links(ctx, batch, outcome);
    for placed in &batch.symlinks {
        match restore_symlink(ctx, placed) {
            Ok(misses) => {
                note_misses(ctx, &placed.item, misses, outcome);
                outcome.symlinks += 1;
            }
            Err(ItemError::Interrupted(_)) => return,
            Err(e) => outcome.failed.push((path_of(&placed.item), e.to_string())),
        }
    }
    // What is not finished keeps its 0700 until a complete restore.
    if interrupt::requested().is_some() {
        return;
    }
    for (fd, dir) in &batch.finish {
        match target::set_dir_meta(fd, &dir.meta, &ctx.owners) {
            Ok(misses) => {
                outcome.skipped.add(&ctx.target_path.join(&dir.rel), misses);
                outcome.dirs += 1;
            }
            Err(e) => outcome
                .failed
                .push((ctx.target_path.join(&dir.rel), e.to_string())),
        }
    }
}

/// Counts what `item` did not get of its metadata.
fn note_misses(ctx: &Ctx<'_>, item: &Item, misses: Misses, outcome: &mut RestoreOutcome) {
    if !misses.is_empty() {
        outcome
            .skipped
            .add(&ctx.target_path.join(&item.rel), misses);
    }
}

/// Makes the later names of hard-linked files in `batch` (their first
/// names are written by now); a name that cannot be linked is restored
/// as a file of its own, and the missed link counted.
fn write_links(ctx: &Ctx<'_>, batch: &Batch, outcome: &mut RestoreOutcome) {
    let mut packs = pack::runs::PackFiles::new(ctx.backend);
    for link in &batch.links {
        let item = &link.placed.item;
        let linked = match outcome.unwritten_links.contains(&link.primary) {
            true => Err(ItemError::from(io::Error::other(format!(
                "its first name {} was not restored",
                ctx.target_path.join(&link.primary).display()
            )))),
            false => restore_link(ctx, link),
        };
        let result = match linked {
            Ok(()) => {
                outcome.hardlinks += 1;
                Ok((Vec::new(), Misses::new()))
            }
            Err(ItemError::Interrupted(_)) => return,
            Err(e) => {
                let missed = io::Error::other(format!("not linked: {e}"));
                note_misses(ctx, item, vec![("hard links", missed)], outcome);
                restore_file(ctx, &batch.locations, &mut packs, &link.placed)
            }
        };
        match result {
            Ok((_, misses)) => {
                note_misses(ctx, item, misses, outcome);
                outcome.files += 1;
                outcome.bytes += item.entry.meta.size;
            }
            Err(ItemError::Interrupted(_)) => return,
            Err(e) => outcome
                .failed
                .push((ctx.target_path.join(&item.rel), e.to_string())),
        }
    }
}

/// Where each of `chunks` is, from the batch's `locations`.
fn located<'l>(
    chunks: &[BlobId],
    locations: &'l HashMap<BlobId, BlobLocation>,
) -> Result<Vec<(BlobId, &'l BlobLocation)>, ItemError> {
    chunks
        .iter()
        .map(|id| Ok((*id, locations.get(id).ok_or(ItemError::Missing(*id))?)))
        .collect()
}

/// Makes `link` a hard link to its first name.
fn restore_link(ctx: &Ctx<'_>, link: &LinkPlaced) -> Result<(), ItemError> {
    interrupt::check()?;
    let placed = &link.placed;
    let here = placed.item.rel.parent().unwrap_or(Path::new(""));
    let (dir, name) = primary_place(&ctx.root, &link.primary, (here, &placed.parent))?;
    let slot = placed.slot();
    let tmp = slot.temp_link(&dir, name)?;
    place(tmp, ctx.overwrite)
}

/// What a restored file leaves: the stale database side files it removed
/// from beside it, and the metadata it did not get.
type FileDone = (Vec<std::ffi::OsString>, Misses);

/// Restores one file into its open directory, reading through `packs`
/// (kept open across the files of one thread).
fn restore_file(
    ctx: &Ctx<'_>,
    locations: &HashMap<BlobId, BlobLocation>,
    packs: &mut pack::runs::PackFiles<'_>,
    placed: &Placed,
) -> Result<FileDone, ItemError> {
    let item = &placed.item;
    let Content::File {
        chunks,
        database,
        holes,
        ..
    } = &item.entry.content
    else {
        return Ok((Vec::new(), Misses::new()));
    };
    if let Some(defect) = item.entry.defect() {
        return Err(ItemError::Defect(defect));
    }
    interrupt::check()?;
    let slot = placed.slot();
    let mut tmp = slot.temp_file()?;
    crate::crash::point("restore-file-started");
    let file = tmp.file().ok_or_else(|| io::Error::other("not a file"))?;
    // A database is synced before it appears: start writing it back early.
    let mut early = match database {
        Some(_) => Some(EarlySync::new(file)?),
        None => None,
    };
    let sparse = SparseOut::new(file, holes, ctx.zeros_as_holes);
    // Runs of blobs come decoded in one buffer each: one as large as this
    // buffer goes to the file directly, shorter ones are gathered.
    let mut out = io::BufWriter::with_capacity(128 << 10, sparse);
    let mut written = 0u64;
    // Stopping between two chunks drops `tmp`, which removes the file.
    let mut sink = |data: &[u8]| {
        interrupt::check()?;
        out.write_all(data)?;
        written += data.len() as u64;
        if let Some(early) = &mut early {
            early.wrote(data.len() as u64)?;
        }
        Ok::<_, ItemError>(())
    };
    match Locator::for_file(ctx.locator.as_ref(), chunks) {
        Some(locator) => locator.in_segments(chunks, |located| {
            // From a remote store, each segment's blobs in a few GETs.
            let blobs = located.iter().map(|(_, at)| *at);
            let spans = pack::spans::Spans::plan(ctx.backend, &ctx.spans, blobs);
            let mut packs = pack::runs::PackFiles::through(ctx.backend, spans.as_ref());
            pack::runs::stream(&mut packs, located, &mut sink)
        })?,
        None => pack::runs::stream(packs, &located(chunks, locations)?, &mut sink)?,
    }
    out.flush()?;
    drop(out);
    if let Some(early) = early {
        early.finish()?;
    }
    let meta = &item.entry.meta;
    if written != item.entry.data_size() {
        return Err(ItemError::Size {
            got: written,
            want: item.entry.data_size(),
        });
    }
    // Holes (recorded, or zeros left unwritten) up to the end.
    if (!holes.is_empty() || ctx.zeros_as_holes)
        && let Some(file) = tmp.file()
    {
        file.set_len(meta.size)?;
    }
    let misses = tmp.apply_meta(meta, &ctx.owners)?;
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
        return Ok((Vec::new(), misses));
    }
    // A stale -wal beside the restored image would be replayed into it by
    // the next open and corrupt it: remove side files before the image
    // appears (not after: by then an application may have opened it).
    let stale = slot.remove_siblings(&database::SIDE_SUFFIXES)?;
    place(tmp, ctx.overwrite)?;
    Ok((stale, misses))
}

fn restore_symlink(ctx: &Ctx<'_>, placed: &Placed) -> Result<Misses, ItemError> {
    let item = &placed.item;
    let Content::Symlink { target } = &item.entry.content else {
        return Ok(Misses::new());
    };
    interrupt::check()?;
    let slot: Slot = placed.slot();
    let tmp = slot.temp_symlink(target.as_os_str())?;
    let misses = tmp.apply_meta(&item.entry.meta, &ctx.owners)?;
    place(tmp, ctx.overwrite)?;
    Ok(misses)
}

fn place(tmp: super::target::Temp<'_>, overwrite: bool) -> Result<(), ItemError> {
    tmp.place(overwrite).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ItemError::AppearedMeanwhile,
        _ => ItemError::Io(e),
    })
}
