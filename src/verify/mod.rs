//! Verification: an answer an operator can trust, "ok" or exactly which
//! snapshots and files are damaged.
//!
//! Three depths, each including the one before:
//! 1. **structure** (always): `config.json` (checked on open); every
//!    snapshot record read from its file, its id matching its content; every
//!    tree reachable from the chosen snapshots decodes; every blob they
//!    reference is in the catalog; every pack the catalog names exists with
//!    its recorded size and a header that agrees with the catalog (headers
//!    only);
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
mod packs;
mod records;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

pub use attribute::Affected;
pub use data::{DataOptions, ReadData};

use crate::catalog::prune::PackRow;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::progress::Progress;
use crate::reach::{self, Trouble};
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};

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
}

impl std::fmt::Display for DamageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record => "record",
            Self::Pack => "pack",
            Self::Blob => "blob",
            Self::Database => "database",
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
    /// Every blob found lost (for `repair`).
    #[serde(skip)]
    pub lost_blobs: HashSet<BlobId>,
    /// Every pack found damaged or missing (for `repair`).
    #[serde(skip)]
    pub damaged_packs: Vec<PackId>,
}

/// Runs the checks `options` ask for.
pub fn verify(
    store: &Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let mut found = Found::default();
    let list = records::read_all(store)?;
    for (key, cause) in list.unreadable {
        found.record(key, cause);
    }
    let chosen: Vec<Snapshot> = list
        .snapshots
        .into_iter()
        .filter(|s| options.snapshots.as_ref().is_none_or(|c| c.contains(&s.id)))
        .collect();
    let reached = reach::reach(store, &chosen, progress)?;
    let restrict = options.snapshots.is_some().then_some(&reached.live);
    let mut checked: Vec<(PackRow, packs::Rows)> = Vec::new();
    let mut suspects: HashMap<BlobId, usize> = HashMap::new();
    for pack in store.catalog().packs()? {
        let (rows, finding) = packs::check(store, &pack, restrict)?;
        if let Some(f) = finding {
            let index = found.pack(&f.pack.id, f.cause, &f.lost);
            suspects.extend(f.suspect.iter().map(|b| (*b, index)));
        }
        if !rows.is_empty() || restrict.is_none() {
            checked.push((pack, rows));
        }
    }
    // After the packs: a tree that does not read because its pack is
    // damaged is already counted there.
    for (_, trouble) in &reached.troubles {
        found.trouble(trouble);
    }
    let mut report = Report::new(&chosen, &reached, checked.len() as u64);
    let read = read_data(store, &checked, options, progress, &mut report)?;
    settle_suspects(&mut found, suspects, &read);
    for r in &read {
        // Restricted to some snapshots, a pack whose blobs they need all
        // check out is fine for them, whatever else is wrong with the file.
        if restrict.is_none() || !r.bad_blobs.is_empty() {
            found.pack_read(r);
        }
    }
    if options.sqlite {
        let (n, bad) =
            databases::check_all(store, &chosen, &found.blobs.keys().copied().collect())?;
        report.databases_checked = n;
        for db in bad {
            found.database(db);
        }
    }
    report.lost_blobs = found.blobs.keys().copied().collect();
    report.damaged_packs = found.packs.keys().copied().collect();
    report.damaged_packs.sort();
    report.damage = found.finish(store, &chosen);
    let (warnings, damaged_strays) = leftovers(store)?;
    report.warnings = warnings;
    for (id, cause) in damaged_strays {
        report.damage.push(Damage {
            kind: DamageKind::Pack,
            key: crate::pack::key(&id),
            cause,
            blobs_lost: 0,
            affected: Vec::new(),
        });
        report.damaged_packs.push(id);
    }
    report.ok = report.damage.is_empty();
    report.ledger = ledger_summary(store, options.data.now)?;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

impl Report {
    fn new(chosen: &[Snapshot], reached: &reach::Reached, packs: u64) -> Self {
        Self {
            ok: true,
            snapshots: chosen.len() as u64,
            trees: reached.live.trees(),
            blobs: reached.live.len(),
            packs,
            packs_read: 0,
            bytes_read: 0,
            packs_left_unread: 0,
            databases_checked: 0,
            damage: Vec::new(),
            warnings: Vec::new(),
            ledger: LedgerSummary::default(),
            read_secs: 0.0,
            duration_secs: 0.0,
            lost_blobs: HashSet::new(),
            damaged_packs: Vec::new(),
        }
    }
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
    store.catalog().record_verified(&good, &bad)?;
    report.packs_read = read.len() as u64;
    report.packs_left_unread = (chosen.len() - read.len()) as u64;
    report.bytes_read = read.iter().map(|r| r.bytes).sum();
    report.read_secs = started.elapsed().as_secs_f64();
    Ok(read)
}

/// Blobs a header disagreed about are lost unless reading them by the
/// catalog's location proved them intact.
fn settle_suspects(found: &mut Found, suspects: HashMap<BlobId, usize>, read: &[data::PackRead]) {
    let proven: HashSet<BlobId> = read
        .iter()
        .flat_map(|r| r.good_blobs.iter().copied())
        .collect();
    for (blob, index) in suspects {
        if !proven.contains(&blob) {
            found.lose(blob, index);
        }
    }
}

/// Damage found so far, and which damage each lost blob belongs to.
#[derive(Default)]
struct Found {
    damage: Vec<Damage>,
    blobs: HashMap<BlobId, usize>,
    packs: HashMap<PackId, usize>,
}

impl Found {
    fn add(&mut self, kind: DamageKind, key: String, cause: String) -> usize {
        self.damage.push(Damage {
            kind,
            key,
            cause,
            blobs_lost: 0,
            affected: Vec::new(),
        });
        self.damage.len() - 1
    }

    /// Counts `blob` as lost with damage `index`, unless earlier damage
    /// already accounts for it (it stays attributed there).
    fn lose(&mut self, blob: BlobId, index: usize) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.blobs.entry(blob) {
            v.insert(index);
            self.damage[index].blobs_lost += 1;
        }
    }

    fn record(&mut self, key: String, cause: String) {
        self.add(DamageKind::Record, key, cause);
    }

    fn trouble(&mut self, trouble: &Trouble) {
        let (blob, cause) = match trouble {
            Trouble::Missing(blob) => (*blob, "not in the catalog: no pack holds it".to_owned()),
            Trouble::BadTree(tree, e) => (tree.as_blob(), format!("tree does not read: {e}")),
        };
        if !self.blobs.contains_key(&blob) {
            let index = self.add(DamageKind::Blob, blob.to_hex(), cause);
            self.lose(blob, index);
        }
    }

    fn pack(&mut self, id: &PackId, cause: String, lost: &[BlobId]) -> usize {
        let index = match self.packs.get(id) {
            Some(&i) => i,
            None => {
                let i = self.add(DamageKind::Pack, crate::pack::key(id), cause);
                self.packs.insert(*id, i);
                i
            }
        };
        for blob in lost {
            self.lose(*blob, index);
        }
        index
    }

    fn pack_read(&mut self, read: &data::PackRead) {
        if read.is_good() {
            return;
        }
        let cause = read
            .file_damage
            .clone()
            .unwrap_or_else(|| format!("{} blob(s) do not check out", read.bad_blobs.len()));
        let lost: Vec<BlobId> = read.bad_blobs.iter().map(|(b, _)| *b).collect();
        let index = self.pack(&read.pack, cause.clone(), &lost);
        let known = &mut self.damage[index].cause;
        if !known.contains(&cause) {
            *known = format!("{known}; {cause}");
        }
    }

    fn database(&mut self, db: databases::BadDatabase) {
        let Some((_, first)) = db.holders.first() else {
            return;
        };
        let key = first.display().to_string();
        let index = self.add(DamageKind::Database, key, db.cause);
        for (snapshot, path) in db.holders {
            self.damage[index].affected.push(Affected {
                snapshot: snapshot.id,
                time: snapshot.record.time,
                paths: vec![crate::rawname::RawName::from_path(&path)],
                more_paths: 0,
            });
        }
    }

    /// Attributes lost blobs to snapshots and paths; records name themselves.
    fn finish(mut self, store: &Store, snapshots: &[Snapshot]) -> Vec<Damage> {
        let affected = attribute::attribute(store, snapshots, &self.blobs, self.damage.len());
        for (damage, affected) in self.damage.iter_mut().zip(affected) {
            damage.affected.extend(affected);
        }
        self.damage
    }
}

