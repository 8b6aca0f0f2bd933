//! The catalog schema and its migrations, keyed by `PRAGMA user_version`.
//! Past migrations are never edited; a new version appends a step.

use super::{Catalog, CatalogError};

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE IF NOT EXISTS packs (
    rowid      INTEGER PRIMARY KEY,
    id         BLOB NOT NULL UNIQUE,
    kind       INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    blob_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    id          BLOB PRIMARY KEY,
    pack        INTEGER NOT NULL REFERENCES packs(rowid),
    kind        INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    stored_len  INTEGER NOT NULL,
    raw_len     INTEGER NOT NULL,
    compression INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    id     BLOB PRIMARY KEY,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
-- A new catalog knows no packs yet: it is complete only once a rebuild from
-- the pack headers has finished (see Catalog::mark_complete).
INSERT OR IGNORE INTO meta (key, value) VALUES ('complete', 'no');
";

/// Tables and indexes added within schema 1: a reader that does not know
/// them ignores them, SQLite maintains an index for every writer, and a
/// writer that does not know the ledger cannot make it wrong (rows for
/// packs that are gone mean nothing), so they need no new version.
const ADDITIONS: &str = "
-- Finding a pack's blobs (prune, verify, repair) without a full scan.
CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs (pack);
-- The verification ledger: when each pack was last read whole and found good.
CREATE TABLE IF NOT EXISTS verified (
    pack BLOB PRIMARY KEY,
    at   INTEGER NOT NULL
) WITHOUT ROWID;
-- A count that moves whenever blob rows are deleted, kept by SQLite itself
-- for every writer (one that does not know the count still fires the
-- trigger; a prune counts its bulk deletion as one, intact::as_one_removal)...
INSERT OR IGNORE INTO meta (key, value) VALUES ('removals', '0');
-- (the trigger: COUNT_REMOVALS)
-- ...and its value when each snapshot was committed with every blob it
-- references in the catalog: while the count is unchanged, all of them
-- still are (see Catalog::is_intact).
CREATE TABLE IF NOT EXISTS intact (
    snapshot BLOB PRIMARY KEY,
    removals INTEGER NOT NULL
) WITHOUT ROWID;
-- Other copies of blobs: a blob stored in several packs (two snapshots
-- stored it at once, a repack copied it) keeps one row in blobs and its
-- other copies here, so that when the pack its row names goes away (pruned
-- by another host, say) a copy takes over (see blobs::drop_pack_rows).
CREATE TABLE IF NOT EXISTS spares (
    id          BLOB NOT NULL,
    pack        INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    stored_len  INTEGER NOT NULL,
    raw_len     INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spares_by_pack ON spares (pack);
-- Index objects of the store this catalog has read (or written), and the
-- packs each names: a pack stays while some index object names it.
CREATE TABLE IF NOT EXISTS indexes (
    id BLOB PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_packs (
    idx  BLOB NOT NULL,
    pack BLOB NOT NULL,
    PRIMARY KEY (idx, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS index_packs_by_pack ON index_packs (pack);
";

/// The trigger that counts deleted blob rows, one by one (see `intact`).
/// Never change its text: every cairn makes it if it is missing.
pub(super) const COUNT_REMOVALS: &str = "
CREATE TRIGGER IF NOT EXISTS count_removals AFTER DELETE ON blobs BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'removals';
END;
";

/// Brings the schema to [`SCHEMA_VERSION`] inside one immediate transaction,
/// so two processes opening a new catalog at once do not race.
pub fn migrate(catalog: &mut Catalog) -> Result<(), CatalogError> {
    let path = catalog.path.clone();
    let err = super::sqlite(&path);
    let conn = &mut catalog.conn;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(CatalogError::NewerSchema {
            path: catalog.path.clone(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.execute_batch(V1).map_err(&err)?;
        tx.pragma_update(None, "user_version", 1).map_err(&err)?;
    }
    tx.execute_batch(ADDITIONS).map_err(&err)?;
    tx.execute_batch(COUNT_REMOVALS).map_err(&err)?;
    tx.commit().map_err(&err)
}

/// Every table of schema 1 with its columns in order: what a file must
/// have to be taken for a catalog. The first [`V1_TABLES`] come with the
/// schema, the others from [`ADDITIONS`].
const TABLES: [(&str, &[&str]); 9] = [
    ("packs", &["rowid", "id", "kind", "size", "blob_count"]),
    (
        "blobs",
        &[
            "id",
            "pack",
            "kind",
            "offset",
            "stored_len",
            "raw_len",
            "compression",
        ],
    ),
    ("snapshots", &["id", "record"]),
    ("meta", &["key", "value"]),
    ("verified", &["pack", "at"]),
    ("intact", &["snapshot", "removals"]),
    (
        "spares",
        &[
            "id",
            "pack",
            "kind",
            "offset",
            "stored_len",
            "raw_len",
            "compression",
        ],
    ),
    ("indexes", &["id"]),
    ("index_packs", &["idx", "pack"]),
];
const V1_TABLES: usize = 4;

/// Checks, before anything is written to it, that a database that has a
/// schema has a catalog's (another database at this path would otherwise
/// be switched to WAL and fail the migration with a bare "no such table").
pub fn check_existing(catalog: &Catalog) -> Result<(), CatalogError> {
    let version: i64 = (catalog.conn)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(super::sqlite(&catalog.path))?;
    if version < 1 {
        return Ok(());
    }
    check_tables(&catalog.conn, &catalog.path, &TABLES[..V1_TABLES])
}

/// Checks that the database is a catalog of a version this code reads:
/// another SQLite database that happens to sit at `catalog.db` would
/// otherwise fail later, in the middle of some command, on a missing
/// column.
pub fn check(catalog: &Catalog) -> Result<(), CatalogError> {
    let err = super::sqlite(&catalog.path);
    let version: i64 = (catalog.conn)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(CatalogError::NewerSchema {
            path: catalog.path.clone(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    let wrong = |what: String| CatalogError::Schema {
        path: catalog.path.clone(),
        what,
    };
    if version < 1 {
        return Err(wrong("its schema was never set up".to_owned()));
    }
    check_tables(&catalog.conn, &catalog.path, &TABLES)
}

/// Checks that each of `tables` exists with its columns.
fn check_tables(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    tables: &[(&str, &[&str])],
) -> Result<(), CatalogError> {
    let err = super::sqlite(path);
    let wrong = |what: String| CatalogError::Schema {
        path: path.to_owned(),
        what,
    };
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(&err)?;
    for &(table, want) in tables {
        let got = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        if got.is_empty() {
            return Err(wrong(format!("it has no table {table}")));
        }
        if got != want {
            return Err(wrong(format!(
                "table {table} has columns ({}), a catalog's has ({})",
                got.join(", "),
                want.join(", ")
            )));
        }
    }
    Ok(())
}
