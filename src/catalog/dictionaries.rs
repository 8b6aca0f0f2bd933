//! Which blobs were compressed with which store dictionary: a dictionary
//! that goes missing takes those blobs with it (verify), and a capture
//! stores them again (`needs_dictionary`, `take_over_unreadable`).

use rusqlite::params;

use super::{Catalog, CatalogError};
use crate::compress::Compression;
use crate::id::BlobId;
use crate::index::IndexedPack;

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

    /// Points every blob whose located copy needs the lost dictionary
    /// `number` at its copy in `packs` (just recorded, where recording kept
    /// the unreadable copy first and this one as a spare), in one
    /// transaction; returns how many moved. The unreadable copy is dropped
    /// from the catalog: its bytes are unused space for prune.
    pub fn take_over_unreadable(
        &mut self,
        packs: &[IndexedPack],
        number: u16,
    ) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let lost = Compression::Dictionary(number).to_column();
        let tx = self.write_transaction().map_err(&err)?;
        let mut moved = 0;
        {
            let mut take = tx
                .prepare_cached(
                    "UPDATE blobs SET pack = p.rowid, kind = ?2, offset = ?3, stored_len = ?4,
                         raw_len = ?5, compression = ?6
                     FROM (SELECT rowid FROM packs WHERE id = ?7) AS p
                     WHERE blobs.id = ?1 AND blobs.compression = ?8",
                )
                .map_err(&err)?;
            let mut unspare = tx
                .prepare_cached(
                    "DELETE FROM spares WHERE id = ?1
                     AND pack = (SELECT pack FROM blobs WHERE id = ?1)",
                )
                .map_err(&err)?;
            for pack in packs {
                for e in pack
                    .entries
                    .iter()
                    .filter(|e| e.compression.to_column() != lost)
                {
                    let id = &e.id.as_bytes()[..];
                    let row = params![
                        id,
                        e.kind.code(),
                        e.offset as i64,
                        e.stored_len,
                        e.raw_len,
                        e.compression.to_column(),
                        &pack.id.as_bytes()[..],
                        lost
                    ];
                    if take.execute(row).map_err(&err)? > 0 {
                        unspare.execute([id]).map_err(&err)?;
                        moved += 1;
                    }
                }
            }
        }
        tx.commit().map_err(&err)?;
        Ok(moved)
    }
}
