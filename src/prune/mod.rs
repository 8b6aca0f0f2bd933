//! Prune: give back the space of forgotten snapshots.
//!
//! Plan, then execute, under the exclusive lock:
//!
//! 1. **mark** ([`mark`]): walk every remaining snapshot's trees (each
//!    subtree once) and remember which blobs they reach;
//! 2. **choose** ([`choose`]): one pass over the catalog sizes each pack's
//!    live part; packs with no live blob are deleted, packs with too much
//!    unused space are repacked; packs in `packs/` that the catalog does not
//!    name (left by interrupted runs) are deleted too;
//! 3. **journal** ([`journal`]): the plan is written durably;
//! 4. **repack** ([`repack`]): live blobs are copied into new, published packs;
//! 5. **commit**: one catalog transaction records the new packs, moves the
//!    blobs to them and drops the old packs. This is the commit point;
//! 6. **delete** the old pack files, clear `tmp/`, remove the journal.
//!
//! A pack file is deleted only after the catalog no longer names it, and
//! the catalog drops a pack only in the transaction that gives each of its
//! live blobs a new home (it refuses if a live blob would lose its only
//! row). A crash anywhere leaves every snapshot restorable: before step 5
//! the old packs are all there, after it the new ones are. What a crash
//! leaves behind (new packs not yet cataloged, old ones not yet deleted) is
//! unreferenced, and the next prune deletes it. Any listing, read or write
//! error stops prune before it deletes anything, and a damaged snapshot
//! record or a blob missing from the catalog stops it before it plans.

mod choose;
pub mod journal;
mod mark;
mod repack;

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

pub use choose::{BlobCounts, Choice, DEFAULT_REPACK_UNUSED, PackChoice, RepackRule};
pub use mark::LiveSet;

use crate::catalog::CatalogError;
use crate::crash;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::pack::{self, PackError};
use crate::progress::Progress;
use crate::store::{Store, StoreError};
use crate::when::SnapshotTime;

/// Why prune stopped. It stops before deleting anything in every case but
/// a failed deletion, which leaves only unreferenced files behind.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A snapshot record does not read: what it references is unknown.
    #[error(
        "snapshot record {key} is damaged ({cause}); prune cannot tell which data it needs, so it deletes nothing. Forget it explicitly (`cairn forget ID`) if it is beyond repair"
    )]
    DamagedRecord {
        /// The record's key.
        key: String,
        /// Why it does not read.
        cause: String,
    },
    /// Snapshots reference blobs the catalog does not know.
    #[error(
        "{count} blob(s) referenced by snapshots are not in the catalog (first: {blob}, needed by snapshot {snapshot}); the store or its catalog is damaged, so prune deletes nothing"
    )]
    MissingBlobs {
        /// How many.
        count: u64,
        /// The first one found.
        blob: BlobId,
        /// A snapshot that needs it.
        snapshot: String,
    },
    /// A tree of a snapshot does not read.
    #[error("snapshot {snapshot}: {source}; prune deletes nothing")]
    Unreadable {
        /// The snapshot.
        snapshot: String,
        /// What failed.
        #[source]
        source: Box<StoreError>,
    },
    /// The commit would have dropped the only row of a live blob (a bug
    /// caught by the last check): nothing was changed.
    #[error(
        "internal check failed: live blob {0} would have lost its only location; nothing was deleted"
    )]
    WouldLoseLiveBlob(BlobId),
    /// The store failed.
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<StoreError> for PruneError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<CatalogError> for PruneError {
    fn from(e: CatalogError) -> Self {
        Self::Store(Box::new(e.into()))
    }
}

impl From<crate::backend::BackendError> for PruneError {
    fn from(e: crate::backend::BackendError) -> Self {
        Self::Store(Box::new(e.into()))
    }
}

impl From<PackError> for PruneError {
    fn from(e: PackError) -> Self {
        Self::Store(Box::new(e.into()))
    }
}

/// How prune decides.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// When a partly used pack is repacked.
    pub repack: RepackRule,
    /// Plan as if these snapshots were already forgotten: what
    /// `forget --dry-run --prune` shows.
    pub assume_forgotten: HashSet<SnapshotId>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            repack: RepackRule::PerPack(DEFAULT_REPACK_UNUSED),
            assume_forgotten: HashSet::new(),
        }
    }
}

