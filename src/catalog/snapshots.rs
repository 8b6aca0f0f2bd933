//! The snapshot cache: record bytes by id, so that listing snapshots needs
//! one directory listing and no reads of records already seen. The files in
//! `snapshots/` stay the truth; the cache follows them.

use std::collections::HashMap;

use super::{Catalog, CatalogError};
use crate::id::SnapshotId;

impl Catalog {
    /// Every cached record, by id.
    pub fn cached_snapshots(&self) -> Result<HashMap<SnapshotId, Vec<u8>>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, record FROM snapshots")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(self.err())?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, record) = row.map_err(self.err())?;
            let id =
                SnapshotId::from_slice(&id).ok_or_else(|| self.corrupt("snapshot id length"))?;
            out.insert(id, record);
        }
        Ok(out)
    }

    /// Brings the cache in line with a listing of `snapshots/`: adds the
    /// records read fresh and drops those whose files are gone, in one
    /// transaction (one fsync, however many records changed). A read-only
    /// catalog is left as it is: the listing is right without the cache.
    pub fn update_snapshot_cache(
        &self,
        fresh: &[(SnapshotId, Vec<u8>)],
        gone: &[SnapshotId],
    ) -> Result<(), CatalogError> {
        if self.read_only || (fresh.is_empty() && gone.is_empty()) {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        for (id, record) in fresh {
            tx.prepare_cached("INSERT OR REPLACE INTO snapshots (id, record) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(rusqlite::params![&id.as_bytes()[..], record]))
                .map_err(self.err())?;
        }
        for id in gone {
            tx.prepare_cached("DELETE FROM snapshots WHERE id = ?1")
                .and_then(|mut s| s.execute([&id.as_bytes()[..]]))
                .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }
}
