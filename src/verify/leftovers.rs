//! What verify reports besides damage: leftovers of interrupted runs
//! (warnings), and the state of the verification ledger.

use std::collections::HashSet;

use super::LedgerSummary;
use crate::catalog::prune::PackRow;
use crate::id::PackId;
use crate::pack::PackError;
use crate::store::staging::TempState;
use crate::store::{Store, StoreError};

/// Warnings, and damaged packs the catalog does not name (with the cause).
pub(super) type Leftovers = (Vec<String>, Vec<(PackId, String)>);

/// Warnings about unreferenced packs, strays and damaged condemnations in
/// `condemned/`, leftovers in `tmp/` and an unfinished prune; and packs the catalog does not name whose header does not decode:
/// those are damage (a crashed run only ever leaves complete packs), maybe
/// holding blobs a rebuilt catalog could not list.
///
/// Snapshots may run beside verify: their locked temporary files are not
/// leftovers, and while one runs (store::writers) an uncataloged pack may
/// be its own, about to be cataloged and committed.
pub(super) fn leftovers(
    store: &Store,
    packs: &[PackRow],
    lacks_rows: bool,
) -> Result<Leftovers, StoreError> {
    let mut out = Vec::new();
    let found = uncataloged_packs(store, packs)?;
    if found.unreferenced > 0 {
        out.push(found.warning(lacks_rows));
    }
    for (key, why) in found.strays {
        out.push(format!("{key}: {why}"));
    }
    out.extend(condemned_leftovers(store)?);
    let left = left_in_tmp(store)?;
    if left > 0 {
        out.push(format!(
            "{left} file(s) in tmp/ left by interrupted runs (`cairn prune` removes them)"
        ));
    }
    if crate::prune::journal::read(store.backend())?.is_some() {
        out.push(
            "an interrupted prune left its journal; the next `cairn prune` finishes it".into(),
        );
    }
    Ok((out, found.damaged))
}

/// What `packs/` holds beyond the cataloged packs.
struct PackLeftovers {
    /// Complete packs no catalog row names.
    unreferenced: usize,
    /// Whether a capture was running when they were found.
    writers: bool,
    /// Whether other hosts may be writing the store (a remote store).
    shared: bool,
    /// Entries that are not packs: (key, why).
    strays: Vec<(String, String)>,
    /// Packs no catalog row names whose header does not read.
    damaged: Vec<(PackId, String)>,
}

impl PackLeftovers {
    /// What to say of the packs no catalog row names; `lacks_rows`: blobs
    /// the snapshots need are missing from the catalog, which points at
    /// lost index objects rather than interrupted runs.
    fn warning(&self, lacks_rows: bool) -> String {
        let n = self.unreferenced;
        if lacks_rows && !self.writers {
            format!(
                "{n} pack(s) in packs/ are not in the catalog, and blobs the snapshots need are missing from it: \
                 the index objects naming those packs may be lost; `cairn repair catalog` indexes them from their headers"
            )
        } else if self.writers {
            format!(
                "{n} pack(s) in packs/ are not referenced by any snapshot yet (a running snapshot may commit them)"
            )
        } else if self.shared {
            format!(
                "{n} pack(s) in packs/ are not in the catalog (a snapshot running on another host may still commit them, or an interrupted run left them; `cairn prune` removes them once older than its grace)"
            )
        } else {
            format!(
                "{n} pack(s) in packs/ are not in the catalog (left by interrupted runs; `cairn prune` removes them)"
            )
        }
    }
}

/// The packs under `packs/` that no catalog row names. The listing comes
/// first, then whether a capture runs, then the catalog again (`packs` was
/// read when verify started): a pack a capture published before the
/// listing is by then either named by the catalog or its capture still
/// runs (or died, leaving it behind).
fn uncataloged_packs(store: &Store, packs: &[PackRow]) -> Result<PackLeftovers, StoreError> {
    let cataloged: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
    let listing = crate::pack::list::list(store.backend())?;
    crate::crash::point("verify-packs-listed");
    let mut found = PackLeftovers {
        unreferenced: 0,
        writers: crate::store::writers::running(store.home()),
        shared: store.backend().is_remote(),
        strays: listing.strays,
        damaged: Vec::new(),
    };
    for id in listing.packs.iter().filter(|id| !cataloged.contains(id)) {
        if store.catalog().has_pack(id)? {
            continue;
        }
        match crate::pack::reader::read_header(store.backend(), id) {
            Ok(_) => found.unreferenced += 1,
            // Gone since the listing: a prune (of another host, on a
            // shared store) deleted what an interrupted run left. (A
            // broken symlink in its place is still there: damage.)
            Err(PackError::Io(e))
                if e.is_not_found() && store.backend().head(&crate::pack::key(id))?.is_none() => {}
            Err(e) => found.damaged.push((
                *id,
                format!("not in the catalog and its header does not read: {e}"),
            )),
        }
    }
    Ok(found)
}

/// What `condemned/` holds beside condemnations: strays (not named as
/// one), which snapshots and prunes ignore, and condemnations that do not
/// decode, which stop them (each said with what to do).
fn condemned_leftovers(store: &Store) -> Result<Vec<String>, StoreError> {
    let listing = crate::prune::condemn::survey(store.backend())?;
    let strays = listing.strays.into_iter().map(|key| {
        format!("{key}: not a condemnation cairn wrote (not named as one); snapshots and prunes ignore it")
    });
    Ok(listing.damaged.into_iter().chain(strays).collect())
}

/// How many entries of `tmp/` no running process holds.
fn left_in_tmp(store: &Store) -> Result<usize, StoreError> {
    let staging = store.staging();
    let names = staging.names()?;
    Ok(names
        .iter()
        .filter(|name| staging.state(name) == TempState::Left)
        .count())
}

/// The ledger of the cataloged `packs` as it stands after this run.
pub(super) fn ledger_summary(
    store: &Store,
    packs: &[PackRow],
    now: i64,
) -> Result<LedgerSummary, StoreError> {
    let ledger = store.catalog().verified()?;
    let mut summary = LedgerSummary::default();
    let mut oldest: Option<i64> = None;
    for pack in packs {
        match ledger.get(&pack.id) {
            Some(&at) => oldest = Some(oldest.map_or(at, |o| o.min(at))),
            None => summary.packs_never_verified += 1,
        }
    }
    summary.oldest_verification_age_secs = oldest.map(|at| u64::try_from(now - at).unwrap_or(0));
    Ok(summary)
}
