//! Creating and opening stores, local or remote.
//!
//! A local store keeps everything in its directory: objects, catalog,
//! locks, staging. A remote store is only objects; this host's catalog,
//! locks and staging files live in a cache directory named after the
//! store's id, which can be deleted at any time (the catalog is rebuilt
//! from the store's index objects).

use std::io;
use std::path::{Path, PathBuf};

use super::layout::{ensure_cache_layout, ensure_home_layout};
use super::pack_cache::PackCache;
use super::{
    CONFIG, Config, ConfigError, InitOptions, Location, LockMode, OpenOptions, Staging, Store,
    StoreError, catalog_file, lock, space,
};
use crate::backend::local::{Local, PRIVATE};
use crate::backend::{Backend, S3Url};
use crate::when::SnapshotTime;

/// Largest `config.json` a reader accepts.
const MAX_CONFIG_LEN: u64 = 1 << 20;

impl Store {
    /// Whether a local `location` holds a store (has a `config.json`).
    /// Remote stores are not looked at: only the default store, which is
    /// local, is created on first use.
    pub fn exists(location: &Location) -> bool {
        match location {
            Location::Local(root) => root.join(CONFIG).is_file(),
            Location::S3(_) => false,
        }
    }

    /// Creates a store at `location` (an absent or empty directory, or a
    /// bucket prefix without a store), then opens it.
    pub fn init(
        location: &Location,
        init: &InitOptions,
        open: OpenOptions,
    ) -> Result<Self, StoreError> {
        let config = new_config(location, init)?;
        match location {
            Location::Local(root) => init_local(root, location, &config)?,
            Location::S3(url) => init_remote(url, location, &config, &open)?,
        }
        Self::open(location, open)
    }

    /// Opens an existing store: reads and checks its config, takes the
    /// lock, opens the catalog (rebuilding it if it is gone or broken). A
    /// reader of a store it cannot write goes on without the lock and with
    /// a read-only or private catalog, and says so.
    pub fn open(location: &Location, options: OpenOptions) -> Result<Self, StoreError> {
        match location {
            Location::Local(root) => open_local(root, location, options),
            Location::S3(url) => open_remote(url, location, options),
        }
    }
}

fn new_config(location: &Location, init: &InitOptions) -> Result<Config, StoreError> {
    let config = Config::new(
        random_id()?,
        SnapshotTime::now().to_string(),
        init.compression,
        init.pack,
        init.sqlite,
    );
    config.validate().map_err(|e| StoreError::Config {
        location: location.clone(),
        source: ConfigError::Corrupt(e),
    })?;
    Ok(config)
}

fn init_local(root: &Path, location: &Location, config: &Config) -> Result<(), StoreError> {
    if Store::exists(location) {
        return Err(StoreError::Exists {
            location: location.clone(),
        });
    }
    let free = Local::is_free(root).map_err(|source| StoreError::Io {
        path: root.to_owned(),
        source,
    })?;
    if !free {
        return Err(StoreError::NotEmpty {
            location: location.clone(),
        });
    }
    let created_root = !root.exists();
    let backend = Backend::local(root, PRIVATE);
    let local = Local::new(root, PRIVATE);
    let made = backend
        .prepare(false)
        .map_err(StoreError::from)
        .and_then(|()| ensure_home_layout(root, false))
        // The config goes last and never replaces one: a concurrent init
        // of the same directory loses cleanly with `Exists`.
        .and_then(|()| create_config(&backend, location, config));
    if let Err(e) = &made
        && !matches!(e, StoreError::Exists { .. })
    {
        local.unprepare(created_root);
    }
    made
}

/// A remote store is created by its one `config.json`, written with a
/// conditional create: a second init, even a concurrent one, finds it.
fn init_remote(
    url: &S3Url,
    location: &Location,
    config: &Config,
    open: &OpenOptions,
) -> Result<(), StoreError> {
    // No HEAD first: the create is conditional, and refuses a store that
    // is there (one request less for every init).
    let backend = Backend::s3(url, open.remote)?;
    create_config(&backend, location, config)
}

fn create_config(
    backend: &Backend,
    location: &Location,
    config: &Config,
) -> Result<(), StoreError> {
    match backend.create(CONFIG, &config.encode()) {
        Err(e) if e.is_already_exists() => Err(StoreError::Exists {
            location: location.clone(),
        }),
        other => Ok(other?),
    }
}

