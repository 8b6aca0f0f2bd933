//! Verification: an answer an operator can trust, "ok" or exactly which
//! snapshots and files are damaged.
//!
//! Three depths, each including the one before:
//! 1. **structure** (always): `config.json` (checked on open); every
//!    snapshot record read from its file, its id matching its content; every
//!    tree reachable from the chosen snapshots decodes; every blob they
//!    reference is in the catalog; every pack the catalog names exists with
//!    its recorded size and a header that agrees with the catalog (headers
//!    only); every compression dictionary reads and checks out;
//! 2. **data** ([`data`], `--read-data` and its subsets): packs read whole,
//!    each file's id and every blob's hash checked, in parallel, with a
//!    ledger of when each pack was last found good;
//! 3. **databases** ([`databases`], `--sqlite`): every captured database
//!    written out and put through `PRAGMA integrity_check`.
//!
//! Damage is then attributed ([`attribute`]) to the snapshots and paths
//! that depend on it. Unreferenced packs and leftovers are warnings, not
//! damage. Verify only reads the store (its one write is the ledger in
//! `catalog.db`), under the shared lock.

mod attribute;
pub mod data;
mod databases;
mod dictionaries;
mod found;
mod indexes;
mod leftovers;
mod packs;
mod raced;
mod recheck;
mod records;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

pub use attribute::Affected;
pub use data::{DataOptions, ReadData, parse_subset};

use crate::catalog::prune::PackRow;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::progress::Progress;
use crate::reach;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};

/// The cause of damage given for a pack the store does not have.
const MISSING: &str = "missing";

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How much blob data to read.
    pub data: DataOptions,
    /// Check every captured database with `PRAGMA integrity_check`.
    pub sqlite: bool,
    /// Only these snapshots (and the blobs they need); all if `None`.
    pub snapshots: Option<HashSet<SnapshotId>>,
}

/// What kind of thing is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DamageKind {
    /// A snapshot record file.
    Record,
    /// A pack file (missing, wrong size, bad header, wrong content).
    Pack,
    /// A blob (data or tree) that is missing or does not check out.
    Blob,
    /// A captured database that fails its integrity check.
    Database,
    /// A snapshot's trees as a whole: they expand to more entries than its
    /// record allows, or nest deeper than a reader enters (crate::bound).
    Tree,
    /// One entry of a tree that decodes but that a restore would refuse.
    Entry,
    /// An index object that does not read or names a pack that is gone.
    Index,
    /// A compression dictionary that is missing or damaged.
    Dictionary,
}

impl std::fmt::Display for DamageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record => "record",
            Self::Pack => "pack",
            Self::Blob => "blob",
            Self::Database => "database",
            Self::Tree => "tree",
            Self::Entry => "entry",
            Self::Index => "index",
            Self::Dictionary => "dictionary",
        })
    }
}

/// One damaged thing and what depends on it.
#[derive(Debug, Clone, Serialize)]
pub struct Damage {
    /// What it is.
    pub kind: DamageKind,
    /// Its store key or id (`packs/ab/ab12….pack`, a blob id, a path).
    pub key: String,
    /// What is wrong.
    pub cause: String,
    /// Blobs lost with it (a pack's unreadable blobs; 1 for a blob).
    pub blobs_lost: u64,
    /// Snapshots that depend on it, with the paths they cannot restore.
    pub affected: Vec<Affected>,
}

/// The verification ledger at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerSummary {
    /// Cataloged packs never found good by a full read.
    pub packs_never_verified: u64,
    /// Age in seconds of the least recent verification among the packs
    /// verified at least once (none if no pack has been).
    pub oldest_verification_age_secs: Option<u64>,
}

