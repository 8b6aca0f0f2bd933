//! Creating and opening stores, local or remote.
//!
//! A local store keeps everything in its directory: objects, catalog,
//! locks, staging. A remote store is only objects; this host's catalog,
//! locks and staging files live in a cache directory named after the
//! store's id, which can be deleted at any time (the catalog is rebuilt
//! from the store's index objects).

use std::io;
use std::path::{Path, PathBuf};

use super::config::Encryption;
use super::keys::{self, KeyError, Prepared, Unlocked};
use super::layout::{ensure_cache_layout, ensure_home_layout};
use super::leftovers::{self, Leftovers};
use super::pack_cache::PackCache;
use super::{
    CATALOG, CONFIG, Config, ConfigError, InitOptions, Location, LockMode, NewKeys, OpenOptions,
    Staging, Store, StoreError, catalog_file, lock, space,
};
use crate::backend::local::{Local, PRIVATE};
use crate::backend::{Backend, S3Url};
use crate::crypt::passphrase;
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
        // Before a new passphrase is asked for: a store or someone's
        // files there are refused as such, not with "needs a password".
        let backend = new_backend(location, &open)?;
        let mut leftovers = leftovers::free_for(location, &backend, init)?;
        let keys = prepare_keys(location, init, &open)?;
        if matches!(init.keys, NewKeys::Fresh(_)) {
            // Again: asking for a passphrase may have taken minutes.
            leftovers = leftovers::free_for(location, &backend, init)?;
        }
        let config = new_config(location, init, keys.as_ref())?;
        let notices = match location {
            Location::Local(root) => {
                init_local(root, location, &backend, &config, keys.as_ref(), &leftovers)?
            }
            Location::S3(_) => {
                create_store(&backend, location, &config, keys.as_ref(), &leftovers)?
            }
        };
        let mut store = Self::open_unlocked(location, open, keys.map(|k| k.unlocked))?;
        store.notices.extend(notices);
        Ok(store)
    }

    /// Opens an existing store: reads and checks its config, takes the
    /// lock, opens the catalog (rebuilding it if it is gone or broken). A
    /// reader of a store it cannot write goes on without the lock and with
    /// a read-only or private catalog, and says so.
    pub fn open(location: &Location, options: OpenOptions) -> Result<Self, StoreError> {
        Self::open_unlocked(location, options, None)
    }

    /// [`Store::open`] with the keys already in hand (from `init`).
    fn open_unlocked(
        location: &Location,
        options: OpenOptions,
        keys: Option<Unlocked>,
    ) -> Result<Self, StoreError> {
        match location {
            Location::Local(root) => open_local(root, location, options, keys),
            Location::S3(url) => open_remote(url, location, options, keys),
        }
    }
}

/// The backend a new store at `location` is made through: a local one
/// with private files until the store's own mode is known.
fn new_backend(location: &Location, open: &OpenOptions) -> Result<Backend, StoreError> {
    match location {
        Location::Local(root) => Ok(Backend::local(root, PRIVATE)),
        Location::S3(url) => Ok(Backend::s3(url, open.remote)?),
    }
}

/// The keys of the store `config` describes: unlocked with the passphrase
/// (once: `init` hands over the ones it made), none for a plain store,
/// which refuses a passphrase it was given.
fn unlock(
    backend: &Backend,
    config: &Config,
    options: &OpenOptions,
    known: Option<Unlocked>,
) -> Result<Option<Unlocked>, StoreError> {
    if !config.is_encrypted() {
        if options.password_given() {
            return Err(KeyError::NotEncrypted(backend.location()).into());
        }
        return Ok(None);
    }
    if let Some(keys) = known {
        return Ok(Some(keys));
    }
    let check = keys::Check::of(config);
    Ok(Some(keys::unlock(backend, &options.password, &check)?))
}

