//! Marking: the blobs a set of snapshots reaches, each distinct tree read
//! once, on every core.
//!
//! Prune and copy need no tally and no entry in full, only which blobs and
//! subtrees each tree names, so trees are read as their references
//! ([`TreeRefs`]) by reader threads, each with its own read-only connection
//! to the catalog ([`Store::tree_reader`]). This thread hands out every
//! tree not met before and marks what comes back. Decoding trees was 54%
//! of a prune of 200k small files, on one core; on a remote store the
//! readers' fetches of tree packs overlap too (one fetch of a pack at a
//! time: see `PackCache`). The first [`READ_ALONE`] trees are read here,
//! one after the other, so a store of few directories (a database and a few
//! files, however many snapshots) is marked without threads, whose own
//! allocator arenas and catalog connections cost a few MiB of resident
//! memory; and all of them when the catalog cannot be opened again. A
//! reader that panics sends its panic back, raised again here.

use std::collections::{HashSet, VecDeque};
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use super::{Checks, LiveSet, Trouble, unread};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError, TreeReader};
use crate::tree::TreeRefs;

/// Reader threads at most: past a few, the catalog's lookups and the
/// marking on this thread are what limit.
const MAX_READERS: usize = 4;

/// Trees read on this thread before readers start (a few milliseconds).
const READ_ALONE: usize = 256;

/// Trees larger than this, decoded, are read on this thread: memory a
/// thread frees stays in its own allocator arena (glibc's), and readers
/// decoding the tree of a database (128k chunk ids, 8.6 MB) raised a
/// prune's peak RSS by 13 MiB. 1 MiB is a directory of about 4000 files.
const MAX_RAW: u32 = 1 << 20;

/// What [`mark`] found.
#[derive(Debug, Default)]
pub struct Marked {
    /// Every blob reached.
    pub live: LiveSet,
    /// Each trouble, with a snapshot that needs it.
    pub troubles: Vec<(SnapshotId, Trouble)>,
}

/// Marks the blobs `snapshots` reach: every tree (each once) and the chunks
/// of every file. With [`Checks::Blobs`] each chunk is also looked up in the
/// catalog the first time it is marked (a blob whose prefix collides with
/// an earlier one is not; store-format/durability.md bounds what that can
/// cost). Troubles are collected, not fatal; only a failing catalog stops
/// the walk. `progress.files` counts the trees read.
pub fn mark(
    store: &Store,
    snapshots: &[Snapshot],
    checks: Checks,
    progress: &Progress,
) -> Result<Marked, StoreError> {
    let _read = store.catalog().read_snapshot()?;
    let mut marker = Marker {
        store,
        checks,
        snapshots,
        progress,
        seen: HashSet::new(),
        marked: Marked {
            live: LiveSet::sized_for(store)?,
            troubles: Vec::new(),
        },
    };
    let mut queue = marker.roots();
    marker.read_here(&mut queue, READ_ALONE)?;
    if !queue.is_empty() {
        let readers = readers(store);
        if readers.is_empty() {
            marker.read_here(&mut queue, usize::MAX)?;
        } else {
            marker.read_on(readers, queue)?;
        }
    }
    Ok(marker.marked)
}

/// Readers for the other threads, as many as there are cores (up to
/// [`MAX_READERS`]); none if the catalog cannot be opened again.
fn readers(store: &Store) -> Vec<TreeReader> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    (0..cores.min(MAX_READERS))
        .map_while(|_| store.tree_reader())
        .collect()
}

/// A tree to read, and the snapshot (by index) it was reached from.
type Job = (TreeId, usize);

/// What a reader hands back: `None` for a tree larger than [`MAX_RAW`];
/// the panic of a reader that panicked, to be raised again here (else the
/// tree it took would never come back and marking would wait forever).
type Done = (Job, thread::Result<Result<Option<TreeRefs>, StoreError>>);

/// The marking thread's state.
struct Marker<'a> {
    store: &'a Store,
    checks: Checks,
    snapshots: &'a [Snapshot],
    progress: &'a Progress,
    /// Trees met so far: each is read once.
    seen: HashSet<TreeId>,
    marked: Marked,
}

