//! Verify beside a prune. Packs are deleted while other processes run: a
//! two-phase prune on another host (or another process on a local store)
//! removes packs it condemned a grace period ago, and repacks move live
//! blobs out of them first. A verify that read the catalog before such a
//! deletion finds the pack missing, though no snapshot lost anything: the
//! snapshots that needed it were forgotten, or the catalog now places its
//! blobs in the new pack.
//!
//! So a pack found missing is damage only if the store, looked at again,
//! still names it and still lacks it (a snapshot rerun after a kill can
//! write a deleted pack again, on a local store too: a local prune beside
//! snapshots runs shared, in two phases). When the refreshed catalog no
//! longer names it, or the store has it again, the pass is run again
//! against the store as it now is; packs read whole by the first pass are
//! not read again (the ledger has them), those it found damaged are. A
//! snapshot's walk meets forgets and prunes in another guise: blobs gone
//! from the catalog that only forgotten snapshots needed, and trees whose
//! pack went away under the read. Those bring another pass too
//! ([`super::raced`]).

use std::time::{Duration, Instant};

use std::collections::HashSet;

use super::{Damage, DamageKind, Report, VerifyOptions};
use crate::id::{BlobId, PackId};
use crate::progress::Progress;
use crate::store::{Store, StoreError};

/// Passes after the first, at most: each needs a prune or a forget to
/// change the store during the pass before it, so a store that keeps
/// changing faster than verify runs still gets an answer. 3 were too few
/// beside prunes that delete packs every second (tests/torture.rs, with a
/// grace of 1 s: in one run of many, four passes in a row each met a
/// deletion, and the last one's finding was reported as damage on a store
/// that was whole).
const RECHECKS: usize = 8;