/// The keys of a new encrypted store, made before anything is written:
/// a fresh master key under a new passphrase (asked twice on a
/// terminal), or another store's.
fn prepare_keys(
    location: &Location,
    init: &InitOptions,
    open: &OpenOptions,
) -> Result<Option<Prepared>, StoreError> {
    match &init.keys {
        NewKeys::Plain => Ok(None),
        NewKeys::Fresh(cost) => {
            let what = format!("the new store {location}");
            let phrase = passphrase::read_new(&open.password, &what).map_err(|e| match e {
                passphrase::PassphraseError::NoSource(_) => {
                    KeyError::NewStoreNeedsPassword(location.to_string())
                }
                other => KeyError::from(other),
            })?;
            Ok(Some(Prepared::fresh(&phrase, *cost)?))
        }
        NewKeys::Shared(prepared) => Ok(Some(prepared.clone())),
    }
}

/// Writes the new store's key files, then its config (which makes it a
/// store); if the config cannot be created, the key files go again (see
/// [`unwrite_keys`]). Once it is a store, removes the `leftovers` of an
/// init that did not finish; returns what to tell the operator of that.
fn create_store(
    backend: &Backend,
    location: &Location,
    config: &Config,
    keys: Option<&Prepared>,
    leftovers: &Leftovers,
) -> Result<Vec<String>, StoreError> {
    if let Some(keys) = keys {
        keys.write(backend)?;
        crate::crash::point("init-keys-written");
    }
    let created = create_config(backend, location, config);
    if let (Err(_), Some(keys)) = (&created, keys) {
        unwrite_keys(backend, location, keys);
    }
    let own: Vec<&str> = keys.iter().flat_map(|k| k.ids()).collect();
    created.map(|()| leftovers.remove(backend, &own))
}

/// Deletes the key files `keys` wrote after the config could not be
/// created, unless a store is there whose master key is theirs: `copy`
/// gives a new target the source's key files, and of two copies racing to
/// the same target the loser deleted the winner's only key file. What
/// cannot be read stays too: a dead key file costs an open some time, a
/// store's lost one its data.
fn unwrite_keys(backend: &Backend, location: &Location, keys: &Prepared) {
    let keep = match read_config(backend, location) {
        Err(StoreError::NotAStore { .. }) => false,
        Err(_) => true,
        Ok(config) => {
            let ours = keys.unlocked.master.check_for(&config.id);
            (config.encryption.as_ref()).is_some_and(|e| e.key_check == ours)
        }
    };
    if !keep {
        keys.unwrite(backend);
    }
}

fn new_config(
    location: &Location,
    init: &InitOptions,
    keys: Option<&Prepared>,
) -> Result<Config, StoreError> {
    let id = random_id()?;
    let encryption = keys.map(|k| Encryption::current(k.unlocked.master.check_for(&id)));
    let config = Config::new(
        id,
        SnapshotTime::now().to_string(),
        init.compression,
        init.pack,
        init.sqlite,
        encryption,
    );
    config.validate().map_err(|e| StoreError::Config {
        location: location.clone(),
        source: ConfigError::Corrupt(e),
    })?;
    Ok(config)
}

fn init_local(
    root: &Path,
    location: &Location,
    backend: &Backend,
    config: &Config,
    keys: Option<&Prepared>,
    leftovers: &Leftovers,
) -> Result<Vec<String>, StoreError> {
    let created_root = !root.exists();
    let local = Local::new(root, PRIVATE);
    let made = backend
        .prepare(false)
        .map_err(StoreError::from)
        .and_then(|()| ensure_home_layout(root, false))
        // The config goes last and never replaces one: a concurrent init
        // of the same directory loses cleanly with `Exists`.
        .and_then(|()| create_store(backend, location, config, keys, leftovers));
    if let Err(e) = &made
        && !matches!(e, StoreError::Exists { .. })
    {
        local.unprepare(created_root);
    }
    made
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

fn open_local(
    root: &Path,
    location: &Location,
    options: OpenOptions,
    known: Option<Unlocked>,
) -> Result<Store, StoreError> {
    if !root.exists() {
        return Err(StoreError::Missing {
            location: location.clone(),
        });
    }
    let config = read_config(&Backend::local(root, PRIVATE), location)?;
    let backend = Backend::local(root, store_file_mode(root, location)?);
    // Before anything is written: a wrong passphrase changes nothing.
    let keys = unlock(&backend, &config, &options, known)?;
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
        // Looked at, never acted on: a dry-run prune plans as the real one.
        LockMode::Read => space::is_short(root),
        LockMode::Shared => space::keep_reserve(root, mode, false, &mut notices)?,
        LockMode::Exclusive => space::keep_reserve(root, mode, true, &mut notices)?,
    };
    let staging = Staging::new(root.join("tmp"), mode);
    // An encrypted store's catalog and scratch files are plaintext: they
    // live in the cache directory, never under the store.
    let outside = match &keys {
        Some(_) => Some(cache_home(options.cache_dir.as_deref(), &config.id)?),
        None => None,
    };
    if let Some(dir) = &outside {
        ensure_cache_layout(dir, reading)?;
    }
    let parts = Parts {
        location,
        home: root,
        catalog_home: outside.as_deref().unwrap_or(root),
        backend,
        scratch: outside
            .as_ref()
            .map_or_else(|| staging.clone(), |d| Staging::new(d.join("tmp"), PRIVATE)),
        staging,
        cache: None,
        write_nothing: options.write_nothing,
        keys,
    };
    refuse_catalog_in_use(&options, parts.catalog_home)?;
    finish(parts, config, lock, notices, short_of_space)
}

