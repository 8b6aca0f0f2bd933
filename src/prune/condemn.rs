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

use crate::backend::{Backend, BackendError};
use crate::id::{IndexId, PackId};

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
    let key = format!("condemned/{}", IndexId::from(backend.vault().hash(&bytes)));
    backend.create_sealed(&key, bytes)?;
    crate::crash::point("prune-condemned");
    Ok(Some(key))
}

/// Every condemnation in the store, read in parallel. One that does not
/// decode is returned as an error: prune stops rather than guess.
pub fn read_all(backend: &Backend) -> Result<Vec<Condemnation>, BackendError> {
    let listed = backend.list("condemned/")?;
    listed
        .par_iter()
        .filter_map(|object| {
            let bytes = match backend.get_opened(&object.key, MAX_LEN) {
                Ok(bytes) => bytes,
                // Dropped by a prune since the listing.
                Err(e) if e.is_not_found() => return None,
                Err(e) => return Some(Err(e)),
            };
            let record: Record = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    return Some(Err(BackendError {
                        location: backend.location(),
                        source: std::io::Error::other(format!("{}: {e}", object.key)),
                    }));
                }
            };
            Some(Ok(Condemnation {
                key: object.key.clone(),
                written: object.modified.unwrap_or(SystemTime::UNIX_EPOCH),
                packs: record.packs,
            }))
        })
        .collect()
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

/// Drops every condemnation: for a prune that holds the store alone and
/// has just deleted every pack that holds nothing live.
pub fn drop_all(backend: &Backend) -> Result<(), BackendError> {
    for object in backend.list("condemned/")? {
        backend.delete(&object.key)?;
    }
    Ok(())
}
