//! Which of the store's index objects the catalog has read, and which
//! packs each names: the catalog's view of the store follows the index
//! objects (see [`super::sync`]). A pack stays cataloged while some index
//! object this catalog knows names it; when the last one goes (a prune,
//! maybe on another host, superseded it), so do the pack's rows.
//!
//! Packs recorded before index objects existed (a store of format 1 or 2)
//! are named by none and stay until their store is upgraded, which indexes
//! them.

use std::collections::HashSet;

use rusqlite::params;

use super::blobs::{OnConflict, drop_pack, pack_rowid, write_pack};
use super::{Catalog, CatalogError};
use crate::id::{IndexId, PackId};
use crate::index::IndexedPack;
use crate::pack::BlobKind;
use crate::pack::writer::PublishedPack;

/// What [`Catalog::forget_indexes`] dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Packs no known index object names any more.
    pub packs: u64,
    /// Their blob rows.
    pub blobs: u64,
}

impl Catalog {
    /// The index objects this catalog has read or written.
    pub fn known_indexes(&self) -> Result<HashSet<IndexId>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM indexes")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.err())?;
        let mut out = HashSet::new();
        for row in rows {
            let bytes = row.map_err(self.err())?;
            out.insert(IndexId::from_slice(&bytes).ok_or_else(|| self.corrupt("index id length"))?);
        }
        Ok(out)
    }

    /// Records index object `id` and the packs it names, in one
    /// transaction. A blob already cataloged in another pack keeps its row;
    /// this copy becomes a spare.
    pub fn record_index(
        &mut self,
        id: &IndexId,
        packs: &[IndexedPack],
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        for pack in packs {
            write_pack(&tx, &published(pack), OnConflict::KeepFirst, |_| true).map_err(&err)?;
        }
        let ids: Vec<PackId> = packs.iter().map(|p| p.id).collect();
        name_packs(&tx, id, &ids).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Records index object `id` as naming `packs`, which the catalog
    /// already has (a prune's objects for the packs it keeps, recorded
    /// after its commit): their entries need not be held to record it.
    pub fn record_index_of_cataloged(
        &mut self,
        id: &IndexId,
        packs: &[PackId],
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        for pack in packs {
            if pack_rowid(&tx, pack.as_bytes()).map_err(&err)?.is_none() {
                // Recorded, the object would never be read again here, and
                // the pack would stay out of this catalog.
                return Err(CatalogError::NotCataloged {
                    path: path.clone(),
                    index: *id,
                    pack: *pack,
                });
            }
        }
        name_packs(&tx, id, packs).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Forgets index objects that are gone from the store, in one
    /// transaction, and drops every pack no remaining known index object
    /// names (its blobs fall back on spare copies where there are any).
    pub fn forget_indexes(&mut self, gone: &[IndexId]) -> Result<Forgotten, CatalogError> {
        let path = self.path.clone();
        let err = super::sqlite(&path);
        let tx = self.write_transaction().map_err(&err)?;
        let mut out = Forgotten::default();
        for id in gone {
            let packs: Vec<Vec<u8>> = tx
                .prepare_cached("SELECT pack FROM index_packs WHERE idx = ?1")
                .and_then(|mut s| s.query_map([&id.as_bytes()[..]], |r| r.get(0))?.collect())
                .map_err(&err)?;
            tx.execute(
                "DELETE FROM index_packs WHERE idx = ?1",
                [&id.as_bytes()[..]],
            )
            .map_err(&err)?;
            tx.execute("DELETE FROM indexes WHERE id = ?1", [&id.as_bytes()[..]])
                .map_err(&err)?;
            for pack in packs {
                if let Some(blobs) = drop_if_unnamed(&tx, &pack).map_err(&err)? {
                    out.packs += 1;
                    out.blobs += blobs;
                }
            }
        }
        tx.commit().map_err(&err)?;
        Ok(out)
    }

    /// The index objects that name pack `id`.
    pub fn indexes_naming(&self, id: &PackId) -> Result<Vec<IndexId>, CatalogError> {
        self.id_column(
            "SELECT idx FROM index_packs WHERE pack = ?1",
            [&id.as_bytes()[..]],
            IndexId::from_slice,
            "index id length",
        )
    }

    /// The packs index object `id` names.
    pub fn packs_of_index(&self, id: &IndexId) -> Result<Vec<PackId>, CatalogError> {
        self.id_column(
            "SELECT pack FROM index_packs WHERE idx = ?1",
            [&id.as_bytes()[..]],
            PackId::from_slice,
            "pack id length",
        )
    }

    /// Packs a known index object names that the catalog does not have
    /// (left out as missing by a rebuild or by verify, which keep the
    /// index objects' names).
    pub fn indexed_packs_not_cataloged(&self) -> Result<Vec<PackId>, CatalogError> {
        self.id_column(
            "SELECT DISTINCT pack FROM index_packs WHERE NOT EXISTS
             (SELECT 1 FROM packs WHERE packs.id = index_packs.pack)",
            [],
            PackId::from_slice,
            "pack id length",
        )
    }

    /// Cataloged packs that no index object names (recorded before the
    /// store had index objects).
    pub fn unindexed_packs(&self) -> Result<Vec<PackId>, CatalogError> {
        self.id_column(
            "SELECT id FROM packs WHERE NOT EXISTS
             (SELECT 1 FROM index_packs WHERE index_packs.pack = packs.id)",
            [],
            PackId::from_slice,
            "pack id length",
        )
    }

    /// The ids in the first column of `sql`, each parsed by `parse`; one
    /// that does not parse is corruption (`what` says of what).
    fn id_column<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        parse: impl Fn(&[u8]) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params, |r| r.get::<_, Vec<u8>>(0))
            .map_err(self.err())?;
        rows.map(|row| {
            let bytes = row.map_err(self.err())?;
            parse(&bytes).ok_or_else(|| self.corrupt(what))
        })
        .collect()
    }
}

