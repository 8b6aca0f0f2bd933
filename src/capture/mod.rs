//! The snapshot pipeline: sources -> walk -> chunks -> packs -> catalog ->
//! snapshot record.
//!
//! [`prepare`] checks everything that can be checked without the store
//! (sources exist, patterns compile), so a bad command line writes nothing.
//! [`run`] then walks, stores, and commits the record last: a snapshot is
//! visible only when every blob it references is durable.

mod attributes;
pub mod change;
pub mod command;
mod consistent;
mod count;
pub mod database;
pub mod dry_run;
pub mod excludes;
mod file;
pub mod handle;
mod listing;
pub mod lists;
pub mod pipeline;
pub(crate) mod present;
mod read_ahead;
pub mod report;
pub mod sources;
mod sparse;
mod stdin;
pub mod trainer;
mod upload;
pub mod walk;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::rawname::RawName;
use crate::snapshot::select::{Filter, SelectError, SnapshotRef};
use crate::snapshot::{self, RECORD_VERSION, Snapshot, SnapshotRecord, Summary};
use crate::store::{Store, StoreError};
use crate::when::SnapshotTime;

use crate::progress::Progress;
use crate::rawname::escaped;
use excludes::{ExcludeOptions, Excludes};
use read_ahead::ReadAhead;
use report::{Reporter, Warning};
use sources::Sources;
use walk::{ParentDir, Walker};

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A source path is missing or unusable (checked before anything is written).
    #[error("source {}: {source}", escaped(path))]
    Source {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An `--exclude` pattern does not compile.
    #[error("bad --exclude pattern {pattern:?}: {cause}")]
    Exclude {
        /// The pattern.
        pattern: String,
        /// Why.
        cause: String,
    },
    /// A tag or the host name is empty (`--tag ""`: such a snapshot could
    /// not be found by it) or longer than a name may be.
    #[error("{0} {1}")]
    Label(&'static str, String),
    /// `--stdin-name` is not a plain file name a directory could hold.
    #[error(
        "--stdin-name {0:?} must be a plain file name (no '/', not '.' or '..', at most 255 bytes)"
    )]
    StdinName(String),
    /// Standard input failed while being read.
    #[error("reading standard input: {0}")]
    Stdin(io::Error),
    /// The dump command (`--stdin-from-command`) could not be started.
    #[error("cannot run `{command}`: {source}; nothing was committed")]
    CommandStart {
        /// The command line.
        command: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Reading the dump command's output failed.
    #[error("reading the output of `{command}`: {source}; nothing was committed")]
    CommandOutput {
        /// The command line.
        command: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The dump command did not exit with status 0: its output may be
    /// incomplete, so none of it is committed.
    #[error("`{command}` {status}; nothing was committed{}", command_said(stderr))]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended ("exited with status 1").
        status: String,
        /// The last lines of its standard error.
        stderr: Vec<String>,
    },
    /// The parent snapshot given does not resolve.
    #[error("--parent: {0}")]
    Parent(SelectError),
    /// A directory listing too large to be one tree blob.
    #[error("a directory listing of {0} bytes exceeds the tree size limit")]
    TreeTooLarge(usize),
    /// A compressor could not be created or failed.
    #[error("compression failed: {0}")]
    Compress(io::Error),
    /// A pipeline thread stopped; the error that stopped it is reported instead when known.
    #[error("the capture pipeline stopped unexpectedly; nothing was committed")]
    PipelineStopped,
    /// Fewer blobs reached packs than were sent (a worker thread died).
    #[error(
        "{sent} new blobs were sent to be stored but {written} were written; nothing was committed"
    )]
    BlobsLost {
        /// Blobs the walker sent.
        sent: u64,
        /// Blobs the pack writer received.
        written: u64,
    },
    /// The store has an older format; it must be upgraded before new
    /// objects (database entries) are written to it.
    #[error(
        "store format version {0} must be upgraded before snapshots are written (Store::upgrade_for_writing)"
    )]
    NotUpgraded(u32),
    /// A blob the new snapshot references was removed from the store
    /// while the snapshot ran (by something that ignored the store lock).
    #[error(
        "blob {blob} of this snapshot was removed from the store while it ran ({why}): a concurrent prune or repair removed data this snapshot reused; nothing was committed (the next snapshot stores it again)"
    )]
    BlobGone {
        /// The first missing blob found.
        blob: crate::id::BlobId,
        /// What is missing: its catalog row or its pack.
        why: String,
    },
    /// Blobs kept being removed while the snapshot checked its own.
    #[error(
        "blobs were removed from the store throughout {0} checks of this snapshot's data (a concurrent prune or repair); nothing was committed"
    )]
    StoreChanging(usize),
    /// A pack this run wrote was deleted before the snapshot committed.
    #[error(
        "{0}, written by this snapshot, is gone from the store: a prune or repair removed it while the snapshot ran (a snapshot that runs longer than the grace period can lose its packs this way); nothing was committed (the next snapshot stores it again)"
    )]
    PackGone(String),
    /// Copying reused blobs out of condemned packs failed. Not a source:
    /// whatever stopped it (a pack deleted by the prune that condemned it,
    /// even a blob that does not check out in a pack about to go), the
    /// files are still there and the next snapshot stores them again, so
    /// the run exits 1, not 4 as for lost data.
    #[error(
        "copying reused chunks out of packs a prune condemned: {0}; nothing was committed (the next snapshot stores them again)"
    )]
    Rescue(crate::repack::RepackError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The end of a [`CaptureError::CommandFailed`] message: what the
/// command said last on its standard error.
fn command_said(lines: &[String]) -> String {
    if lines.is_empty() {
        return " (it wrote nothing on its standard error)".to_owned();
    }
    let quoted: Vec<String> = lines.iter().map(|l| format!("  {l}")).collect();
    format!(
        "; the last {} line(s) of its standard error:\n{}",
        lines.len(),
        quoted.join("\n")
    )
}

/// What to capture.
#[derive(Debug, Clone)]
pub enum Input {
    /// Files and directories.
    Paths(Sources),
    /// Standard input, stored as the file `/NAME`.
    Stdin {
        /// The file name.
        name: RawName,
    },
    /// The standard output of a command, stored as the file `/NAME`,
    /// committed only if the command exits with status 0.
    Command {
        /// The file name.
        name: RawName,
        /// The program and its arguments (no shell).
        argv: Vec<OsString>,
    },
}

/// What a snapshot is asked to capture, before it is checked.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// These files and directories.
    Paths(&'a [PathBuf]),
    /// Standard input, as the file `/NAME`.
    Stdin {
        /// NAME.
        name: &'a str,
    },
    /// The output of a command, as the file `/NAME`.
    Command {
        /// NAME.
        name: &'a str,
        /// The program and its arguments.
        argv: &'a [OsString],
    },
}

/// Which snapshot to compare against.
#[derive(Debug, Clone)]
pub enum ParentChoice {
    /// The newest snapshot with the same host and paths.
    Auto,
    /// This one.
    Given(SnapshotRef),
    /// None: read every file (`--force`).
    None,
}

/// How to take a snapshot, apart from what to capture.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Host recorded.
    pub host: String,
    /// Tags recorded.
    pub tags: Vec<String>,
    /// Time recorded (now if `None`).
    pub time: Option<SnapshotTime>,
    /// What to leave out (patterns already checked to compile).
    pub excludes: ExcludeOptions,
    /// Parent selection.
    pub parent: ParentChoice,
    /// How SQLite databases are captured.
    pub sqlite: database::SqliteOptions,
}

