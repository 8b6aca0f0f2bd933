//! Tree packs of a remote store, kept whole in its cache directory.
//!
//! Every snapshot compares each directory with its parent's tree, and
//! listings, diffs and restores read trees one by one: on S3 that was one
//! GET per directory. The first read of a tree from a pack fetches the
//! whole pack (one GET; tree packs hold thousands of trees), checks it
//! against its id, and keeps it under `packs/XX/ID.pack` in the cache;
//! later reads are local. Data packs are never cached. Packs the catalog no
//! longer names are removed from the cache as it is opened.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::backend::{Backend, BackendError};
use crate::id::PackId;
use crate::pack;
use crate::rawname::escaped;

use super::Staging;

/// Largest pack fetched whole into the cache (a tree pack of a store made
/// with `--pack-size 1GiB` is read by ranges instead).
const MAX_CACHED_PACK: u64 = 64 << 20;

/// The tree packs cached for one remote store.
#[derive(Debug, Clone)]
pub struct PackCache {
    dir: PathBuf,
    /// Held while a pack is fetched, by every clone (the threads of one
    /// process that read trees: prune's readers, a snapshot's read-ahead):
    /// threads that want the same uncached pack at once fetched it once
    /// each, up to five 64 MiB downloads held in memory together.
    fetching: Arc<Mutex<()>>,
}

impl PackCache {
    /// The cache under `home/packs`.
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("packs"),
            fetching: Arc::default(),
        }
    }

    fn path(&self, pack: &PackId) -> PathBuf {
        self.dir.join(pack::key(pack).trim_start_matches("packs/"))
    }

    fn at(path: &Path) -> impl FnOnce(io::Error) -> BackendError + '_ {
        move |source| BackendError {
            location: escaped(path).to_string(),
            source,
        }
    }

    /// `len` bytes at `offset` of tree pack `pack` of size `size`: from the
    /// cache, fetching the pack whole first if it is not there.
    pub fn read_range(
        &self,
        backend: &Backend,
        staging: &Staging,
        pack: &PackId,
        size: u64,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, BackendError> {
        let path = self.path(pack);
        if !path.exists() {
            if size > MAX_CACHED_PACK {
                return backend.get_range(&pack::key(pack), offset, len);
            }
            // One fetch at a time; a thread that waited finds it cached.
            let _fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            if !path.exists() {
                self.fetch(backend, staging, pack, size)?;
            }
        }
        let file = File::open(&path).map_err(Self::at(&path))?;
        crate::backend::local::read_range(&file, offset, len).map_err(Self::at(&path))
    }

    /// Downloads `pack` whole, checks it against its id (a damaged pack is
    /// never cached) and renames it into the cache.
    fn fetch(
        &self,
        backend: &Backend,
        staging: &Staging,
        pack: &PackId,
        size: u64,
    ) -> Result<(), BackendError> {
        use std::io::Write;
        let bytes = backend.get(&pack::key(pack), size)?;
        pack::check_whole(pack, &bytes)?;
        let path = self.path(pack);
        let dir = path.parent().unwrap_or(&self.dir).to_owned();
        fs::create_dir_all(&dir).map_err(Self::at(&dir))?;
        let mut file = staging.file()?;
        let tmp = file.path().to_owned();
        file.as_file_mut()
            .write_all(&bytes)
            .map_err(Self::at(&tmp))?;
        file.persist(&path).map_err(|e| Self::at(&path)(e.error))?;
        Ok(())
    }

    /// Removes cached packs that are not in `keep` (pruned since).
    pub fn retain(&self, keep: &HashSet<PackId>) {
        let Ok(dirs) = fs::read_dir(&self.dir) else {
            return;
        };
        for dir in dirs.flatten() {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let id = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".pack")?.parse::<PackId>().ok());
                if id.is_none_or(|id| !keep.contains(&id)) {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
    }
}
