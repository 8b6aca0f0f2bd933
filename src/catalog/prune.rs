//! What prune asks of the catalog: every pack, a streaming scan of every
//! blob row, the blobs of one pack, and the one transaction that moves
//! blobs to their new packs and drops the packs being deleted.

use std::collections::HashSet;

use super::blobs::{LocationRow, OnConflict, drop_pack, pack_rowid, write_pack};
use super::intact::as_one_removal;
use super::{Catalog, CatalogError};
use crate::id::{BlobId, PackId};
use crate::pack::writer::PublishedPack;
use crate::pack::{BlobKind, BlobLocation};

/// One row of the `packs` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRow {
    /// SQLite row id, which blob rows refer to.
    pub rowid: i64,
    /// The pack's id.
    pub id: PackId,
    /// Data or tree.
    pub kind: BlobKind,
    /// File size in bytes.
    pub size: u64,
}

/// One blob row, as much of it as sizing a pack's live part needs.
#[derive(Debug, Clone, Copy)]
pub struct BlobRow {
    /// The blob.
    pub id: BlobId,
    /// Row id of its pack.
    pub pack: i64,
    /// Bytes it occupies in the pack.
    pub stored_len: u32,
}

impl Catalog {
    /// Every recorded pack.
    pub fn packs(&self) -> Result<Vec<PackRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rowid, id, kind, size FROM packs")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, id, kind, size) = row.map_err(self.err())?;
            let bad = |what: &str| self.corrupt(format!("pack row {rowid}: {what}"));
            out.push(PackRow {
                rowid,
                id: PackId::from_slice(&id).ok_or_else(|| bad("id length"))?,
                kind: BlobKind::from_code(kind).ok_or_else(|| bad("kind"))?,
                size: u64::try_from(size).map_err(|_| bad("negative size"))?,
            });
        }
        Ok(out)
    }

    /// Blobs in all recorded packs, from the pack rows (cheap: no blob scan).
    pub fn blob_count(&self) -> Result<u64, CatalogError> {
        let n: i64 = self
            .conn
            .query_row("SELECT coalesce(sum(blob_count), 0) FROM packs", [], |r| {
                r.get(0)
            })
            .map_err(self.err())?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Calls `visit` for every blob row, streaming: the rows are never all
    /// in memory at once.
    pub fn scan_blobs(&self, mut visit: impl FnMut(BlobRow)) -> Result<(), CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, pack, stored_len FROM blobs ORDER BY id")
            .map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(row) = rows.next().map_err(self.err())? {
            let id: Vec<u8> = row.get(0).map_err(self.err())?;
            visit(BlobRow {
                id: BlobId::from_slice(&id).ok_or_else(|| self.corrupt("blob id length"))?,
                pack: row.get(1).map_err(self.err())?,
                stored_len: row.get(2).map_err(self.err())?,
            });
        }
        Ok(())
    }

    /// The blobs recorded in `pack`, with their locations, in pack order.
    pub fn blobs_in_pack(
        &self,
        pack: &PackRow,
    ) -> Result<Vec<(BlobId, BlobLocation)>, CatalogError> {
        self.blobs_in_pack_as(pack, |id, at| Some((id, at)))
    }

    /// What `keep` makes of each blob recorded in `pack`, in pack order,
    /// leaving out those it returns `None` for: a caller keeping a compact
    /// form of the rows of every pack builds it here, without a vector of
    /// full rows per pack beside it.
    pub fn blobs_in_pack_as<T>(
        &self,
        pack: &PackRow,
        mut keep: impl FnMut(BlobId, BlobLocation) -> Option<T>,
    ) -> Result<Vec<T>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, offset, stored_len, raw_len, compression
                 FROM blobs WHERE pack = ?1 ORDER BY offset",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([pack.rowid], LocationRow::read)
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, row) = row.map_err(self.err())?;
            let id = id
                .as_deref()
                .and_then(BlobId::from_slice)
                .ok_or_else(|| self.corrupt(format!("blob in pack {}: id length", pack.id)))?;
            out.extend(keep(id, self.location(&id, pack.id, row)?));
        }
        Ok(out)
    }

    /// Prune's commit point, one transaction: records `new_packs`, moving
    /// each of their blobs' rows to them, then drops `removed` packs and
    /// every row still pointing into them. Before dropping a row it asks
    /// `is_live`; if any is, the transaction is rolled back and the blob
    /// returned: a live blob must never lose its only location.
    pub fn commit_prune(
        &mut self,
        new_packs: &[PublishedPack],
        removed: &[PackId],
        is_live: impl Fn(&BlobId) -> bool,
    ) -> Result<Result<(), BlobId>, CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        for pack in new_packs {
            write_pack(&tx, pack, OnConflict::Move, |_| true).map_err(&err)?;
        }
        let mut doomed = Vec::new();
        let mut rows = 0;
        for pack in removed {
            let Some(rowid) = pack_rowid(&tx, pack.as_bytes()).map_err(&err)? else {
                continue;
            };
            match dead_rows(&tx, &path, rowid, &is_live)? {
                Ok(n) => rows += n,
                Err(live) => return Ok(Err(live)),
            }
            doomed.push((rowid, pack));
        }
        let drop_all = || {
            (doomed.iter())
                .try_for_each(|(rowid, pack)| drop_pack(&tx, *rowid, pack.as_bytes()).map(|_| ()))
                .map_err(&err)
        };
        match rows {
            0 => drop_all()?,
            _ => as_one_removal(&tx, &err, drop_all)?,
        }
        tx.commit().map_err(&err)?;
        Ok(Ok(()))
    }
}

/// How many blob rows point into pack `rowid`, all of them dead; or the
/// first one `is_live` wants, which must not lose its only location.
fn dead_rows(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    rowid: i64,
    is_live: impl Fn(&BlobId) -> bool,
) -> Result<Result<u64, BlobId>, CatalogError> {
    let ids: Vec<Vec<u8>> = tx
        .prepare_cached("SELECT id FROM blobs WHERE pack = ?1")
        .and_then(|mut s| {
            s.query_map([rowid], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(super::sqlite(path))?;
    for id in &ids {
        let id = BlobId::from_slice(id).ok_or_else(|| CatalogError::Corrupt {
            path: path.to_owned(),
            what: "blob id length".into(),
        })?;
        if is_live(&id) {
            return Ok(Err(id));
        }
    }
    Ok(Ok(ids.len() as u64))
}

impl Catalog {
    /// Drops packs the store no longer holds, every row with them (a blob
    /// that has a spare copy elsewhere falls back on it).
    pub fn drop_lost_packs(&mut self, lost: &[PackId]) -> Result<(), CatalogError> {
        if !lost.is_empty() {
            // Nothing is live for a pack that is gone: its rows go.
            let _ = self.commit_prune(&[], lost, |_| false)?;
        }
        Ok(())
    }

    /// Points the rows of `blobs` at their copies in `pack` (recording the
    /// pack if it is new), in one transaction: `repair` uses an intact copy
    /// found in another pack instead of a damaged one.
    pub fn relocate(&mut self, pack: &PublishedPack, blobs: &[BlobId]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        let blobs: HashSet<&BlobId> = blobs.iter().collect();
        write_pack(&tx, pack, OnConflict::Move, |e| blobs.contains(&e.id)).map_err(&err)?;
        tx.commit().map_err(&err)
    }
}
