//! Opening and creating stores: config, directory layout, locks, and the
//! read paths every command shares (blobs, trees, snapshot lists).
//!
//! Layout: `config.json`, `packs/XX/ID.pack`, `snapshots/ID.json`,
//! `catalog.db`, `locks/`, `tmp/`. Opening never writes anything until the
//! config has been read and its version accepted.

mod catalog_file;
pub mod config;
mod layout;
pub mod lock;
pub mod migrate;
pub mod writers;
pub mod space;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::{Backend, BackendError};
use crate::catalog::{self, Catalog, CatalogError};
use crate::compress::CompressionConfig;
use crate::id::{BlobId, TreeId};
use crate::pack::{self, PackError};
use crate::rawname::escaped;
use crate::snapshot::{self, SnapshotList};
use crate::tree::{Tree, TreeError};
use crate::when::SnapshotTime;
use layout::{ensure_layout, is_empty_or_absent, remove_layout};

pub use config::{Config, ConfigError, PackConfig, SqliteConfig};
pub use lock::{LockMode, StoreLock};

const CONFIG: &str = "config.json";
const CATALOG: &str = "catalog.db";

/// Failures opening, creating or reading a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory does not exist.
    #[error("no store at {}: create one with `cairn init`", escaped(path))]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The directory exists but holds no cairn store.
    #[error("{} is not a cairn store (it has no config.json)", escaped(path))]
    NotAStore {
        /// The path given.
        path: PathBuf,
    },
    /// `config.json` is unreadable or unsupported.
    #[error("{}: {source}", escaped(path))]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// `init` on an existing store.
    #[error("a cairn store already exists at {}", escaped(path))]
    Exists {
        /// The store.
        path: PathBuf,
    },
    /// `init` on a directory with other content.
    #[error(
        "{} is not empty and is not a cairn store; refusing to create a store there",
        escaped(path)
    )]
    NotEmpty {
        /// The directory.
        path: PathBuf,
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

fn locked_message(path: &Path, wanted: LockMode, waited: Duration) -> String {
    let holder = match wanted {
        LockMode::Read | LockMode::Shared => {
            "another cairn process holds it exclusively (a prune or repair is running)"
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

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Shared for captures and reads, exclusive for rewrites.
    pub lock: LockMode,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
}

/// Parameters of a new store.
#[derive(Debug, Clone, Copy)]
pub struct InitOptions {
    /// zstd settings.
    pub compression: CompressionConfig,
    /// Pack size.
    pub pack: PackConfig,
    /// Database chunking.
    pub sqlite: SqliteConfig,
}

/// An open store, holding its lock for as long as it lives.
pub struct Store {
    root: PathBuf,
    backend: Backend,
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
    /// Whether `root` holds a store (has a `config.json`).
    pub fn exists(root: &Path) -> bool {
        root.join(CONFIG).is_file()
    }

    /// Creates a store at `root` (an absent or empty directory), then opens it.
    pub fn init(root: &Path, init: &InitOptions, open: OpenOptions) -> Result<Self, StoreError> {
        if Self::exists(root) {
            return Err(StoreError::Exists {
                path: root.to_owned(),
            });
        }
        if !is_empty_or_absent(root)? {
            return Err(StoreError::NotEmpty {
                path: root.to_owned(),
            });
        }
        let created_root = !root.exists();
        ensure_layout(root, false)?;
        let config = Config::new(
            random_id()?,
            SnapshotTime::now().to_string(),
            init.compression,
            init.pack,
            init.sqlite,
        );
        config.validate().map_err(|e| StoreError::Config {
            path: root.join(CONFIG),
            source: ConfigError::Corrupt(e),
        })?;
        // The config goes last and never replaces one: a concurrent init of
        // the same directory loses cleanly with `Exists`.
        match Backend::new(root).create_new(CONFIG, &config.encode()) {
            Ok(()) => Self::open(root, open),
            Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists {
                path: root.to_owned(),
            }),
            Err(e) => {
                // Leave the directory as it was, so that a retry is not
                // refused as "not empty" (the layout is empty directories).
                remove_layout(root, created_root);
                Err(e.into())
            }
        }
    }

    /// Opens an existing store: reads and checks its config, takes the
    /// lock, opens the catalog (rebuilding it from the packs if it is gone
    /// or broken). A reader of a store it cannot write goes on without the
    /// lock and with a read-only or private catalog, and says so.
    pub fn open(root: &Path, options: OpenOptions) -> Result<Self, StoreError> {
        let config = read_config(root)?;
        let backend = Backend::new(root).with_file_mode(store_file_mode(root)?);
        let mode = backend.file_mode();
        ensure_layout(root, options.lock == LockMode::Read)?;
        let lock = lock::acquire(root, options.lock, options.lock_wait, mode)?;
        let mut notices: Vec<String> = lock
            .unlocked()
            .map(|u| u.notice(root))
            .into_iter()
            .collect();
        let short_of_space = match options.lock {
            LockMode::Read => false,
            LockMode::Shared => space::keep_reserve(root, mode, false, &mut notices)?,
            LockMode::Exclusive => space::keep_reserve(root, mode, true, &mut notices)?,
        };
        let access = match (options.lock, lock.unlocked()) {
            (_, Some(_)) => catalog_file::Access::ReadOnly,
            (LockMode::Read, None) => catalog_file::Access::Read,
            _ => catalog_file::Access::Write,
        };
        let opened = catalog_file::open(root, &backend, mode, access)?;
        notices.extend(opened.notices);
        Ok(Self {
            root: root.to_owned(),
            backend,
            config,
            catalog: opened.catalog,
            catalog_path: opened.path,
            _private_catalog: opened.private,
            notices,
            short_of_space,
            lock,
        })
    }

    /// Whether the store's disk was short of space when it was opened (a
    /// prune then only deletes, since repacking first needs room for the
    /// new packs).
    pub fn is_short_of_space(&self) -> bool {
        self.short_of_space
    }

    /// Recreates the disk reserve if it is missing and there is room (after
    /// a command freed space).
    pub fn replenish_reserve(&self) -> Result<bool, StoreError> {
        space::replenish(&self.root, self.backend.file_mode())
    }

    /// Brings an older store's format up to the one this code writes,
    /// before anything new is written to it; returns the version it had if
    /// it was upgraded. Readers never call this, so a store on read-only
    /// media still restores.
    pub fn upgrade_for_writing(&mut self) -> Result<Option<u32>, StoreError> {
        let Some(upgraded) = migrate::upgraded(&self.config) else {
            return Ok(None);
        };
        self.backend.put(CONFIG, &upgraded.encode())?;
        let old = std::mem::replace(&mut self.config, upgraded);
        Ok(Some(old.version))
    }

    /// Fails unless this process holds the store exclusively: for
    /// operations that delete or rewrite what other commands read.
    pub fn require_exclusive(&self, what: &'static str) -> Result<(), StoreError> {
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
            path: self.root.join(CONFIG),
            source: ConfigError::Corrupt(e),
        })?;
        self.backend.put(CONFIG, &config.encode())?;
        self.config = config;
        Ok(())
    }

    /// Rebuilds `catalog.db` from scratch from the pack headers (the
    /// snapshot cache refills on the next listing), keeping the
    /// verification ledger of packs that still exist. Needs the exclusive
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
        let report = catalog::rebuild::rebuild(&mut fresh, &self.backend)?;
        let kept: Vec<_> = (fresh.packs()?.into_iter())
            .filter_map(|p| Some((p.id, *ledger.get(&p.id)?)))
            .collect();
        fresh.record_verified(&kept, &[])?;
        self.catalog = fresh;
        Ok(report)
    }

    /// Removes every file left in `tmp/` by interrupted runs; returns how
    /// many files and bytes. Needs the exclusive lock: under a shared one,
    /// another process may be writing there.
    pub fn clear_tmp(&self) -> Result<(u64, u64), StoreError> {
        self.require_exclusive("clearing tmp/")?;
        let dir = self.root.join("tmp");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let (mut files, mut bytes) = (0, 0);
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(io(&path))?;
            if meta.is_dir() {
                fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                fs::remove_file(&path).map_err(io(&path))?;
            }
            files += 1;
            bytes += meta.len();
        }
        crate::backend::sync_dir(&dir)?;
        Ok((files, bytes))
    }

    /// A temporary file for scratch work that is never published (a
    /// database image to check): in the store's `tmp/`, or, when this run
    /// cannot write the store, in the system's temporary directory.
    pub fn scratch_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        if self.lock.unlocked().is_none() {
            return Ok(self.backend.temp_file()?);
        }
        tempfile::NamedTempFile::new().map_err(|source| StoreError::Io {
            path: std::env::temp_dir(),
            source,
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// Reads and decodes a tree. One larger than [`STREAMED_TREE`] is
    /// decoded as it is decompressed: the bytes of the tree of a directory
    /// of 300k files (77 MB) were held beside its entries (82 MB).
    pub fn load_tree(&self, id: &TreeId) -> Result<Tree, StoreError> {
        let blob = id.as_blob();
        let at = self
            .catalog
            .locate(&blob)?
            .ok_or(StoreError::BlobMissing(blob))?;
        let decoded = if at.raw_len as usize > STREAMED_TREE {
            pack::reader::read_blob_streaming(&self.backend, &blob, &at, |r| Tree::decode_from(r))?
        } else {
            Tree::decode(&pack::reader::read_blob(&self.backend, &blob, &at)?)
        };
        decoded.map_err(|source| StoreError::Tree { id: *id, source })
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<SnapshotList, StoreError> {
        snapshot::list(&self.backend, &self.catalog)
    }
}

/// Trees larger than this are decoded as they are read (see
/// [`Store::load_tree`]); smaller ones from their bytes, which is faster.
const STREAMED_TREE: usize = 16 << 20;

/// Largest `config.json` a reader accepts.
const MAX_CONFIG_LEN: u64 = 1 << 20;

fn read_config(root: &Path) -> Result<Config, StoreError> {
    if !root.exists() {
        return Err(StoreError::Missing {
            path: root.to_owned(),
        });
    }
    let path = root.join(CONFIG);
    let bytes = match Backend::new(root).read(CONFIG, MAX_CONFIG_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => {
            return Err(StoreError::NotAStore {
                path: root.to_owned(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Config::decode(&bytes).map_err(|source| StoreError::Config { path, source })
}

/// The permission bits of files cairn creates in the store: those of its
/// `config.json` (0600 as `init` makes it; an administrator who opens the
/// store to a group loosens it, and new files follow).
fn store_file_mode(root: &Path) -> Result<u32, StoreError> {
    Ok(Backend::new(root).mode_of(CONFIG)? & 0o666)
}

fn random_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Io {
        path: PathBuf::from("/dev/urandom"),
        source: io::Error::other(e.to_string()),
    })?;
    Ok(hex::encode(bytes))
}