/// A pack file no catalog row names.
#[derive(Debug, Clone, Serialize)]
pub struct UnreferencedPack {
    /// The pack.
    pub id: PackId,
    /// Its size.
    pub size: u64,
}

/// What prune will do, and why.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Snapshots whose blobs are kept.
    pub snapshots: u64,
    /// Cataloged packs examined.
    pub packs: u64,
    /// Deletions and repacks of cataloged packs, with their totals.
    #[serde(flatten)]
    pub choice: Choice,
    /// Packs not in the catalog (left by interrupted runs): deleted.
    pub unreferenced: Vec<UnreferencedPack>,
    /// Files under `packs/` prune leaves alone: damaged or unknown, for
    /// `verify` and the operator to look at.
    pub left_alone: Vec<LeftAlone>,
    /// An interrupted prune this run finishes: when it started, or why its
    /// journal does not read.
    pub interrupted: Option<String>,
    /// Seconds spent marking.
    pub mark_secs: f64,
    /// The live blobs (not serialised).
    #[serde(skip)]
    live: LiveSet,
}

/// A file in `packs/` prune does not touch.
#[derive(Debug, Clone, Serialize)]
pub struct LeftAlone {
    /// Its key.
    pub key: String,
    /// Why it is left.
    pub why: String,
}

impl Plan {
    /// Bytes the plan frees: deleted packs whole, repacked ones less their
    /// live bytes (an estimate until the new packs exist).
    pub fn bytes_to_free(&self) -> u64 {
        let deleted: u64 = self.choice.delete.iter().map(|p| p.size).sum();
        let repacked: u64 = self
            .choice
            .repack
            .iter()
            .map(|p| p.size.saturating_sub(p.live_bytes))
            .sum();
        let unreferenced: u64 = self.unreferenced.iter().map(|p| p.size).sum();
        deleted + repacked + unreferenced
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.choice.delete.is_empty()
            && self.choice.repack.is_empty()
            && self.unreferenced.is_empty()
    }
}

/// What a prune did.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The plan it carried out.
    #[serde(flatten)]
    pub plan: Plan,
    /// Pack files deleted (cataloged, repacked and unreferenced).
    pub packs_deleted: u64,
    /// Packs written by repacking.
    pub packs_written: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Stored bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Bytes of pack files deleted less bytes of packs written.
    pub bytes_freed: u64,
    /// Leftover files removed from `tmp/`.
    pub tmp_files_removed: u64,
    /// Their bytes.
    pub tmp_bytes_removed: u64,
    /// Wall time, marking included.
    pub duration_secs: f64,
}

/// Works out what to delete and repack. Reads only: a dry run stops here.
pub fn plan(
    store: &Store,
    options: &PruneOptions,
    progress: &Progress,
) -> Result<Plan, PruneError> {
    store.require_exclusive("prune")?;
    let interrupted = journal::read(store.backend())?.map(|j| match j {
        Ok(j) => format!("started {}", j.started),
        Err(e) => e,
    });
    let mut list = store.snapshots()?;
    let gone = |key: &str| {
        let id = key
            .strip_prefix("snapshots/")
            .and_then(|k| k.strip_suffix(".json"));
        id.and_then(|h| h.parse().ok())
            .is_some_and(|id| options.assume_forgotten.contains(&id))
    };
    if let Some((key, cause)) = list.unreadable.into_iter().find(|(key, _)| !gone(key)) {
        return Err(PruneError::DamagedRecord { key, cause });
    }
    list.snapshots
        .retain(|s| !options.assume_forgotten.contains(&s.id));
    let started = Instant::now();
    let live = mark::mark(store, &list.snapshots, progress)?;
    let mark_secs = started.elapsed().as_secs_f64();
    let packs = store.catalog().packs()?;
    let choice = choose::choose(store.catalog(), &packs, &live, options.repack)?;
    let cataloged: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
    let (unreferenced, left_alone) = unreferenced_packs(store, &cataloged)?;
    Ok(Plan {
        snapshots: list.snapshots.len() as u64,
        packs: packs.len() as u64,
        choice,
        unreferenced,
        left_alone,
        interrupted,
        mark_secs,
        live,
    })
}