fn open_local(root: &Path, location: &Location, options: OpenOptions) -> Result<Store, StoreError> {
    if !root.exists() {
        return Err(StoreError::Missing {
            location: location.clone(),
        });
    }
    let config = read_config(&Backend::local(root, PRIVATE), location)?;
    let backend = Backend::local(root, store_file_mode(root, location)?);
    let mode = backend.file_mode();
    let reading = options.lock == LockMode::Read;
    if !options.write_nothing {
        backend.prepare(reading)?;
        ensure_home_layout(root, reading)?;
    }
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
    let staging = Staging::new(root.join("tmp"), mode);
    let parts = Parts {
        location,
        home: root,
        backend,
        staging,
        cache: None,
        write_nothing: options.write_nothing,
    };
    finish(parts, config, lock, notices, short_of_space)
}

fn open_remote(
    url: &S3Url,
    location: &Location,
    options: OpenOptions,
) -> Result<Store, StoreError> {
    let backend = Backend::s3(url, options.remote)?;
    let config = read_config(&backend, location)?;
    let home = cache_home(options.cache_dir.as_deref(), &config.id)?;
    ensure_cache_layout(&home, options.lock == LockMode::Read)?;
    let lock = lock::acquire(&home, options.lock, options.lock_wait, PRIVATE)?;
    let notices: Vec<String> = lock
        .unlocked()
        .map(|u| u.notice(&home))
        .into_iter()
        .collect();
    let staging = Staging::new(home.join("tmp"), PRIVATE);
    let parts = Parts {
        location,
        home: &home,
        backend,
        staging,
        cache: Some(PackCache::new(&home)),
        write_nothing: options.write_nothing,
    };
    let store = finish(parts, config, lock, notices, false)?;
    store.tidy_pack_cache()?;
    Ok(store)
}

/// Where a store's pieces are.
struct Parts<'a> {
    location: &'a Location,
    home: &'a Path,
    backend: Backend,
    staging: Staging,
    cache: Option<PackCache>,
    write_nothing: bool,
}

/// Opens the catalog in the home and puts the store together.
fn finish(
    parts: Parts<'_>,
    config: Config,
    lock: super::StoreLock,
    mut notices: Vec<String>,
    short_of_space: bool,
) -> Result<Store, StoreError> {
    let Parts {
        location,
        home,
        backend,
        staging,
        cache,
        write_nothing,
    } = parts;
    let access = match (lock.mode(), lock.unlocked()) {
        (_, Some(_)) => catalog_file::Access::ReadOnly,
        (LockMode::Read, None) if write_nothing => catalog_file::Access::ReadOnly,
        (LockMode::Read, None) => catalog_file::Access::Read,
        _ => catalog_file::Access::Write,
    };
    let opened = catalog_file::open(home, &backend, backend.file_mode(), access)?;
    notices.extend(opened.notices);
    Ok(Store {
        location: location.clone(),
        home: home.to_owned(),
        backend,
        staging,
        pack_cache: cache,
        config,
        catalog: opened.catalog,
        catalog_path: opened.path,
        _private_catalog: opened.private,
        notices,
        short_of_space,
        lock,
    })
}

fn read_config(backend: &Backend, location: &Location) -> Result<Config, StoreError> {
    let bytes = match backend.get(CONFIG, MAX_CONFIG_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => {
            return Err(StoreError::NotAStore {
                location: location.clone(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Config::decode(&bytes).map_err(|source| StoreError::Config {
        location: location.clone(),
        source,
    })
}

/// The permission bits of files cairn creates in a local store: those of
/// its `config.json` (0600 as `init` makes it; an administrator who opens
/// the store to a group loosens it, and new files follow).
fn store_file_mode(root: &Path, location: &Location) -> Result<u32, StoreError> {
    let backend = Backend::local(root, PRIVATE);
    match backend.mode_of(CONFIG)? {
        Some(mode) => Ok(mode & 0o666),
        None => Err(StoreError::NotAStore {
            location: location.clone(),
        }),
    }
}

/// This host's directory for the remote store `id`: under `cache_dir`, or
/// `$XDG_CACHE_HOME/cairn`, or `~/.cache/cairn`.
fn cache_home(cache_dir: Option<&Path>, id: &str) -> Result<PathBuf, StoreError> {
    let base = match cache_dir {
        Some(dir) => dir.to_owned(),
        None => default_cache_dir()?,
    };
    Ok(base.join(id))
}

fn default_cache_dir() -> Result<PathBuf, StoreError> {
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(cache).join("cairn"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/cairn")),
        None => Err(StoreError::Io {
            path: PathBuf::from("$HOME"),
            source: io::Error::other(
                "no cache directory for the remote store: pass --cache-dir DIR (HOME is not set)",
            ),
        }),
    }
}

fn random_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Io {
        path: PathBuf::from("/dev/urandom"),
        source: io::Error::other(e.to_string()),
    })?;
    Ok(hex::encode(bytes))
}
