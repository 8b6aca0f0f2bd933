//! The store behind a mount and its snapshot list, kept fresh.
//!
//! The store is opened as every reader opens it (shared lock, catalog
//! brought up to date with the store's index objects), and the lock is
//! released at once: a mount lives for hours, and a shared lock on a local
//! store would keep every prune and repair out for as long. What a prune
//! deletes meanwhile then fails to read (verified, never other bytes).
//! When the namespace is listed and the list is older than [`REFRESH`],
//! the store is opened again the same way, which picks up new snapshots
//! and, on a remote store, the index objects of other hosts' snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;

use super::names::Namespace;
use super::{MountError, Warn};
use crate::snapshot::select::Filter;
use crate::store::{Location, OpenOptions, Store};

/// How old the snapshot list may get before a listing reads it again.
pub const REFRESH: Duration = Duration::from_secs(3);

/// The open store and the namespace of its snapshots.
pub struct Source {
    location: Location,
    options: OpenOptions,
    filter: Filter,
    warn: Arc<Warn>,
    /// The store, unlocked.
    pub store: Store,
    /// Its snapshots, named.
    pub names: Namespace,
    listed: Instant,
}

impl Source {
    /// Opens the store at `location` and lists the snapshots `filter` keeps.
    pub fn open(
        location: &Location,
        options: OpenOptions,
        filter: Filter,
        warn: Arc<Warn>,
    ) -> Result<Self, MountError> {
        let (store, names) = open_and_list(location, &options, &filter, &*warn)?;
        Ok(Self {
            location: location.clone(),
            options,
            filter,
            warn,
            store,
            names,
            listed: Instant::now(),
        })
    }

    /// Reads the snapshot list again if it is older than [`REFRESH`]. A
    /// failure (a prune holds the store, the network is down) keeps the
    /// old list and says why.
    pub fn refresh_if_stale(&mut self) {
        if self.listed.elapsed() < REFRESH {
            return;
        }
        self.listed = Instant::now();
        match open_and_list(&self.location, &self.options, &self.filter, &*self.warn) {
            Ok((store, names)) => {
                self.store = store;
                self.names = names;
            }
            Err(e) => (self.warn)(&format!(
                "could not read the snapshot list again ({e}); showing the one read before"
            )),
        }
    }
}

fn open_and_list(
    location: &Location,
    options: &OpenOptions,
    filter: &Filter,
    warn: &Warn,
) -> Result<(Store, Namespace), MountError> {
    let mut store = Store::open(location, options.clone())?;
    store.release_lock();
    for notice in store.notices() {
        warn(notice);
    }
    let list = store.snapshots()?;
    for (key, cause) in &list.unreadable {
        warn(&format!("{key} is damaged ({cause}); it is not shown"));
    }
    let names = Namespace::build(list.snapshots, filter, TimeZone::system());
    Ok((store, names))
}
