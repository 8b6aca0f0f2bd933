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

    /// Caches a record read from `snapshots/`.
    pub fn cache_snapshot(&self, id: &SnapshotId, record: &[u8]) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO snapshots (id, record) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(rusqlite::params![&id.as_bytes()[..], record]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Drops cached records whose files are gone.
    pub fn uncache_snapshot(&self, id: &SnapshotId) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached("DELETE FROM snapshots WHERE id = ?1")
            .and_then(|mut s| s.execute([&id.as_bytes()[..]]))
            .map_err(self.err())?;
        Ok(())
    }
}
