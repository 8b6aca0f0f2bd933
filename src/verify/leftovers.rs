//! What verify reports besides damage: leftovers of interrupted runs
//! (warnings), and the state of the verification ledger.

use std::collections::HashSet;

use super::LedgerSummary;
use crate::catalog::prune::PackRow;
use crate::id::PackId;
use crate::store::{Store, StoreError};

/// Warnings, and damaged packs the catalog does not name (with the cause).
pub(super) type Leftovers = (Vec<String>, Vec<(PackId, String)>);

/// Warnings about unreferenced packs, leftovers in `tmp/` and an unfinished
/// prune; and packs the catalog does not name whose header does not decode:
/// those are damage (a crashed run only ever leaves complete packs), maybe
/// holding blobs a rebuilt catalog could not list.
pub(super) fn leftovers(store: &Store, packs: &[PackRow]) -> Result<Leftovers, StoreError> {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    let cataloged: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
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
