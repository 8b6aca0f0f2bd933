//! `repair snapshots`: salvage what is intact, re-point what has a good
//! copy elsewhere, and write new snapshot records without what is lost.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::browse::join_below;
use crate::capture::CaptureError;
use crate::capture::pipeline::{self, BlobSink};
use crate::catalog::prune::PackRow;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::pack::writer::PublishedPack;
use crate::pack::{self, BlobKind, BlobLocation, PackError};
use crate::progress::Progress;
use crate::prune::reindex;
use crate::rawname::RawName;
use crate::repack;
use crate::snapshot::{self, MAX_LISTED_LEFT_OUT, Snapshot, SnapshotRecord};
use crate::store::{Store, StoreError};
use crate::tally::{Tallies, Tally};
use crate::tree::{Content, Tree};
use crate::verify::{self, DataOptions, ReadData, VerifyOptions};

/// Why a repair stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Salvaging or writing new trees failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Copying intact blobs out of a damaged pack failed. Not transparent:
    /// the repack error stays in the chain, where the exit code finds
    /// damage.
    #[error("{0}")]
    Repack(#[from] crate::repack::RepackError),
    /// Writing index objects for the new packs failed.
    #[error(transparent)]
    Prune(#[from] crate::prune::PruneError),
    /// The commit would have dropped a row of a blob that is not lost.
    #[error(
        "internal check failed: intact blob {0} would have lost its only location; nothing was changed"
    )]
    WouldLoseIntactBlob(BlobId),
}

impl From<crate::catalog::CatalogError> for RepairError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self::Store(e.into())
    }
}

/// One snapshot that needed lost data.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    /// The original snapshot (kept).
    pub original: SnapshotId,
    /// The new record, without the lost paths (none in a dry run).
    pub new: Option<SnapshotId>,
    /// Paths left out (the first [`MAX_LISTED_LEFT_OUT`]).
    pub lost: Vec<RawName>,
    /// How many paths were left out.
    pub lost_count: u64,
}

/// What a repair did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Lost blobs found intact in another pack and re-pointed.
    pub repointed: u64,
    /// Damaged packs moved to `quarantine/`.
    pub quarantined: Vec<PackId>,
    /// Damaged packs that were missing altogether (dropped from the catalog).
    pub missing_packs: Vec<PackId>,
    /// Intact blobs copied out of damaged packs.
    pub salvaged_blobs: u64,
    /// Snapshots given a new record.
    pub snapshots: Vec<Repaired>,
    /// Damaged snapshot records written back from this host's checked
    /// copies (in a dry run, that would be).
    pub mended_records: Vec<String>,
    /// Damaged snapshot records, which cannot be repaired (forget them).
    pub damaged_records: Vec<String>,
    /// Blobs still lost after re-pointing.
    pub blobs_lost: u64,
    /// Snapshots whose trees expand beyond what their record allows, or
    /// nest deeper than a reader enters (a damaged or hostile store): not
    /// rewritten (forget them).
    pub refused_snapshots: Vec<SnapshotId>,
    /// The store's format version before this repair upgraded it (to
    /// write new trees), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgraded_from: Option<u32>,
}

/// Repairs what a full verify finds damaged.
pub fn repair(
    store: &mut Store,
    dry_run: bool,
    progress: &Progress,
) -> Result<RepairReport, RepairError> {
    store.require_exclusive("repair")?;
    // First, so that the verify below walks the mended snapshots' trees.
    let mended_records = super::records::mend(store, dry_run)?;
    let (found, lost, repointed) = repoint(store, dry_run, progress)?;
    let mut report = RepairReport {
        dry_run,
        damaged_records: found
            .damage
            .iter()
            .filter(|d| d.kind == verify::DamageKind::Record)
            .filter(|d| !mended_records.contains(&d.key))
            .map(|d| d.key.clone())
            .collect(),
        mended_records,
        repointed,
        ..RepairReport::default()
    };
    report.blobs_lost = lost.len() as u64;
    let gone = lost_uncataloged_packs(store)?;
    let damaged = Damaged {
        packs: &found.damaged_packs,
        gone,
    };
    quarantine_packs(store, damaged, &lost, dry_run, progress, &mut report)?;
    report.refused_snapshots = found.unbounded.iter().copied().collect();
    report.refused_snapshots.sort();
    if !dry_run && !lost.is_empty() {
        // New trees and records follow, in the format this code writes.
        report.upgraded_from = store.upgrade_for_writing()?;
    }
    report.snapshots = rewrite_snapshots(store, &lost, &found.unbounded, dry_run, progress)?;
    Ok(report)
}