/// A checked snapshot request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to capture.
    pub input: Input,
    /// How.
    pub options: CaptureOptions,
}

/// Checks a snapshot request without touching any store.
pub fn prepare(request: Request<'_>, mut options: CaptureOptions) -> Result<Plan, CaptureError> {
    let labels = options.tags.iter().map(|t| ("--tag", t));
    for (flag, text) in labels.chain([("--host", &options.host)]) {
        crate::snapshot::check_label(text).map_err(|why| CaptureError::Label(flag, why))?;
    }
    Excludes::new(&options.excludes, None)?;
    let input = match request {
        Request::Paths(paths) => Input::Paths(Sources::resolve(paths)?),
        Request::Stdin { name } => Input::Stdin {
            name: stream_name(name)?,
        },
        Request::Command { name, argv } => Input::Command {
            name: stream_name(name)?,
            argv: argv.to_vec(),
        },
    };
    options.tags.sort();
    options.tags.dedup();
    Ok(Plan { input, options })
}

/// The file name a stream is stored under, checked to be a plain name
/// that a restore can create (a longer one was stored, and every restore
/// of it into a directory failed with "File name too long").
fn stream_name(name: &str) -> Result<RawName, CaptureError> {
    let raw = RawName::from_bytes(name.as_bytes().to_vec());
    match raw.is_valid_entry_name() && name.len() <= MAX_NAME_LEN {
        true => Ok(raw),
        false => Err(CaptureError::StdinName(name.to_owned())),
    }
}

