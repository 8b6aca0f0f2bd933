//! The blob index: which pack holds each blob, and where in it.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CatalogError};
use crate::compress::Compression;
use crate::id::{BlobId, PackId};
use crate::pack::format::{MAX_RAW_LEN, SEAL_OVERHEAD};
use crate::pack::writer::PublishedPack;
use crate::pack::{BlobKind, BlobLocation, PackEntry};

/// The columns of a blob row that locate it, as read.
pub(super) struct LocationRow {
    pub kind: u8,
    pub offset: i64,
    pub stored_len: u32,
    pub raw_len: u32,
    /// Code and dictionary number (`Compression::to_column`).
    pub compression: i64,
}

impl LocationRow {
    /// Reads a query row shaped `ID, kind, offset, stored_len, raw_len,
    /// compression` (ID being a pack or blob id, as bytes; NULL when a
    /// subquery found no pack row).
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Option<Vec<u8>>, Self)> {
        Ok((
            r.get(0)?,
            Self {
                kind: r.get(1)?,
                offset: r.get(2)?,
                stored_len: r.get(3)?,
                raw_len: r.get(4)?,
                compression: r.get(5)?,
            },
        ))
    }
}

impl Catalog {
    /// Where `id` is stored, if the catalog knows it.
    ///
    /// The pack id comes from a correlated subquery, not a join: the bundled
    /// SQLite (built with STAT4) re-prepares the join form on every step,
    /// which made each lookup ~15 µs instead of ~1 µs (a restore of 100k
    /// files spent a second parsing SQL).
    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT (SELECT id FROM packs WHERE rowid = b.pack),
                        b.kind, b.offset, b.stored_len, b.raw_len, b.compression
                 FROM blobs b WHERE b.id = ?1",
            )
            .map_err(self.err())?;
        let row = stmt
            .query_row([&id.as_bytes()[..]], LocationRow::read)
            .optional()
            .map_err(self.err())?;
        // No row, or a row whose pack is not in the catalog (a damaged
        // catalog): the blob cannot be read, as the join form said.
        let Some((Some(pack), row)) = row else {
            return Ok(None);
        };
        let pack = PackId::from_slice(&pack)
            .ok_or_else(|| self.corrupt(format!("blob {id}: pack id length")))?;
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
            Compression::from_column(row.compression).ok_or_else(|| bad("compression code"))?;
        if row.raw_len > MAX_RAW_LEN
            || (compression == Compression::None
                && row.stored_len != row.raw_len
                // A sealed blob (encrypted store) carries its envelope.
                && u64::from(row.stored_len) != u64::from(row.raw_len) + u64::from(SEAL_OVERHEAD))
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

    /// The length of blob `id` after decoding, if the catalog knows it
    /// (verify adds up a file's chunks with it).
    pub fn raw_len(&self, id: &BlobId) -> Result<Option<u32>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT raw_len FROM blobs WHERE id = ?1")
            .map_err(self.err())?;
        stmt.query_row([&id.as_bytes()[..]], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Records a durable pack and all its blobs in one transaction. A blob
    /// already recorded elsewhere keeps its first location (two concurrent
    /// snapshots may both store it; the spare copy is dead space for prune).
    pub fn record_pack(&mut self, pack: &PublishedPack) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        write_pack(&tx, pack, OnConflict::KeepFirst, |_| true).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Every pack holding a copy of blob `id`: its row's and its spares'.
    pub fn copies(&self, id: &BlobId) -> Result<Vec<PackId>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id FROM packs p WHERE p.rowid IN
                    (SELECT pack FROM blobs WHERE id = ?1
                     UNION SELECT pack FROM spares WHERE id = ?1)",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([&id.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let bytes = row.map_err(self.err())?;
            if let Some(pack) = PackId::from_slice(&bytes) {
                out.push(pack);
            }
        }
        Ok(out)
    }

    /// The recorded size of pack `id`, if the catalog lists it.
    pub fn pack_size(&self, id: &PackId) -> Result<Option<u64>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size FROM packs WHERE id = ?1")
            .map_err(self.err())?;
        let size: Option<i64> = stmt
            .query_row([&id.as_bytes()[..]], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        Ok(size.and_then(|s| u64::try_from(s).ok()))
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

/// What to do with a blob row that already exists.
#[derive(Clone, Copy)]
pub(super) enum OnConflict {
    /// Keep the first location (a capture: the spare copy is dead space).
    KeepFirst,
    /// Move the blob to this pack (prune and repair re-home blobs).
    Move,
}

/// Records `pack` (its row, if new) and the rows of its entries `wanted`
/// picks, inside the caller's transaction.
pub(super) fn write_pack(
    tx: &rusqlite::Transaction<'_>,
    pack: &PublishedPack,
    on_conflict: OnConflict,
    wanted: impl Fn(&PackEntry) -> bool,
) -> rusqlite::Result<()> {
    let rowid = insert_pack_row(tx, pack)?;
    if matches!(on_conflict, OnConflict::KeepFirst) && already_recorded(tx, rowid, pack)? {
        return Ok(());
    }
    // Moving a row updates it in place (an upsert): INSERT OR REPLACE
    // deleted and inserted it again, in the table and in its index. Kept
    // first, a row still gives way to a copy that needs no dictionary
    // where it needs one: a snapshot after the dictionary was lost stores
    // its blobs again without, and every catalog, whatever order it reads
    // the packs in, must locate (and prune keep) that readable copy rather
    // than count it as a spare. Two readable copies are equal either way.
    let on_conflict = match on_conflict {
        OnConflict::KeepFirst => {
            "DO UPDATE SET pack = ?2, kind = ?3, offset = ?4, stored_len = ?5,
             raw_len = ?6, compression = ?7
             WHERE blobs.compression & 255 = 2 AND ?7 & 255 != 2"
        }
        OnConflict::Move => {
            "DO UPDATE SET pack = ?2, kind = ?3, offset = ?4, stored_len = ?5,
             raw_len = ?6, compression = ?7"
        }
    };
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO blobs (id, pack, kind, offset, stored_len, raw_len, compression)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) {on_conflict}"
    ))?;
    let mut spare = tx.prepare_cached(
        "INSERT OR IGNORE INTO spares (id, pack, kind, offset, stored_len, raw_len, compression)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE (SELECT pack FROM blobs WHERE id = ?1) != ?2",
    )?;
    // In id order, the rows' own order: each statement then finds the
    // pages the one before it touched still cached (a prune moving 131k
    // blobs to their new packs: 0.76 s in pack order, 0.53 s sorted). A
    // stable sort keeps a pack's first copy of a blob first.
    let mut entries: Vec<&PackEntry> = pack.entries.iter().filter(|e| wanted(e)).collect();
    entries.sort_by_key(|e| e.id);
    for e in entries {
        let row = params![
            &e.id.as_bytes()[..],
            rowid,
            e.kind.code(),
            e.offset as i64,
            e.stored_len,
            e.raw_len,
            e.compression.to_column()
        ];
        if insert.execute(row)? == 0 {
            spare.execute(row)?;
        }
    }
    Ok(())
}

