//! Carrying the source's compression dictionaries into the target, so that
//! blobs made with them can be copied as they are stored. A target that
//! holds the same dictionary (under any number) keeps it; otherwise the
//! dictionary is stored there under its own number if free, else the next
//! free one, and the copied blobs are labelled with that number.

use std::collections::HashMap;
use std::io;

use crate::backend::{Backend, BackendError};
use crate::compress::Dictionary;
use crate::compress::dictionary::Renumbering;

/// Which store failed while dictionaries were carried.
#[derive(Debug)]
pub enum CarryError {
    /// Listing or reading the source's dictionaries.
    Source(BackendError),
    /// Reading or storing the target's.
    Target(BackendError),
}

/// Where each of `from`'s dictionaries is in `to`, storing those `to`
/// lacks. `named_in_to` are the numbers `to`'s own blobs name: never
/// given to another dictionary, even where the object is lost (putting
/// the original back must mend those blobs, not break the copied ones).
pub fn carry(from: &Backend, to: &Backend, named_in_to: &[u16]) -> Result<Renumbering, CarryError> {
    let mut map = HashMap::new();
    for number in from.dictionary_numbers().map_err(CarryError::Source)? {
        let dictionary = from.dictionary(number).map_err(CarryError::Source)?;
        let there = place(to, &dictionary, named_in_to).map_err(CarryError::Target)?;
        map.insert(number, there);
    }
    Ok(Renumbering::Into(map))
}

/// The number under which `to` holds `dictionary`'s bytes, storing them if
/// it has none. Another host may take a free number meanwhile: then the
/// next one is tried.
fn place(to: &Backend, dictionary: &Dictionary, named: &[u16]) -> Result<u16, BackendError> {
    let mut taken = to.dictionary_numbers()?;
    for &number in &taken {
        if to.dictionary(number)?.bytes() == dictionary.bytes() {
            return Ok(number);
        }
    }
    taken.extend_from_slice(named);
    let mut candidate = dictionary.number();
    loop {
        while taken.contains(&candidate) {
            candidate = next_number(to, candidate)?;
        }
        let renumbered = dictionary
            .renumbered(candidate)
            .map_err(|e| to.error_at("dictionaries/", io::Error::other(e.to_string())))?;
        if to.publish_dictionary(renumbered)?.bytes() == dictionary.bytes() {
            return Ok(candidate);
        }
        candidate = next_number(to, candidate)?;
    }
}

fn next_number(to: &Backend, number: u16) -> Result<u16, BackendError> {
    number.checked_add(1).ok_or_else(|| {
        to.error_at(
            "dictionaries/",
            io::Error::other("every dictionary number is taken"),
        )
    })
}
