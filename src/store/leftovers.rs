//! What a location holds before `init` makes a store there, and taking
//! over from an init that did not finish.
//!
//! An encrypted init writes its key files before the `config.json` that
//! makes the location a store. Killed between the two, it left key files
//! that no config names: a local directory that every later init refused
//! as not empty, and, beside a remote store's own key, a dead one that
//! every open tried (an argon2id derivation each). The next encrypted init
//! notes such key files before it writes anything and removes them once
//! its own config is in place (a plain one is refused: the operator meant
//! an encrypted store there).
//!
//! Only where there is nothing else: init refuses a directory or prefix
//! holding any other object (a store whose config was lost, someone's
//! files) as not empty, and leaves every key file there, which may be the
//! only way to that store's data. Noted before this init writes its own
//! keys, a key file is another init's: one racing this one either creates
//! the config first (this one then removes nothing) or loses and removes
//! its own; `key add` needs the config. The exception is a key file this
//! init writes too, byte for byte: `copy` gives its new target the
//! source's key files, and a copy run again after one was killed finds
//! them; those are never removed.

use std::path::{Component, Path};

use super::keys::{self, PREFIX};
use super::{CONFIG, InitOptions, Location, NewKeys, StoreError};
use crate::backend::local::Local;
use crate::backend::{Backend, ObjectInfo};

/// The directory of key files: [`PREFIX`] without its slash.
const KEYS_DIR: &str = "keys";

/// What a location holds, for a new store.
#[derive(Debug)]
enum Holds {
    /// Nothing, or only the key files of an init that did not finish.
    Free(Leftovers),
    /// A store's `config.json`.
    Store,
    /// Something else, such as this file: someone's.
    Other(String),
}

/// The ids of the key files a new store's init removes once it exists.
#[derive(Debug, Default)]
pub struct Leftovers(Vec<String>);

/// The key files of an init that did not finish, if that and nothing
/// else is at `location`; a store there is `Exists`, anything else
/// `NotEmpty`, as are those key files for a plain init (the operator meant
/// an encrypted store there, and an encrypted init takes them over).
pub fn free_for(
    location: &Location,
    backend: &Backend,
    init: &InitOptions,
) -> Result<Leftovers, StoreError> {
    let not_empty = |found: String| StoreError::NotEmpty {
        location: location.clone(),
        found,
    };
    match survey(location, backend)? {
        Holds::Store => Err(StoreError::Exists {
            location: location.clone(),
        }),
        Holds::Other(found) => Err(not_empty(found)),
        Holds::Free(keys) if !keys.is_empty() && matches!(init.keys, NewKeys::Plain) => {
            Err(not_empty(
                "the key files of an encrypted init that did not finish, which an encrypted init takes over".into(),
            ))
        }
        Holds::Free(keys) => Ok(keys),
    }
}

/// What `location`, reached through `backend`, holds.
fn survey(location: &Location, backend: &Backend) -> Result<Holds, StoreError> {
    match location {
        Location::Local(root) => local(root, backend),
        Location::S3(_) => {
            let (objects, dirs) = backend.top_level()?.unwrap_or_default();
            remote(backend, &objects, &dirs)
        }
    }
}

/// What a local directory holds: walked until a file that is not under
/// `keys/` (empty directories are what an init killed before it wrote a
/// file leaves: it makes the 256 `packs/XX` first).
fn local(root: &Path, backend: &Backend) -> Result<Holds, StoreError> {
    if root.join(CONFIG).exists() {
        return Ok(Holds::Store);
    }
    let mut names = Vec::new();
    let mut other = None;
    let walked = Local::visit_files(root, &mut |file| match key_name(file) {
        Some(name) => {
            names.push(name.to_owned());
            true
        }
        None if is_staged(file) => true,
        None => {
            other = Some(file.display().to_string());
            false
        }
    });
    walked.map_err(|(path, source)| StoreError::Io { path, source })?;
    match other {
        Some(file) => Ok(Holds::Other(file)),
        None => key_files_only(backend, names),
    }
}

/// Whether `file` (relative to the store) is a file cairn staged in
/// `tmp/` (`cairn-XXXXXX.tmp`): an init killed while it wrote its config
/// leaves one, which the store's first prune removes.
fn is_staged(file: &Path) -> bool {
    let mut parts = file.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(dir)), Some(Component::Normal(name)), None) if dir == "tmp" => {
            name.to_str().is_some_and(crate::backend::is_temp_name)
        }
        _ => false,
    }
}

/// What a remote prefix holds, from its top level: a "directory" other
/// than `keys/`, or an object, is someone's (a console's zero-byte
/// "folder" object is left out by the listing).
fn remote(backend: &Backend, objects: &[ObjectInfo], dirs: &[String]) -> Result<Holds, StoreError> {
    if objects.iter().any(|o| o.key == CONFIG) {
        return Ok(Holds::Store);
    }
    if let Some(object) = objects.first() {
        return Ok(Holds::Other(object.key.clone()));
    }
    if let Some(dir) = dirs.iter().find(|d| d.trim_end_matches('/') != KEYS_DIR) {
        return Ok(Holds::Other(format!("{}/", dir.trim_end_matches('/'))));
    }
    if dirs.is_empty() {
        return Ok(Holds::Free(Leftovers::default()));
    }
    let names = backend.list(PREFIX)?.into_iter();
    let names = names.map(|o| o.key.strip_prefix(PREFIX).unwrap_or(&o.key).to_owned());
    key_files_only(backend, names.collect())
}

/// Free with `names` as leftovers if every one is a key file that reads
/// (directly under `keys/`, named as cairn names them); otherwise the
/// first that is not. One gone since it was listed is no leftover.
fn key_files_only(backend: &Backend, names: Vec<String>) -> Result<Holds, StoreError> {
    let mut found = Vec::new();
    for name in names {
        let reads = match keys::is_key_id(&name) {
            true => keys::reads(backend, &name)?,
            false => Some(false),
        };
        match reads {
            Some(true) => found.push(name),
            None => {}
            Some(false) => {
                let what = format!("{PREFIX}{name}, not a readable key file");
                return Ok(Holds::Other(what));
            }
        }
    }
    Ok(Holds::Free(Leftovers(found)))
}

impl Leftovers {
    /// Whether there are any.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes the key files, after the new store's config is in place,
    /// except those among `own` (the ids of the key files this init wrote);
    /// what it did, for the operator (a failure leaves the file, said).
    pub fn remove(&self, backend: &Backend, own: &[&str]) -> Vec<String> {
        let mut removed = Vec::new();
        let mut notices = Vec::new();
        for id in self.0.iter().filter(|id| !own.contains(&id.as_str())) {
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
            let list = removed.join(", ");
            let said = format!(
                "removed {} key file{s} left by an init that did not finish ({list})",
                removed.len()
            );
            notices.insert(0, said);
        }
        notices
    }
}

/// `NAME` if `file` is `keys/NAME`.
fn key_name(file: &Path) -> Option<&str> {
    let mut parts = file.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(dir)), Some(Component::Normal(name)), None) if dir == KEYS_DIR => {
            name.to_str()
        }
        _ => None,
    }
}
