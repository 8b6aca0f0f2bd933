//! Condemned packs: the first phase of a prune on a shared store.
//!
//! A prune does not delete a pack that holds nothing live: it condemns it,
//! by creating `condemned/ID` (JSON naming the packs; `ID` the BLAKE3 of
//! its bytes). A later prune, once the condemnation is older than the grace
//! period by the store's own clock (its Last-Modified), deletes those of
//! its packs that still hold nothing live, and drops the condemnation; a
//! pack that a snapshot committed meanwhile needs is spared. A snapshot
//! that reuses a blob from a condemned pack copies that blob into a pack of
//! its own before it commits (`capture::rescue`), so a snapshot that
//! started before the mark and commits after the deletion never needs a
//! deleted pack.

use std::collections::HashMap;
use std::time::SystemTime;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, ObjectInfo};
use crate::id::{IndexId, PackId, is_hex_prefix};

/// The record format of a condemnation.
const VERSION: u32 = 1;
/// Largest condemnation a reader accepts.
const MAX_LEN: u64 = 16 << 20;

/// One condemnation object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    version: u32,
    packs: Vec<PackId>,
}

/// A condemnation as read from the store.
#[derive(Debug, Clone)]
pub struct Condemnation {
    /// Its key.
    pub key: String,
    /// When it was written, by the store's clock.
    pub written: SystemTime,
    /// The packs it condemns.
    pub packs: Vec<PackId>,
}

/// Writes a condemnation of `packs` (none: nothing written).
pub fn condemn(backend: &Backend, packs: &[PackId]) -> Result<Option<String>, BackendError> {
    if packs.is_empty() {
        return Ok(None);
    }
    let record = Record {
        version: VERSION,
        packs: packs.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    let key = format!("{PREFIX}{}", IndexId::from(backend.vault().hash(&bytes)));
    backend.create_sealed(&key, bytes)?;
    crate::crash::point("prune-condemned");
    Ok(Some(key))
}

/// What `condemned/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// The condemnations.
    pub condemnations: Vec<Condemnation>,
    /// Keys under `condemned/` not named as cairn names a condemnation
    /// (someone's file): ignored, for the caller to warn about.
    pub strays: Vec<String>,
    /// Condemnations that do not open or decode: what to say of each.
    pub damaged: Vec<String>,
}

/// Every condemnation in the store, read in parallel. An object not named
/// as a condemnation is a stray, left out (it condemns nothing cairn
/// wrote: one stray stopped every snapshot of every host). One named so
/// that does not decode is an error: which packs a prune scheduled for
/// deletion is then unknown, and neither a snapshot's fence nor a prune
/// can guess.
pub fn read_all(backend: &Backend) -> Result<Listing, BackendError> {
    let listing = survey(backend)?;
    match listing.damaged.first() {
        Some(why) => Err(BackendError {
            location: backend.location(),
            source: std::io::Error::other(why.clone()),
        }),
        None => Ok(listing),
    }
}

/// Everything under `condemned/`, damaged condemnations included (for
/// verify, which reports them rather than stop).
pub fn survey(backend: &Backend) -> Result<Listing, BackendError> {
    let (named, strays): (Vec<ObjectInfo>, Vec<ObjectInfo>) =
        (backend.list(PREFIX)?.into_iter()).partition(|o| is_condemnation_name(&o.key));
    let read: Result<Vec<Option<Read>>, BackendError> =
        named.par_iter().map(|o| read_one(backend, o)).collect();
    let mut listing = Listing {
        strays: strays.into_iter().map(|o| o.key).collect(),
        ..Listing::default()
    };
    for one in read?.into_iter().flatten() {
        match one {
            Read::Whole(c) => listing.condemnations.push(c),
            Read::Damaged(why) => listing.damaged.push(why),
        }
    }
    Ok(listing)
}

/// The key prefix of condemnations.
const PREFIX: &str = "condemned/";

/// Whether `key` is `condemned/ID`, ID 64 lowercase hex digits.
fn is_condemnation_name(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|name| is_hex_prefix(name) && name.parse::<IndexId>().is_ok())
}

/// One condemnation as read.
enum Read {
    Whole(Condemnation),
    /// It does not open or decode: what to say of it.
    Damaged(String),
}

/// One condemnation; `None` if a prune dropped it since the listing.
fn read_one(backend: &Backend, object: &ObjectInfo) -> Result<Option<Read>, BackendError> {
    let key = &object.key;
    let opened = match backend.get_sealed(key, MAX_LEN) {
        Ok(opened) => opened,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let decoded = opened
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).map_err(|e| e.to_string()));
    Ok(Some(match decoded {
        Ok(record) => Read::Whole(Condemnation {
            key: key.clone(),
            written: object.modified.unwrap_or(SystemTime::UNIX_EPOCH),
            packs: record.packs,
        }),
        Err(cause) => Read::Damaged(damaged(key, &cause)),
    }))
}

/// What to say of a condemnation that does not decode, and what to do.
fn damaged(key: &str, cause: &str) -> String {
    format!(
        "{key} is a damaged condemnation ({cause}): which packs a prune scheduled for deletion is unknown, so snapshots and prunes stop; remove it (the object {key} of the store): that only cancels the deletions it scheduled, and the next prune condemns those packs again if nothing needs them"
    )
}

/// Every condemned pack, with the earliest time it was condemned.
pub fn condemned_packs(all: &[Condemnation]) -> HashMap<PackId, SystemTime> {
    let mut out: HashMap<PackId, SystemTime> = HashMap::new();
    for c in all {
        for pack in &c.packs {
            let when = out.entry(*pack).or_insert(c.written);
            *when = (*when).min(c.written);
        }
    }
    out
}

/// Drops every condemnation (strays stay, someone's): for a prune that holds the store alone and
/// has just deleted every pack that holds nothing live.
pub fn drop_all(backend: &Backend) -> Result<(), BackendError> {
    let listed = backend.list(PREFIX)?;
    for object in listed.iter().filter(|o| is_condemnation_name(&o.key)) {
        backend.delete(&object.key)?;
    }
    Ok(())
}