/// The longest file name Linux file systems take (NAME_MAX).
const MAX_NAME_LEN: usize = 255;

/// The host name recorded by default.
pub fn default_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Takes a snapshot. Per-file problems are reported to `reporter` and
/// counted in the summary (`summary.errors`); the snapshot is committed anyway.
pub fn run(
    store: &Store,
    plan: &Plan,
    reporter: &dyn Reporter,
    progress: &Progress,
) -> Result<Snapshot, CaptureError> {
    let started = Instant::now();
    // Before the pipeline's threads start: it hooks SQLite's global system
    // call table. A failure leaves databases that need SQLite out, each
    // with the reason.
    let _ = crate::database::pinned::install();
    if !store.config().is_current() {
        return Err(CaptureError::NotUpgraded(store.config().version));
    }
    // Until the record is committed, this run's packs and temporary files
    // are in flight, not leftovers (store::writers).
    let _writing = crate::store::writers::announce(store.home(), store.backend().file_mode())?;
    let time = plan.options.time.unwrap_or_else(SnapshotTime::now);
    let stamp = crate::tree::Timespec {
        sec: time.timestamp.as_second(),
        nsec: time.timestamp.subsec_nanosecond().max(0) as u32,
    };
    let excludes = Excludes::new(&plan.options.excludes, Some(store.home()))?;
    let paths = recorded_paths(&plan.input);
    let parent = choose_parent(store, plan, &paths)?;
    let parent_root = parent
        .as_ref()
        .filter(|_| matches!(plan.input, Input::Paths(_)))
        .and_then(|p| load_parent_root(store, p, reporter));

    // The removal count now, before anything is looked up: the parent's
    // unchanged files are reused without looking up each chunk if it was
    // intact at this count, and this snapshot is marked intact at it only
    // if it has not moved by the end (see catalog::intact).
    let trainer = trainer::Trainer::for_store(store)?;
    let removals = only_a_speed_up(reporter, store.catalog().removals()).flatten();
    // Blobs made with a lost dictionary are stored again: each chunk of
    // the parent is looked up, however intact it was.
    let parent_intact = match (&parent_root, &parent, removals) {
        _ if trainer.lost_dictionary().is_some() => false,
        (Some(_), Some(p), Some(count)) => {
            only_a_speed_up(reporter, store.catalog().is_intact(&p.id, count)).unwrap_or(false)
        }
        _ => false,
    };
    let sources = match &plan.input {
        Input::Paths(sources) => Some(sources),
        Input::Stdin { .. } | Input::Command { .. } => None,
    };
    let captured = count::beside(sources, &excludes, progress, || {
        pipeline::run(store, &trainer, progress, |sink| {
            let _consistent_reads = store.catalog().read_snapshot().map_err(StoreError::from)?;
            let mut walker = Walker {
                parent_intact,
                store,
                sink,
                excludes: &excludes,
                reporter,
                progress,
                chunker: store.config().chunker,
                sqlite: plan.options.sqlite,
                page_run: store.config().sqlite().page_run,
                databases_seen: Default::default(),
                summary: Summary::default(),
                attrs: attributes::Attributes::new(parent.as_ref().is_some_and(records_metadata)),
                ahead: parent_root
                    .as_ref()
                    .map(|root| ReadAhead::start(store, &root.tree))
                    .unwrap_or_default(),
            };
            let tree = match &plan.input {
                Input::Paths(sources) => walker.capture_layout(
                    Path::new("/"),
                    &sources.layout(),
                    parent_root.as_ref(),
                )?,
                Input::Stdin { name } => walker
                    .capture_stream(name, io::stdin().lock(), stamp)?
                    .map_err(CaptureError::Stdin)?,
                Input::Command { name, argv } => walker.capture_command(name, argv, stamp)?,
            };
            Ok((tree, walker.summary))
        })
    });
    for message in trainer.notes() {
        reporter.warn(&Warning::Note { message });
    }
    let ((tree, walked), sink, written) = captured?;

    crate::crash::point("capture-walked");
    let summary = Summary {
        data_blobs_new: sink.data_new,
        data_blobs_reused: sink.data_reused,
        tree_blobs_new: sink.tree_new,
        tree_blobs_reused: sink.tree_reused,
        bytes_added: written.bytes_stored,
        bytes_added_raw: written.bytes_raw,
        packs_written: written.packs,
        duration_secs: started.elapsed().as_secs_f64(),
        requests: store.backend().requests(),
        // Only for charts: a catalog that cannot sum leaves it out.
        store_bytes: store.catalog().pack_bytes().ok(),
        ..walked.with_issue_19_counts()
    };
    let record = SnapshotRecord {
        version: RECORD_VERSION,
        time,
        host: plan.options.host.clone(),
        paths,
        tags: plan.options.tags.clone(),
        tree,
        parent: parent.map(|p| p.id),
        program: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        format: Some(store.config().version),
        summary,
    };
    let fenced = present::ensure_present(store, tree, removals, &written.pack_ids)?;
    if fenced.rescued_blobs > 0 {
        reporter.warn(&Warning::Note {
            message: format!(
                "{} reused chunks were in packs a prune had condemned: copied into new packs ({} bytes)",
                fenced.rescued_blobs, fenced.rescued_bytes
            ),
        });
    }
    for key in &fenced.strays {
        reporter.warn(&Warning::Note {
            message: format!(
                "{key} is not a condemnation cairn wrote (not named as one): ignored; remove it if it is not yours"
            ),
        });
    }
    let snapshot =
        snapshot::commit(store.backend(), store.catalog(), record).map_err(StoreError::from)?;
    // Every blob it references was in the catalog at that count (a local
    // prune that deletes at once holds the store exclusively, so none can
    // have gone since).
    if let Some(count) = fenced.removals {
        only_a_speed_up(reporter, store.catalog().mark_intact(&snapshot.id, count));
    }
    Ok(snapshot)
}

