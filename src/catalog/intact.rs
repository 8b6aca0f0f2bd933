//! Which snapshots may be trusted to have every blob they reference in the
//! catalog, so that the next capture can reuse their unchanged files'
//! chunk lists without one catalog lookup per chunk (75k lookups for one
//! unchanged 300 MB database; a third of a no-change snapshot's time).
//!
//! A snapshot is committed only once every blob it references is in the
//! catalog, and only deleting rows of `blobs` can make that untrue. SQLite
//! counts those deletions itself (the `count_removals` trigger in meta's
//! `removals`, fired for every writer). A capture reads the count before it
//! looks anything up and records its snapshot here with it, only if the
//! count has not moved by its commit; the snapshot is then intact for as
//! long as the count stays there. A catalog without the row (rebuilt, or
//! written by an older cairn) only means the lookups are made.

use super::{Catalog, CatalogError};
use crate::id::SnapshotId;

impl Catalog {
    /// How many blob rows were ever deleted (`None` if the catalog does not
    /// count them, or the count is not a number).
    pub fn removals(&self) -> Result<Option<u64>, CatalogError> {
        use rusqlite::OptionalExtension;
        let value: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'removals'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(self.err())?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// Records that `snapshot`, just committed, references only blobs the
    /// catalog has, if the removal count is still `removals`: the count read
    /// before the capture looked anything up. A deletion during the capture
    /// (by anything that ignores the store lock) leaves it unmarked.
    pub fn mark_intact(&self, snapshot: &SnapshotId, removals: u64) -> Result<(), CatalogError> {
        let removals = i64::try_from(removals).map_err(|_| self.corrupt("removal count"))?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO intact (snapshot, removals)
                 SELECT ?1, ?2 FROM meta
                 WHERE key = 'removals' AND CAST(value AS INTEGER) = ?2",
            )
            .and_then(|mut s| s.execute(rusqlite::params![&snapshot.as_bytes()[..], removals]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Whether every blob `snapshot` references was in the catalog for
    /// certain when the removal count was `removals`: it was marked intact
    /// at that count.
    pub fn is_intact(&self, snapshot: &SnapshotId, removals: u64) -> Result<bool, CatalogError> {
        use rusqlite::OptionalExtension;
        let marked: Option<i64> = self
            .conn
            .prepare_cached("SELECT removals FROM intact WHERE snapshot = ?1")
            .and_then(|mut s| {
                s.query_row([&snapshot.as_bytes()[..]], |r| r.get(0))
                    .optional()
            })
            .map_err(self.err())?;
        Ok(marked.is_some_and(|m| u64::try_from(m).ok() == Some(removals)))
    }
}