/// Drops pack `id` (given as bytes) if no index object names it any more;
/// `Some(blob rows dropped)` if it did.
fn drop_if_unnamed(tx: &rusqlite::Transaction<'_>, id: &[u8]) -> rusqlite::Result<Option<u64>> {
    let named: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM index_packs WHERE pack = ?1)")?
        .query_row([id], |r| r.get(0))?;
    if named {
        return Ok(None);
    }
    let Some(rowid) = pack_rowid(tx, id)? else {
        return Ok(None);
    };
    Ok(Some(drop_pack(tx, rowid, id)?))
}

/// An indexed pack as the catalog records packs.
fn published(pack: &IndexedPack) -> PublishedPack {
    PublishedPack {
        id: pack.id,
        kind: pack.entries.first().map_or(BlobKind::Data, |e| e.kind),
        entries: pack.entries.clone(),
        size: pack.size,
    }
}

/// Records that index object `id` names `packs`.
fn name_packs(
    tx: &rusqlite::Transaction<'_>,
    id: &IndexId,
    packs: &[PackId],
) -> rusqlite::Result<()> {
    let mut name =
        tx.prepare_cached("INSERT OR IGNORE INTO index_packs (idx, pack) VALUES (?1, ?2)")?;
    for pack in packs {
        name.execute(params![&id.as_bytes()[..], &pack.as_bytes()[..]])?;
    }
    tx.execute(
        "INSERT OR IGNORE INTO indexes (id) VALUES (?1)",
        [&id.as_bytes()[..]],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_object_of_cataloged_packs_is_recorded_and_one_naming_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let kept = PublishedPack::for_test(&[1], &[crate::id::BlobId::of(b"kept")]);
        catalog.record_pack(&kept).unwrap();
        let (good, bad) = (IndexId::of(b"good"), IndexId::of(b"bad"));
        catalog
            .record_index_of_cataloged(&good, &[kept.id])
            .unwrap();
        assert_eq!(catalog.packs_of_index(&good).unwrap(), [kept.id]);
        let stranger = PackId::of(b"not cataloged");
        let refused = catalog.record_index_of_cataloged(&bad, &[kept.id, stranger]);
        assert!(refused.unwrap_err().to_string().contains("does not have"));
        assert_eq!(catalog.known_indexes().unwrap(), HashSet::from([good]));
        assert!(catalog.packs_of_index(&bad).unwrap().is_empty());
    }
}
