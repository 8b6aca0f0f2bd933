//! Opening and creating stores: config, locks, the catalog, staging, and
//! the read paths every command shares (blobs, trees, snapshot lists).
//!
//! A store's objects (`config.json`, `packs/XX/ID.pack`, `index/ID`,
//! `snapshots/ID.json`, ...) are reached only through the backend. What is
//! local about a store lives in its *home*: for a local store the store
//! directory itself (`catalog.db`, `locks/`, `tmp/`), for a remote one a
//! cache directory on this host (`$XDG_CACHE_HOME/cairn/STORE-ID/`), which
//! is always safe to delete. Opening never writes anything until the config
//! has been read and its version accepted.

mod catalog_file;
pub mod config;
pub mod keys;
mod layout;
mod leftovers;
pub mod location;
pub mod lock;
pub mod migrate;
mod open;
mod options;
mod pack_cache;
pub mod space;
pub mod staging;
mod trees;
pub mod writers;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::{Backend, BackendError};
use crate::catalog::{self, Catalog, CatalogError};
use crate::crypt::keyfile::KeyFile;
use crate::id::{BlobId, TreeId};
use crate::pack::{self, PackError};
use crate::rawname::escaped;
use crate::snapshot::{self, SnapshotList};
use crate::tree::TreeError;
pub use config::{Config, ConfigError, PackConfig, SqliteConfig};
pub use location::{Location, LocationError};
pub use lock::{LockMode, StoreLock};
pub use options::{InitOptions, NewKeys, OpenOptions};
pub use staging::Staging;
pub use trees::TreeReader;

const CONFIG: &str = "config.json";
const CATALOG: &str = "catalog.db";

/// Failures opening, creating or reading a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The catalog is that of another store this process has open.
    #[error(
        "{} is the catalog of the store being copied from, and this one has that store's id: it is the same store, or a copy of it made outside cairn (cp, rsync); give a copy its own cache directory with --to-cache-dir",
        escaped(path)
    )]
    CatalogInUse {
        /// The catalog.
        path: PathBuf,
    },
    /// The directory does not exist.
    #[error("no store at {location}: create one with `cairn init`")]
    Missing {
        /// The location given.
        location: Location,
    },
    /// The directory or bucket exists but holds no cairn store.
    #[error("{location} is not a cairn store (it has no config.json)")]
    NotAStore {
        /// The location given.
        location: Location,
    },
    /// `config.json` is unreadable or unsupported.
    #[error("{location}/config.json: {source}")]
    Config {
        /// The store.
        location: Location,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// `init` on an existing store.
    #[error("a cairn store already exists at {location}")]
    Exists {
        /// The store.
        location: Location,
    },
    /// `init` on a directory or prefix with other content.
    #[error(
        "{location} is not empty and is not a cairn store (it holds {found}); refusing to create a store there"
    )]
    NotEmpty {
        /// The directory or prefix.
        location: Location,
        /// What it holds: the first file found, or why.
        found: String,
    },
    /// Another process holds the lock.
    #[error("{}", locked_message(path, *wanted, *waited))]
    Locked {
        /// The store.
        path: PathBuf,
        /// The lock this process asked for.
        wanted: LockMode,
        /// How long it waited.
        waited: Duration,
    },
    /// A command that writes was run on a store it cannot write.
    #[error("cannot write to store {}: {}: {source}", path.display(), file.display())]
    NotWritable {
        /// The store.
        path: PathBuf,
        /// The file that could not be opened for writing.
        file: PathBuf,
        /// What the OS said (read-only file system, permission denied).
        #[source]
        source: io::Error,
    },
    /// The lock file was replaced every time it was locked.
    #[error("{}: the lock file keeps being deleted or replaced while cairn locks it; find the program that removes it", path.display())]
    LockReplaced {
        /// The lock file.
        path: PathBuf,
    },
    /// A local file operation failed.
    #[error("{}: {source}", escaped(path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A store file operation failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Bringing the catalog up to date with the store failed.
    #[error("catalog: {0}")]
    Sync(#[from] catalog::sync::SyncError),
    /// Writing or listing snapshot records failed.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// Rebuilding the catalog failed.
    #[error("rebuilding the catalog: {0}")]
    Rebuild(#[from] catalog::rebuild::RebuildError),
    /// A pack is unreadable or a blob in it is damaged.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A snapshot references a blob the catalog does not know.
    #[error("blob {0} is missing from the store (not in any cataloged pack)")]
    BlobMissing(BlobId),
    /// An operation that needs the exclusive lock ran under a shared one.
    #[error("{what} needs the store locked exclusively (a bug: the command opened it shared)")]
    NotExclusive {
        /// The operation.
        what: &'static str,
    },
    /// A thread reading trees for a walk stopped without answering for a
    /// tree it was given (a bug): the walk stops rather than leave blobs
    /// unmarked.
    #[error("a tree reader stopped without answering (a bug); nothing was changed")]
    TreeReaderLost,
    /// The store's keys could not be used.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// Verify beside prunes: in every pass it ran, what it found missing
    /// was removed or moved meanwhile, so what it found is not certain
    /// either way.
    #[error(
        "the store kept changing while verify ran: in each of its {passes} passes, what it found missing was removed, moved, forgotten or written again by other processes meanwhile ({findings} finding(s) after the last), so it cannot tell whether anything is lost; run `cairn verify` again, when no prune is running if this recurs"
    )]
    Unsettled {
        /// Passes run.
        passes: usize,
        /// Findings of the last pass that other processes explain.
        findings: usize,
    },
    /// A tree blob does not decode.
    #[error("tree {id}: {source}")]
    Tree {
        /// The tree.
        id: TreeId,
        /// What is wrong.
        #[source]
        source: TreeError,
    },
}

