//! Sums over the catalog, for `cairn stats` and for the store size a
//! snapshot records when it commits.

use serde::Serialize;

use super::{Catalog, CatalogError};

/// What the catalog holds, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Packs.
    pub packs: u64,
    /// Bytes of the pack files.
    pub pack_bytes: u64,
    /// Distinct blobs (data and trees).
    pub blobs: u64,
    /// Distinct data blobs (file content).
    pub data_blobs: u64,
    /// Their bytes before compression: the file content after deduplication.
    pub data_raw_bytes: u64,
    /// Their bytes as stored in packs (compressed).
    pub data_stored_bytes: u64,
}

impl Catalog {
    /// The packs and distinct blobs recorded, and their sizes.
    pub fn totals(&self) -> Result<Totals, CatalogError> {
        let [packs, pack_bytes, _] =
            self.sums("SELECT count(*), coalesce(sum(size), 0), 0 FROM packs")?;
        let [blobs, _, _] = self.sums("SELECT count(*), 0, 0 FROM blobs")?;
        let [data_blobs, data_raw_bytes, data_stored_bytes] = self.sums(&format!(
            "SELECT count(*), coalesce(sum(raw_len), 0), coalesce(sum(stored_len), 0)
             FROM blobs WHERE kind = {}",
            crate::pack::BlobKind::Data.code()
        ))?;
        Ok(Totals {
            packs,
            pack_bytes,
            blobs,
            data_blobs,
            data_raw_bytes,
            data_stored_bytes,
        })
    }

    /// Bytes of the pack files recorded.
    pub fn pack_bytes(&self) -> Result<u64, CatalogError> {
        Ok(self.sums("SELECT 0, coalesce(sum(size), 0), 0 FROM packs")?[1])
    }

    /// The three integers `sql` selects (negative ones as 0).
    fn sums(&self, sql: &str) -> Result<[u64; 3], CatalogError> {
        let row: [i64; 3] = self
            .conn
            .query_row(sql, [], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))
            .map_err(self.err())?;
        Ok(row.map(|n| u64::try_from(n).unwrap_or(0)))
    }
}