impl Marker<'_> {
    /// The snapshots' root trees, each once.
    fn roots(&mut self) -> VecDeque<Job> {
        let mut roots = VecDeque::new();
        for (i, snapshot) in self.snapshots.iter().enumerate() {
            let root = snapshot.record.tree;
            if self.meet(root) {
                roots.push_back((root, i));
            }
        }
        roots
    }

    /// Marks tree `id`; whether it is met for the first time (to be read).
    fn meet(&mut self, id: TreeId) -> bool {
        self.marked.live.insert(&id.as_blob());
        self.seen.insert(id)
    }

    /// Reads up to `count` trees of `queue` on this thread (and those they
    /// add to it).
    fn read_here(&mut self, queue: &mut VecDeque<Job>, count: usize) -> Result<(), StoreError> {
        for _ in 0..count {
            let Some(job) = queue.pop_front() else {
                break;
            };
            let read = self.store.load_tree_as(&job.0).map(Some);
            self.take((job, Ok(read)), &mut |next| queue.push_back(next))?;
        }
        Ok(())
    }

    /// Reads every tree on `readers`' threads, marking here.
    fn read_on(
        &mut self,
        readers: Vec<TreeReader>,
        roots: VecDeque<Job>,
    ) -> Result<(), StoreError> {
        thread::scope(|scope| {
            let (jobs, todo) = crossbeam_channel::unbounded::<Job>();
            let (done, results) = crossbeam_channel::bounded::<Done>(2 * readers.len());
            for reader in readers {
                let (todo, done) = (todo.clone(), done.clone());
                scope.spawn(move || read_trees(&reader, &todo, &done));
            }
            drop((todo, done));
            // `jobs` and `results` are dropped when this returns, early or
            // not, and the readers then stop.
            let mut outstanding = roots.len();
            for job in roots {
                send(&jobs, job);
            }
            while outstanding > 0 {
                // A reader sends back even its panic, and holds `done`
                // until `jobs` is dropped: a tree asked for always comes
                // back (stopping short here would leave live blobs unmarked).
                let read = results.recv().map_err(|_| StoreError::TreeReaderLost)?;
                outstanding -= 1;
                self.take(read, &mut |next| {
                    outstanding += 1;
                    send(&jobs, next);
                })?;
            }
            Ok(())
        })
    }

    /// Marks what a read tree references and passes on the subtrees not
    /// met before; notes a tree that could not be read.
    fn take(&mut self, (job, read): Done, next: &mut dyn FnMut(Job)) -> Result<(), StoreError> {
        Progress::add(&self.progress.files, 1);
        let read = match read.unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
            Ok(Some(refs)) => Ok(refs),
            Ok(None) => self.store.load_tree_as(&job.0), // too large for a reader
            Err(e) => Err(e),
        };
        let refs = match read {
            Ok(refs) => refs,
            Err(e) => {
                self.note(job.1, unread(job.0, e)?);
                return Ok(());
            }
        };
        for sub in refs.subtrees {
            if self.meet(sub) {
                next((sub, job.1));
            }
        }
        self.mark_chunks(job.1, &refs.chunks)
    }

    /// Marks chunks, looking up those met for the first time if asked to.
    fn mark_chunks(&mut self, snapshot: usize, chunks: &[BlobId]) -> Result<(), StoreError> {
        for chunk in chunks {
            let first = self.marked.live.insert(chunk);
            if first && self.checks == Checks::Blobs && !self.store.catalog().contains(chunk)? {
                self.note(snapshot, Trouble::Missing(*chunk));
            }
        }
        Ok(())
    }

    fn note(&mut self, snapshot: usize, trouble: Trouble) {
        let id = self.snapshots[snapshot].id;
        self.marked.troubles.push((id, trouble));
    }
}

/// A reader thread: reads the trees it is given until there are no more
/// or no one takes what it read.
fn read_trees(reader: &TreeReader, todo: &Receiver<Job>, done: &Sender<Done>) {
    for job in todo {
        let read = || reader.load_tree_up_to(&job.0, MAX_RAW);
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
        if done.send((job, read)).is_err() {
            return;
        }
    }
}

/// Queues a job; the readers hold the receiving end until this thread
/// drops the sending one, so the send cannot fail.
fn send(jobs: &Sender<Job>, job: Job) {
    let _ = jobs.send(job);
}
