//! `catalog.db`: a SQLite index of where every blob lives and a cache of the
//! snapshot records.
//!
//! The catalog is never the only copy of anything: it can always be rebuilt
//! from the pack headers and `snapshots/` (see [`rebuild`]). A blob is
//! recorded only after its pack is durable in `packs/`, so "in the catalog"
//! implies "safe to reference". WAL mode and a busy timeout let concurrent
//! snapshots record their packs one short transaction at a time.

mod blobs;
mod dictionaries;
mod indexes;
mod intact;
mod ledger;
mod open;
pub mod prune;
pub mod rebuild;
mod schema;
mod snapshots;
pub mod sync;
pub mod totals;

pub use indexes::Forgotten;
pub use open::SmallCache;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use crate::rawname::escaped;

/// A catalog failure, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// SQLite reported an error.
    #[error("catalog {}: {source}", escaped(path))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The schema was written by a newer cairn.
    #[error(
        "catalog {} has schema version {found}, newer than this cairn knows ({known}); use a newer cairn",
        escaped(path)
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this code knows.
        known: i64,
    },
    /// SQLite could not write because the file system is full.
    #[error("catalog {}: the file system holding it is full ({free} bytes free): {source}", path.display())]
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// Bytes free for unprivileged writers when the error was seen.
        free: u64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A SQLite database, but not with the tables a catalog has.
    #[error("catalog {}: not a cairn catalog: {what}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },
    /// An index object to record names a pack the catalog does not have
    /// (another process dropped it meanwhile, or a bug); nothing of it was
    /// recorded, so the next sync reads the object whole.
    #[error(
        "catalog {}: index object {index} names pack {pack}, which the catalog does not have; not recorded (the next sync reads it)",
        escaped(path)
    )]
    NotCataloged {
        /// The database file.
        path: PathBuf,
        /// The index object.
        index: crate::id::IndexId,
        /// The pack.
        pack: crate::id::PackId,
    },
    /// A row holds a value no writer produces.
    #[error("catalog {}: corrupt row: {what}", escaped(path))]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// An open connection to `catalog.db`. One per thread: connections are not shared.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// Opened read-only (a store that cannot be written): caches are not
    /// refreshed and the verification ledger is not recorded.
    read_only: bool,
}

impl Catalog {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts one read transaction that lasts until the guard is dropped:
    /// every lookup in between sees the same catalog and costs no lock
    /// traffic (without it SQLite takes and drops its file locks around each
    /// query, which dominated a no-change snapshot of many small files).
    /// Blobs other connections add meanwhile stay invisible to it, so use it
    /// only where a missed blob merely costs storing it again.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>, CatalogError> {
        self.conn.execute_batch("BEGIN").map_err(self.err())?;
        Ok(ReadSnapshot { catalog: self })
    }

    /// Starts a transaction that writes, taking the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that reads first and then writes
    /// fails at once with "database is locked" when another process wrote
    /// meanwhile (SQLite cannot wait for a snapshot that went stale), where
    /// this one waits its turn under the busy timeout.
    fn write_transaction(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    /// Whether every pack in the store was recorded when the catalog was
    /// created. A catalog that is new, was emptied, or whose rebuild was cut
    /// short is incomplete, and [`rebuild`] must run before it is trusted.
    pub fn is_complete(&self) -> Result<bool, CatalogError> {
        let value: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'complete'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())?;
        Ok(value.as_deref() == Some("yes"))
    }

    /// Records that a rebuild from the pack headers has finished.
    pub fn mark_complete(&self) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', 'yes')",
                [],
            )
            .map_err(self.err())?;
        Ok(())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        sqlite(&self.path)
    }

    fn corrupt(&self, what: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }
}

/// An open read transaction; ends when dropped.
#[must_use = "the read transaction ends when this is dropped"]
pub struct ReadSnapshot<'c> {
    catalog: &'c Catalog,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        // Ending a read-only transaction cannot lose anything.
        let _ = self.catalog.conn.execute_batch("COMMIT");
    }
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
    move |source| match open::full_disk(path, &source) {
        Some(free) => CatalogError::DiskFull {
            path: path.to_owned(),
            free,
            source,
        },
        None => CatalogError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}
