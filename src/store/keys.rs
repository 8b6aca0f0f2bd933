//! The key files of an encrypted store (`keys/ID`): unlocking the store
//! with a passphrase, and adding, listing and removing passphrases. Each
//! change is one object created or deleted, so a crash leaves either the
//! old set of keys or the new one (store-format/encryption.md).

use crate::backend::{Backend, BackendError};
use crate::crypt::keyfile::{KdfCost, KeyFile, KeyFileError, Maker};
use crate::crypt::passphrase::{self, PassphraseError, Source};
use crate::crypt::{CryptError, MasterKey, Vault, random};
use crate::when::SnapshotTime;

/// Where key files live.
pub const PREFIX: &str = "keys/";
/// Largest key file read.
const MAX_KEY_LEN: u64 = 64 * 1024;

/// Why keys could not be used or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No passphrase opens any key file.
    #[error("wrong password for store {0}")]
    WrongPassword(String),
    /// The store has no key files.
    #[error("store {0} is encrypted but has no key files under keys/: it cannot be opened")]
    NoKeys(String),
    /// A new encrypted store and no way to ask for its passphrase.
    #[error(
        "the new store {0} is to be encrypted and needs a password: give it with --password-file FILE, CAIRN_PASSWORD_FILE, --password-command CMD or CAIRN_PASSWORD_COMMAND (there is no terminal to ask on), or pass --no-encrypt for an unencrypted store"
    )]
    NewStoreNeedsPassword(String),
    /// `key add` or `key passwd` and no way to ask for the new password.
    #[error(
        "the new password is needed: give it with --new-password-file FILE or --new-password-command CMD (there is no terminal to ask on)"
    )]
    NewPasswordNeeded,
    /// A password was given for a plain store.
    #[error(
        "store {0} is not encrypted, but a password was given (--password-file, --password-command or their CAIRN_ variables): refusing, in case its config.json was altered to turn encryption off"
    )]
    NotEncrypted(String),
    /// No key matches the id given.
    #[error("no key {0} in this store (see `cairn key list`)")]
    UnknownKey(String),
    /// More than one key matches the prefix given.
    #[error("key prefix {0} matches more than one key")]
    Ambiguous(String),
    /// Removing the last key would lock everyone out.
    #[error(
        "key {0} is the store's only key that reads: removing it would make the store unreadable; add another first"
    )]
    LastKey(String),
    /// The key to remove is the one this password opened.
    #[error(
        "key {0} is the one your password opened: removing it would lock you out; change its password with `cairn key passwd`, or remove it with another key's password"
    )]
    CurrentKey(String),
    /// No key opened, and one could not even be tried (its derivation
    /// needs more memory than this process may have): it may be the
    /// password's.
    #[error(
        "wrong password for store {location}, unless it is that of {key}, which could not be tried here: {cause}"
    )]
    Untried {
        /// The store.
        location: String,
        /// The key file not tried.
        key: String,
        /// Why.
        #[source]
        cause: KeyFileError,
    },
    /// `key passwd` to the password the key has already.
    #[error("the new password is the one key {0} has already: nothing changed")]
    SamePassword(String),
    /// `key add` of a password that opens a key already.
    #[error(
        "the new password already opens key {0}: one password opens one key, so that `key passwd` retires it for good (see `cairn key list`)"
    )]
    PasswordInUse(String),
    /// A key file is damaged.
    #[error("{key}: {source}")]
    KeyFile {
        /// Its object key.
        key: String,
        /// What is wrong.
        #[source]
        source: KeyFileError,
    },
    /// No passphrase could be had.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// Making a key failed.
    #[error(transparent)]
    Crypt(#[from] CryptError),
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// An unlocked store's keys: what reads and writes it, and what a new
/// key file must wrap.
#[derive(Clone)]
pub struct Unlocked {
    /// The keys in effect.
    pub vault: Vault,
    /// The master key, to wrap for another passphrase.
    pub master: MasterKey,
    /// The key file that opened the store (its full id).
    pub key_id: String,
}

/// The keys of a store being created: made (or taken from another store)
/// before anything is written, so that a missing passphrase stops `init`
/// with nothing written.
#[derive(Clone)]
pub struct Prepared {
    /// The keys the new store opens with.
    pub unlocked: Unlocked,
    /// Its key files: id and bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Prepared {
    /// A fresh master key wrapped under `phrase`.
    pub fn fresh(phrase: &[u8], cost: KdfCost) -> Result<Self, KeyError> {
        let master = MasterKey::generate()?;
        let (key_id, file) = wrap(&master, phrase, cost)?;
        Ok(Self {
            unlocked: Unlocked {
                vault: Vault::of(&master),
                master,
                key_id: key_id.clone(),
            },
            files: vec![(key_id, file.encode())],
        })
    }

    /// Writes the key files.
    pub fn write(&self, backend: &Backend) -> Result<(), KeyError> {
        for (id, bytes) in &self.files {
            backend.create(&format!("{PREFIX}{id}"), bytes)?;
        }
        Ok(())
    }

    /// The ids of its key files.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(id, _)| id.as_str())
    }

    /// Deletes the key files again (the store's config could not be
    /// created: another init won).
    pub fn unwrite(&self, backend: &Backend) {
        for (id, _) in &self.files {
            let _ = backend.delete(&format!("{PREFIX}{id}"));
        }
    }
}