/// The result of a catalog access that only speeds the next snapshot up:
/// a failure is a warning (the next snapshot checks every reused chunk),
/// never the end of this one.
fn only_a_speed_up<T>(
    reporter: &dyn Reporter,
    result: Result<T, crate::catalog::CatalogError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            reporter.warn(&Warning::Note {
                message: format!("the next snapshot will check every reused chunk: {e}"),
            });
            None
        }
    }
}

/// Whether `parent` recorded every file's xattrs and holes, so that its
/// unchanged files may be taken over with theirs.
fn records_metadata(parent: &Snapshot) -> bool {
    parent
        .record
        .format
        .is_some_and(|f| f >= snapshot::METADATA_FORMAT)
}

fn recorded_paths(input: &Input) -> Vec<RawName> {
    match input {
        Input::Paths(sources) => sources.recorded(),
        Input::Stdin { name } | Input::Command { name, .. } => {
            let mut path = b"/".to_vec();
            path.extend_from_slice(name.as_bytes());
            vec![RawName::from_bytes(path)]
        }
    }
}

fn choose_parent(
    store: &Store,
    plan: &Plan,
    paths: &[RawName],
) -> Result<Option<Snapshot>, CaptureError> {
    let list = store.snapshots()?;
    let found = match &plan.options.parent {
        ParentChoice::None => None,
        ParentChoice::Given(reference) => Some(
            list.resolve(reference, &Filter::default())
                .map_err(CaptureError::Parent)?
                .clone(),
        ),
        // As `latest` does, pass over a snapshot that has a repaired copy:
        // the copy's trees read, the original's may not.
        ParentChoice::Auto => {
            let superseded = crate::snapshot::select::superseded(&list.snapshots);
            list.snapshots
                .iter()
                .rev()
                .filter(|s| !superseded.contains(&s.id))
                .find(|s| s.record.host == plan.options.host && s.record.paths == paths)
                .cloned()
        }
    };
    Ok(found)
}

fn load_parent_root(
    store: &Store,
    parent: &Snapshot,
    reporter: &dyn Reporter,
) -> Option<ParentDir> {
    let id = parent.record.tree;
    match store.load_tree(&id) {
        Ok(tree) => Some(ParentDir { id, tree }),
        Err(e) => {
            reporter.warn(&Warning::Note {
                message: format!(
                    "parent snapshot {} unreadable, every file is read again: {e}",
                    parent.id.short()
                ),
            });
            None
        }
    }
}