/// Runs verify, and runs it again while packs it found missing turn out to
/// have been removed by a prune meanwhile, or its walks met what a forget
/// or a prune changed under them ([`super::raced`]). When they still do
/// after the last pass, those findings are neither damage nor a clean bill: if they
/// are all it found, [`StoreError::Unsettled`] (reported as damage, it was
/// a false alarm on a store that was whole, in a torture run); else the
/// rest is reported without them.
pub fn verify_beside_prunes(
    store: &mut Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let mut report = pass(store, options, progress)?;
    let mut passes = 1;
    loop {
        let removed = removed_meanwhile(store, &report)?;
        if removed.is_empty() && report.raced.is_empty() {
            break;
        }
        if passes > RECHECKS {
            report = unsettled(store, report, &removed, passes, progress)?;
            break;
        }
        let again = unread_since(options, started.elapsed(), &report);
        let later = pass(store, &again, progress)?;
        report = merged(report, later, removed.len());
        passes += 1;
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The last pass's findings when packs it found missing were removed
/// meanwhile yet again, or its walks met a store changing under them: if
/// that is all it found, no verdict ([`StoreError::Unsettled`]); else the
/// rest, which stands, as damage.
fn unsettled(
    store: &mut Store,
    mut report: Report,
    removed: &[PackId],
    passes: usize,
    progress: &Progress,
) -> Result<Report, StoreError> {
    if !report.raced.forgotten.is_empty() {
        let live = super::raced::still_reached(store, progress);
        let needed = |b: &BlobId| live.as_ref().is_none_or(|l| l.contains(b));
        report.raced.forgotten.retain(|b| !needed(b));
    }
    let keys: HashSet<String> = removed.iter().map(crate::pack::key).collect();
    let raced = &report.raced;
    let explained = |d: &Damage| match d.kind {
        DamageKind::Pack => keys.contains(&d.key),
        DamageKind::Blob => raced.explains(&d.key),
        _ => false,
    };
    let findings = report.damage.iter().filter(|d| explained(d)).count();
    if findings == 0 {
        // The fresh walk still needs every blob put down to forgotten
        // snapshots: they are damage, and nothing else was explained.
        return Ok(report);
    }
    if findings == report.damage.len() {
        return Err(StoreError::Unsettled { passes, findings });
    }
    report.damage.retain(|d| !explained(d));
    report.warnings.push(format!(
        "{findings} finding(s) of verify's last pass (packs damaged or missing, blobs or trees a snapshot's walk missed) were explained by other processes changing the store (removed, moved, written again or found gone by the time it looked again), as in each of its {passes} passes: they are left out of the damage reported, which stands (what lies below a tree among them was not checked); run `cairn verify` again to settle them"
    ));
    Ok(report)
}

/// One pass over the snapshots as they are now
/// ([`super::records::read_all_then_sync`]).
fn pass(
    store: &mut Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let list = super::records::read_all_then_sync(store)?;
    crate::crash::point("verify-listed");
    let mut report = super::verify_listed(store, list, options, progress)?;
    report.raced = super::raced::raced(store, &report, options.snapshots.is_some());
    crate::crash::point("verify-pass-done");
    Ok(report)
}

/// The packs `report` found damaged (not counting the uncataloged ones)
/// that the store no longer names, after bringing the catalog up to date
/// with the store, or (of those found missing) has again (a snapshot
/// rerun after being killed writes the very packs a prune deleted as its
/// leftovers: same bytes, same name); and, in a remote store, those still
/// named but gone, which are dropped from the catalog.
fn removed_meanwhile(store: &mut Store, report: &Report) -> Result<Vec<PackId>, StoreError> {
    let uncataloged: HashSet<&PackId> = report.uncataloged_packs.iter().collect();
    let damaged: Vec<&PackId> = (report.damaged_packs.iter())
        .filter(|id| !uncataloged.contains(id))
        .collect();
    if damaged.is_empty() {
        return Ok(Vec::new());
    }
    if store.backend().is_remote() {
        let backend = store.backend().clone();
        crate::catalog::sync::sync(store.catalog_mut(), &backend)?;
    }
    let missing: HashSet<&PackId> = report.missing_packs.iter().collect();
    let mut removed = Vec::new();
    let mut gone = Vec::new();
    for id in damaged {
        if !store.catalog().has_pack(id)? {
            removed.push(*id);
            continue;
        }
        match store.backend().head(&crate::pack::key(id))? {
            Some(_) if missing.contains(id) => removed.push(*id),
            None if store.backend().is_remote() => gone.push(*id),
            _ => {}
        }
    }
    forget_missing(store, &gone)?;
    removed.extend(gone);
    Ok(removed)
}

/// Drops from the catalog the packs an index object still names but a
/// remote store no longer holds, as a rebuild does (a local store's
/// catalog is the one its prunes commit to before they delete a pack, so
/// one it still names that is missing there is damage): a prune on another host
/// deleted them while a newer index object of a snapshot still named them
/// (their blobs rescued into other packs). Their rows go and spare copies
/// take over, so the next pass finds what really is lost: a blob with no
/// other copy is then reported missing for every snapshot that needs it.
fn forget_missing(store: &mut Store, gone: &[PackId]) -> Result<(), StoreError> {
    if !gone.is_empty() {
        let _ = store.catalog_mut().commit_prune(&[], gone, |_| false)?;
    }
    Ok(())
}

/// `options`, skipping the packs found good within `elapsed` (by the pass
/// before) and reading again those it found damaged but not missing.
fn unread_since(options: &VerifyOptions, elapsed: Duration, before: &Report) -> VerifyOptions {
    let mut again = options.clone();
    again.data.again = (before.damaged_packs.iter())
        .filter(|id| !before.missing_packs.contains(id))
        .copied()
        .collect();
    let read_by_first = elapsed + Duration::from_secs(1);
    again.data.max_age = Some(
        again
            .data
            .max_age
            .map_or(read_by_first, |m| m.max(read_by_first)),
    );
    again
}

/// The later pass's findings, with the reading the earlier one did, and
/// why it ran.
fn merged(earlier: Report, mut later: Report, removed: usize) -> Report {
    later.packs_read += earlier.packs_read;
    later.bytes_read += earlier.bytes_read;
    later.read_secs += earlier.read_secs;
    if removed > 0 {
        later.warnings.push(format!(
            "{removed} pack(s) were removed by a prune (or written again by a rerun snapshot) while verify ran; checked again against the store as it is now"
        ));
    }
    let raced = &earlier.raced;
    if !raced.forgotten.is_empty() {
        later.warnings.push(format!(
            "{} blob(s) or tree(s) a snapshot's walk found damaged or missing were needed only by snapshots forgotten meanwhile; checked again against the store as it is now",
            raced.forgotten.len()
        ));
    }
    if !raced.moved.is_empty() {
        later.warnings.push(format!(
            "{} tree(s) whose pack was gone when the walk read them read when tried again (a prune moved them meanwhile); checked again against the store as it is now",
            raced.moved.len()
        ));
    }
    later
}
