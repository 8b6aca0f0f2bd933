//! The fence: the last check before a snapshot is committed, that every
//! blob its trees reference is still in the store and will stay there.
//!
//! A capture reuses blobs it did not store itself: an intact parent's
//! unchanged files and every unchanged subtree without any lookup, other
//! chunks after one catalog lookup made early in the run, and its own new
//! packs stay unreferenced until the record exists. No lock keeps a prune
//! from another host out meanwhile (durability.md, "Many hosts, one
//! store"), so before the record is written the fence:
//!
//! 1. brings the catalog up to date with the store's index objects: a pack
//!    a prune deleted has had its index object superseded, and syncing
//!    drops its rows (counted as removals);
//! 2. checks that the packs this run wrote still exist (a run stalled for
//!    longer than two grace periods could have lost one it had not yet
//!    indexed);
//! 3. reads the condemnations. If the removal count still stands where it
//!    stood before the capture looked anything up and no pack the catalog
//!    knows is condemned, nothing it reuses can be gone or going. Else
//!    every blob reachable from the new root tree is looked up: one with
//!    no copy left fails the snapshot (nothing committed), and one whose
//!    every copy is in a condemned pack is *rescued*, copied into a new
//!    pack of this run, so that the pack's deletion a grace period later
//!    cannot take it. Then the fence runs again.
//!
//! The record is written right after the fence passes: that one request
//! is all that must fit in the grace period.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::CaptureError;
use crate::catalog::Catalog;
use crate::catalog::prune::PackRow;
use crate::catalog::sync;
use crate::id::{BlobId, PackId, TreeId};
use crate::progress::Progress;
use crate::prune::condemn;
use crate::repack;
use crate::store::{Store, StoreError};

/// How many times the fence runs while the store keeps changing under it
/// before the snapshot gives up.
const ROUNDS: usize = 3;

/// What the fence established.
#[derive(Debug, Default)]
pub(crate) struct Fenced {
    /// The removal count at which every blob was known present, for
    /// marking the snapshot intact (`None`: the count could not be read).
    pub removals: Option<u64>,
    /// Blobs copied out of condemned packs.
    pub rescued_blobs: u64,
    /// Their stored bytes.
    pub rescued_bytes: u64,
    /// Keys under `condemned/` that are not condemnations: ignored.
    pub strays: Vec<String>,
}

/// Makes sure every blob reachable from `root` is stored and not about to
/// be deleted, given the removal count `started` read before the capture
/// looked anything up and the packs `own` this run wrote.
pub(crate) fn ensure_present(
    store: &Store,
    root: TreeId,
    started: Option<u64>,
    own: &[PackId],
) -> Result<Fenced, CaptureError> {
    let fenced = fence_rounds(store, root, started)?;
    // Last: a pack of this run gone is also found as missing blobs when
    // removals are counted, which names the cause better.
    check_own_packs(store, own)?;
    Ok(fenced)
}

fn fence_rounds(store: &Store, root: TreeId, started: Option<u64>) -> Result<Fenced, CaptureError> {
    let mut catalog = Catalog::open(&store.catalog_path()).map_err(StoreError::from)?;
    let mut fenced = Fenced {
        removals: started,
        ..Fenced::default()
    };
    for _ in 0..ROUNDS {
        sync::sync(&mut catalog, store.backend()).map_err(StoreError::from)?;
        let (condemned, strays) = condemned_and_strays(store, &catalog)?;
        fenced.strays = strays;
        let before = catalog.removals().map_err(StoreError::from)?;
        let unchanged = before.is_some() && before == fenced.removals;
        if unchanged && condemned.is_empty() {
            return Ok(fenced);
        }
        let doomed = check_reachable(store, &catalog, root, &condemned, !unchanged)?;
        fenced.removals = before;
        if !doomed.is_empty() {
            rescue(store, &mut catalog, &doomed, &condemned, &mut fenced)?;
            continue;
        }
        // Nothing removed or condemned while the walk ran: what it found
        // still holds.
        let after = catalog.removals().map_err(StoreError::from)?;
        if after == before && condemned_known(store, &catalog)?.is_subset(&condemned) {
            return Ok(fenced);
        }
    }
    Err(CaptureError::StoreChanging(ROUNDS))
}

/// Fails if a pack this run wrote is gone from the store.
fn check_own_packs(store: &Store, own: &[PackId]) -> Result<(), CaptureError> {
    let backend = store.backend();
    own.par_iter().try_for_each(|id| {
        let key = crate::pack::key(id);
        match backend.head(&key).map_err(StoreError::from)? {
            Some(_) => Ok(()),
            None => Err(CaptureError::PackGone(key)),
        }
    })
}

