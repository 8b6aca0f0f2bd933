//! The store's compression dictionaries (`dictionaries/N`), each read once
//! per process and then shared by every reader on every thread: a pack
//! entry names its dictionary by number, and the restore of a database
//! decodes a hundred thousand frames with the same one.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Backend, BackendError, Result};
use crate::compress::Dictionary;

/// Where dictionaries live.
pub const DICTIONARIES: &str = "dictionaries/";
/// No dictionary object is larger than this (a dictionary is at most
/// 112 KiB; the limit leaves room for a seal and a later layout).
const MAX_OBJECT: u64 = 1 << 20;

/// The object of dictionary `number`.
pub fn key(number: u16) -> String {
    format!("{DICTIONARIES}{number}")
}

/// Dictionaries already read, and those found missing or damaged (asked
/// for again by every blob that needs them, they would be read again and
/// again).
#[derive(Debug, Default)]
pub(super) struct Loaded(Mutex<HashMap<u16, Outcome>>);

/// A dictionary as read, or why it could not be.
type Outcome = std::result::Result<Arc<Dictionary>, Failed>;

impl Loaded {
    /// The cache; a thread that panicked holding it left it whole (each
    /// change is one insert or remove).
    fn lock(&self) -> MutexGuard<'_, HashMap<u16, Outcome>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a dictionary could not be had, kept to answer later askers alike.
#[derive(Debug, Clone)]
struct Failed {
    location: String,
    kind: io::ErrorKind,
    message: String,
}

impl Failed {
    fn of(e: &BackendError) -> Self {
        Self {
            location: e.location.clone(),
            kind: e.source.kind(),
            message: e.source.to_string(),
        }
    }

    fn error(&self) -> BackendError {
        BackendError {
            location: self.location.clone(),
            source: io::Error::new(self.kind, self.message.clone()),
        }
    }
}

impl Backend {
    /// Dictionary `number`, read from the store on first use. A missing or
    /// damaged one is an error naming its key (`InvalidData` for damage).
    pub fn dictionary(&self, number: u16) -> Result<Arc<Dictionary>> {
        let mut loaded = self.dictionaries.lock();
        if let Some(known) = loaded.get(&number) {
            return known.clone().map_err(|f| f.error());
        }
        let read = self.read_dictionary(number);
        match &read {
            Ok(d) => drop(loaded.insert(number, Ok(d.clone()))),
            Err(e) if e.is_not_found() || e.source.kind() == io::ErrorKind::InvalidData => {
                loaded.insert(number, Err(Failed::of(e)));
            }
            Err(_) => {}
        }
        read
    }

    /// Dictionary `number` if the store has it.
    pub fn find_dictionary(&self, number: u16) -> Result<Option<Arc<Dictionary>>> {
        match self.dictionary(number) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `made` as `dictionaries/N` unless that exists, and returns
    /// the dictionary the store holds under `N` afterwards: `made`, or the
    /// one another host created first (which every writer then shares).
    pub fn publish_dictionary(&self, made: Dictionary) -> Result<Arc<Dictionary>> {
        let number = made.number();
        match self.create_sealed(&key(number), made.encode()) {
            Ok(()) => {
                let made = Arc::new(made);
                let mut loaded = self.dictionaries.lock();
                loaded.insert(number, Ok(made.clone()));
                Ok(made)
            }
            // Another host's (an object of another size may not come back
            // as "exists"): if one is there and checks out, it is the one.
            Err(e) => {
                self.forget_dictionary(number);
                match self.find_dictionary(number) {
                    Ok(Some(there)) => Ok(there),
                    _ => Err(e),
                }
            }
        }
    }

    /// The numbers of the store's dictionaries, lowest first.
    pub fn dictionary_numbers(&self) -> Result<Vec<u16>> {
        let mut numbers: Vec<u16> = self
            .list(DICTIONARIES)?
            .iter()
            .filter_map(|o| number_of(o.key.strip_prefix(DICTIONARIES)?))
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Drops what is known of dictionary `number` (a missing one another
    /// host has since made, say), so the next use reads it again.
    pub fn forget_dictionary(&self, number: u16) {
        let mut loaded = self.dictionaries.lock();
        loaded.remove(&number);
    }

    fn read_dictionary(&self, number: u16) -> Result<Arc<Dictionary>> {
        let key = key(number);
        let plain = self.get_opened(&key, MAX_OBJECT)?;
        Dictionary::decode(number, &plain)
            .map(Arc::new)
            .map_err(|e| self.at(&key)(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))
    }
}

/// The number a dictionary's name spells: decimal digits without a leading
/// zero, 1 to 65535 (anything else there is not a dictionary: `+5` and
/// `05` would otherwise pass for 5).
fn number_of(name: &str) -> Option<u16> {
    let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    if !digits || name.starts_with('0') {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_decimal_names_are_dictionaries() {
        assert_eq!(number_of("1"), Some(1));
        assert_eq!(number_of("65535"), Some(65535));
        for name in ["0", "01", "+5", "-1", "65536", "", "1.tmp", " 1"] {
            assert_eq!(number_of(name), None, "{name}");
        }
    }
}
