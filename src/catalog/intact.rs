//! Which snapshots may be trusted to have every blob they reference in the
//! catalog, so that the next capture can reuse their unchanged files'
//! chunk lists without one catalog lookup per chunk (75k lookups for one
//! unchanged 300 MB database; a third of a no-change snapshot's time).
//!
//! A snapshot is committed only once every blob it references is in the
//! catalog, and only deleting rows of `blobs` can make that untrue. SQLite
//! counts those deletions itself (the `count_removals` trigger in meta's
//! `removals`, fired for every writer; a prune's bulk deletion counts as
//! one, [`as_one_removal`]): the count moves whenever rows go. A capture
//! reads the count before it looks anything up and records its snapshot
//! here with it, only if the count has not moved by its commit; the
//! snapshot is then intact for as long as the count stays there. A
//! catalog without the row (rebuilt, or written by an older cairn) only
//! means the lookups are made.

use super::{Catalog, CatalogError, schema};
use crate::id::SnapshotId;

/// Runs `delete`, which deletes blob rows in bulk inside `tx` (some, for
/// certain: call it only then), counting them as one removal: the
/// trigger's update of `meta` for each row was a third of the time a
/// prune took to drop 65k rows. The trigger is dropped and made again
/// inside the transaction, so no connection ever sees the catalog without
/// it; the count has to move when rows go, not by how many.
pub(super) fn as_one_removal<T>(
    tx: &rusqlite::Transaction<'_>,
    err: impl Fn(rusqlite::Error) -> CatalogError,
    delete: impl FnOnce() -> Result<T, CatalogError>,
) -> Result<T, CatalogError> {
    (tx.execute_batch("DROP TRIGGER IF EXISTS count_removals")).map_err(&err)?;
    let result = delete()?;
    tx.execute_batch("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'removals'")
        .and_then(|()| tx.execute_batch(schema::COUNT_REMOVALS))
        .map_err(err)?;
    Ok(result)
}

impl Catalog {
    /// The count that moves whenever blob rows are deleted (`None` if the
    /// catalog does not keep it, or it is not a number).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::pack::writer::PublishedPack;

    fn removals(catalog: &Catalog) -> u64 {
        catalog.removals().unwrap().unwrap()
    }

    /// SQLite's count of schema changes, and whether the trigger is there.
    fn schema(catalog: &Catalog) -> (i64, bool) {
        let version = (catalog.conn)
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap();
        let trigger: i64 = (catalog.conn)
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'count_removals'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (version, trigger == 1)
    }

    #[test]
    fn a_prune_moves_the_removal_count_once_and_leaves_the_trigger_counting_every_other_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let [a, b] = [1u8, 2].map(|seed| {
            let ids = [BlobId::of(&[seed]), BlobId::of(&[seed, seed])];
            PublishedPack::for_test(&[seed], &ids)
        });
        catalog.record_pack(&a).unwrap();
        catalog.record_pack(&b).unwrap();
        let before = removals(&catalog);
        let schema_before = schema(&catalog);
        assert!(schema_before.1);
        // A prune that would drop a live blob is rolled back, and one that
        // drops no row (nothing to delete; a pack the catalog never had)
        // changes neither the count nor the schema: a moved count costs
        // every intact snapshot its mark, and the next capture its lookups.
        let refused = catalog.commit_prune(&[], &[a.id], |_| true).unwrap();
        assert!(refused.is_err());
        let unknown = PublishedPack::for_test(&[9], &[]).id;
        catalog.commit_prune(&[], &[], |_| false).unwrap().unwrap();
        catalog
            .commit_prune(&[], &[unknown], |_| false)
            .unwrap()
            .unwrap();
        assert_eq!(removals(&catalog), before);
        assert_eq!(schema(&catalog), schema_before);
        // A repack that moved every row of its pack deletes none either.
        let ids: Vec<BlobId> = a.entries.iter().map(|e| e.id).collect();
        let repacked = PublishedPack::for_test(&[3], &ids);
        let moved = catalog.commit_prune(std::slice::from_ref(&repacked), &[a.id], |_| true);
        moved.unwrap().unwrap();
        assert_eq!(catalog.locate(&ids[0]).unwrap().unwrap().pack, repacked.id);
        assert_eq!(removals(&catalog), before);
        assert_eq!(schema(&catalog), schema_before);
        // Two packs' dead rows go as one removal.
        let [c, d] = [4u8, 5].map(|seed| PublishedPack::for_test(&[seed], &[BlobId::of(&[seed])]));
        catalog.record_pack(&c).unwrap();
        catalog.record_pack(&d).unwrap();
        let dropped = catalog.commit_prune(&[], &[c.id, d.id], |_| false);
        dropped.unwrap().unwrap();
        assert!(schema(&catalog).1);
        let after_prune = removals(&catalog);
        assert_eq!(after_prune, before + 1);
        // Another writer's plain DELETE is still counted, row by row.
        let deleted = (catalog.conn)
            .execute(
                "DELETE FROM blobs WHERE id = ?1",
                [&b.entries[0].id.as_bytes()[..]],
            )
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(removals(&catalog), after_prune + 1);
    }
}
