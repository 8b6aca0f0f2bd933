//! Prune on a store many hosts write at once (a remote store): two phases,
//! under the prune lease, never in the way of a snapshot.
//!
//! 1. **Delete** what earlier prunes condemned at least the grace period
//!    ago (by the store's clock): the packs of such a condemnation that
//!    still hold nothing live are deleted (their index objects superseded
//!    first, as in a local prune), those a snapshot committed since needs
//!    are spared, and the condemnation is dropped.
//! 2. **Repack** packs with too much unused space: their live blobs are
//!    copied into new packs, indexed, and the old packs condemned.
//! 3. **Condemn** packs that now hold nothing live (and unindexed
//!    leftovers), but only those whose index object (or, for a leftover,
//!    the pack itself) is older than the grace period: a running snapshot's
//!    packs are younger than that, and it commits before the grace period
//!    ends (durability.md, "Many hosts, one store").
//!
//! Nothing here waits for a snapshot, and no snapshot waits for it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use super::condemn::{self, Condemnation};
use super::lease::Lease;
use super::{Plan, PruneError, Report, reindex};
use crate::catalog::prune::PackRow;
use crate::id::PackId;
use crate::pack;
use crate::progress::Progress;
use crate::repack;
use crate::store::Store;

/// What the two phases did, beside the usual report.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct SharedReport {
    /// Packs condemned by this run (deleted by a later one).
    pub packs_condemned: u64,
    /// Condemned packs a snapshot needed again: kept.
    pub packs_spared: u64,
    /// Dead packs left for a later run: younger than the grace period.
    pub packs_too_young: u64,
    /// Condemnations older than the grace period that this run settled.
    pub condemnations_settled: u64,
}

/// Carries out `plan` on a shared store holding `lease`.
pub fn execute(
    store: &mut Store,
    plan: Plan,
    lease: &mut Lease,
    grace: Duration,
    progress: &Progress,
) -> Result<Report, PruneError> {
    let started = Instant::now();
    let mut shared = SharedReport::default();
    let now = lease.store_now();
    let condemnations = condemn::read_all(store.backend())?.condemnations;
    let (deleted, bytes_deleted) = settle(
        store,
        &plan,
        &condemnations,
        (now, grace),
        lease,
        &mut shared,
    )?;
    lease.checkpoint()?;
    let condemned = condemn::condemned_packs(&condemnations);
    let chosen: Vec<PackRow> = (plan.choice.repack.iter())
        .map(super::PackChoice::row)
        .filter(|p| !condemned.contains_key(&p.id) && !deleted.contains(&p.id))
        .collect();
    let live = &plan.live;
    let repacked = repack::repack(store, &chosen, &|id| live.contains(id), progress)?;
    store.catalog().use_large_cache()?;
    let reindexed = reindex::write(store.backend(), store.catalog(), &[], &repacked.packs)?;
    // The new packs hold the live blobs from now on, as after a local
    // prune: recorded as mere copies (the condemned packs keeping the
    // rows), they looked dead to the next prune, which condemned them, and
    // snapshots meanwhile rescued their data again.
    store
        .catalog_mut()
        .commit_prune(&repacked.packs, &[], |_| false)?
        .map_err(PruneError::WouldLoseLiveBlob)?;
    reindex::record(store.catalog_mut(), &reindexed)?;
    lease.checkpoint()?;
    let mut doomed: Vec<PackId> = plan.choice.delete.iter().map(|p| p.id).collect();
    doomed.extend(plan.unreferenced.iter().map(|p| p.id));
    doomed.extend(chosen.iter().map(|p| p.id));
    doomed.retain(|id| !condemned.contains_key(id) && !deleted.contains(id));
    let doomed = still_unneeded(store, live, doomed)?;
    let ages = ages(store, now)?;
    let (old, young): (Vec<PackId>, Vec<PackId>) = doomed
        .into_iter()
        .partition(|id| ages.get(id).is_some_and(|age| *age >= grace));
    shared.packs_too_young = young.len() as u64;
    shared.packs_condemned = old.len() as u64;
    lease.checkpoint()?;
    condemn::condemn(store.backend(), &old)?;
    let (tmp_files, tmp_bytes) = store.clear_left_tmp()?;
    let bytes_written: u64 = repacked.packs.iter().map(|p| p.size).sum();
    Ok(Report {
        packs_deleted: deleted.len() as u64,
        packs_written: repacked.packs.len() as u64,
        blobs_repacked: repacked.blobs,
        bytes_repacked: repacked.bytes,
        bytes_freed: bytes_deleted.saturating_sub(bytes_written),
        tmp_files_removed: tmp_files,
        tmp_bytes_removed: tmp_bytes,
        duration_secs: plan.mark_secs + started.elapsed().as_secs_f64(),
        requests: store.backend().requests(),
        shared: Some(shared),
        plan,
    })
}

