//! Planning a prune: mark, size, choose, find unreferenced packs. Reads
//! only (a dry run stops here); the plan carries the reason for each pack.

use std::collections::HashSet;
use std::time::Instant;

use super::{LeftAlone, Plan, PruneError, PruneOptions, UnreferencedPack, choose, journal, lease};
use crate::id::PackId;
use crate::pack::{self, PackError};
use crate::progress::Progress;
use crate::reach::{self, Checks, LiveSet, Trouble};
use crate::snapshot::{self, Snapshot};
use crate::store::Store;

/// Works out what to delete and repack.
pub fn plan(
    store: &mut Store,
    options: &PruneOptions,
    progress: &Progress,
) -> Result<Plan, PruneError> {
    // A store this process does not hold alone (a remote one, or a local
    // one other processes have open) is pruned in two phases under the
    // prune lease, beside snapshots; one held exclusively at once.
    let shared = match options.dry_run || store.is_held_exclusively() {
        true => None,
        false => Some((
            lease::Lease::acquire(store.backend(), &options.host)?,
            options.grace,
        )),
    };
    if shared.is_some() {
        crate::crash::point("prune-leased");
    }
    let interrupted = journal::read(store.backend())?.map(|j| match j {
        Ok(j) => format!("started {}", j.started),
        Err(e) => e,
    });
    let snapshots = remaining_snapshots(store, options)?;
    // A snapshot writes its index objects before its record: synced after
    // the listing, the catalog knows every blob a listed snapshot needs
    // (another host may have committed one since this store was opened).
    if store.backend().is_remote() {
        let backend = store.backend().clone();
        crate::catalog::sync::sync(store.catalog_mut(), &backend)
            .map_err(crate::store::StoreError::from)?;
    }
    let store = &*store;
    // Marking reads trees and scans every blob row once: a large cache
    // only held the scanned pages (a prune of 200k small files that
    // repacks nothing peaked at 28 MiB, 19 with the small one). The
    // repack's reads of each pack's rows keep it; only the commit, which
    // writes many rows, takes the large one (execute.rs).
    store.catalog().use_small_cache()?;
    let started = Instant::now();
    let live = mark(store, &snapshots, Checks::Marks, progress)?;
    let mark_secs = started.elapsed().as_secs_f64();
    let packs = store.catalog().packs()?;
    let frame = choose::pack_frame(store.backend().vault().overhead());
    let rule = repack_rule(store, options);
    let choice = choose::choose(store.catalog(), &packs, &live, rule, frame)?;
    if choice.blobs.lack_some_of(&live) {
        // A marked prefix no catalog row has: a blob the snapshots need is
        // missing. Which one, the slow way: a lookup of each.
        progress.restart();
        mark(store, &snapshots, Checks::Blobs, progress)?;
    }
    let cataloged: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
    let (unreferenced, left_alone) = unreferenced_packs(store, &cataloged)?;
    Ok(Plan {
        snapshots: snapshots.len() as u64,
        packs: packs.len() as u64,
        choice,
        unreferenced,
        left_alone,
        interrupted,
        mark_secs,
        live,
        hypothetical: !options.assume_forgotten.is_empty(),
        shared,
    })
}

/// The rule the options give, except on a disk short of space: repacking
/// writes the new packs before it deletes the old, so then only packs with
/// nothing live are deleted, and a later prune with room repacks.
fn repack_rule(store: &Store, options: &PruneOptions) -> choose::RepackRule {
    if store.is_short_of_space() {
        choose::RepackRule::Nothing
    } else {
        options.repack
    }
}

/// Marks what `snapshots` reach; any blob they need that the catalog lacks
/// (looked for as `checks` say), or any tree that does not read, stops
/// prune: it must not decide what is dead on the word of a damaged store.
fn mark(
    store: &Store,
    snapshots: &[Snapshot],
    checks: Checks,
    progress: &Progress,
) -> Result<LiveSet, PruneError> {
    let reached = reach::mark(store, snapshots, checks, progress)?;
    let mut missing = reached.troubles.iter().filter_map(|(s, t)| match t {
        Trouble::Missing(blob) => Some((s, blob)),
        Trouble::BadTree(..) | Trouble::BadEntry { .. } => None,
    });
    if let Some((snapshot, blob)) = missing.next() {
        return Err(PruneError::MissingBlobs {
            count: 1 + missing.count() as u64,
            blob: *blob,
            snapshot: snapshot.to_hex(),
        });
    }
    if let Some((snapshot, Trouble::BadTree(_, source))) = reached.troubles.into_iter().next() {
        return Err(PruneError::Unreadable {
            snapshot: snapshot.to_hex(),
            source: Box::new(source),
        });
    }
    Ok(reached.live)
}

/// The snapshots whose data stays: all of them but those assumed
/// forgotten. A damaged record stops prune (what it needs is unknown)
/// unless it is one of those.
fn remaining_snapshots(store: &Store, options: &PruneOptions) -> Result<Vec<Snapshot>, PruneError> {
    let list = store.snapshots()?;
    let forgotten = |key: &str| {
        snapshot::id_of_key(key).is_some_and(|id| options.assume_forgotten.contains(&id))
    };
    if let Some((key, cause)) = list.unreadable.into_iter().find(|(key, _)| !forgotten(key)) {
        return Err(PruneError::DamagedRecord { key, cause });
    }
    let mut snapshots = list.snapshots;
    snapshots.retain(|s| !options.assume_forgotten.contains(&s.id));
    Ok(snapshots)
}

/// Finds pack files the catalog does not name. Each one's header is read:
/// a pack whose header decodes is debris of an interrupted run (complete,
/// renamed into place, never cataloged) and is deleted; one whose header
/// does not decode is damage, left for `verify` to report.
fn unreferenced_packs(
    store: &Store,
    cataloged: &HashSet<PackId>,
) -> Result<(Vec<UnreferencedPack>, Vec<LeftAlone>), PruneError> {
    let backend = store.backend();
    let listing = pack::list::list(backend)?;
    let mut left: Vec<LeftAlone> = listing
        .strays
        .into_iter()
        .map(|(key, why)| LeftAlone { key, why })
        .collect();
    let mut unreferenced = Vec::new();
    for id in listing
        .packs
        .into_iter()
        .filter(|id| !cataloged.contains(id))
    {
        match pack::reader::read_header(backend, &id) {
            Ok((_, size)) => unreferenced.push(UnreferencedPack { id, size }),
            Err(PackError::Format { source, .. }) => left.push(LeftAlone {
                key: pack::key(&id),
                why: format!("not in the catalog and damaged: {source}"),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((unreferenced, left))
}
