//! Carrying out a restore into a directory as a stream of batches.
//!
//! The survey has walked the selection once: every tree is readable, every
//! included path is there, and nothing is in the way (or `--overwrite` was
//! given). This walks it again and cuts it into batches of items with their
//! blobs located. One thread writes a batch with all cores while the walk
//! creates the directories of the next and looks up its blobs, so the
//! lookups and tree reads no longer come before the first byte is written.
//! At most three batches exist at once, so memory no longer grows with the
//! number of files in the snapshot. Directories are reached through the
//! chain of open directory handles (see `chain`), never by path. Once the
//! walk has left a directory, everything in it is in this batch or an
//! earlier one, so the batch carries it too and the writer sets its
//! metadata after the batch's files: deepest first, each directory's
//! mtime being the last touch it gets.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use super::chain::Chain;
use super::leftovers;
use super::links::{LinkPlaced, Primaries};
use super::locate::{Locator, locate_into};
use super::meta::OwnerMap;
use super::plan::{Item, Survey, walk_selection};
use super::target::{self, DirFd, Slot};
use super::write::{Ctx, RestoreOutcome, write_batch};
use super::{RestoreError, RestoreOptions};
use crate::id::BlobId;
use crate::interrupt::{self, Interrupted};
use crate::pack::BlobLocation;
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{Content, Meta};

/// A batch is handed over once it holds this many files and symlinks...
const BATCH_ITEMS: usize = 4096;
/// ...or this many chunks (large files: 64k chunks are 2 MiB of ids and
/// locations)...
const BATCH_CHUNKS: usize = 1 << 16;
/// ...or once this many directories were entered while it filled: each
/// holds a handle open until its batch is written, and the three batches
/// in flight must stay far below the usual limit of 1024 open files.
const BATCH_DIRS: usize = 128;

/// Files and symlinks to write together, with their blobs located, and
/// the directories to finish after them.
#[derive(Default)]
pub(super) struct Batch {
    pub files: Vec<Placed>,
    /// Later names of hard-linked files, linked once `files` are written.
    pub links: Vec<LinkPlaced>,
    pub symlinks: Vec<Placed>,
    /// Where each blob of `files` is; one absent is missing from the store.
    pub locations: HashMap<BlobId, BlobLocation>,
    /// Directories the walk has left, innermost first.
    pub finish: Vec<(DirFd, DirToFinish)>,
    /// Directories that could not be made or opened (what is below each
    /// is not restored), and why.
    pub failed_dirs: Vec<(PathBuf, String)>,
    chunks: usize,
    dirs_entered: usize,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.files.len() + self.links.len() + self.symlinks.len() >= BATCH_ITEMS
            || self.chunks >= BATCH_CHUNKS
            || self.dirs_entered >= BATCH_DIRS
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.links.is_empty()
            && self.symlinks.is_empty()
            && self.finish.is_empty()
            && self.failed_dirs.is_empty()
    }
}

/// An item to write, with the open directory it goes into.
pub(super) struct Placed {
    pub item: Item,
    pub parent: DirFd,
}

impl Placed {
    /// Its place: the parent directory and the item's name.
    pub fn slot(&self) -> Slot {
        let name = self.item.rel.file_name().unwrap_or(OsStr::new(""));
        Slot::new(DirFd::clone(&self.parent), name)
    }
}

/// A directory whose metadata is set once everything inside it is written.
pub(super) struct DirToFinish {
    /// Where it is, relative to the target (for reporting only).
    pub rel: PathBuf,
    pub meta: Meta,
}