impl StoreError {
    /// Whether the store's data is at fault: a blob the catalog lacks, a
    /// tree that does not decode, a pack that is gone or does not read
    /// right (see [`PackError::is_damage`]).
    pub fn is_damage(&self) -> bool {
        match self {
            Self::BlobMissing(_) | Self::Tree { .. } => true,
            Self::Pack(e) => e.is_damage(),
            _ => false,
        }
    }
}

fn locked_message(path: &Path, wanted: LockMode, waited: Duration) -> String {
    let holder = match wanted {
        LockMode::Read | LockMode::Shared => {
            "another cairn process holds it exclusively (a prune, forget, repair, tag or policy change is running)"
        }
        LockMode::Exclusive => "another cairn process is using it",
    };
    let after = if waited.is_zero() {
        "; pass --lock-wait DURATION to wait for it".to_owned()
    } else {
        format!("; gave up after waiting {}s", waited.as_secs_f64())
    };
    format!("store {} is locked: {holder}{after}", escaped(path))
}

/// An open store, holding its lock for as long as it lives.
pub struct Store {
    location: Location,
    home: PathBuf,
    backend: Backend,
    staging: Staging,
    /// Where plaintext scratch files go (database images): the staging
    /// directory, or the cache directory for an encrypted store, since
    /// nothing under an encrypted store's directory may be plaintext.
    scratch: Staging,
    /// The unlocked keys of an encrypted store.
    keys: Option<keys::Unlocked>,
    /// Tree packs kept whole on this host (remote stores only).
    pack_cache: Option<pack_cache::PackCache>,
    config: Config,
    catalog: Catalog,
    catalog_path: PathBuf,
    /// Holds a private catalog for this run; dropped after `catalog`.
    _private_catalog: Option<tempfile::TempDir>,
    notices: Vec<String>,
    short_of_space: bool,
    lock: StoreLock,
}

impl Store {
    /// Whether the store's disk was short of space when it was opened (a
    /// prune then only deletes, since repacking first needs room for the
    /// new packs).
    pub fn is_short_of_space(&self) -> bool {
        self.short_of_space
    }

    /// Recreates the disk reserve if it is missing and there is room (after
    /// a command freed space).
    pub fn replenish_reserve(&self) -> Result<bool, StoreError> {
        if self.backend.is_remote() {
            return Ok(false);
        }
        space::replenish(&self.home, self.backend.file_mode())
    }

    /// Brings an older store's format up to the one this code writes,
    /// before anything new is written to it; returns the version it had if
    /// it was upgraded. Readers never call this, so a store on read-only
    /// media still restores.
    pub fn upgrade_for_writing(&mut self) -> Result<Option<u32>, StoreError> {
        let Some(upgraded) = migrate::upgraded(&self.config) else {
            return Ok(None);
        };
        migrate::index_unindexed_packs(&self.backend, &mut self.catalog)?;
        self.backend.replace(CONFIG, &upgraded.encode())?;
        let old = std::mem::replace(&mut self.config, upgraded);
        Ok(Some(old.version))
    }