/// Phase 1: deletes the packs of condemnations older than `grace` that
/// still hold nothing live, and drops those condemnations. Returns the
/// packs deleted and their bytes.
fn settle(
    store: &mut Store,
    plan: &Plan,
    condemnations: &[Condemnation],
    (now, grace): (SystemTime, Duration),
    lease: &mut Lease,
    shared: &mut SharedReport,
) -> Result<(HashSet<PackId>, u64), PruneError> {
    let due: Vec<&Condemnation> = condemnations
        .iter()
        .filter(|c| now.duration_since(c.written).unwrap_or_default() >= grace)
        .collect();
    let mut packs: Vec<PackId> = due.iter().flat_map(|c| c.packs.iter().copied()).collect();
    packs.sort();
    packs.dedup();
    // Index objects written since the plan's sync (a snapshot committing
    // meanwhile names the packs it uploaded, some condemned as unindexed
    // leftovers and rescued by its fence): a condemned pack one of them
    // names must be superseded there before it goes, or the store is left
    // with an index object naming a missing pack, whose rows mislead every
    // host's catalog (seen as verify reporting blobs lost that a rescue
    // had copied, under load in tests/torture.rs).
    let backend = store.backend().clone();
    crate::catalog::sync::sync(store.catalog_mut(), &backend)
        .map_err(crate::store::StoreError::from)?;
    let (dead, spared) = still_dead(store, plan, &packs)?;
    shared.packs_spared = spared as u64;
    let mut cataloged: Vec<PackId> = Vec::new();
    for id in &dead {
        if store.catalog().has_pack(id)? {
            cataloged.push(*id);
        }
    }
    lease.checkpoint()?;
    // Every dead pack, cataloged or not, as in `execute`.
    let reindexed = reindex::write(store.backend(), store.catalog(), &dead, &[])?;
    store
        .catalog_mut()
        .commit_prune(&[], &cataloged, |_| false)?
        .map_err(PruneError::WouldLoseLiveBlob)?;
    crate::crash::point("prune-cataloged");
    let backend = store.backend().clone();
    reindex::record(store.catalog_mut(), &reindexed)?;
    lease.checkpoint()?;
    reindex::retire(&backend, store.catalog_mut(), &reindexed)?;
    let mut bytes = 0;
    for id in &dead {
        lease.checkpoint()?;
        if let Some(size) = backend.delete_counted(&pack::key(id))? {
            bytes += size;
        }
        crate::crash::point("prune-pack-deleted");
    }
    for c in &due {
        backend.delete(&c.key)?;
    }
    shared.condemnations_settled = due.len() as u64;
    Ok((dead.into_iter().collect(), bytes))
}

/// Splits condemned `packs` into those that can go (every live blob in
/// them has a copy in a pack that stays) and the number spared. Sparing
/// one pack can save another's blobs, so it repeats until nothing changes.
fn still_dead(
    store: &Store,
    plan: &Plan,
    packs: &[PackId],
) -> Result<(Vec<PackId>, usize), PruneError> {
    let rows = cataloged_packs(store)?;
    let mut going: HashSet<PackId> = packs.iter().copied().collect();
    let mut needs: HashMap<PackId, Vec<Vec<PackId>>> = HashMap::new();
    for id in packs {
        // Not cataloged: a leftover (nothing in it is live).
        let Some(row) = rows.get(id) else { continue };
        let mut live = Vec::new();
        for (blob, _) in store.catalog().blobs_in_pack(row)? {
            if plan.live.contains(&blob) {
                live.push(store.catalog().copies(&blob)?);
            }
        }
        needs.insert(*id, live);
    }
    loop {
        let kept: Vec<PackId> = (needs.iter())
            .filter(|(id, blobs)| {
                going.contains(*id)
                    && blobs
                        .iter()
                        .any(|copies| copies.iter().all(|p| going.contains(p)))
            })
            .map(|(id, _)| *id)
            .collect();
        if kept.is_empty() {
            break;
        }
        for id in kept {
            going.remove(&id);
        }
    }
    let dead: Vec<PackId> = packs
        .iter()
        .copied()
        .filter(|p| going.contains(p))
        .collect();
    let spared = packs.len() - dead.len();
    Ok((dead, spared))
}

/// Of `doomed` (chosen by the plan), those that still hold no live blob:
/// phase 1 deleted packs whose blobs had copies elsewhere, and those
/// copies took over their rows, in packs the plan had found dead (a pack
/// another host's prune repacked into is such a copy here until the pack
/// it replaced is deleted).
fn still_unneeded(
    store: &Store,
    live: &crate::reach::LiveSet,
    doomed: Vec<PackId>,
) -> Result<Vec<PackId>, PruneError> {
    let rows = cataloged_packs(store)?;
    let mut out = Vec::with_capacity(doomed.len());
    for id in doomed {
        let needed = match rows.get(&id) {
            Some(row) => {
                (store.catalog().blobs_in_pack(row)?.iter()).any(|(b, _)| live.contains(b))
            }
            None => false,
        };
        if !needed {
            out.push(id);
        }
    }
    Ok(out)
}

/// The catalog's packs by id.
fn cataloged_packs(store: &Store) -> Result<HashMap<PackId, PackRow>, PruneError> {
    let packs = store.catalog().packs()?;
    Ok(packs.into_iter().map(|p| (p.id, p)).collect())
}

/// How old each pack's youngest name is, by the store's clock at `now`:
/// the youngest index object naming it, or the pack object itself when no
/// index object does.
fn ages(store: &Store, now: SystemTime) -> Result<HashMap<PackId, Duration>, PruneError> {
    let backend = store.backend();
    let age = |t: Option<SystemTime>| {
        now.duration_since(t.unwrap_or(SystemTime::UNIX_EPOCH))
            .unwrap_or_default()
    };
    let index_age: HashMap<crate::id::IndexId, Duration> = backend
        .list("index/")?
        .into_iter()
        .filter_map(|o| Some((o.key.strip_prefix("index/")?.parse().ok()?, age(o.modified))))
        .collect();
    let mut out = HashMap::new();
    for o in backend.list("packs/")? {
        let Some(id) = o
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".pack")?.parse::<PackId>().ok())
        else {
            continue;
        };
        let named: Vec<Duration> = store
            .catalog()
            .indexes_naming(&id)?
            .iter()
            .filter_map(|i| index_age.get(i).copied())
            .collect();
        let youngest = named.into_iter().min().unwrap_or_else(|| age(o.modified));
        out.insert(id, youngest.min(age(o.modified)));
    }
    Ok(out)
}
