//! Carrying out a plan: journal, repack, index the packs that stay, commit,
//! retire superseded index objects, delete, clean `tmp/`.
//!
//! Repacking is deterministic (a pack's id is the hash of its bytes), so a
//! rerun after a crash can write a pack identical to one the crashed run
//! left behind, which this run's plan lists as unreferenced or even as
//! cataloged-and-dead. Every pack the repack produces is therefore taken
//! out of what is deleted, and each deletion is checked against the
//! committed catalog first.

use std::collections::HashSet;
use std::time::Instant;

use super::{PackChoice, Plan, PruneError, Report, journal, reindex};
use crate::catalog::prune::PackRow;
use crate::crash;
use crate::id::PackId;
use crate::pack;
use crate::progress::Progress;
use crate::repack;
use crate::store::Store;
use crate::when::SnapshotTime;

/// Carries out `plan`, made by [`super::plan`] on this same open store.
pub fn execute(
    store: &mut Store,
    mut plan: Plan,
    progress: &Progress,
) -> Result<Report, PruneError> {
    let started = Instant::now();
    if plan.hypothetical {
        return Err(PruneError::Hypothetical);
    }
    if let Some((mut lease, grace)) = plan.shared.take() {
        return super::shared::execute(store, plan, &mut lease, grace, progress);
    }
    store.require_exclusive("prune")?;
    journal::write(store.backend(), &journal_of(&plan))?;
    crash::point("prune-planned");
    let chosen: Vec<PackRow> = plan.choice.repack.iter().map(PackChoice::row).collect();
    let live = &plan.live;
    let repacked = repack::repack(store, &chosen, &|id| live.contains(id), progress)?;
    store.catalog().use_large_cache()?;
    let written: HashSet<PackId> = repacked.packs.iter().map(|p| p.id).collect();
    let doomed: Vec<PackId> = plan.doomed().filter(|id| !written.contains(id)).collect();
    let removed: Vec<PackId> = (plan.choice.delete.iter())
        .chain(&plan.choice.repack)
        .map(|p| p.id)
        .filter(|id| !written.contains(id))
        .collect();
    // Every pack going, leftovers of interrupted runs too: an index object
    // naming one is superseded, and none is named again (a pack an aborted
    // prune had removed from the catalog came back there as "kept").
    let reindex = reindex::write(store.backend(), store.catalog(), &doomed, &repacked.packs)?;
    store
        .catalog_mut()
        .commit_prune(&repacked.packs, &removed, |id| live.contains(id))?
        .map_err(PruneError::WouldLoseLiveBlob)?;
    crash::point("prune-cataloged");
    let backend = store.backend().clone();
    reindex::record(store.catalog_mut(), &reindex)?;
    reindex::retire(&backend, store.catalog_mut(), &reindex)?;
    let (packs_deleted, bytes_deleted) = delete_packs(store, &doomed)?;
    // Held alone, this prune deleted every dead pack: what earlier
    // two-phase prunes condemned is gone or live again.
    super::condemn::drop_all(store.backend())?;
    let (tmp_files, tmp_bytes) = store.clear_tmp()?;
    journal::remove(store.backend())?;
    store.replenish_reserve()?;
    let existed: HashSet<PackId> = plan.doomed().collect();
    let bytes_written: u64 = repacked
        .packs
        .iter()
        .filter(|p| !existed.contains(&p.id))
        .map(|p| p.size)
        .sum();
    Ok(Report {
        packs_deleted,
        packs_written: repacked.packs.len() as u64,
        blobs_repacked: repacked.blobs,
        bytes_repacked: repacked.bytes,
        bytes_freed: bytes_deleted.saturating_sub(bytes_written),
        tmp_files_removed: tmp_files,
        tmp_bytes_removed: tmp_bytes,
        duration_secs: plan.mark_secs + started.elapsed().as_secs_f64(),
        requests: store.backend().requests(),
        shared: None,
        plan,
    })
}

/// Deletes pack files the committed catalog no longer names; returns how
/// many and their bytes. A file already gone (deleted by an earlier,
/// interrupted prune) counts as nothing.
fn delete_packs(store: &Store, doomed: &[PackId]) -> Result<(u64, u64), PruneError> {
    let (mut count, mut bytes) = (0, 0);
    for id in doomed {
        if store.catalog().has_pack(id)? {
            return Err(PruneError::StillCataloged(*id));
        }
        if let Some(size) = store.backend().delete_counted(&pack::key(id))? {
            count += 1;
            bytes += size;
        }
        crash::point("prune-pack-deleted");
    }
    Ok((count, bytes))
}

fn journal_of(plan: &Plan) -> journal::Journal {
    let ids = |packs: &[super::PackChoice]| packs.iter().map(|p| p.id).collect();
    journal::Journal {
        version: 1,
        started: SnapshotTime::now(),
        delete: ids(&plan.choice.delete),
        repack: ids(&plan.choice.repack),
        unreferenced: plan.unreferenced.iter().map(|p| p.id).collect(),
    }
}
