//! Which blobs were compressed with which store dictionary: a dictionary
//! that goes missing takes those blobs with it (verify), and a capture
//! stores them again (`needs_dictionary`; the copy that needs no dictionary
//! then takes over the blob's row, see `blobs::write_pack`).

use rusqlite::params;

use super::{Catalog, CatalogError};
use crate::compress::Compression;
use crate::id::BlobId;

/// The smallest `compression` value of a dictionary frame: the values are
/// `2 + 256 * number` (`Compression::to_column`).
const FIRST_DICTIONARY_VALUE: i64 = Compression::Dictionary(1).to_column();

impl Catalog {
    /// The numbers of the dictionaries cataloged blobs were made with.
    pub fn dictionaries_used(&self) -> Result<Vec<u16>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT compression >> 8 FROM blobs
                 WHERE compression >= ?1 AND compression & 255 = 2
                 ORDER BY 1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([FIRST_DICTIONARY_VALUE], |r| r.get::<_, i64>(0))
            .map_err(self.err())?;
        rows.map(|n| {
            let n = n.map_err(self.err())?;
            u16::try_from(n).map_err(|_| self.corrupt(format!("dictionary number {n}")))
        })
        .collect()
    }

    /// The cataloged blobs made with dictionary `number`.
    pub fn blobs_with_dictionary(&self, number: u16) -> Result<Vec<BlobId>, CatalogError> {
        let value = Compression::Dictionary(number).to_column();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM blobs WHERE compression = ?1")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([value], |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.err())?;
        rows.map(|id| {
            let id = id.map_err(self.err())?;
            BlobId::from_slice(&id).ok_or_else(|| self.corrupt("blob id length"))
        })
        .collect()
    }

    /// Whether the copy of blob `id` the catalog locates (the one a restore
    /// reads) was made with dictionary `number`.
    pub fn needs_dictionary(&self, id: &BlobId, number: u16) -> Result<bool, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 AND compression = ?2")
            .map_err(self.err())?;
        let value = Compression::Dictionary(number).to_column();
        stmt.exists(params![&id.as_bytes()[..], value])
            .map_err(self.err())
    }
}