/// Opens an encrypted store with the passphrase from `source`: every key
/// file is tried (one argon2id derivation each).
/// Only a key whose master key matches `check` (the config's
/// `key_check` for `store_id`) is the store's.
pub fn unlock(backend: &Backend, source: &Source, check: &Check<'_>) -> Result<Unlocked, KeyError> {
    let location = backend.location();
    let keys = list(backend)?;
    if keys.ids().next().is_none() {
        return Err(KeyError::NoKeys(location));
    }
    let phrase = passphrase::read(source, &format!("store {location}"))?;
    let failed = match attempt(&keys.good, &phrase, check) {
        Ok(unlocked) => return Ok(unlocked),
        Err(failed) => failed,
    };
    // The passphrase may be that of a key that could not be tried, or of a
    // key file that is damaged: say so.
    if let Some((id, cause)) = failed {
        let key = format!("{PREFIX}{id}");
        return Err(KeyError::Untried {
            location,
            key,
            cause,
        });
    }
    match keys.damaged.into_iter().next() {
        Some((id, source)) => Err(KeyError::KeyFile {
            key: format!("{PREFIX}{id}"),
            source,
        }),
        None => Err(KeyError::WrongPassword(location)),
    }
}

/// What names a store's master key: its id and the config's `key_check`.
pub struct Check<'a> {
    /// The store's id.
    pub store_id: &'a str,
    /// `MasterKey::check_for(store_id)` of its master key.
    pub key_check: &'a str,
}

impl<'a> Check<'a> {
    /// The check of the store `config` describes (empty for a plain one).
    pub fn of(config: &'a super::Config) -> Self {
        let encryption = config.encryption.as_ref();
        Self {
            store_id: &config.id,
            key_check: encryption.map_or("", |e| e.key_check.as_str()),
        }
    }
}

/// The store's keys as `unlock` would find them with `phrase`, if any
/// of its keys opens.
pub fn unlock_with(
    keys: &[(String, KeyFile)],
    phrase: &[u8],
    check: &Check<'_>,
) -> Option<Unlocked> {
    attempt(keys, phrase, check).ok()
}

/// Tries `keys` with `phrase`; when none opens, the first that could not
/// be tried (its derivation asked for more memory than this process may
/// allocate, say), if one could not.
fn attempt(
    keys: &[(String, KeyFile)],
    phrase: &[u8],
    check: &Check<'_>,
) -> Result<Unlocked, Option<(String, KeyFileError)>> {
    let mut failed = None;
    for (id, file) in cheapest_first(keys) {
        match file.unwrap_with(phrase) {
            Ok(master) if master.check_for(check.store_id) == check.key_check => {
                let vault = Vault::of(&master);
                let key_id = id.clone();
                return Ok(Unlocked {
                    vault,
                    master,
                    key_id,
                });
            }
            Ok(_) | Err(KeyFileError::WrongPassword) => {}
            Err(e) => {
                failed.get_or_insert((id.clone(), e));
            }
        }
    }
    Err(failed)
}

/// `keys` in the order to try them: the cheapest derivation first (oldest
/// first among equals). Anyone who may write `keys/` may plant a key file
/// that asks for 4 GiB and 100 passes, dated before every other: tried
/// first, it cost every open minutes before the store's own key was tried.
fn cheapest_first(keys: &[(String, KeyFile)]) -> Vec<&(String, KeyFile)> {
    let mut order: Vec<_> = keys.iter().collect();
    order.sort_by_key(|(_, file)| file.kdf.cost().work());
    order
}

