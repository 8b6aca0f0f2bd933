//! The blob index: which pack holds each blob, and where in it.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CatalogError};
use crate::compress::Compression;
use crate::id::{BlobId, PackId};
use crate::pack::format::MAX_RAW_LEN;
use crate::pack::writer::PublishedPack;
use crate::pack::{BlobKind, BlobLocation, PackEntry};

/// The columns of a blob row that locate it, as read.
pub(super) struct LocationRow {
    pub kind: u8,
    pub offset: i64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub compression: u8,
}

impl Catalog {
    /// Where `id` is stored, if the catalog knows it.
    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, b.kind, b.offset, b.stored_len, b.raw_len, b.compression
                 FROM blobs b JOIN packs p ON p.rowid = b.pack WHERE b.id = ?1",
            )
            .map_err(self.err())?;
        let row = stmt
            .query_row([&id.as_bytes()[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u8>(5)?,
                ))
            })
            .optional()
            .map_err(self.err())?;
        let Some((pack, kind, offset, stored_len, raw_len, compression)) = row else {
            return Ok(None);
        };
        let pack = PackId::from_slice(&pack)
            .ok_or_else(|| self.corrupt(format!("blob {id}: pack id length")))?;
        let row = LocationRow {
            kind,
            offset,
            stored_len,
            raw_len,
            compression,
        };
        self.location(id, pack, row).map(Some)
    }

    /// Checks a blob row and turns it into a location. The limits are those
    /// a pack header must meet: a bad row must not make a reader allocate or
    /// read beyond them.
    pub(super) fn location(
        &self,
        id: &BlobId,
        pack: PackId,
        row: LocationRow,
    ) -> Result<BlobLocation, CatalogError> {
        let bad = |what: &str| self.corrupt(format!("blob {id}: {what}"));
        let compression =
            Compression::from_code(row.compression).ok_or_else(|| bad("compression code"))?;
        if row.raw_len > MAX_RAW_LEN
            || (compression == Compression::None && row.stored_len != row.raw_len)
        {
            return Err(bad("impossible lengths"));
        }
        Ok(BlobLocation {
            pack,
            kind: BlobKind::from_code(row.kind).ok_or_else(|| bad("kind"))?,
            offset: u64::try_from(row.offset).map_err(|_| bad("negative offset"))?,
            stored_len: row.stored_len,
            raw_len: row.raw_len,
            compression,
        })
    }

    /// Whether the catalog knows `id` (and so its pack is durable).
    pub fn contains(&self, id: &BlobId) -> Result<bool, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")
            .map_err(self.err())?;
        stmt.exists([&id.as_bytes()[..]]).map_err(self.err())
    }

    /// Records a durable pack and all its blobs in one transaction. A blob
    /// already recorded elsewhere keeps its first location (two concurrent
    /// snapshots may both store it; the spare copy is dead space for prune).
    pub fn record_pack(&mut self, pack: &PublishedPack) -> Result<(), CatalogError> {
        let err = super::sqlite(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        let rowid = insert_pack_row(&tx, pack).map_err(&err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO blobs (id, pack, kind, offset, stored_len, raw_len, compression)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(&err)?;
            for e in &pack.entries {
                insert_entry(&mut insert, e, rowid).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Whether the catalog already lists pack `id`.
    pub fn has_pack(&self, id: &PackId) -> Result<bool, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM packs WHERE id = ?1")
            .map_err(self.err())?;
        stmt.exists([&id.as_bytes()[..]]).map_err(self.err())
    }
}

/// Inserts `pack`'s row (if new) and returns its row id.
pub(super) fn insert_pack_row(
    tx: &rusqlite::Transaction<'_>,
    pack: &PublishedPack,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO packs (id, kind, size, blob_count) VALUES (?1, ?2, ?3, ?4)",
        params![
            &pack.id.as_bytes()[..],
            pack.kind.code(),
            pack.size as i64,
            pack.entries.len() as i64
        ],
    )?;
    tx.query_row(
        "SELECT rowid FROM packs WHERE id = ?1",
        [&pack.id.as_bytes()[..]],
        |r| r.get(0),
    )
}

/// Runs `stmt` (an insert of all seven blob columns) for `entry` in the
/// pack with row id `pack`.
pub(super) fn insert_entry(
    stmt: &mut rusqlite::CachedStatement<'_>,
    entry: &PackEntry,
    pack: i64,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        &entry.id.as_bytes()[..],
        pack,
        entry.kind.code(),
        entry.offset as i64,
        entry.stored_len,
        entry.raw_len,
        entry.compression.code()
    ])
}
