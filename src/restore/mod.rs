//! Restoring a snapshot into a directory: survey, then execute.
//!
//! [`survey`] walks the snapshot's trees, maps every entry to its place
//! under the target (the target joined with its absolute path), and lists
//! what already exists there. Nothing is written unless that is nothing or
//! `overwrite` was asked for, and every tree read. [`execute`] walks again,
//! creating directories as it meets them and handing files and symlinks in
//! batches to all cores (each file written to a temporary name, verified
//! blob by blob, then renamed into place), and sets each directory's
//! metadata once everything in it is written (deepest first). Every entry
//! is reached through its parent directory's open handle, never by path, so
//! paths longer than PATH_MAX restore too. A tar stream ([`tar`]) is
//! written entry by entry in the same walk.

mod chain;
pub mod delete;
mod early_sync;
mod execute;
mod leftovers;
mod links;
mod locate;
mod meta;
mod plan;
mod select;
mod sparse;
pub mod tar;
mod tar_pax;
mod target;
mod write;

use std::path::PathBuf;

pub use execute::execute;
pub use meta::{Skipped, SkippedKind};
pub use plan::{Conflict, Survey, survey};
pub use select::{Selection, Want};
pub use target::{DirFd, open_existing as open_target};
pub use write::RestoreOutcome;

use crate::interrupt::Interrupted;
use crate::rawname::escaped;
use crate::store::StoreError;

/// What a restore is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Directory to restore into; created if missing.
    pub target: PathBuf,
    /// Replace existing files instead of refusing.
    pub overwrite: bool,
    /// The part of the snapshot to restore.
    pub selection: Selection,
    /// How owners and holes are restored.
    pub meta: MetaOptions,
}

/// How a restore into a directory treats metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaOptions {
    /// Give files their recorded uid and gid, never the ids their
    /// recorded user and group names have on this host (`--numeric-owner`).
    pub numeric_owner: bool,
    /// Leave blocks of zeros unwritten, as holes, in every file, not only
    /// the holes the snapshot recorded (`--sparse`).
    pub sparse: bool,
}

/// Why a restore could not run.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Files exist where the snapshot has entries.
    #[error("{} path(s) to restore already exist in the target; nothing was written (use --overwrite to replace them):\n{}", conflicts.len(), list(conflicts))]
    Conflicts {
        /// What is in the way.
        conflicts: Vec<Conflict>,
    },
    /// Directories exist where the snapshot has files; never replaced.
    #[error("{} path(s) to restore are directories in the target, which cairn never replaces; nothing was written:\n{}", blockers.len(), list(blockers))]
    Blocked {
        /// What is in the way.
        blockers: Vec<Conflict>,
    },
    /// Creating the target or a directory failed.
    #[error("{}: {source}", escaped(path))]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the snapshot cannot be read.
    #[error("cannot read the listing of {}: {source}", escaped(path))]
    Tree {
        /// Where the directory would be restored.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
    /// `--include` or `--strip-prefix` do not make sense.
    #[error("{0}")]
    Selection(String),
    /// An included path is not in the snapshot.
    #[error("{} is not in the snapshot", escaped(.0))]
    NotInSnapshot(PathBuf),
    /// The tar file could not be created or written.
    #[error("{what} {}{note}: {source}", escaped(path))]
    TarFile {
        /// What was being done.
        what: &'static str,
        /// Said after the path.
        note: &'static str,
        /// The tar file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Writing the tar stream failed.
    #[error("writing the tar stream: {0}")]
    Tar(#[source] std::io::Error),
    /// A file's content could not be read for the tar stream.
    #[error(transparent)]
    Content(#[from] crate::browse::BrowseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshot's trees expand beyond what its record allows.
    #[error(transparent)]
    Bound(#[from] crate::bound::BoundError),
    /// A signal stopped a tar stream into a file; its temporary file was
    /// removed.
    #[error(
        "{signal}: the tar stream into {} was not finished, and nothing of it is left",
        escaped(path)
    )]
    TarInterrupted {
        /// Which signal.
        signal: Interrupted,
        /// The tar file asked for.
        path: PathBuf,
    },
    /// A signal stopped the restore; the files being written were removed.
    #[error(
        "{signal}: the restore into {} is incomplete: {} files, {} symlinks and {} directories \
         were restored before it stopped; the files being written were removed, and directories \
         not finished keep mode 0700 until a restore into the same target completes",
        escaped(target), restored.files, restored.symlinks, restored.dirs
    )]
    Interrupted {
        /// Which signal.
        signal: Interrupted,
        /// The target.
        target: PathBuf,
        /// What was restored until then.
        restored: Box<RestoreOutcome>,
    },
}

impl RestoreError {
    /// Whether the restore stopped on damaged or lost data in the store
    /// (a directory's tree gone, say), not on the target or the machine.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Tree { source, .. } => source.is_damage(),
            Self::Content(e) => e.is_damage(),
            Self::Store(e) => e.is_damage(),
            _ => false,
        }
    }
}

impl RestoreError {
    fn interrupted(
        signal: Interrupted,
        target: &std::path::Path,
        restored: RestoreOutcome,
    ) -> Self {
        Self::Interrupted {
            signal,
            target: target.to_owned(),
            restored: Box::new(restored),
        }
    }
}

impl From<crate::catalog::CatalogError> for RestoreError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self::Store(e.into())
    }
}

/// How many conflicting paths an error message lists before summarising.
const LISTED: usize = 20;

fn list(conflicts: &[Conflict]) -> String {
    let mut lines: Vec<String> = conflicts
        .iter()
        .take(LISTED)
        .map(|c| format!("  {} ({})", escaped(&c.path), c.existing))
        .collect();
    if conflicts.len() > LISTED {
        lines.push(format!("  ... and {} more", conflicts.len() - LISTED));
    }
    lines.join("\n")
}
