//! Which snapshots may be trusted to have every blob they reference in the
//! catalog, so that the next capture can reuse their unchanged files'
//! chunk lists without one catalog lookup per chunk (75k lookups for one
//! unchanged 300 MB database; a third of a no-change snapshot's time).
//!
//! A snapshot is committed only once every blob it references is in the
//! catalog, and only deleting rows of `blobs` can make that untrue. SQLite
//! counts those deletions itself (the `count_removals` trigger in meta's
//! `removals`, fired for every writer), so a snapshot recorded here with
//! the count at its commit is intact for as long as the count has not
//! moved. A catalog without the row (rebuilt, or written by an older
//! cairn) only means the lookups are made.

use super::{Catalog, CatalogError};
use crate::id::SnapshotId;

impl Catalog {
    /// Records that `snapshot`, just committed, references only blobs the
    /// catalog has, with the removal count as it is now (in one statement).
    /// The caller must hold the store lock that keeps prune and repair out.
    pub fn mark_intact(&self, snapshot: &SnapshotId) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO intact (snapshot, removals)
                 SELECT ?1, CAST(value AS INTEGER) FROM meta WHERE key = 'removals'",
            )
            .and_then(|mut s| s.execute([&snapshot.as_bytes()[..]]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Whether every blob `snapshot` references is still in the catalog
    /// for certain: it was marked intact and no blob row was deleted since.
    pub fn is_intact(&self, snapshot: &SnapshotId) -> Result<bool, CatalogError> {
        use rusqlite::OptionalExtension;
        let same: Option<bool> = self
            .conn
            .prepare_cached(
                "SELECT i.removals = CAST(m.value AS INTEGER)
                 FROM intact i, meta m WHERE i.snapshot = ?1 AND m.key = 'removals'",
            )
            .and_then(|mut s| {
                s.query_row([&snapshot.as_bytes()[..]], |r| r.get(0))
                    .optional()
            })
            .map_err(self.err())?;
        Ok(same == Some(true))
    }
}
