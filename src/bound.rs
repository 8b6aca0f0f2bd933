//! What a reader bounds: the work a snapshot's trees can make a command do.
//!
//! A store is untrusted input. Each tree is checked when it is decoded, but
//! valid trees can still describe an absurd snapshot: one subtree named by
//! two entries on each of 40 levels is 2^40 paths from 41 small trees, and
//! a chain of directories thousands deep would overflow a recursive walk.
//! Identical directories legitimately share one tree id, so sharing alone
//! is not damage; expanding to more entries than the snapshot's record
//! counts is. Every command that expands a snapshot's trees (restore, tar,
//! `ls -R`, find, diff) counts entries as it goes against a [`Budget`] made
//! from the record's summary, and enters no directory nested deeper than
//! [`MAX_DEPTH`]; verify checks the same bounds for the whole snapshot (see
//! [`crate::tally`]). Capture leaves out directories nested deeper, so no
//! snapshot it writes is refused.

use crate::id::SnapshotId;
use crate::snapshot::{Snapshot, Summary};
use crate::tally::Tally;

/// Deepest directory a reader enters, counted in directories below `/`
/// (`/a/b` is 2). The recursive walks (find, diff, verify's attribution,
/// repair's rebuild, capture) need at most ~6 KiB a level in a debug build,
/// and the command runs on a thread with a 64 MiB stack (`main.rs`), so
/// they stay far from its end; real trees stay far below it (a path of 1024
/// one-letter directories is already half of `PATH_MAX`).
pub const MAX_DEPTH: u64 = 1024;

/// Entries allowed beyond twice the recorded count.
const MARGIN: u64 = 1000;

/// What a snapshot's record says its trees hold: files, directories (the
/// ones leading to the source paths included) and symlinks. Capture counts
/// exactly what it writes; a record written by `repair snapshots` counts
/// what its trees hold (older ones: what the original held, which is more).
pub fn recorded_entries(summary: &Summary) -> u64 {
    summary
        .files
        .saturating_add(summary.dirs)
        .saturating_add(summary.symlinks)
}

/// The most entries a reader expands a snapshot's trees to: twice the
/// recorded count plus a margin, so that no honest record is ever near it.
pub fn entry_limit(summary: &Summary) -> u64 {
    recorded_entries(summary)
        .saturating_mul(2)
        .saturating_add(MARGIN)
}

/// Why a reader stopped expanding a snapshot's trees.
#[derive(Debug, thiserror::Error)]
pub enum BoundError {
    /// More entries than the record allows.
    #[error(
        "snapshot {}: its trees expand to more than {limit} entries, but its record counts {recorded} files, directories and symlinks: the store is damaged or hostile",
        snapshot.short()
    )]
    TooManyEntries {
        /// The snapshot.
        snapshot: SnapshotId,
        /// What its record counts.
        recorded: u64,
        /// Where the reader stopped.
        limit: u64,
    },
    /// A directory nested deeper than [`MAX_DEPTH`].
    #[error(
        "snapshot {}: its trees nest directories deeper than {MAX_DEPTH} levels: the store is damaged or hostile",
        snapshot.short()
    )]
    TooDeep {
        /// The snapshot.
        snapshot: SnapshotId,
    },
}

/// The entries one reader may still expand of one snapshot.
#[derive(Debug, Clone)]
pub struct Budget {
    snapshot: SnapshotId,
    recorded: u64,
    limit: u64,
    used: u64,
}

impl Budget {
    /// The budget of a walk over `snapshot`'s trees.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            snapshot: snapshot.id,
            recorded: recorded_entries(&snapshot.record.summary),
            limit: entry_limit(&snapshot.record.summary),
            used: 0,
        }
    }

    /// Counts `entries` more (a directory listing just read).
    pub fn spend(&mut self, entries: usize) -> Result<(), BoundError> {
        self.used = self.used.saturating_add(entries as u64);
        if self.used <= self.limit {
            return Ok(());
        }
        Err(BoundError::TooManyEntries {
            snapshot: self.snapshot,
            recorded: self.recorded,
            limit: self.limit,
        })
    }

    /// Checks that a directory `depth` levels below `/` may be entered.
    pub fn enter(&self, depth: u64) -> Result<(), BoundError> {
        if depth <= MAX_DEPTH {
            return Ok(());
        }
        Err(BoundError::TooDeep {
            snapshot: self.snapshot,
        })
    }
}

/// Why verify counts a snapshot's trees as damage: what a reader would
/// refuse, judged from the full expansion `tally` of its root tree.
pub fn judge(summary: &Summary, tally: &Tally) -> Option<String> {
    if tally.depth > MAX_DEPTH {
        return Some(format!(
            "its trees nest directories {} levels deep, deeper than the {MAX_DEPTH} a reader enters: the store is damaged or hostile",
            tally.depth
        ));
    }
    let limit = entry_limit(summary);
    (tally.entries() > limit).then(|| {
        format!(
            "its trees expand to {} entries, more than the {limit} a reader expands for a record that counts {} files, directories and symlinks: the store is damaged or hostile",
            tally.entries(),
            recorded_entries(summary)
        )
    })
}

/// How many directories below `/` the absolute snapshot path `path` is.
pub fn depth_of(path: &std::path::Path) -> u64 {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_twice_the_recorded_entries_plus_a_margin_and_never_overflows() {
        let summary = Summary {
            files: 10,
            dirs: 5,
            symlinks: 1,
            ..Summary::default()
        };
        assert_eq!(entry_limit(&summary), 2 * 16 + MARGIN);
        let huge = Summary {
            files: u64::MAX,
            dirs: 3,
            ..Summary::default()
        };
        assert_eq!(entry_limit(&huge), u64::MAX);
        assert_eq!(depth_of(std::path::Path::new("/a/b")), 2);
        assert_eq!(depth_of(std::path::Path::new("/")), 0);
    }
}
