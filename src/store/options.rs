//! How a command asks for a store: the lock it takes, where its cache
//! is, where an encrypted store's passphrase comes from ([`OpenOptions`]);
//! and what a new store is made with ([`InitOptions`], [`NewKeys`]).

use std::path::PathBuf;
use std::time::Duration;

use super::keys;
use super::{LockMode, PackConfig, SqliteConfig};
use crate::backend::RemoteOptions;
use crate::compress::CompressionConfig;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Shared for captures and reads, exclusive for rewrites.
    pub lock: LockMode,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
    /// Where a remote store's cache goes (`STORE-ID/` is added); `None`
    /// for `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
    pub cache_dir: Option<PathBuf>,
    /// Connections and retries of a remote store.
    pub remote: RemoteOptions,
    /// Write nothing to the store at all (with [`LockMode::Read`]), not
    /// even to its catalog, a cache: it is read read-only, or copied for
    /// this run if it is incomplete (`snapshot --dry-run`).
    pub write_nothing: bool,
    /// Where the passphrase of an encrypted store comes from.
    pub password: crate::crypt::passphrase::Source,
    /// The catalog of another store this process has open (a copy's
    /// source), which this store must not use: see
    /// [`StoreError::CatalogInUse`](super::StoreError::CatalogInUse).
    pub catalog_in_use: Option<PathBuf>,
}

impl OpenOptions {
    /// `lock`, without waiting for it, with the default cache directory
    /// and network settings.
    pub fn new(lock: LockMode) -> Self {
        Self {
            lock,
            lock_wait: Duration::ZERO,
            cache_dir: None,
            remote: RemoteOptions::default(),
            write_nothing: false,
            password: crate::crypt::passphrase::Source::Prompt,
            catalog_in_use: None,
        }
    }

    /// Whether a passphrase source was given (not just a terminal to ask
    /// on): a plain store then refuses to open (see `KeyError::NotEncrypted`).
    pub fn password_given(&self) -> bool {
        self.password != crate::crypt::passphrase::Source::Prompt
    }
}

/// Parameters of a new store.
#[derive(Clone)]
pub struct InitOptions {
    /// zstd settings.
    pub compression: CompressionConfig,
    /// Pack size.
    pub pack: PackConfig,
    /// Database chunking.
    pub sqlite: SqliteConfig,
    /// Whether and how the store is encrypted.
    pub keys: NewKeys,
}

/// The keys of a new store.
#[derive(Clone)]
pub enum NewKeys {
    /// Not encrypted.
    Plain,
    /// A new master key under a new passphrase, derived at this cost.
    Fresh(crate::crypt::keyfile::KdfCost),
    /// Another store's keys (for `copy` to a new store): its key files as
    /// they are, so the same passphrases open both, and the same ids.
    Shared(keys::Prepared),
}

impl NewKeys {
    /// Whether the new store is encrypted.
    pub fn encrypts(&self) -> bool {
        !matches!(self, NewKeys::Plain)
    }
}