/// The condemned packs this catalog knows (those it does not know hold
/// nothing it could hand out).
pub(super) fn condemned_known(
    store: &Store,
    catalog: &Catalog,
) -> Result<HashSet<PackId>, CaptureError> {
    Ok(condemned_and_strays(store, catalog)?.0)
}

/// [`condemned_known`], and the stray keys under `condemned/` (not
/// condemnations: ignored, for a warning).
fn condemned_and_strays(
    store: &Store,
    catalog: &Catalog,
) -> Result<(HashSet<PackId>, Vec<String>), CaptureError> {
    let all = condemn::read_all(store.backend()).map_err(StoreError::from)?;
    let mut known = HashSet::new();
    for id in condemn::condemned_packs(&all.condemnations).into_keys() {
        if catalog.has_pack(&id).map_err(StoreError::from)? {
            known.insert(id);
        }
    }
    Ok((known, all.strays))
}

/// Walks the trees from `root` (each once) and looks up every tree and
/// chunk: fails on one with no copy left, and returns those whose every
/// copy is condemned, each with one pack holding it. With `check_packs`
/// (blobs were removed meanwhile) each pack relied on is also checked to
/// exist, once. Chunks are looked up at each reference, not remembered:
/// memory stays that of the tree ids and of the blobs to rescue.
fn check_reachable(
    store: &Store,
    catalog: &Catalog,
    root: TreeId,
    condemned: &HashSet<PackId>,
    check_packs: bool,
) -> Result<HashMap<BlobId, PackId>, CaptureError> {
    let mut check = Presence {
        store,
        catalog,
        condemned,
        check_packs,
        existing: HashSet::new(),
        doomed: HashMap::new(),
    };
    let mut seen = HashSet::new();
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        check.blob(&id.as_blob())?;
        let tree = store.load_tree(&id)?;
        for entry in &tree.entries {
            pending.extend(entry.subtree());
            for chunk in entry.chunks().unwrap_or_default() {
                check.blob(chunk)?;
            }
        }
    }
    Ok(check.doomed)
}

/// Blob lookups, remembering which packs were found to exist.
struct Presence<'a> {
    store: &'a Store,
    catalog: &'a Catalog,
    condemned: &'a HashSet<PackId>,
    check_packs: bool,
    existing: HashSet<PackId>,
    doomed: HashMap<BlobId, PackId>,
}

impl Presence<'_> {
    /// The blob's copies in the catalog, and its pack in the store.
    fn blob(&mut self, id: &BlobId) -> Result<(), CaptureError> {
        let gone = |why: String| CaptureError::BlobGone { blob: *id, why };
        let copies = self.catalog.copies(id).map_err(StoreError::from)?;
        let Some(first) = copies.first().copied() else {
            return Err(gone("no longer in the catalog".into()));
        };
        let lasting = copies.iter().find(|p| !self.condemned.contains(p)).copied();
        if lasting.is_none() {
            self.doomed.insert(*id, first);
        }
        let relied_on = lasting.unwrap_or(first);
        if !self.check_packs || self.existing.contains(&relied_on) {
            return Ok(());
        }
        let key = crate::pack::key(&relied_on);
        if (self.store.backend().head(&key))
            .map_err(StoreError::from)?
            .is_none()
        {
            return Err(gone(format!("its pack {key} is gone")));
        }
        self.existing.insert(relied_on);
        Ok(())
    }
}

/// Copies the `doomed` blobs out of their condemned packs into new packs
/// (none of them one of the `condemned`), indexes them and records them in
/// `catalog`.
fn rescue(
    store: &Store,
    catalog: &mut Catalog,
    doomed: &HashMap<BlobId, PackId>,
    condemned: &HashSet<PackId>,
    fenced: &mut Fenced,
) -> Result<(), CaptureError> {
    let sources: HashSet<PackId> = doomed.values().copied().collect();
    let rows: Vec<PackRow> = (catalog.packs().map_err(StoreError::from)?)
        .into_iter()
        .filter(|p| sources.contains(&p.id))
        .collect();
    let copied = repack::repack_unlike(
        store,
        &rows,
        &|id| doomed.contains_key(id),
        condemned,
        &Progress::default(),
    )
    .map_err(CaptureError::Rescue)?;
    let packs: Vec<crate::index::IndexedPack> = copied.packs.into_iter().map(Into::into).collect();
    for batch in crate::index::batches(&packs) {
        let id = crate::index::write(store.backend(), batch).map_err(StoreError::from)?;
        catalog.record_index(&id, batch).map_err(StoreError::from)?;
    }
    fenced.rescued_blobs += copied.blobs;
    fenced.rescued_bytes += copied.bytes;
    Ok(())
}