/// Verifies the store and points lost blobs at intact copies in other
/// packs, round after round: a tree found again lets the next verify walk
/// below it, to the trees the same lost index object hid (one round per
/// directory level took one repair per level, each saying it was done).
/// A dry run has one round. Returns the last round's findings, the blobs
/// still lost and how many were re-pointed.
fn repoint(
    store: &mut Store,
    dry_run: bool,
    progress: &Progress,
) -> Result<(verify::Report, HashSet<BlobId>, u64), RepairError> {
    let mut repointed: HashSet<BlobId> = HashSet::new();
    loop {
        let found = full_verify(store, progress)?;
        let copies = intact_copies(store, &found.lost_blobs, &found.damaged_packs)?;
        let copied = || copies.iter().flat_map(|(_, blobs)| blobs);
        if dry_run {
            let mut lost = found.lost_blobs.clone();
            copied().for_each(|b| _ = lost.remove(b));
            let count = copied().count() as u64;
            return Ok((found, lost, count));
        }
        // Nothing new (a blob re-pointed before is lost again): what is
        // lost now stays lost.
        if copied().all(|b| repointed.contains(b)) {
            let lost = found.lost_blobs.clone();
            return Ok((found, lost, repointed.len() as u64));
        }
        repointed.extend(copied());
        for (pack, blobs) in &copies {
            store.catalog_mut().relocate(pack, blobs)?;
        }
    }
}

fn full_verify(store: &Store, progress: &Progress) -> Result<verify::Report, StoreError> {
    let options = VerifyOptions {
        data: DataOptions {
            which: ReadData::All,
            max_age: None,
            budget: None,
            now: jiff::Timestamp::now().as_second(),
            again: Vec::new(),
        },
        sqlite: false,
        snapshots: None,
    };
    verify::verify_at_rest(store, &options, progress)
}

/// For lost blobs, intact copies in packs other than the damaged ones
/// (cataloged or not), each read and checked. Grouped by the pack holding
/// them.
fn intact_copies(
    store: &Store,
    lost: &HashSet<BlobId>,
    damaged: &[PackId],
) -> Result<Vec<(PublishedPack, Vec<BlobId>)>, StoreError> {
    let mut out = Vec::new();
    if lost.is_empty() {
        return Ok(out);
    }
    let mut found: HashSet<BlobId> = HashSet::new();
    let backend = store.backend();
    for id in pack::list::list(backend)?.packs {
        if damaged.contains(&id) {
            continue;
        }
        let Ok((entries, size)) = pack::reader::read_header(backend, &id) else {
            continue;
        };
        let mut here = Vec::new();
        for e in &entries {
            if !lost.contains(&e.id) || found.contains(&e.id) {
                continue;
            }
            let at = BlobLocation::in_pack(id, e);
            let intact = backend
                .get_range(&pack::key(&id), at.offset, at.stored_len as usize)
                .map_err(PackError::from)
                .and_then(|stored| pack::reader::check_stored(backend, &e.id, &at, &stored));
            if intact.is_ok() {
                found.insert(e.id);
                here.push(e.id);
            }
        }
        if !here.is_empty() {
            let kind = entries.first().map_or(BlobKind::Data, |e| e.kind);
            let pack = PublishedPack {
                id,
                kind,
                entries,
                size,
            };
            out.push((pack, here));
        }
    }
    Ok(out)
}

/// Packs an index object names that the catalog no longer has and the
/// store does not hold: `verify` on a remote store, or a rebuild, drops a
/// missing pack's rows but leaves the index objects naming it, and another
/// host's catalog, which had the pack before, kept reusing its blobs. The
/// repair supersedes those index objects as it does for a damaged pack.
fn lost_uncataloged_packs(store: &Store) -> Result<Vec<PackId>, RepairError> {
    let mut lost = Vec::new();
    for id in store.catalog().indexed_packs_not_cataloged()? {
        let key = pack::key(&id);
        if store
            .backend()
            .head(&key)
            .map_err(StoreError::from)?
            .is_none()
        {
            lost.push(id);
        }
    }
    Ok(lost)
}

