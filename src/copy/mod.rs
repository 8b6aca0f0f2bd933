//! `cairn copy`: snapshots of one store into another, for an off-site copy
//! kept in step by a nightly job.
//!
//! A copied snapshot is the same snapshot: the same record bytes (so the
//! same id, host, tags and time) over the same trees and blobs, which keep
//! their ids. Blobs travel as stored (still compressed, each checked
//! against its id on the way, as a repack does), and only those the target
//! lacks. They go in batches of source packs, each batch published, indexed
//! and cataloged before the next, so a copy killed half-way leaves the
//! batches it finished usable and a rerun moves only the rest. A record is
//! written last, after the same fence a snapshot passes (capture::present):
//! a prune of the target running meanwhile cannot take a blob it reuses.

mod dictionaries;

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use crate::backend::RequestStats;
use crate::capture::CaptureError;
use crate::catalog::prune::PackRow;
use crate::compress::dictionary::Renumbering;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::reach::{self, Checks, LiveSet};
use crate::repack::{self, RepackError};
use crate::snapshot::{self, Snapshot};
use crate::store::{Store, StoreError};
use dictionaries::CarryError;

/// Source packs copied per batch: what a killed copy may have to move again.
const PACKS_PER_BATCH: usize = 16;

/// Why a copy stopped. Snapshots whose records were written stay copied.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed.
    #[error("reading {store}: {source}")]
    Source {
        /// The source store.
        store: String,
        /// What failed.
        source: Box<StoreError>,
    },
    /// Writing the target failed.
    #[error("writing {store}: {source}")]
    Target {
        /// The target store.
        store: String,
        /// What failed.
        source: Box<StoreError>,
    },
    /// The source's snapshots need blobs it does not have.
    #[error(
        "snapshot {snapshot} of {store} is damaged ({trouble}); nothing of it was copied (`cairn verify` says what is lost)"
    )]
    Damaged {
        /// The source store.
        store: String,
        /// The first damaged snapshot.
        snapshot: SnapshotId,
        /// What is wrong.
        trouble: String,
    },
    /// A blob did not check out, or a pack could not be written.
    #[error("copying blobs: {0}")]
    Blobs(#[from] RepackError),
    /// The target's record of a snapshot could not be made safe.
    #[error("snapshot {snapshot}: {source}")]
    Fence {
        /// The snapshot.
        snapshot: SnapshotId,
        /// Why.
        source: Box<CaptureError>,
    },
    /// A record read back does not hash to its id any more.
    #[error("{0} of the source no longer matches its id: nothing of it was copied")]
    RecordChanged(String),
    /// The stores do not share their keys.
    #[error(
        "{source_store} is {source_keys} and {target} is {target_keys}: copy needs both unencrypted or both encrypted with one master key (ids are keyed, so copying between keys would change every id); copy to a new store, which is created with the source's keys"
    )]
    Keys {
        /// The source store.
        source_store: String,
        /// Its keys, described.
        source_keys: String,
        /// The target store.
        target: String,
        /// Its keys, described.
        target_keys: String,
    },
    /// The target is of an older format than the source.
    #[error(
        "{target} is a format {target_version} store and {source_store} format {source_version}: snapshots of the newer format would mislead older readers of the target"
    )]
    OlderTarget {
        /// The target store.
        target: String,
        /// Its format version.
        target_version: u32,
        /// The source store.
        source_store: String,
        /// Its format version.
        source_version: u32,
    },
}

/// What a copy did.
#[derive(Debug, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots written to the target.
    pub snapshots_copied: u64,
    /// Snapshots the target already had.
    pub snapshots_present: u64,
    /// Blobs copied.
    pub blobs_copied: u64,
    /// Their stored (compressed) bytes.
    pub bytes_copied: u64,
    /// Packs written to the target.
    pub packs_written: u64,
    /// Blobs the copied snapshots reference that the target already had.
    pub blobs_present: u64,
    /// Whether the stores cut files differently (copied data then does not
    /// deduplicate with the target's own snapshots).
    pub chunking_differs: bool,
    /// Packs the target's catalog named that the target did not hold (lost,
    /// or deleted behind cairn's back): left out of its catalog, so that
    /// what they held was copied again rather than taken as present.
    pub target_packs_lost: u64,
    /// Wall time.
    pub duration_secs: f64,
    /// Requests made to a remote source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_source: Option<RequestStats>,
    /// Requests made to a remote target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_target: Option<RequestStats>,
}