/// The key files of a store.
#[derive(Default)]
pub struct KeyFiles {
    /// The readable ones, by id, oldest first.
    pub good: Vec<(String, KeyFile)>,
    /// Those that do not decode: their ids and why. They open nothing, but
    /// must not stop the others from opening the store, nor vanish unsaid.
    pub damaged: Vec<(String, KeyFileError)>,
}

/// Every key file of the store.
pub fn list(backend: &Backend) -> Result<KeyFiles, KeyError> {
    let mut out = KeyFiles::default();
    for object in backend.list(PREFIX)? {
        let Some(id) = object.key.strip_prefix(PREFIX) else {
            continue;
        };
        let bytes = match backend.get(&object.key, MAX_KEY_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => continue,
            Err(e) if e.is_too_large() => {
                out.damaged.push((id.to_owned(), too_large()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match KeyFile::decode(&bytes) {
            Ok(file) => out.good.push((id.to_owned(), file)),
            Err(e) => out.damaged.push((id.to_owned(), e)),
        }
    }
    out.good
        .sort_by(|a, b| a.1.created.cmp(&b.1.created).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Why a file under `keys/` larger than [`MAX_KEY_LEN`] opens nothing: a
/// stray file there must not keep the store's real keys from opening it.
fn too_large() -> KeyFileError {
    KeyFileError::Corrupt(format!(
        "too large for a key file (more than {} KiB)",
        MAX_KEY_LEN / 1024
    ))
}

/// Whether `id` is a key file's name: 64 lowercase hex digits, as `wrap`
/// makes them.
pub fn is_key_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `keys/ID` is a key file that reads: `None` if it is gone since
/// it was listed (as a racing init that lost removes its own), `false` if
/// it is too large for one or does not decode.
pub fn reads(backend: &Backend, id: &str) -> Result<Option<bool>, KeyError> {
    match backend.get(&format!("{PREFIX}{id}"), MAX_KEY_LEN) {
        Ok(bytes) => Ok(Some(KeyFile::decode(&bytes).is_ok())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) if e.is_too_large() => Ok(Some(false)),
        Err(e) => Err(e.into()),
    }
}

impl KeyFiles {
    /// Every id, good or damaged.
    fn ids(&self) -> impl Iterator<Item = &String> {
        self.good
            .iter()
            .map(|(id, _)| id)
            .chain(self.damaged.iter().map(|(id, _)| id))
    }
}

/// A key file for `phrase` wrapping the master key `unlocked` holds (the
/// store `check` names), at the cost of the key that opened it; `None` if
/// one of `good` opens under `phrase` already.
pub fn key_for(
    good: &[(String, KeyFile)],
    unlocked: &Unlocked,
    phrase: &[u8],
    check: &Check<'_>,
) -> Result<Option<(String, KeyFile)>, KeyError> {
    if unlock_with(good, phrase, check).is_some() {
        return Ok(None);
    }
    let opened = good.iter().find(|(id, _)| *id == unlocked.key_id);
    let cost = opened.map_or_else(KdfCost::default, |(_, file)| file.kdf.cost());
    wrap(&unlocked.master, phrase, cost).map(Some)
}

/// Whether a new password is in use: the key it opens already, and one
/// that could not be tried (its derivation needs more memory than this
/// process may have), which might be its.
#[derive(Debug, Default)]
pub struct InUse {
    /// The key the password opens, if one does.
    pub opens: Option<String>,
    /// A key file not tried, and why.
    pub untried: Option<(String, String)>,
}

/// Which key `phrase`, a new password, opens already: one password opens
/// one key, else `key passwd` of one left the old password opening the
/// other. Every key is tried (skipping the costly ones let a password
/// onto a second key).
pub fn in_use(backend: &Backend, phrase: &[u8], check: &Check<'_>) -> Result<InUse, KeyError> {
    let good = list(backend)?.good;
    Ok(match attempt(&good, phrase, check) {
        Ok(unlocked) => InUse {
            opens: Some(unlocked.key_id),
            untried: None,
        },
        Err(failed) => InUse {
            opens: None,
            untried: failed.map(|(id, why)| (format!("{PREFIX}{id}"), why.to_string())),
        },
    })
}

/// Writes a new key file wrapping `master` under `phrase`; returns its id.
/// Callers refuse a password in use first ([`in_use`]).
pub fn add(
    backend: &Backend,
    master: &MasterKey,
    phrase: &[u8],
    cost: KdfCost,
) -> Result<String, KeyError> {
    let (id, file) = wrap(master, phrase, cost)?;
    backend.create(&format!("{PREFIX}{id}"), &file.encode())?;
    Ok(id)
}

/// A new key file for `master` under `phrase`, and its new id.
fn wrap(master: &MasterKey, phrase: &[u8], cost: KdfCost) -> Result<(String, KeyFile), KeyError> {
    let file =
        KeyFile::wrap(master, phrase, cost, maker()).map_err(|source| KeyError::KeyFile {
            key: PREFIX.into(),
            source,
        })?;
    Ok((hex::encode(random::<32>()?), file))
}

/// Deletes key `prefix` (a unique prefix of its id); refuses `current`,
/// the key that opened the store (so a user never removes their own way
/// in: `key passwd` changes it), and the last key that reads. Returns the
/// full id.
pub fn remove(backend: &Backend, prefix: &str, current: &str) -> Result<String, KeyError> {
    let keys = list(backend)?;
    let id = find(keys.ids(), prefix)?;
    if id == current {
        return Err(KeyError::CurrentKey(short(&id)));
    }
    delete_keeping_one(backend, &keys, &id)?;
    Ok(id)
}

/// Deletes `old`, the key that opened the store, once `key passwd` has
/// written its replacement; `false` if it is gone already (a `key passwd`
/// with the same password on another host retired it first).
pub fn retire(backend: &Backend, old: &str) -> Result<bool, KeyError> {
    let keys = list(backend)?;
    if !keys.ids().any(|id| id == old) {
        return Ok(false);
    }
    delete_keeping_one(backend, &keys, old)?;
    Ok(true)
}

/// Deletes key file `id` unless no other key file that reads would be
/// left: damaged files and stray ones under `keys/` open nothing, so they
/// do not count. If another host removed the others at the same moment
/// and none that reads is left, the removed key is put back.
fn delete_keeping_one(backend: &Backend, keys: &KeyFiles, id: &str) -> Result<(), KeyError> {
    let key = format!("{PREFIX}{id}");
    // A damaged one opens nothing: no key that reads goes with it, and it
    // is not read to be put back (one too large cannot be).
    if keys.damaged.iter().any(|(damaged, _)| damaged == id) {
        return Ok(backend.delete(&key)?);
    }
    if !keys.good.iter().any(|(other, _)| other != id) {
        return Err(KeyError::LastKey(short(id)));
    }
    let bytes = backend.get(&key, MAX_KEY_LEN)?;
    backend.delete(&key)?;
    if list(backend)?.good.is_empty() {
        backend.create(&key, &bytes)?;
        return Err(KeyError::LastKey(short(id)));
    }
    Ok(())
}

/// Every key file's id and bytes, to give another store the same keys.
/// Only key files that read go: anything else under `keys/` (a README, a
/// damaged file) opens nothing, and a new target's survey would refuse it
/// when a copy killed after writing them runs again.
pub fn read_files(backend: &Backend) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let mut out = Vec::new();
    for object in backend.list(PREFIX)? {
        let Some(id) = object.key.strip_prefix(PREFIX).filter(|id| is_key_id(id)) else {
            continue;
        };
        match backend.get(&object.key, MAX_KEY_LEN) {
            Ok(bytes) if KeyFile::decode(&bytes).is_ok() => out.push((id.to_owned(), bytes)),
            Ok(_) => continue,
            Err(e) if e.is_too_large() || e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The one key whose id starts with `prefix`.
fn find<'a>(ids: impl Iterator<Item = &'a String>, prefix: &str) -> Result<String, KeyError> {
    let mut matching = ids.filter(|id| id.starts_with(prefix));
    match (matching.next(), matching.next()) {
        (Some(id), None) if !prefix.is_empty() => Ok(id.clone()),
        (Some(_), Some(_)) => Err(KeyError::Ambiguous(prefix.to_owned())),
        _ => Err(KeyError::UnknownKey(prefix.to_owned())),
    }
}

/// The first 8 hex digits of a key id, as `key list` shows it.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

fn maker() -> Maker {
    Maker {
        created: SnapshotTime::now().to_string(),
        host: crate::capture::default_host(),
        user: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| rustix::process::geteuid().as_raw().to_string()),
    }
}