/// The packs a repair drops: damaged ones the catalog has (present or
/// not, each looked for), and ones already known gone from the store.
struct Damaged<'a> {
    packs: &'a [PackId],
    gone: Vec<PackId>,
}

/// Salvages the intact blobs of each damaged pack still present, copies
/// the pack into `quarantine/`, drops damaged packs from the catalog in one
/// transaction, then removes their names from `packs/`.
fn quarantine_packs(
    store: &mut Store,
    damaged: Damaged<'_>,
    lost: &HashSet<BlobId>,
    dry_run: bool,
    progress: &Progress,
    report: &mut RepairReport,
) -> Result<(), RepairError> {
    let rows: HashMap<PackId, PackRow> = store
        .catalog()
        .packs()?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let backend = store.backend().clone();
    let mut present = Vec::new();
    let mut missing = damaged.gone;
    for id in damaged.packs {
        let there = backend
            .head(&pack::key(id))
            .map_err(StoreError::from)?
            .is_some();
        if there { &mut present } else { &mut missing }.push(*id);
    }
    report.missing_packs = missing.clone();
    report.quarantined = present.clone();
    if dry_run {
        return Ok(());
    }
    let salvage: Vec<PackRow> = present
        .iter()
        .filter_map(|id| rows.get(id).cloned())
        .collect();
    let copied = repack::repack(store, &salvage, &|id| !lost.contains(id), progress)?;
    report.salvaged_blobs = copied.blobs;
    for id in &present {
        let key = pack::key(id);
        // Already there means an earlier repair was interrupted after
        // copying: the copy is the same pack.
        backend
            .copy(&key, &quarantine_key(id))
            .map_err(StoreError::from)?;
    }
    let removed: Vec<PackId> = present.iter().chain(&missing).copied().collect();
    // Index objects that name the damaged packs are superseded, so that no
    // catalog built from the store finds their blobs there again.
    let reindex = reindex::write(&backend, store.catalog(), &removed, &copied.packs)?;
    store
        .catalog_mut()
        .commit_prune(&copied.packs, &removed, |id| !lost.contains(id))?
        .map_err(RepairError::WouldLoseIntactBlob)?;
    reindex::record(store.catalog_mut(), &reindex)?;
    reindex::retire(&backend, store.catalog_mut(), &reindex)?;
    for id in &present {
        backend.delete(&pack::key(id)).map_err(StoreError::from)?;
    }
    Ok(())
}

/// Where a damaged pack is kept.
pub fn quarantine_key(id: &PackId) -> String {
    format!("quarantine/{id}.pack")
}

/// Writes a new record for every snapshot that needs a lost blob, but for
/// those whose trees a reader refuses (`refused`): the rebuild is recursive,
/// and only trees verify found bounded are walked.
fn rewrite_snapshots(
    store: &Store,
    lost: &HashSet<BlobId>,
    refused: &HashSet<SnapshotId>,
    dry_run: bool,
    progress: &Progress,
) -> Result<Vec<Repaired>, RepairError> {
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let mut list = store.snapshots()?;
    list.snapshots.retain(|s| !refused.contains(&s.id));
    let trainer = crate::capture::trainer::Trainer::for_store(store)?;
    let (plans, _, _) = pipeline::run(store, &trainer, progress, |sink| {
        let mut pruner = Pruner {
            store,
            lost,
            sink,
            dry_run,
            memo: HashMap::new(),
        };
        let mut plans = Vec::new();
        for s in &list.snapshots {
            let (root, lost_paths) = pruner.tree(&s.record.tree)?;
            if !lost_paths.is_empty() {
                plans.push((s.clone(), root, lost_paths));
            }
        }
        Ok(plans)
    })?;
    let mut out = Vec::new();
    let mut tallies = Tallies::default();
    for (original, root, lost_paths) in plans {
        let lost_count = lost_paths.len() as u64;
        let mut listed: Vec<RawName> = lost_paths
            .iter()
            .map(|p| RawName::from_path(&Path::new("/").join(p)))
            .collect();
        listed.truncate(MAX_LISTED_LEFT_OUT);
        let new = match (dry_run, root) {
            (false, Some(root)) => {
                let tally = tallies.tally(root, &mut |id| store.load_tree(&id).map(Some))?;
                let lost = Lost {
                    listed: &listed,
                    count: lost_count,
                };
                Some(commit_repaired(store, &original, root, tally, lost)?)
            }
            _ => None,
        };
        out.push(Repaired {
            original: original.id,
            new,
            lost: listed,
            lost_count,
        });
    }
    Ok(out)
}