/// Copies `chosen` (snapshots of `from`) into `to`, oldest first, skipping
/// those `to` already has.
pub fn copy(
    from: &Store,
    to: &mut Store,
    chosen: &[Snapshot],
    progress: &Progress,
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    check_keys(from, to)?;
    to.upgrade_for_writing().map_err(|e| target(to, e))?;
    check_versions(from, to)?;
    let mut report = CopyReport {
        chunking_differs: chunking_differs(from, to),
        ..CopyReport::default()
    };
    let missing = missing_in(to, chosen)?;
    report.snapshots_present = (chosen.len() - missing.len()) as u64;
    if !missing.is_empty() {
        report.target_packs_lost = drop_lost_packs(to)?;
        let removals = to.catalog().removals().map_err(|e| target(to, e.into()))?;
        let needed = needed_blobs(from, &missing, progress)?;
        // The walk counted trees; the copy counts packs.
        progress.restart();
        let renumbering = carry_dictionaries(from, to)?;
        let own = copy_blobs(from, to, &needed, &renumbering, &mut report, progress)?;
        for snapshot in &missing {
            write_record(from, to, snapshot, removals, &own)?;
            report.snapshots_copied += 1;
        }
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    report.requests_source = from.backend().requests();
    report.requests_target = to.backend().requests();
    Ok(report)
}

fn source(from: &Store, source: StoreError) -> CopyError {
    CopyError::Source {
        store: from.location().to_string(),
        source: Box::new(source),
    }
}

/// Drops from the target's catalog the packs it names that the target's
/// `packs/` lacks; returns how many. A copy back from an off-site store is
/// how the README mends a store that lost a pack: trusting the catalog, it
/// took the lost blobs as present, copied none, and made a snapshot whose
/// data was not there visible. The catalog is read before the listing: a
/// pack is cataloged only once it is durable, so one cataloged then and
/// not listed is gone (lost, or deleted by a prune meanwhile), while a
/// pack another run on this host writes and catalogs during the listing is
/// not looked at (read after, it would have been dropped as lost).
fn drop_lost_packs(to: &mut Store) -> Result<u64, CopyError> {
    let cataloged = to.catalog().packs().map_err(|e| target(to, e.into()))?;
    crate::crash::point("copy-catalog-read");
    let listing = crate::pack::list::list(to.backend()).map_err(|e| target(to, e.into()))?;
    let lost = listing.lacking(cataloged.into_iter().map(|p| p.id));
    let dropped = to.catalog_mut().drop_lost_packs(&lost);
    dropped.map_err(|e| target(to, e.into()))?;
    Ok(lost.len() as u64)
}

fn target(to: &Store, source: StoreError) -> CopyError {
    CopyError::Target {
        store: to.location().to_string(),
        source: Box::new(source),
    }
}

/// Refuses to put snapshots of a newer format into an older store.
/// Blobs and records travel sealed as they are, under ids keyed by the
/// master key: both stores must have the same one (or none).
fn check_keys(from: &Store, to: &Store) -> Result<(), CopyError> {
    let (a, b) = (from.backend().vault(), to.backend().vault());
    if a.fingerprint() == b.fingerprint() {
        return Ok(());
    }
    let describe = |fingerprint: Option<&str>| match fingerprint {
        Some(f) => format!("encrypted with master key {f}"),
        None => "unencrypted".to_owned(),
    };
    Err(CopyError::Keys {
        source_store: from.location().to_string(),
        source_keys: describe(a.fingerprint()),
        target: to.location().to_string(),
        target_keys: describe(b.fingerprint()),
    })
}

fn check_versions(from: &Store, to: &Store) -> Result<(), CopyError> {
    let (have, need) = (to.config().version, from.config().version);
    if have >= need {
        return Ok(());
    }
    Err(CopyError::OlderTarget {
        target: to.location().to_string(),
        target_version: have,
        source_store: from.location().to_string(),
        source_version: need,
    })
}

fn chunking_differs(from: &Store, to: &Store) -> bool {
    let (a, b) = (from.config(), to.config());
    a.chunker != b.chunker || a.sqlite != b.sqlite
}

/// The snapshots of `chosen` that `to` does not have, oldest first. A
/// snapshot is there under its id, or as a record of the same tree taken
/// at the same time (written by another cairn version, say).
fn missing_in(to: &Store, chosen: &[Snapshot]) -> Result<Vec<Snapshot>, CopyError> {
    let listed = to.snapshots().map_err(|e| target(to, e))?.snapshots;
    let ids: HashSet<SnapshotId> = listed.iter().map(|s| s.id).collect();
    let taken: HashSet<(TreeId, String)> = listed.iter().map(tree_and_time).collect();
    let mut missing: Vec<Snapshot> = chosen
        .iter()
        .filter(|s| !ids.contains(&s.id) && !taken.contains(&tree_and_time(s)))
        .cloned()
        .collect();
    missing.sort_by_key(|s| s.record.time);
    Ok(missing)
}

fn tree_and_time(s: &Snapshot) -> (TreeId, String) {
    (s.record.tree, s.record.time.to_string())
}

/// Makes the source's dictionaries available in the target, before any
/// blob made with one is copied there.
fn carry_dictionaries(from: &Store, to: &Store) -> Result<Renumbering, CopyError> {
    let named = to
        .catalog()
        .dictionaries_used()
        .map_err(|e| target(to, e.into()))?;
    dictionaries::carry(from.backend(), to.backend(), &named).map_err(|e| match e {
        CarryError::Source(e) => source(from, e.into()),
        CarryError::Target(e) => target(to, e.into()),
    })
}

/// Every blob the snapshots reach; refuses a snapshot that needs a blob the
/// source lacks (a copy must not spread holes).
fn needed_blobs(
    from: &Store,
    snapshots: &[Snapshot],
    progress: &Progress,
) -> Result<LiveSet, CopyError> {
    let reached =
        reach::mark(from, snapshots, Checks::Blobs, progress).map_err(|e| source(from, e))?;
    if let Some((snapshot, trouble)) = reached.troubles.first() {
        return Err(CopyError::Damaged {
            store: from.location().to_string(),
            snapshot: *snapshot,
            trouble: trouble.to_string(),
        });
    }
    Ok(reached.live)
}

/// Copies the blobs of `needed` that `to` lacks, a batch of source packs
/// at a time, each batch indexed and cataloged in `to` before the next.
/// Returns the packs written.
fn copy_blobs(
    from: &Store,
    to: &mut Store,
    needed: &LiveSet,
    renumbering: &Renumbering,
    report: &mut CopyReport,
    progress: &Progress,
) -> Result<Vec<PackId>, CopyError> {
    let packs = from.catalog().packs().map_err(|e| source(from, e.into()))?;
    let mut own = Vec::new();
    for batch in packs.chunks(PACKS_PER_BATCH) {
        let wanted = wanted_in(from, to, batch, needed, report)?;
        if wanted.is_empty() {
            continue;
        }
        let keep = |id: &BlobId| wanted.contains(id);
        let copied = repack::repack_into(from, to, batch, &keep, renumbering, progress)?;
        report.blobs_copied += copied.blobs;
        report.bytes_copied += copied.bytes;
        report.packs_written += copied.packs.len() as u64;
        own.extend(copied.packs.iter().map(|p| p.id));
        record_packs(to, copied.packs)?;
        crate::crash::point("copy-batch-done");
    }
    Ok(own)
}

/// The blobs of `batch` the snapshots need and `to` lacks.
fn wanted_in(
    from: &Store,
    to: &Store,
    batch: &[PackRow],
    needed: &LiveSet,
    report: &mut CopyReport,
) -> Result<HashSet<BlobId>, CopyError> {
    let mut wanted = HashSet::new();
    for pack in batch {
        let rows = from
            .catalog()
            .blobs_in_pack(pack)
            .map_err(|e| source(from, e.into()))?;
        for (id, _) in rows.into_iter().filter(|(id, _)| needed.contains(id)) {
            if to
                .catalog()
                .contains(&id)
                .map_err(|e| target(to, e.into()))?
            {
                report.blobs_present += 1;
            } else {
                wanted.insert(id);
            }
        }
    }
    Ok(wanted)
}

/// Indexes and catalogs packs just written to `to`.
fn record_packs(
    to: &mut Store,
    packs: Vec<crate::pack::writer::PublishedPack>,
) -> Result<(), CopyError> {
    let packs: Vec<crate::index::IndexedPack> = packs.into_iter().map(Into::into).collect();
    for batch in crate::index::batches(&packs) {
        let id = crate::index::write(to.backend(), batch).map_err(|e| target(to, e.into()))?;
        to.catalog_mut()
            .record_index(&id, batch)
            .map_err(|e| target(to, e.into()))?;
    }
    Ok(())
}

/// Writes `snapshot`'s record, byte for byte, once the fence says every
/// blob it needs is in `to` and will stay.
fn write_record(
    from: &Store,
    to: &Store,
    snapshot: &Snapshot,
    removals: Option<u64>,
    own: &[PackId],
) -> Result<(), CopyError> {
    let key = snapshot::key(&snapshot.id);
    let bytes = from
        .backend()
        .get_opened(&key, snapshot::MAX_RECORD_LEN)
        .map_err(|e| source(from, e.into()))?;
    if SnapshotId::from(from.backend().vault().hash(&bytes)) != snapshot.id {
        return Err(CopyError::RecordChanged(key));
    }
    crate::capture::present::ensure_present(to, snapshot.record.tree, removals, own).map_err(
        |source| CopyError::Fence {
            snapshot: snapshot.id,
            source: Box::new(source),
        },
    )?;
    snapshot::write_record(to.backend(), to.catalog(), snapshot.id, bytes)
        .map_err(|e| target(to, e.into()))
}