/// Warnings about unreferenced packs, leftovers in `tmp/` and an unfinished
/// prune; and packs the catalog does not name whose header does not decode:
/// those are damage (a crashed run only ever leaves complete packs), maybe
/// holding blobs a rebuilt catalog could not list.
fn leftovers(store: &Store) -> Result<(Vec<String>, Vec<(PackId, String)>), StoreError> {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    let cataloged: HashSet<PackId> = store.catalog().packs()?.iter().map(|p| p.id).collect();
    let listing = crate::pack::list::list(store.backend())?;
    let mut unreferenced = 0;
    for id in listing.packs.iter().filter(|id| !cataloged.contains(id)) {
        match crate::pack::reader::read_header(store.backend(), id) {
            Ok(_) => unreferenced += 1,
            Err(e) => damaged.push((
                *id,
                format!("not in the catalog and its header does not read: {e}"),
            )),
        }
    }
    if unreferenced > 0 {
        out.push(format!(
            "{unreferenced} pack(s) in packs/ are not in the catalog (left by interrupted runs; `cairn prune` removes them)"
        ));
    }
    for (key, why) in listing.strays {
        out.push(format!("{key}: {why}"));
    }
    let tmp = store.backend().list("tmp")?;
    if !tmp.is_empty() {
        out.push(format!(
            "{} leftover file(s) in tmp/ (`cairn prune` removes them)",
            tmp.len()
        ));
    }
    if crate::prune::journal::read(store.backend())?.is_some() {
        out.push(
            "an interrupted prune left its journal; the next `cairn prune` finishes it".into(),
        );
    }
    Ok((out, damaged))
}

/// The ledger as it stands after this run.
fn ledger_summary(store: &Store, now: i64) -> Result<LedgerSummary, StoreError> {
    let ledger = store.catalog().verified()?;
    let mut summary = LedgerSummary::default();
    let mut oldest: Option<i64> = None;
    for pack in store.catalog().packs()? {
        match ledger.get(&pack.id) {
            Some(&at) => oldest = Some(oldest.map_or(at, |o| o.min(at))),
            None => summary.packs_never_verified += 1,
        }
    }
    summary.oldest_verification_age_secs = oldest.map(|at| u64::try_from(now - at).unwrap_or(0));
    Ok(summary)
}