fn open_remote(
    url: &S3Url,
    location: &Location,
    options: OpenOptions,
    known: Option<Unlocked>,
) -> Result<Store, StoreError> {
    let backend = Backend::s3(url, options.remote)?;
    let config = read_config(&backend, location)?;
    let keys = unlock(&backend, &config, &options, known)?;
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
        catalog_home: &home,
        backend,
        scratch: staging.clone(),
        staging,
        cache: Some(PackCache::new(&home)),
        write_nothing: options.write_nothing,
        keys,
    };
    refuse_catalog_in_use(&options, parts.catalog_home)?;
    let store = finish(parts, config, lock, notices, false)?;
    store.tidy_pack_cache()?;
    Ok(store)
}

/// Where a store's pieces are.
struct Parts<'a> {
    location: &'a Location,
    home: &'a Path,
    /// Where the catalog is: the home, or the cache directory of an
    /// encrypted local store.
    catalog_home: &'a Path,
    backend: Backend,
    staging: Staging,
    scratch: Staging,
    cache: Option<PackCache>,
    write_nothing: bool,
    keys: Option<Unlocked>,
}

/// Refuses a catalog in `catalog_home` that another store this process
/// has open uses (`options.catalog_in_use`), before it is opened: opening
/// syncs it with this store's index objects, which would rewrite the other
/// store's. A store copied with `cp -a` or `rsync` keeps its id, and a
/// cache directory is named by it.
fn refuse_catalog_in_use(options: &OpenOptions, catalog_home: &Path) -> Result<(), StoreError> {
    let Some(in_use) = &options.catalog_in_use else {
        return Ok(());
    };
    let path = catalog_home.join(CATALOG);
    // However each was spelled (`./.cache`, a symlink): the directories.
    let canonical = |p: &Path| p.parent().and_then(|dir| std::fs::canonicalize(dir).ok());
    let same = *in_use == path || canonical(in_use).is_some_and(|a| Some(a) == canonical(&path));
    match same {
        true => Err(StoreError::CatalogInUse { path }),
        false => Ok(()),
    }
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
        catalog_home,
        backend,
        staging,
        scratch,
        cache,
        write_nothing,
        keys,
    } = parts;
    let backend = match &keys {
        Some(k) => backend.with_vault(k.vault.clone()),
        None => backend,
    };
    let mut config = config;
    config.chunker.seed = backend.vault().chunker_seed();
    let access = match (lock.mode(), lock.unlocked()) {
        (_, Some(_)) => catalog_file::Access::ReadOnly,
        (LockMode::Read, None) if write_nothing => catalog_file::Access::ReadOnly,
        (LockMode::Read, None) => catalog_file::Access::Read,
        _ => catalog_file::Access::Write,
    };
    let opened = catalog_file::open(catalog_home, &backend, backend.file_mode(), access)?;
    notices.extend(opened.notices);
    Ok(Store {
        location: location.clone(),
        home: home.to_owned(),
        backend,
        staging,
        scratch,
        keys,
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
                "no cache directory for this store's catalog (a remote or encrypted store keeps it outside the store): pass --cache-dir DIR or set CAIRN_CACHE_DIR (HOME is not set)",
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
