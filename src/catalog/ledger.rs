//! The verification ledger: when each pack was last read whole by
//! `verify --read-data` and found good, so that a nightly verify with a
//! time budget can read the least recently verified packs first and cover
//! the whole store within `--max-age`. Losing it loses nothing but that
//! history: every pack then counts as never verified.

use std::collections::HashMap;

use super::{Catalog, CatalogError};
use crate::id::PackId;

impl Catalog {
    /// When each pack was last verified, in Unix seconds.
    pub fn verified(&self) -> Result<HashMap<PackId, i64>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT pack, at FROM verified")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        let mut out = HashMap::new();
        for row in rows {
            let (pack, at) = row.map_err(self.err())?;
            // A row that is not a pack id names no pack: ignore it.
            if let Some(id) = PackId::from_slice(&pack) {
                out.insert(id, at);
            }
        }
        Ok(out)
    }

    /// Records that the `good` packs were read whole and found good at the
    /// given times (Unix seconds), and drops the entries of `bad` ones, in
    /// one transaction. Returns false, recording nothing, on a read-only
    /// catalog (a store that cannot be written keeps no history).
    pub fn record_verified(
        &self,
        good: &[(PackId, i64)],
        bad: &[PackId],
    ) -> Result<bool, CatalogError> {
        if self.read_only {
            return Ok(false);
        }
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        for (id, at) in good {
            tx.prepare_cached("INSERT OR REPLACE INTO verified (pack, at) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(rusqlite::params![&id.as_bytes()[..], at]))
                .map_err(self.err())?;
        }
        for id in bad {
            tx.prepare_cached("DELETE FROM verified WHERE pack = ?1")
                .and_then(|mut s| s.execute([&id.as_bytes()[..]]))
                .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        Ok(true)
    }
}