    /// Whether this process holds the store alone: a local store locked
    /// exclusively (no lock keeps other hosts off a remote one).
    pub fn is_held_exclusively(&self) -> bool {
        !self.backend.is_remote() && self.lock.mode() == LockMode::Exclusive
    }

    /// Fails unless this process holds the store exclusively: for
    /// operations that delete or rewrite what other commands read.
    /// On a remote store the lock is this host's only and means little:
    /// deletions there are made safe by the prune lease and the two-phase
    /// rules (durability.md), so this passes.
    pub fn require_exclusive(&self, what: &'static str) -> Result<(), StoreError> {
        if self.backend.is_remote() {
            return Ok(());
        }
        match self.lock.mode() {
            LockMode::Exclusive => Ok(()),
            LockMode::Read | LockMode::Shared => Err(StoreError::NotExclusive { what }),
        }
    }

    /// Replaces `config.json` with `config` (whole and atomic: readers see
    /// the old file or the new one). Needs the exclusive lock.
    pub fn rewrite_config(&mut self, config: Config) -> Result<(), StoreError> {
        self.require_exclusive("rewriting config.json")?;
        config.validate().map_err(|e| StoreError::Config {
            location: self.location.clone(),
            source: ConfigError::Corrupt(e),
        })?;
        self.backend.replace(CONFIG, &config.encode())?;
        self.config = config;
        Ok(())
    }

    /// Rebuilds `catalog.db` from scratch from the index objects and the
    /// pack headers, indexing packs no index object names (the snapshot
    /// cache refills on the next listing), keeping the verification ledger
    /// of packs that still exist. Needs the exclusive
    /// lock. A crash half way leaves no catalog or an incomplete one, which
    /// the next open rebuilds.
    pub fn rebuild_catalog(&mut self) -> Result<catalog::rebuild::RebuildReport, StoreError> {
        self.require_exclusive("rebuilding catalog.db")?;
        // The ledger is history worth keeping; a catalog too damaged to
        // give it up simply loses it.
        let ledger = self.catalog.verified().unwrap_or_default();
        self.catalog = Catalog::open(Path::new(":memory:"))?;
        let path = self.catalog_path();
        catalog_file::remove_catalog_files(&path)?;
        let mut fresh = catalog_file::open_writable(&path, self.backend.file_mode())?;
        let report = catalog::rebuild::repair(&mut fresh, &self.backend)?;
        let kept: Vec<_> = (fresh.packs()?.into_iter())
            .filter_map(|p| Some((p.id, *ledger.get(&p.id)?)))
            .collect();
        fresh.record_verified(&kept, &[])?;
        self.catalog = fresh;
        Ok(report)
    }

    /// Removes every staging file left by interrupted runs; returns how
    /// many files and bytes. Needs the exclusive lock: under a shared one,
    /// another process may be writing there.
    ///
    /// An encrypted store's scratch directory (plaintext database images,
    /// in the cache directory) is cleared too: a snapshot killed while it
    /// read a database left its plaintext image there for good.
    pub fn clear_tmp(&self) -> Result<(u64, u64), StoreError> {
        self.require_exclusive("clearing tmp/")?;
        let (files, bytes) = self.staging.clear()?;
        if self.scratch.dir() == self.staging.dir() || !self.scratch.dir().is_dir() {
            return Ok((files, bytes));
        }
        let (more, more_bytes) = self.scratch.clear()?;
        Ok((files + more, bytes + more_bytes))
    }

    /// Removes the staging files left by interrupted runs of this host
    /// while other processes may be using the store (a prune of a remote
    /// store, which takes this host's lock shared); returns how many files
    /// and bytes. Only what no live process holds goes, see
    /// [`Staging::clear_left`]; capture's private directories only while
    /// no capture runs, held off meanwhile. A local store's `tmp/` also
    /// holds the backend's unlocked temporary files, so only
    /// [`Store::clear_tmp`], under the exclusive lock, clears it.
    pub fn clear_left_tmp(&self) -> Result<(u64, u64), StoreError> {
        if !self.backend.is_remote() {
            return Ok((0, 0));
        }
        let paused = writers::pause(&self.home, self.backend.file_mode())?;
        Ok(self.staging.clear_left(paused.is_some())?)
    }