/// Lists `packs/` for pack files the catalog does not name. Each one's
/// header is read: a pack whose header decodes is debris of an interrupted
/// run (complete, renamed into place, never cataloged) and is deleted; one
/// whose header does not decode is damage, left for `verify` to report.
fn unreferenced_packs(
    store: &Store,
    cataloged: &HashSet<PackId>,
) -> Result<(Vec<UnreferencedPack>, Vec<LeftAlone>), PruneError> {
    let backend = store.backend();
    let mut unreferenced = Vec::new();
    let mut left = Vec::new();
    for dir in backend.list("packs")? {
        if !(dir.len() == 2 && crate::id::is_hex_prefix(&dir)) {
            left.push(LeftAlone {
                key: format!("packs/{dir}"),
                why: "not a pack directory".into(),
            });
            continue;
        }
        for name in backend.list(&format!("packs/{dir}"))? {
            let key = format!("packs/{dir}/{name}");
            let Some(id) = name
                .strip_suffix(".pack")
                .and_then(|h| h.parse::<PackId>().ok())
            else {
                left.push(LeftAlone {
                    key,
                    why: "not a pack file name".into(),
                });
                continue;
            };
            if cataloged.contains(&id) {
                continue;
            }
            match pack::reader::read_header(backend, &id) {
                Ok((_, size)) => unreferenced.push(UnreferencedPack { id, size }),
                Err(PackError::Format { source, .. }) => left.push(LeftAlone {
                    key,
                    why: format!("not in the catalog and damaged: {source}"),
                }),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((unreferenced, left))
}

/// Carries out `plan`: journal, repack, commit, delete, clean `tmp/`.
pub fn execute(store: &mut Store, plan: Plan, progress: &Progress) -> Result<Report, PruneError> {
    let started = Instant::now();
    store.require_exclusive("prune")?;
    journal::write(store.backend(), &journal_of(&plan))?;
    crash::point("prune-planned");
    store.catalog().ensure_pack_index()?;
    let repacked = repack::repack(store, &plan.choice.repack, &plan.live, progress)?;
    let removed: Vec<PackId> = plan
        .choice
        .delete
        .iter()
        .chain(&plan.choice.repack)
        .map(|p| p.id)
        .collect();
    let live = &plan.live;
    store
        .catalog_mut()
        .commit_prune(&repacked.packs, &removed, |id| live.contains(id))?
        .map_err(PruneError::WouldLoseLiveBlob)?;
    crash::point("prune-cataloged");
    let doomed = removed
        .iter()
        .chain(plan.unreferenced.iter().map(|p| &p.id));
    let mut packs_deleted = 0;
    let mut bytes_deleted = 0;
    for id in doomed {
        bytes_deleted += delete_pack(store, id)?;
        packs_deleted += 1;
        crash::point("prune-pack-deleted");
    }
    let (tmp_files, tmp_bytes) = store.clear_tmp()?;
    journal::remove(store.backend())?;
    let written: u64 = repacked.packs.iter().map(|p| p.size).sum();
    Ok(Report {
        packs_deleted,
        packs_written: repacked.packs.len() as u64,
        blobs_repacked: repacked.blobs,
        bytes_repacked: repacked.bytes,
        bytes_freed: bytes_deleted.saturating_sub(written),
        tmp_files_removed: tmp_files,
        tmp_bytes_removed: tmp_bytes,
        duration_secs: plan.mark_secs + started.elapsed().as_secs_f64(),
        plan,
    })
}

/// Deletes one pack file; returns its size (0 if it was already gone, as
/// after a crash in an earlier prune's deletions).
fn delete_pack(store: &Store, id: &PackId) -> Result<u64, PruneError> {
    let key = pack::key(id);
    let size = match std::fs::metadata(store.backend().path(&key)) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(StoreError::Io {
                path: store.backend().path(&key),
                source,
            }
            .into());
        }
    };
    match store.backend().delete(&key) {
        Ok(()) => Ok(size),
        Err(e) if e.is_not_found() => Ok(0),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

fn journal_of(plan: &Plan) -> journal::Journal {
    let ids = |packs: &[PackChoice]| packs.iter().map(|p| p.id).collect();
    journal::Journal {
        version: 1,
        started: SnapshotTime::now(),
        delete: ids(&plan.choice.delete),
        repack: ids(&plan.choice.repack),
        unreferenced: plan.unreferenced.iter().map(|p| p.id).collect(),
    }
}