/// Drops pack `rowid` and every row pointing into it, inside the caller's
/// transaction; a blob whose row named it gets one of its spare copies in
/// other packs instead, if it has any. Returns how many blob rows went.
pub(super) fn drop_pack_rows(tx: &rusqlite::Transaction<'_>, rowid: i64) -> rusqlite::Result<u64> {
    // Only the blobs with a copy elsewhere are promoted: trying each blob
    // of the pack was two statements per blob, most of a repacking
    // prune's catalog time where spare copies are rare.
    let with_spares: Vec<Vec<u8>> = tx
        .prepare_cached(
            "SELECT b.id FROM blobs b WHERE b.pack = ?1
             AND EXISTS (SELECT 1 FROM spares s WHERE s.id = b.id AND s.pack != ?1)",
        )?
        .query_map([rowid], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let dropped = tx.execute("DELETE FROM blobs WHERE pack = ?1", [rowid])?;
    tx.execute("DELETE FROM spares WHERE pack = ?1", [rowid])?;
    tx.execute("DELETE FROM packs WHERE rowid = ?1", [rowid])?;
    let mut promote = tx.prepare_cached(
        "INSERT OR IGNORE INTO blobs (id, pack, kind, offset, stored_len, raw_len, compression)
         SELECT id, pack, kind, offset, stored_len, raw_len, compression FROM spares
         WHERE id = ?1 ORDER BY pack LIMIT 1",
    )?;
    let mut promoted = tx.prepare_cached(
        "DELETE FROM spares WHERE id = ?1 AND pack = (SELECT pack FROM blobs WHERE id = ?1)",
    )?;
    for id in &with_spares {
        if promote.execute([id])? > 0 {
            promoted.execute([id])?;
        }
    }
    Ok(dropped as u64)
}

/// The row id of pack `id` (its 32 bytes), if the catalog has it.
pub(super) fn pack_rowid(
    tx: &rusqlite::Transaction<'_>,
    id: &[u8],
) -> rusqlite::Result<Option<i64>> {
    tx.query_row("SELECT rowid FROM packs WHERE id = ?1", [id], |r| r.get(0))
        .optional()
}

/// [`drop_pack_rows`], and the pack's verification record with it.
pub(super) fn drop_pack(
    tx: &rusqlite::Transaction<'_>,
    rowid: i64,
    id: &[u8],
) -> rusqlite::Result<u64> {
    let dropped = drop_pack_rows(tx, rowid)?;
    tx.execute("DELETE FROM verified WHERE pack = ?1", [id])?;
    Ok(dropped)
}

/// Inserts `pack`'s row (if new) and returns its row id.
/// Whether every entry of `pack` (cataloged as `rowid`) already has a row,
/// its own or a spare, pointing into it: recording it again would change
/// nothing. Rows pointing into a pack come only from its entries, so equal
/// counts mean equal sets. Prune re-records every pack it keeps in new
/// index objects; trying each of their blobs again cost two statements per
/// blob, 1.0 of the 1.3 s a prune of a 500 MB SQLite store took when it
/// repacked nothing.
fn already_recorded(
    tx: &rusqlite::Transaction<'_>,
    rowid: i64,
    pack: &PublishedPack,
) -> rusqlite::Result<bool> {
    let rows: i64 = tx
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM blobs WHERE pack = ?1)
                  + (SELECT COUNT(*) FROM spares WHERE pack = ?1)",
        )?
        .query_row([rowid], |r| r.get(0))?;
    Ok(usize::try_from(rows).ok() == Some(pack.entries.len()))
}

