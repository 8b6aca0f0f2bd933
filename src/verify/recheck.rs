//! Verify beside a prune. Packs are deleted while other processes run: a
//! two-phase prune on another host (or another process on a local store)
//! removes packs it condemned a grace period ago, and repacks move live
//! blobs out of them first. A verify that read the catalog before such a
//! deletion finds the pack missing, though no snapshot lost anything: the
//! snapshots that needed it were forgotten, or the catalog now places its
//! blobs in the new pack.
//!
//! So a pack found missing is damage only if the store, looked at again,
//! still names it. When the refreshed catalog no longer does, the pass is
//! run again against the store as it now is; packs read whole by the first
//! pass are not read again (the ledger has them).

use std::time::{Duration, Instant};

use super::{Report, VerifyOptions};
use crate::id::PackId;
use crate::progress::Progress;
use crate::store::{Store, StoreError};

/// Passes after the first, at most: each needs a prune to delete packs
/// during the pass before it, so a store that keeps changing faster than
/// verify runs still gets an answer.
const RECHECKS: usize = 3;

/// Runs verify, and runs it again while packs it found missing turn out to
/// have been removed by a prune meanwhile.
pub fn verify_beside_prunes(
    store: &mut Store,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let mut report = super::verify_at_rest(store, options, progress)?;
    for _ in 0..RECHECKS {
        let removed = removed_meanwhile(store, &report.damaged_packs)?;
        if removed == 0 {
            break;
        }
        let again = unread_since(options, started.elapsed());
        let next = super::verify_at_rest(store, &again, progress)?;
        report = merged(report, next, removed);
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// How many of `damaged` the store no longer names, after bringing the
/// catalog up to date with the store.
fn removed_meanwhile(store: &mut Store, damaged: &[PackId]) -> Result<usize, StoreError> {
    if damaged.is_empty() {
        return Ok(0);
    }
    if store.backend().is_remote() {
        let backend = store.backend().clone();
        crate::catalog::sync::sync(store.catalog_mut(), &backend)?;
    }
    let mut removed = 0;
    for id in damaged {
        if !store.catalog().has_pack(id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `options`, skipping the packs found good within `elapsed` (by the pass
/// before).
fn unread_since(options: &VerifyOptions, elapsed: Duration) -> VerifyOptions {
    let mut again = options.clone();
    let read_by_first = elapsed + Duration::from_secs(1);
    again.data.max_age = Some(
        again
            .data
            .max_age
            .map_or(read_by_first, |m| m.max(read_by_first)),
    );
    again
}

/// The later pass's findings, with the reading the earlier one did.
fn merged(earlier: Report, mut later: Report, removed: usize) -> Report {
    later.packs_read += earlier.packs_read;
    later.bytes_read += earlier.bytes_read;
    later.read_secs += earlier.read_secs;
    later.warnings.push(format!(
        "{removed} pack(s) were removed by a prune while verify ran; checked again against the store as it is now"
    ));
    later
}
