//! Prune: give back the space of forgotten snapshots.
//!
//! Plan, then execute, under the exclusive lock:
//!
//! 1. **mark** ([`crate::reach`]): walk every remaining snapshot's trees
//!    (each subtree once) and remember which blobs they reach;
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
pub mod condemn;
mod execute;
pub mod journal;
pub mod lease;
mod plan;
pub(crate) mod reindex;
mod shared;

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

pub use choose::{BlobCounts, Choice, DEFAULT_MAX_UNUSED, PackChoice, RepackRule};
pub use execute::execute;
pub use plan::plan;
pub use shared::SharedReport;

use crate::catalog::CatalogError;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::pack::PackError;
use crate::store::StoreError;

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
    /// A pack about to be deleted is still named by the catalog (a bug
    /// caught by the last check): it was left in place.
    #[error("internal check failed: pack {0} is still in the catalog; it was not deleted")]
    StillCataloged(PackId),
    /// A plan made for a dry run (as if some snapshots were already
    /// forgotten) was passed to `execute`.
    #[error("a dry-run plan cannot be executed")]
    Hypothetical,
    /// Another prune holds the lease of a shared store.
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    /// Repacking failed. Not transparent: the repack error stays in the
    /// chain, where the exit code finds damage.
    #[error("{0}")]
    Repack(#[from] crate::repack::RepackError),
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
    /// Only planning (no lease is taken on a shared store).
    pub dry_run: bool,
    /// On a shared store: how long a condemned pack waits before it is
    /// deleted, and how old a dead pack's index object must be before it
    /// is condemned. Longer than the longest snapshot.
    pub grace: Duration,
    /// The host recorded in the prune lease.
    pub host: String,
}

/// The default grace period: a day.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            repack: RepackRule::StoreWide(DEFAULT_MAX_UNUSED),
            assume_forgotten: HashSet::new(),
            dry_run: false,
            grace: DEFAULT_GRACE,
            host: String::new(),
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
    live: crate::reach::LiveSet,
    /// Made as if some snapshots were forgotten: for showing only.
    #[serde(skip)]
    hypothetical: bool,
    /// On a shared store: the prune lease this run holds, and the grace.
    #[serde(skip)]
    shared: Option<(lease::Lease, Duration)>,
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
    /// What repacking costs and gains: live bytes it rewrites, and bytes
    /// it frees (the dry run reports both, for choosing `--max-unused`).
    pub fn repack_trade(&self) -> (u64, u64) {
        let rewritten = self.choice.repack.iter().map(|p| p.live_bytes).sum();
        let freed = self.choice.repack.iter().map(|p| p.unused).sum();
        (rewritten, freed)
    }

    /// Bytes the plan frees: deleted packs whole, repacked ones less their
    /// live bytes (an estimate until the new packs exist).
    pub fn bytes_to_free(&self) -> u64 {
        let deleted: u64 = self.choice.delete.iter().map(|p| p.size).sum();
        let (_, repacked) = self.repack_trade();
        let unreferenced: u64 = self.unreferenced.iter().map(|p| p.size).sum();
        deleted + repacked + unreferenced
    }

    /// Packs every deletion of the plan names: cataloged ones to delete or
    /// repack, and unreferenced ones.
    fn doomed(&self) -> impl Iterator<Item = PackId> + '_ {
        let choice = &self.choice;
        choice
            .delete
            .iter()
            .chain(&choice.repack)
            .map(|p| p.id)
            .chain(self.unreferenced.iter().map(|p| p.id))
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
    /// Requests made to a remote store; absent for a local one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<crate::backend::RequestStats>,
    /// On a shared store: what the two phases did.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub shared: Option<SharedReport>,
}