/// What a verify found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No damage found.
    pub ok: bool,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees checked.
    pub trees: u64,
    /// Distinct blobs the snapshots reference.
    pub blobs: u64,
    /// Packs whose header was checked.
    pub packs: u64,
    /// Packs chosen to be read whole (by the subset and `--max-age`).
    pub packs_selected: u64,
    /// Packs read whole.
    pub packs_read: u64,
    /// Bytes read from packs.
    pub bytes_read: u64,
    /// Packs a `--budget` left for another run.
    pub packs_left_unread: u64,
    /// Databases checked with `PRAGMA integrity_check`.
    pub databases_checked: u64,
    /// What is damaged.
    pub damage: Vec<Damage>,
    /// Things worth knowing that are not damage (unreferenced packs, leftovers).
    pub warnings: Vec<String>,
    /// The ledger after this run.
    pub ledger: LedgerSummary,
    /// Seconds spent reading packs.
    pub read_secs: f64,
    /// Wall time.
    pub duration_secs: f64,
    /// Index objects read.
    pub index_objects: u64,
    /// Requests made to a remote store; absent for a local one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<crate::backend::RequestStats>,
    /// Every blob found lost (for `repair`).
    #[serde(skip)]
    pub lost_blobs: HashSet<BlobId>,
    /// Every pack found damaged or missing (for `repair`).
    #[serde(skip)]
    pub damaged_packs: Vec<PackId>,
    /// Of those, the packs found missing (for the recheck beside prunes).
    #[serde(skip)]
    pub missing_packs: Vec<PackId>,
    /// Of those, pack files the catalog never had, whose header does not
    /// read: never removed by a prune meanwhile, though no longer
    /// cataloged (for the recheck).
    #[serde(skip)]
    pub uncataloged_packs: Vec<PackId>,
    /// Snapshots whose trees a reader refuses to expand (for `repair`).
    #[serde(skip)]
    pub unbounded: HashSet<SnapshotId>,
    /// Trees the walks found unreadable because their pack was gone (for
    /// the recheck: `raced`).
    #[serde(skip)]
    pub unread_trees: Vec<crate::id::TreeId>,
    /// Damage other processes changing the store explain (set by the
    /// recheck: `raced`).
    #[serde(skip)]
    pub raced: raced::Raced,
    /// The snapshots this pass walked, with their trees (for `raced`).
    #[serde(skip)]
    pub listed: HashMap<SnapshotId, crate::id::TreeId>,
}

/// Runs the checks `options` ask for, again where other processes
/// changed the store under them (packs removed, trees moved, snapshots
/// forgotten: [`recheck`]).
pub fn verify(
    store: &mut Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    store.catalog().use_small_cache()?;
    recheck::verify_beside_prunes(store, options, progress)
}

/// One pass of the checks `options` ask for, trusting the catalog as it
/// was when it started: for a store no other process changes meanwhile
/// (`repair`, which holds it exclusively), or as a pass of [`verify`].
pub fn verify_at_rest(
    store: &Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    verify_listed(store, records::read_all(store)?, options, progress)
}