/// Restores the selection of `snapshot` into `options.target` (opened as
/// `root` for the survey; created if that found nothing there), refusing
/// (before writing anything) if the survey found something in the way and
/// `options.overwrite` is not set.
pub fn execute(
    store: &Store,
    snapshot: &Snapshot,
    survey: Survey,
    options: &RestoreOptions,
    root: Option<DirFd>,
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
    progress.set_totals(survey.files, survey.bytes);
    store.catalog().use_small_cache()?;
    // From here on files are in flight: a signal only asks to stop.
    let _cleanup = interrupt::Cleanup::start();
    allow_open_files();
    let root = match root {
        Some(root) => root,
        None => target::create(&options.target).map_err(|source| RestoreError::Io {
            path: options.target.clone(),
            source,
        })?,
    };
    let ctx = Ctx {
        target_path: &options.target,
        root: DirFd::clone(&root),
        backend: store.backend(),
        owners: OwnerMap::new(options.meta.numeric_owner),
        zeros_as_holes: options.meta.sparse,
        overwrite: options.overwrite,
        locator: Locator::of(store),
        spans: crate::pack::spans::SpanCache::for_readers(rayon::current_num_threads()),
    };
    let (walked, mut outcome) = std::thread::scope(|scope| {
        let (batches, ready) = crossbeam_channel::bounded::<Batch>(1);
        let writer = scope.spawn(|| {
            let mut outcome = RestoreOutcome::default();
            // Once asked to stop, batches are only drained: the walk
            // must never wait on a writer that has stopped.
            for batch in ready {
                if interrupt::requested().is_none() {
                    write_batch(&ctx, &batch, progress, &mut outcome);
                }
            }
            outcome
        });
        let walked = walk_into_batches(&ctx, store, snapshot, options, root, &batches);
        drop(batches);
        match writer.join() {
            Ok(outcome) => (walked, outcome),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    if let Some(signal) = interrupt::requested() {
        return Err(RestoreError::interrupted(
            Interrupted(signal),
            &options.target,
            outcome,
        ));
    }
    outcome.leftovers_removed = walked?;
    Ok(outcome)
}

/// Walks the selection, creating each directory when it is met (before
/// anything inside it is handed over) and sending the files and symlinks
/// in batches, and each directory in the batch that is current when the
/// walk leaves it. Returns how many leftovers of interrupted restores it
/// removed from the directories it met that existed already.
fn walk_into_batches(
    ctx: &Ctx<'_>,
    store: &Store,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    root: DirFd,
    batches: &Sender<Batch>,
) -> Result<u64, RestoreError> {
    let mut walk = Batcher {
        store,
        locator: ctx.locator.as_ref(),
        options,
        leftovers_removed: leftovers::remove_leftovers(&root),
        chain: Chain::new(Some(root)),
        batch: Batch::default(),
        primaries: Primaries::default(),
    };
    walk_selection(store, snapshot, &options.selection, |item| {
        walk.add(item)?;
        if walk.batch.is_full() {
            hand_over(batches, std::mem::take(&mut walk.batch));
        }
        Ok(())
    })?;
    let Batcher {
        mut chain,
        mut batch,
        leftovers_removed,
        ..
    } = walk;
    chain.leave_all(|fd, dir| finish_later(&mut batch, fd, dir));
    if !batch.is_empty() {
        hand_over(batches, batch);
    }
    Ok(leftovers_removed)
}

/// The state of [`walk_into_batches`].
struct Batcher<'a> {
    store: &'a Store,
    /// Locates the chunks of large files while they are written.
    locator: Option<&'a Locator>,
    options: &'a RestoreOptions,
    /// The open directories down to the item at hand.
    chain: Chain<DirToFinish>,
    /// The batch being filled.
    batch: Batch,
    /// Leftovers of interrupted restores removed so far.
    leftovers_removed: u64,
    /// The first name met of each hard link group.
    primaries: Primaries,
}

impl Batcher<'_> {
    /// Creates `item` if it is a directory (and enters it), else adds it to
    /// the batch with its blobs located.
    fn add(&mut self, item: Item) -> Result<(), RestoreError> {
        // The outcome so far is the writer's: `execute` puts it in.
        interrupt::check().map_err(|stop| {
            RestoreError::interrupted(stop, &self.options.target, RestoreOutcome::default())
        })?;
        let parent = self
            .parent_of(&item.rel)
            .map_err(|e| self.io_error(&item.rel, e))?;
        let Some(parent) = parent else {
            self.pass_over(item);
            return Ok(());
        };
        let placed = Placed { item, parent };
        match &placed.item.entry.content {
            Content::Dir { .. } => self.enter(placed),
            Content::Symlink { .. } => self.batch.symlinks.push(placed),
            Content::File { chunks, .. } => {
                if Locator::for_file(self.locator, chunks).is_none() {
                    locate_into(self.store.catalog(), chunks, &mut self.batch.locations)?;
                }
                self.batch.chunks += chunks.len();
                match self.primaries.first_of(&placed.item) {
                    Some(primary) => self.batch.links.push(LinkPlaced { placed, primary }),
                    None => self.batch.files.push(placed),
                }
            }
        }
        Ok(())
    }

    /// Makes directory `placed` and enters it. One the target refuses (a
    /// read-only directory, no inodes left) is a failed item, and what is
    /// below it is not restored: the rest of the restore goes on (exit 3),
    /// as for a file the target refuses.
    fn enter(&mut self, placed: Placed) {
        let made = enter_dir(&placed, self.options.overwrite);
        let fd = match made {
            Ok((fd, existed)) => {
                if existed {
                    self.leftovers_removed += leftovers::remove_leftovers(&fd);
                }
                self.batch.dirs_entered += 1;
                Some(fd)
            }
            Err(e) => {
                let why = format!("{e}; nothing below it was restored");
                let path = self.options.target.join(&placed.item.rel);
                self.batch.failed_dirs.push((path, why));
                None
            }
        };
        let (name, dir) = dir_level(placed.item);
        self.chain.enter(name, fd, dir);
    }

    /// An item below a directory that could not be made is not restored
    /// (that directory's failure says so); a directory there is entered
    /// without a handle, so that the chain follows the walk down.
    fn pass_over(&mut self, item: Item) {
        if matches!(item.entry.content, Content::Dir { .. }) {
            let (name, dir) = dir_level(item);
            self.chain.enter(name, None, dir);
        }
    }

    /// Moves the chain to the directory of `rel`, putting the directories
    /// it leaves into the batch to be finished; returns that directory, or
    /// `None` below one that could not be made.
    fn parent_of(&mut self, rel: &Path) -> io::Result<Option<DirFd>> {
        let batch = &mut self.batch;
        self.chain
            .move_to(rel, |fd, dir| finish_later(batch, fd, dir))?;
        Ok(self.chain.parent().map(DirFd::clone))
    }

    fn io_error(&self, rel: &Path, source: io::Error) -> RestoreError {
        RestoreError::Io {
            path: self.options.target.join(rel),
            source,
        }
    }
}

/// The name and the data to finish it by of directory `item`, for the chain.
fn dir_level(item: Item) -> (std::ffi::OsString, DirToFinish) {
    let name = item.rel.file_name().unwrap_or_default().to_owned();
    let dir = DirToFinish {
        rel: item.rel,
        meta: item.entry.meta,
    };
    (name, dir)
}

/// Makes the directory of `placed` (see [`Slot::make_dir`]) and opens it;
/// also says whether it existed already.
fn enter_dir(placed: &Placed, overwrite: bool) -> io::Result<(DirFd, bool)> {
    let slot = placed.slot();
    let created = slot.make_dir(overwrite)?;
    Ok((slot.open_dir()?, !created))
}

/// Has the writer finish directory `dir` after the current batch.
fn finish_later(batch: &mut Batch, fd: Option<DirFd>, dir: DirToFinish) {
    if let Some(fd) = fd {
        batch.finish.push((fd, dir));
    }
}

/// Sends a batch to the writer. It fails only if the writer is gone, which
/// only a panic does; joining the writer then carries that panic on.
fn hand_over(batches: &Sender<Batch>, batch: Batch) {
    let _ = batches.send(batch);
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
