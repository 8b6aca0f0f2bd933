//! Carrying out a restore into a directory as a stream of batches.
//!
//! The survey has walked the selection once: every tree is readable, every
//! included path is there, and nothing is in the way (or `--overwrite` was
//! given). This walks it again and cuts it into batches of items with their
//! blobs located. One thread writes a batch with all cores while the walk
//! creates the directories of the next and looks up its blobs, so the
//! lookups and tree reads no longer come before the first byte is written.
//! At most three batches exist at once, so memory no longer grows with the
//! number of files in the snapshot; only directories are remembered (name
//! and metadata), for their metadata is set last, deepest first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use super::plan::{Item, Survey, walk_selection};
use super::target::Target;
use super::write::{Ctx, RestoreOutcome, write_batch};
use super::{RestoreError, RestoreOptions};
use crate::id::BlobId;
use crate::pack::BlobLocation;
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{Content, Meta};

/// A batch is handed over once it holds this many files and symlinks...
const BATCH_ITEMS: usize = 4096;
/// ...or this many chunks (large files: 64k chunks are 2 MiB of ids and
/// locations).
const BATCH_CHUNKS: usize = 1 << 16;

/// Files and symlinks to write together, with their blobs located.
#[derive(Default)]
pub(super) struct Batch {
    pub files: Vec<Item>,
    pub symlinks: Vec<Item>,
    /// Where each blob of `files` is; one absent is missing from the store.
    pub locations: HashMap<BlobId, BlobLocation>,
    chunks: usize,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.files.len() + self.symlinks.len() >= BATCH_ITEMS || self.chunks >= BATCH_CHUNKS
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.symlinks.is_empty()
    }
}

/// A directory whose metadata is set once everything inside it is written.
struct DirToFinish {
    rel: PathBuf,
    meta: Meta,
}

/// Restores the selection of `snapshot` into `options.target`, refusing
/// (before writing anything) if the survey found something in the way and
/// `options.overwrite` is not set.
pub fn execute(
    store: &Store,
    snapshot: &Snapshot,
    survey: Survey,
    options: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome, RestoreError> {
    if !survey.blockers.is_empty() {
        return Err(RestoreError::Blocked {
            blockers: survey.blockers,
        });
    }
    if !survey.conflicts.is_empty() && !options.overwrite {
        return Err(RestoreError::Conflicts {
            conflicts: survey.conflicts,
        });
    }
    allow_open_files();
    let target = Target::create(&options.target).map_err(|source| RestoreError::Io {
        path: options.target.clone(),
        source,
    })?;
    let ctx = Ctx {
        target: &target,
        target_path: &options.target,
        backend: store.backend(),
        as_owner: rustix::process::geteuid().is_root(),
        overwrite: options.overwrite,
    };
    let mut dirs = Vec::new();
    let (walked, mut outcome) = std::thread::scope(|scope| {
        let (batches, ready) = crossbeam_channel::bounded::<Batch>(1);
        let writer = scope.spawn(|| {
            let mut outcome = RestoreOutcome::default();
            for batch in ready {
                write_batch(&ctx, &batch, progress, &mut outcome);
            }
            outcome
        });
        let walked = walk_into_batches(store, snapshot, options, &target, &mut dirs, &batches);
        drop(batches);
        match writer.join() {
            Ok(outcome) => (walked, outcome),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    walked?;
    finish_dirs(&target, &options.target, dirs, ctx.as_owner, &mut outcome);
    Ok(outcome)
}

/// Walks the selection, creating each directory when it is met (before
/// anything inside it is handed over) and sending the files and symlinks
/// in batches.
fn walk_into_batches(
    store: &Store,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    target: &Target,
    dirs: &mut Vec<DirToFinish>,
    batches: &Sender<Batch>,
) -> Result<(), RestoreError> {
    let mut batch = Batch::default();
    walk_selection(store, snapshot, &options.selection, |item| {
        match &item.entry.content {
            Content::Dir { .. } => {
                target
                    .slot(&item.rel)
                    .and_then(|slot| slot.make_dir(options.overwrite))
                    .map_err(|source| RestoreError::Io {
                        path: options.target.join(&item.rel),
                        source,
                    })?;
                dirs.push(DirToFinish {
                    rel: item.rel,
                    meta: item.entry.meta,
                });
            }
            Content::Symlink { .. } => batch.symlinks.push(item),
            Content::File { chunks, .. } => {
                locate_into(store, chunks, &mut batch.locations)?;
                batch.chunks += chunks.len();
                batch.files.push(item);
            }
        }
        if batch.is_full() {
            hand_over(batches, std::mem::take(&mut batch));
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        hand_over(batches, batch);
    }
    Ok(())
}

/// Adds where each of `chunks` is to `locations` (a blob the catalog does
/// not know is left out: it is missing from the store).
fn locate_into(
    store: &Store,
    chunks: &[BlobId],
    locations: &mut HashMap<BlobId, BlobLocation>,
) -> Result<(), RestoreError> {
    for id in chunks {
        if !locations.contains_key(id)
            && let Some(at) = store.catalog().locate(id)?
        {
            locations.insert(*id, at);
        }
    }
    Ok(())
}

/// Sends a batch to the writer. It fails only if the writer is gone, which
/// only a panic does; joining the writer then carries that panic on.
fn hand_over(batches: &Sender<Batch>, batch: Batch) {
    let _ = batches.send(batch);
}

/// Sets the directories' metadata, deepest first, so setting a parent's
/// mtime is the last touch it gets.
fn finish_dirs(
    target: &Target,
    target_path: &Path,
    mut dirs: Vec<DirToFinish>,
    as_owner: bool,
    outcome: &mut RestoreOutcome,
) {
    dirs.sort_by(|a, b| a.rel.cmp(&b.rel));
    for dir in dirs.iter().rev() {
        match target.apply_dir_meta(&dir.rel, &dir.meta, as_owner) {
            Ok(()) => outcome.dirs += 1,
            Err(e) => outcome
                .failed
                .push((target_path.join(&dir.rel), e.to_string())),
        }
    }
}

/// Raises the soft limit on open files towards the hard one: each restore
/// thread keeps up to 16 packs and a directory open across files, and the
/// usual soft limit of 1024 is within reach of 64 threads. If the limit
/// cannot be raised the restore still runs; a file that then cannot be
/// opened is reported like any other failure.
fn allow_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = limit.maximum.map_or(1 << 16, |hard| hard.min(1 << 16));
    if limit.current.is_some_and(|soft| soft < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        };
        // Not being allowed to is the case described above.
        let _ = setrlimit(Resource::Nofile, raised);
    }
}
