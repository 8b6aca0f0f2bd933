//! Dictionaries as damage: every blob compressed with a store dictionary
//! needs it, so one that is missing or does not check out takes all of
//! them down. Each is read afresh from the store, whatever this process
//! read before.

use std::collections::BTreeSet;
use std::io;

use crate::backend::dictionaries::key;
use crate::id::BlobId;
use crate::store::{Store, StoreError};

/// A dictionary that cannot be used, and the cataloged blobs made with it.
#[derive(Debug)]
pub struct DictionaryDamage {
    /// `dictionaries/N`.
    pub key: String,
    /// Missing, or what is wrong with it.
    pub cause: String,
    /// The blobs that cannot be decoded without it.
    pub lost: Vec<BlobId>,
}

/// Reads every dictionary the store lists or the catalog's blobs name.
pub fn check(store: &Store) -> Result<Vec<DictionaryDamage>, StoreError> {
    let backend = store.backend();
    let used = store.catalog().dictionaries_used()?;
    let listed = backend.dictionary_numbers()?;
    let numbers: BTreeSet<u16> = used.iter().chain(&listed).copied().collect();
    let mut out = Vec::new();
    for number in numbers {
        backend.forget_dictionary(number);
        let cause = match backend.dictionary(number) {
            Ok(_) => continue,
            Err(e) if e.is_not_found() => {
                "missing: the blobs made with it cannot be decoded".into()
            }
            Err(e) if e.source.kind() == io::ErrorKind::InvalidData => e.source.to_string(),
            // Too large, a directory, unreachable: not usable either way.
            Err(e) => format!("cannot be read: {e}"),
        };
        let lost = if used.contains(&number) {
            store.catalog().blobs_with_dictionary(number)?
        } else {
            Vec::new()
        };
        out.push(DictionaryDamage {
            key: key(number),
            cause,
            lost,
        });
    }
    Ok(out)
}