/// [`verify_at_rest`] of the snapshots `list` (read from their records
/// before the catalog was last brought up to date, so that it knows every
/// blob they need: `recheck`).
pub fn verify_listed(
    store: &Store,
    list: crate::snapshot::SnapshotList,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let mut found = found::Found::default();
    let asked_gone = asked_but_gone(options, &list);
    for (key, cause) in list.unreadable {
        found.record(key, cause);
    }
    let chosen: Vec<Snapshot> = list
        .snapshots
        .into_iter()
        .filter(|s| options.snapshots.as_ref().is_none_or(|c| c.contains(&s.id)))
        .collect();
    let reached = reach::reach(store, &chosen, progress)?;
    crate::crash::point("verify-walked");
    let restrict = options.snapshots.is_some().then_some(&reached.live);
    let mut checked: Vec<(PackRow, packs::Rows)> = Vec::new();
    let mut suspects: HashMap<BlobId, usize> = HashMap::new();
    let cataloged = store.catalog().packs()?;
    for pack in &cataloged {
        let (rows, finding) = packs::check(store, pack, restrict)?;
        if let Some(f) = finding {
            let index = found.pack(&f.pack.id, f.cause, &f.lost);
            suspects.extend(f.suspect.iter().map(|b| (*b, index)));
        }
        if !rows.is_empty() || restrict.is_none() {
            checked.push((pack.clone(), rows));
        }
    }
    // After the packs: a tree that does not read because its pack is
    // damaged is already counted there.
    for (_, trouble) in &reached.troubles {
        found.trouble(trouble);
    }
    let unread_trees = raced::unread_trees(&reached.troubles);
    let unbounded = judge_tallies(&chosen, &reached, &mut found);
    // Damage is attributed to paths, and databases checked, only in the
    // snapshots a reader may expand.
    let bounded: Vec<Snapshot> = chosen
        .iter()
        .filter(|s| !unbounded.contains(&s.id))
        .cloned()
        .collect();
    for d in dictionaries::check(store)? {
        let index = found.add(DamageKind::Dictionary, d.key, d.cause);
        for blob in d.lost {
            found.lose(blob, index);
        }
    }
    let mut report = Report::new(&chosen, &reached, checked.len() as u64);
    report.unbounded = unbounded;
    report.unread_trees = unread_trees;
    report.listed = raced::listed(&chosen);
    if asked_gone > 0 {
        report.warnings.push(format!(
            "{asked_gone} of the snapshots asked for are gone (forgotten while verify ran): nothing of them was checked"
        ));
    }
    let read = read_data(store, &checked, options, progress, &mut report)?;
    settle_suspects(&mut found, suspects, &checked, &read);
    // The rows of every pack (56 bytes a blob) are not needed past here.
    drop(checked);
    for r in &read {
        // Restricted to some snapshots, a pack whose blobs they need all
        // check out is fine for them, whatever else is wrong with the file.
        if restrict.is_none() || !r.bad_blobs.is_empty() {
            found.pack_read(r);
        }
    }
    if options.sqlite {
        let (n, bad) =
            databases::check_all(store, &bounded, &found.blobs.keys().copied().collect())?;
        report.databases_checked = n;
        for db in bad {
            found.database(db);
        }
    }
    let (warnings, damaged_strays) = leftovers::leftovers(store, &cataloged, found.lacks_rows())?;
    report.warnings.extend(warnings);
    let indexes = indexes::check(store)?;
    report.index_objects = indexes.objects;
    for (key, cause) in indexes.damaged {
        found.add(DamageKind::Index, key, cause);
    }

    if !indexes.unnamed.is_empty() {
        report.warnings.push(format!(
            "{} cataloged pack(s) are named by no index object (first: {}): other hosts do not see them; `cairn repair catalog` indexes them",
            indexes.unnamed.len(),
            indexes.unnamed[0]
        ));
    }
    for (id, cause) in damaged_strays {
        found.pack(&id, cause, &[]);
        report.uncataloged_packs.push(id);
    }
    report.lost_blobs = found.blobs.keys().copied().collect();
    report.damaged_packs = found.packs.keys().copied().collect();
    report.damaged_packs.sort();
    report.missing_packs = (found.packs.iter())
        .filter(|&(_, &i)| is_missing(&found.damage[i].cause))
        .map(|(id, _)| *id)
        .collect();
    report.damage = found.finish(store, &bounded);
    report.ok = report.damage.is_empty();
    report.ledger = leftovers::ledger_summary(store, &cataloged, options.data.now)?;
    report.duration_secs = started.elapsed().as_secs_f64();
    report.requests = store.backend().requests();
    Ok(report)
}

impl Report {
    /// Damage when anything is damaged, else done.
    pub fn outcome(&self) -> crate::outcome::Outcome {
        match self.ok {
            true => crate::outcome::Outcome::Done,
            false => crate::outcome::Outcome::Damage {
                problems: (self.damage.len() as u64).max(1),
            },
        }
    }

    fn new(chosen: &[Snapshot], reached: &reach::Reached, packs: u64) -> Self {
        Self {
            ok: true,
            snapshots: chosen.len() as u64,
            trees: reached.trees.len(),
            blobs: reached.live.len(),
            packs,
            packs_selected: 0,
            packs_read: 0,
            bytes_read: 0,
            packs_left_unread: 0,
            databases_checked: 0,
            damage: Vec::new(),
            warnings: Vec::new(),
            ledger: LedgerSummary::default(),
            read_secs: 0.0,
            duration_secs: 0.0,
            index_objects: 0,
            requests: None,
            lost_blobs: HashSet::new(),
            damaged_packs: Vec::new(),
            missing_packs: Vec::new(),
            uncataloged_packs: Vec::new(),
            unbounded: HashSet::new(),
            unread_trees: Vec::new(),
            raced: raced::Raced::default(),
            listed: HashMap::new(),
        }
    }
}