/// The paths a repaired snapshot leaves out.
struct Lost<'a> {
    /// The first [`MAX_LISTED_LEFT_OUT`].
    listed: &'a [RawName],
    /// All of them.
    count: u64,
}

/// The new record: the original's, with the new root tree, what it holds
/// (`tally` of that tree: files, directories, symlinks and bytes, so that
/// its size is its own) and the lost paths in its summary; `parent` names
/// the original.
fn commit_repaired(
    store: &Store,
    original: &Snapshot,
    root: TreeId,
    tally: Tally,
    lost: Lost<'_>,
) -> Result<SnapshotId, StoreError> {
    let mut record: SnapshotRecord = original.record.clone();
    record.tree = root;
    record.parent = Some(original.id);
    record.program = format!("cairn {} (repair)", env!("CARGO_PKG_VERSION"));
    let summary = &mut record.summary;
    summary.files = tally.files;
    summary.dirs = tally.dirs;
    summary.symlinks = tally.symlinks;
    summary.total_bytes = tally.bytes;
    summary.repaired_from = Some(original.id);
    summary.lost = lost.listed.to_vec();
    summary.lost_count = lost.count;
    Ok(snapshot::commit(store.backend(), store.catalog(), record)?.id)
}

/// Rebuilds trees without what is lost, remembering each tree's outcome so
/// a subtree shared by many snapshots is rebuilt once. Recursive: it is only
/// given snapshots whose trees verify found no deeper than
/// [`MAX_DEPTH`](crate::bound::MAX_DEPTH), and whose lost paths, listed in
/// full here, are bounded by their records' counts.
struct Pruner<'a, 's> {
    store: &'a Store,
    lost: &'a HashSet<BlobId>,
    sink: &'a mut BlobSink<'s>,
    dry_run: bool,
    memo: HashMap<TreeId, (Option<TreeId>, Vec<PathBuf>)>,
}

impl Pruner<'_, '_> {
    /// The tree without lost entries (`None` if the tree itself is lost)
    /// and the paths left out, relative to it.
    fn tree(&mut self, id: &TreeId) -> Result<(Option<TreeId>, Vec<PathBuf>), CaptureError> {
        if let Some(done) = self.memo.get(id) {
            return Ok(done.clone());
        }
        let done = self.rebuild(id)?;
        self.memo.insert(*id, done.clone());
        Ok(done)
    }

    fn rebuild(&mut self, id: &TreeId) -> Result<(Option<TreeId>, Vec<PathBuf>), CaptureError> {
        if self.lost.contains(&id.as_blob()) {
            return Ok((None, vec![PathBuf::new()]));
        }
        let Ok(tree) = self.store.load_tree(id) else {
            return Ok((None, vec![PathBuf::new()]));
        };
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for mut entry in tree.entries {
            let name = entry.name.as_path().to_path_buf();
            if let Content::Dir { tree: sub } = entry.content {
                let (new, below) = self.tree(&sub)?;
                gone.extend(below.iter().map(|p| join_below(&name, p)));
                match new {
                    Some(new) => entry.content = Content::Dir { tree: new },
                    None => continue,
                }
            } else if entry
                .chunks()
                .is_some_and(|c| c.iter().any(|b| self.lost.contains(b)))
            {
                gone.push(name);
                continue;
            }
            kept.push(entry);
        }
        if gone.is_empty() {
            return Ok((Some(*id), gone));
        }
        let tree = Tree::new(kept);
        let bytes = tree.encode();
        let config = self.store.config();
        let new = if self.dry_run {
            TreeId::of(&bytes)
        } else if !config.is_current() {
            // A tree in this code's form must not land in a store that
            // older cairn versions still open (`repair` upgrades first).
            return Err(CaptureError::NotUpgraded(config.version));
        } else {
            self.sink.put(BlobKind::Tree, bytes)?.as_tree()
        };
        Ok((Some(new), gone))
    }
}
