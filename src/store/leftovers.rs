//! What an init that did not finish left, and a new init taking over.
//!
//! An encrypted init writes its key files before the `config.json` that
//! makes the location a store. Killed between the two, it left key files
//! that no config names: a local directory that every later init refused
//! as not empty, and, beside a remote store's own key, a dead one that
//! every open tried (an argon2id derivation each). The next init notes
//! such key files before it writes anything and removes them once its own
//! config is in place.
//!
//! Only where there is nothing else: init refuses a directory or prefix
//! holding any other object (a store whose config was lost, someone's
//! files) as not empty, and leaves every key file there, which may be the
//! only way to that store's data. And noted before this init
//! writes its own keys, none can be the new store's: an init racing this
//! one either creates the config first (this one then removes nothing) or
//! loses and removes its own; `key add` needs the config.

use std::path::{Component, Path};

use super::keys::{self, PREFIX};
use super::{CONFIG, StoreError};
use crate::backend::Backend;
use crate::backend::local::Local;

/// The ids of the key files a new store's init removes once it exists.
#[derive(Debug, Default)]
pub struct Leftovers(Vec<String>);

/// What local directory `root` holds for a new store: `None` if it holds
/// a file that is not a readable key file under `keys/`, and then it is
/// someone's; otherwise the key files an init that did not finish left
/// (none in an absent or empty directory, or one of directories only).
pub fn in_local(root: &Path, backend: &Backend) -> Result<Option<Leftovers>, StoreError> {
    let files = Local::files_under(root).map_err(|source| StoreError::Io {
        path: root.to_owned(),
        source,
    })?;
    if files.is_empty() {
        return Ok(Some(Leftovers::default()));
    }
    only_key_files(backend, files.iter().map(|f| key_name(f)))
}

/// What a remote prefix holds for a new store, as [`in_local`] says of a
/// directory. An object named `config.json` is left to the conditional
/// create, which refuses it as a store that is there.
pub fn in_remote(backend: &Backend) -> Result<Option<Leftovers>, StoreError> {
    let objects = backend.list("")?;
    if objects.is_empty() || objects.iter().any(|o| o.key == CONFIG) {
        return Ok(Some(Leftovers::default()));
    }
    only_key_files(backend, objects.iter().map(|o| o.key.strip_prefix(PREFIX)))
}

/// The readable key files, if every one of `names` is one of them (each
/// name `None` where the object is not under `keys/`).
fn only_key_files<'a>(
    backend: &Backend,
    mut names: impl Iterator<Item = Option<&'a str>>,
) -> Result<Option<Leftovers>, StoreError> {
    let readable = readable_key_ids(backend)?;
    let only_keys = names.all(|name| name.is_some_and(|n| readable.iter().any(|id| id == n)));
    Ok(only_keys.then_some(Leftovers(readable)))
}

impl Leftovers {
    /// Removes the key files, after the new store's config is in place;
    /// what it did, for the operator (a failure leaves the file, said).
    pub fn remove(&self, backend: &Backend) -> Vec<String> {
        let mut removed = Vec::new();
        let mut notices = Vec::new();
        for id in &self.0 {
            let key = format!("{PREFIX}{id}");
            match backend.delete(&key) {
                Ok(()) => removed.push(key),
                Err(e) => notices.push(format!(
                    "{key} was left by an init that did not finish and could not be removed: {e}; remove it by hand"
                )),
            }
        }
        if !removed.is_empty() {
            let s = if removed.len() == 1 { "" } else { "s" };
            notices.insert(
                0,
                format!(
                    "removed {} key file{s} left by an init that did not finish ({})",
                    removed.len(),
                    removed.join(", ")
                ),
            );
        }
        notices
    }
}

/// The ids of the key files that decode (a damaged one is not known to
/// be cairn's).
fn readable_key_ids(backend: &Backend) -> Result<Vec<String>, StoreError> {
    Ok(keys::list(backend)?.into_ids())
}

/// `NAME` if `file` is `keys/NAME`.
fn key_name(file: &Path) -> Option<&str> {
    let mut parts = file.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(dir)), Some(Component::Normal(name)), None)
            if dir == PREFIX.trim_end_matches('/') =>
        {
            name.to_str()
        }
        _ => None,
    }
}
