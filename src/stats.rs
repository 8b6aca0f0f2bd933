//! What a store holds and how it grew: its size, the data its snapshots
//! hold before deduplication and compression and the ratio of each step,
//! snapshots per host, and what each snapshot added.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::totals::Totals;
use crate::id::SnapshotId;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};
use crate::when::SnapshotTime;

/// The figures of a store.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Snapshots in the store.
    pub snapshots: u64,
    /// Bytes of every object in the store: packs, index objects, snapshot
    /// records, protection markers and config (not the local catalog).
    pub store_bytes: u64,
    /// The catalog's sums over packs and blobs.
    pub catalog: Totals,
    /// The files of every snapshot added up, as if each were stored whole:
    /// the data before deduplication.
    pub logical_bytes: u64,
    /// `logical_bytes` over the distinct content's bytes
    /// (`catalog.data_raw_bytes`).
    pub dedup_ratio: f64,
    /// The distinct content's bytes over their compressed bytes.
    pub compression_ratio: f64,
    /// `logical_bytes` over `store_bytes`: both steps together.
    pub total_ratio: f64,
    /// Snapshots per host.
    pub hosts: Vec<HostStats>,
}

/// One host's snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct HostStats {
    /// The host.
    pub host: String,
    /// How many snapshots it has.
    pub snapshots: u64,
    /// When its newest was taken.
    pub newest: SnapshotTime,
}

/// What one snapshot added, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: SnapshotTime,
    /// Its host.
    pub host: String,
    /// The size of its files.
    pub total_bytes: u64,
    /// What it added to the store (compressed).
    pub bytes_added: u64,
    /// The store's pack bytes after it, as recorded at its commit (absent
    /// in records of older cairn versions).
    pub store_bytes: Option<u64>,
}

/// The store's figures, for `snapshots` (the store's readable snapshots).
pub fn stats(store: &Store, snapshots: &[Snapshot]) -> Result<Stats, StoreError> {
    let catalog = store.catalog().totals()?;
    let mut store_bytes = 0;
    for prefix in ["packs/", "index/", "snapshots/", "protected/"] {
        store_bytes += store
            .backend()
            .list(prefix)?
            .iter()
            .map(|o| o.size)
            .sum::<u64>();
    }
    store_bytes += store.backend().head("config.json")?.map_or(0, |o| o.size);
    let logical_bytes = snapshots.iter().fold(0u64, |sum, s| {
        sum.saturating_add(s.record.summary.total_bytes)
    });
    Ok(Stats {
        snapshots: snapshots.len() as u64,
        store_bytes,
        catalog,
        logical_bytes,
        dedup_ratio: ratio(logical_bytes, catalog.data_raw_bytes),
        compression_ratio: ratio(catalog.data_raw_bytes, catalog.data_stored_bytes),
        total_ratio: ratio(logical_bytes, store_bytes),
        hosts: hosts(snapshots),
    })
}

/// What each of `snapshots` added (they come oldest first).
pub fn growth(snapshots: &[&Snapshot]) -> Vec<Growth> {
    snapshots
        .iter()
        .map(|s| Growth {
            id: s.id,
            time: s.record.time,
            host: s.record.host.clone(),
            total_bytes: s.record.summary.total_bytes,
            bytes_added: s.record.summary.bytes_added,
            store_bytes: s.record.summary.store_bytes,
        })
        .collect()
}

fn hosts(snapshots: &[Snapshot]) -> Vec<HostStats> {
    let mut by_host: BTreeMap<&str, HostStats> = BTreeMap::new();
    for s in snapshots {
        let entry = by_host.entry(&s.record.host).or_insert_with(|| HostStats {
            host: s.record.host.clone(),
            snapshots: 0,
            newest: s.record.time,
        });
        entry.snapshots += 1;
        entry.newest = entry.newest.max(s.record.time);
    }
    by_host.into_values().collect()
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    match b {
        0 => 0.0,
        b => a as f64 / b as f64,
    }
}