/// How many of the snapshots `options` ask for `list` lacks, readable or
/// not: forgotten since they were chosen.
fn asked_but_gone(options: &VerifyOptions, list: &crate::snapshot::SnapshotList) -> usize {
    let Some(wanted) = &options.snapshots else {
        return 0;
    };
    let listed: HashSet<SnapshotId> = (list.snapshots.iter().map(|s| s.id))
        .chain((list.unreadable.iter()).filter_map(|(key, _)| crate::snapshot::id_of_key(key)))
        .collect();
    wanted.iter().filter(|id| !listed.contains(id)).count()
}

/// Whether a pack's damage is that it is missing: the cause says so first
/// (reading its data, `--read-data` adds the reason it could not be read).
fn is_missing(cause: &str) -> bool {
    cause.split("; ").next() == Some(MISSING)
}

/// Each snapshot whose trees, fully expanded, a reader would refuse is
/// damage (crate::bound); returns those snapshots.
fn judge_tallies(
    chosen: &[Snapshot],
    reached: &reach::Reached,
    found: &mut found::Found,
) -> HashSet<SnapshotId> {
    let mut unbounded = HashSet::new();
    for (snapshot, (_, tally)) in chosen.iter().zip(&reached.tallies) {
        if let Some(cause) = crate::bound::judge(&snapshot.record.summary, tally) {
            found.unbounded(snapshot, cause);
            unbounded.insert(snapshot.id);
        }
    }
    unbounded
}

/// Reads the packs `options` choose and records the good ones in the ledger.
fn read_data(
    store: &Store,
    checked: &[(PackRow, packs::Rows)],
    options: &VerifyOptions,
    progress: &Progress,
    report: &mut Report,
) -> Result<Vec<data::PackRead>, StoreError> {
    if options.data.which == ReadData::Skip {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let ledger = store.catalog().verified()?;
    let chosen = data::choose(checked, &ledger, &options.data);
    report.packs_selected = chosen.len() as u64;
    progress.restart();
    progress.set_totals(
        chosen.len() as u64,
        chosen.iter().map(|(p, _)| p.size).sum(),
    );
    if chosen.is_empty() && !checked.is_empty() && options.data.max_age.is_none() {
        report.warnings.push(format!(
            "the subset {} covers none of the {} packs: nothing was read (use fewer slices, or a percentage)",
            options.data.which,
            checked.len()
        ));
    }
    let read = data::read_packs(store.backend(), &chosen, options.data.budget, progress);
    let good: Vec<(PackId, i64)> = read
        .iter()
        .filter(|r| r.is_good())
        .map(|r| (r.pack, options.data.now))
        .collect();
    let bad: Vec<PackId> = read
        .iter()
        .filter(|r| !r.is_good())
        .map(|r| r.pack)
        .collect();
    if !store.catalog().record_verified(&good, &bad)? {
        report.warnings.push(
            "the store cannot be written: the verification ledger in catalog.db was not updated"
                .to_owned(),
        );
    }
    report.packs_read = read.len() as u64;
    report.packs_left_unread = (chosen.len() - read.len()) as u64;
    report.bytes_read = read.iter().map(|r| r.bytes).sum();
    report.read_secs = started.elapsed().as_secs_f64();
    Ok(read)
}

/// Blobs a header disagreed about are lost unless reading them by the
/// catalog's location proved them intact: their pack was read and they
/// are not among its bad blobs.
fn settle_suspects(
    found: &mut found::Found,
    suspects: HashMap<BlobId, usize>,
    checked: &[(PackRow, packs::Rows)],
    read: &[data::PackRead],
) {
    if suspects.is_empty() {
        return;
    }
    let read: HashMap<PackId, &data::PackRead> = read.iter().map(|r| (r.pack, r)).collect();
    let mut proven = HashSet::new();
    for (pack, rows) in checked {
        let Some(r) = read.get(&pack.id) else {
            continue;
        };
        let bad: HashSet<BlobId> = r.bad_blobs.iter().map(|(b, _)| *b).collect();
        let good = rows.iter().map(|row| row.id).filter(|b| !bad.contains(b));
        proven.extend(good.filter(|b| suspects.contains_key(b)));
    }
    for (blob, index) in suspects {
        if !proven.contains(&blob) {
            found.lose(blob, index);
        }
    }
}