fn insert_pack_row(tx: &rusqlite::Transaction<'_>, pack: &PublishedPack) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO packs (id, kind, size, blob_count) VALUES (?1, ?2, ?3, ?4)",
        params![
            &pack.id.as_bytes()[..],
            pack.kind.code(),
            pack.size as i64,
            pack.entries.len() as i64
        ],
    )?;
    pack_rowid(tx, pack.id.as_bytes())?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(seed: u8, blobs: &[&[u8]]) -> PublishedPack {
        let ids: Vec<BlobId> = blobs.iter().map(|b| BlobId::of(b)).collect();
        PublishedPack::for_test(&[seed], &ids)
    }

    fn drop_pack(catalog: &mut Catalog, id: &PackId) -> u64 {
        let tx = catalog.write_transaction().unwrap();
        let rowid: i64 = tx
            .query_row(
                "SELECT rowid FROM packs WHERE id = ?1",
                [&id.as_bytes()[..]],
                |r| r.get(0),
            )
            .unwrap();
        let dropped = drop_pack_rows(&tx, rowid).unwrap();
        tx.commit().unwrap();
        dropped
    }

    #[test]
    fn dropping_a_pack_hands_its_blobs_to_their_spare_copies_and_forgets_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let (a, b) = (
            pack(1, &[b"shared", b"only in a"]),
            pack(2, &[b"shared", b"only in b"]),
        );
        catalog.record_pack(&a).unwrap();
        catalog.record_pack(&b).unwrap();
        let shared = BlobId::of(b"shared");
        assert_eq!(catalog.locate(&shared).unwrap().unwrap().pack, a.id);
        assert_eq!(drop_pack(&mut catalog, &a.id), 2);
        assert_eq!(catalog.locate(&shared).unwrap().unwrap().pack, b.id);
        assert!(catalog.locate(&BlobId::of(b"only in a")).unwrap().is_none());
        assert_eq!(catalog.copies(&shared).unwrap(), [b.id]);
        assert_eq!(drop_pack(&mut catalog, &b.id), 2);
        assert!(catalog.locate(&shared).unwrap().is_none());
    }

    #[test]
    fn recording_a_pack_again_completes_what_is_missing_and_changes_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let (a, b) = (pack(1, &[b"x", b"y"]), pack(2, &[b"x", b"z"]));
        catalog.record_pack(&a).unwrap();
        catalog.record_pack(&b).unwrap();
        catalog.record_pack(&a).unwrap();
        catalog.record_pack(&b).unwrap();
        assert_eq!(catalog.copies(&BlobId::of(b"x")).unwrap().len(), 2);
        // A pack whose rows were lost (moved away by a repack, say) gets
        // them back as spares or rows when it is recorded again.
        {
            let tx = catalog.write_transaction().unwrap();
            tx.execute("DELETE FROM spares", []).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(catalog.copies(&BlobId::of(b"x")).unwrap(), [a.id]);
        catalog.record_pack(&b).unwrap();
        assert_eq!(catalog.copies(&BlobId::of(b"x")).unwrap().len(), 2);
        assert_eq!(
            catalog.locate(&BlobId::of(b"z")).unwrap().unwrap().pack,
            b.id
        );
    }
}