    /// A temporary file for scratch work that is never published (a
    /// database image to check): staged, or, when this run cannot write
    /// the store, in the system's temporary directory.
    pub fn scratch_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        if self.lock.unlocked().is_none() {
            return Ok(self.scratch.file()?);
        }
        tempfile::NamedTempFile::new().map_err(|source| StoreError::Io {
            path: std::env::temp_dir(),
            source,
        })
    }

    /// Releases the store lock while keeping the store open: for `mount`,
    /// which reads for hours and must not block a prune or repair. A
    /// prune may then delete what it reads; every blob is verified as it
    /// is read, so such a read fails instead of returning other bytes.
    pub fn release_lock(&mut self) {
        self.lock.release();
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// This host's directory for the store: the store directory of a
    /// local store, the cache directory of a remote one.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where files are staged before they become objects.
    pub fn staging(&self) -> &Staging {
        &self.staging
    }

    /// Where plaintext scratch files go: outside the store's directory
    /// when the store is encrypted.
    pub fn scratch(&self) -> &Staging {
        &self.scratch
    }

    /// The unlocked keys, for an encrypted store.
    pub fn keys(&self) -> Option<&keys::Unlocked> {
        self.keys.as_ref()
    }

    /// The keys of a new store made to share this one's (`copy` to a new
    /// store): none for a plain store, else this store's key files as they
    /// are, so the same passphrases open both and ids agree.
    pub fn shared_keys(&self) -> Result<NewKeys, StoreError> {
        match &self.keys {
            None => Ok(NewKeys::Plain),
            Some(unlocked) => Ok(NewKeys::Shared(keys::Prepared {
                files: keys::read_files(&self.backend)?,
                unlocked: unlocked.clone(),
            })),
        }
    }

    /// [`Store::shared_keys`] and one more key file, for the password from
    /// `source`, unless one of them opens under it: the new store's own
    /// password (`copy --to-password-file`), written with the others before
    /// its config, so that no run killed in between leaves a store that
    /// password does not open. Returns the added key's id too.
    pub fn shared_keys_with(
        &self,
        source: &crate::crypt::passphrase::Source,
    ) -> Result<(NewKeys, Option<String>), StoreError> {
        let shared = self.shared_keys()?;
        let NewKeys::Shared(mut prepared) = shared else {
            return Ok((shared, None));
        };
        let location = self.backend.location();
        let phrase = crate::crypt::passphrase::read(source, &format!("store {location}"))
            .map_err(keys::KeyError::from)?;
        let good: Vec<_> = (prepared.files.iter())
            .filter_map(|(id, bytes)| Some((id.clone(), KeyFile::decode(bytes).ok()?)))
            .collect();
        let check = keys::Check::of(&self.config);
        let added = keys::key_for(&good, &prepared.unlocked, &phrase, &check)?;
        let added = added.map(|(id, file)| {
            prepared.files.push((id.clone(), file.encode()));
            id
        });
        Ok((NewKeys::Shared(prepared), added))
    }

    /// The store's parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The seam to the store's files.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// This thread's catalog connection.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// This thread's catalog connection, for transactions.
    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// Path of the catalog this run uses (`catalog.db`, or a private copy
    /// on a store that cannot be written), for threads that need their own
    /// connection.
    pub fn catalog_path(&self) -> PathBuf {
        self.catalog_path.clone()
    }

    /// Things the user should hear about that happened while opening
    /// (a rebuilt catalog, say).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Reads a blob and verifies it against its id.
    pub fn load_blob(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        let at = self
            .catalog
            .locate(id)?
            .ok_or(StoreError::BlobMissing(*id))?;
        Ok(pack::reader::read_blob(&self.backend, id, &at)?)
    }

    /// Drops cached tree packs the catalog no longer names.
    pub(super) fn tidy_pack_cache(&self) -> Result<(), StoreError> {
        if let Some(cache) = &self.pack_cache {
            let keep = self.catalog.packs()?.into_iter().map(|p| p.id).collect();
            cache.retain(&keep);
        }
        Ok(())
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<SnapshotList, StoreError> {
        Ok(snapshot::list(&self.backend, &self.catalog)?)
    }
}
