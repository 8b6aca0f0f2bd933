//! Sizing each pack's live part and choosing what to delete and repack.
//!
//! One streaming pass over the catalog's blob rows sums, per pack, the
//! bytes of its live blobs; a pack's unused bytes are the rest of its file
//! (dead blobs, spare copies of blobs stored twice, their header entries).
//! Memory is one small record per pack, never per blob.

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::catalog::prune::PackRow;
use crate::id::PackId;
use crate::pack::BlobKind;
use crate::pack::format::{ENTRY_LEN, TRAILER_LEN};
use crate::reach::LiveSet;

/// By default prune repacks the emptiest packs until at most this fraction
/// of the store's pack bytes is unused: the same bound as repacking every
/// pack more than a fifth unused (cairn's rule until 2026-12), reached by
/// rewriting fewer bytes: emptiest first, a pack 70% unused frees 2.3
/// bytes for each it rewrites, one 21% unused a quarter of one. On a 500 MB
/// SQLite store after `forget --keep-last 3` the old rule rewrote 133 MiB
/// to free 107 (1.47 s); this one 30 MiB to free 53 (0.58 s), leaving the
/// packs 23% larger (269 MiB against 219; `--max-unused 5`: 1.31 s, 227).
/// Packs that free at least what they rewrite go as well, under the limit
/// or not (`Partly::pays_for_itself`): on the tree dataset after
/// `--keep-last 3` four tree packs 83-91% unused (1.7 MiB freed for 0.2
/// rewritten) had stayed because the whole store was 16% unused.
pub const DEFAULT_MAX_UNUSED: f64 = 0.20;

/// The live part of one pack.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    live_blobs: u64,
    live_bytes: u64,
}

/// Blob counts from the catalog pass.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct BlobCounts {
    /// Blob rows that live snapshots reach.
    pub live: u64,
    /// Blob rows nothing reaches any more.
    pub dead: u64,
    /// Marked prefixes some row has: the live set's size when the catalog
    /// holds every blob the snapshots need (prune checks that with it).
    #[serde(skip)]
    pub marked_found: u64,
}

impl BlobCounts {
    /// Whether some blob `live` marks has no row in the catalog.
    pub fn lack_some_of(&self, live: &LiveSet) -> bool {
        self.marked_found != live.len()
    }
}

/// A pack prune will act on, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PackChoice {
    /// The pack.
    pub id: PackId,
    /// Its catalog row.
    #[serde(skip)]
    pub rowid: i64,
    /// Data or tree.
    #[serde(serialize_with = "kind_name")]
    pub kind: BlobKind,
    /// Its file size.
    pub size: u64,
    /// Bytes of live blobs in it (copied if it is repacked).
    pub live_bytes: u64,
    /// Bytes of it no live snapshot needs: what deleting or repacking it
    /// frees (a repacked pack's live blobs take their header entries and a
    /// frame with them).
    pub unused: u64,
    /// Why: "no live blob", "43% unused", "60% unused, frees at least
    /// what it rewrites" (under the limit, see `Partly::pays_for_itself`).
    pub reason: String,
}

impl PackChoice {
    /// The catalog row it was chosen from.
    pub fn row(&self) -> PackRow {
        PackRow {
            rowid: self.rowid,
            id: self.id,
            kind: self.kind,
            size: self.size,
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &BlobKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    })
}

/// The packs chosen, plus the totals that explain the choice.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Choice {
    /// Packs with no live blob: deleted.
    pub delete: Vec<PackChoice>,
    /// Packs with too much unused space: live blobs copied, then deleted.
    pub repack: Vec<PackChoice>,
    /// Blob rows counted.
    pub blobs: BlobCounts,
    /// Bytes in all cataloged packs.
    pub bytes_total: u64,
    /// Of those, bytes no live snapshot needs.
    pub bytes_unused: u64,
}

/// How much unused space may stay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RepackRule {
    /// Repack nothing; delete only the packs with nothing live.
    Nothing,
    /// Repack the emptiest packs first until at most this fraction of the
    /// store's pack bytes is unused (`--max-unused`), and below 1.0 every
    /// pack that frees at least what repacking it writes as well.
    StoreWide(f64),
}

/// Bytes of a pack beyond its blobs and their header entries: the trailer,
/// and the seal of the header in an encrypted store (`overhead`, the
/// vault's). Counted as unused, the seal made every pack of an encrypted
/// store look partly unused, and `--max-unused 0` rewrote the whole store
/// at every prune.
pub fn pack_frame(overhead: u32) -> u64 {
    TRAILER_LEN as u64 + u64::from(overhead)
}

/// Decides, for every cataloged pack, whether to keep, delete or repack it;
/// `frame` is [`pack_frame`] for the store.
pub fn choose(
    catalog: &Catalog,
    packs: &[PackRow],
    live: &LiveSet,
    rule: RepackRule,
    frame: u64,
) -> Result<Choice, crate::catalog::CatalogError> {
    let (usage, blobs) = measure(catalog, live)?;
    let mut choice = Choice {
        blobs,
        ..Choice::default()
    };
    let mut partly_used = Vec::new();
    for pack in packs {
        let used = usage.get(&pack.rowid).copied().unwrap_or_default();
        choice.bytes_total += pack.size;
        if used.live_blobs == 0 {
            choice.bytes_unused += pack.size;
            choice
                .delete
                .push(pack_choice(pack, (0, pack.size), "no live blob".into()));
            continue;
        }
        let needed = used.live_bytes + used.live_blobs * ENTRY_LEN as u64 + frame;
        let unused = pack.size.saturating_sub(needed);
        choice.bytes_unused += unused;
        if unused > 0 {
            let rewritten = needed - frame;
            partly_used.push(Partly {
                pack,
                live_bytes: used.live_bytes,
                rewritten,
                unused,
            });
        }
    }
    choose_repacks(&mut choice, partly_used, rule, frame);
    Ok(choice)
}

/// `pack` chosen for `reason`, with its `(live_bytes, unused)`.
fn pack_choice(pack: &PackRow, (live_bytes, unused): (u64, u64), reason: String) -> PackChoice {
    PackChoice {
        id: pack.id,
        rowid: pack.rowid,
        kind: pack.kind,
        size: pack.size,
        live_bytes,
        unused,
        reason,
    }
}

/// A pack with some unused space, as prune weighs repacking it.
struct Partly<'a> {
    pack: &'a PackRow,
    /// Bytes of its live blobs.
    live_bytes: u64,
    /// What repacking it writes: its live blobs and their header entries.
    rewritten: u64,
    /// What repacking it frees.
    unused: u64,
}

impl Partly<'_> {
    fn fraction(&self) -> f64 {
        self.unused as f64 / self.pack.size as f64
    }

    /// Whether repacking it frees at least as many bytes as it writes: a
    /// pack about half unused or more.
    fn pays_for_itself(&self) -> bool {
        self.unused >= self.rewritten
    }
}

/// Applies `rule` to the packs that have some unused space. A repacked
/// pack's blobs share the new packs' frames: reckoned as if they had none,
/// the store after is never smaller than reckoned, so a prune that stopped
/// at the limit finds nothing more to repack when it runs again. A pack
/// that pays for itself is repacked under the limit too (unless the limit
/// is 100%: no repacking asked for).
fn choose_repacks(choice: &mut Choice, mut partly: Vec<Partly<'_>>, rule: RepackRule, frame: u64) {
    // Emptiest first; by id among equals, so the choice is deterministic.
    partly.sort_by(|a, b| {
        (b.fraction())
            .total_cmp(&a.fraction())
            .then(a.pack.id.cmp(&b.pack.id))
    });
    let deleted: u64 = choice.delete.iter().map(|p| p.size).sum();
    let mut total = choice.bytes_total - deleted;
    let mut unused = choice.bytes_unused - deleted;
    for candidate in &partly {
        let RepackRule::StoreWide(limit) = rule else {
            return;
        };
        let over_limit = unused as f64 > limit * total as f64;
        let pays = limit < 1.0 && candidate.pays_for_itself();
        if !(over_limit || pays) {
            continue;
        }
        total -= candidate.unused + frame;
        unused -= candidate.unused;
        let mut reason = format!("{:.0}% unused", candidate.fraction() * 100.0);
        if !over_limit {
            reason.push_str(", frees at least what it rewrites");
        }
        let usage = (candidate.live_bytes, candidate.unused);
        choice
            .repack
            .push(pack_choice(candidate.pack, usage, reason));
    }
}

/// Sums the live blobs of every pack in one pass over the blob rows.
fn measure(
    catalog: &Catalog,
    live: &LiveSet,
) -> Result<(HashMap<i64, Usage>, BlobCounts), crate::catalog::CatalogError> {
    let mut usage: HashMap<i64, Usage> = HashMap::new();
    let mut counts = BlobCounts::default();
    // Rows come in id order, so the rows of one prefix are adjacent.
    let mut last_found: Option<[u8; 8]> = None;
    catalog.scan_blobs(|row| {
        if live.contains(&row.id) {
            let prefix = LiveSet::prefix_bytes(&row.id);
            if last_found != Some(prefix) {
                counts.marked_found += 1;
                last_found = Some(prefix);
            }
            counts.live += 1;
            let u = usage.entry(row.pack).or_default();
            u.live_blobs += 1;
            u.live_bytes += u64::from(row.stored_len);
        } else {
            counts.dead += 1;
        }
    })?;
    Ok((usage, counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::pack::writer::PublishedPack;

    /// An id of 8 bytes `prefix` and 24 bytes `rest`.
    fn id(prefix: u8, rest: u8) -> BlobId {
        let mut bytes = [rest; 32];
        bytes[..8].fill(prefix);
        BlobId::from_bytes(bytes)
    }

    fn pack(n: u8, size: u64) -> PackRow {
        PackRow {
            rowid: i64::from(n),
            id: PackId::from_bytes([n; 32]),
            kind: BlobKind::Data,
            size,
        }
    }

    /// The packs `rule` repacks (number and reason) of packs of 1000 bytes
    /// with `unused` bytes each, numbered from 0.
    fn repacked(unused: &[u64], rule: RepackRule) -> Vec<String> {
        let packs: Vec<PackRow> = (0..unused.len() as u8).map(|n| pack(n, 1000)).collect();
        let mut choice = Choice {
            bytes_total: 1000 * unused.len() as u64,
            bytes_unused: unused.iter().sum(),
            ..Choice::default()
        };
        let partly = (packs.iter().zip(unused))
            .map(|(pack, u)| Partly {
                pack,
                live_bytes: 1000 - u - 48,
                rewritten: 1000 - u - 48,
                unused: *u,
            })
            .collect();
        choose_repacks(&mut choice, partly, rule, 48);
        (choice.repack.iter())
            .map(|p| format!("{} {}", p.id.as_bytes()[0], p.reason))
            .collect()
    }

    #[test]
    fn the_emptiest_packs_are_repacked_until_at_most_the_limit_is_unused() {
        // 1600 of 4000 unused; after the 70% pack 900 of at least 3252,
        // after the 50% one 400 of at least 2704: under a fifth.
        let rule = RepackRule::StoreWide(0.2);
        let chosen = repacked(&[300, 700, 100, 500], rule);
        assert_eq!(chosen, ["1 70% unused", "3 50% unused"]);
        // The new packs' frames are reckoned as nothing: 400 unused of at
        // least 2704 is more than 14.5%, so a third pack goes. (Reckoned
        // with the old packs' frames, 400 of 2800 was not, and the store
        // left, 400 of 2752, was over the limit at the next prune.)
        let chosen = repacked(&[300, 700, 100, 500], RepackRule::StoreWide(0.145));
        assert_eq!(chosen, ["1 70% unused", "3 50% unused", "0 30% unused"]);
        assert!(repacked(&[0, 0], RepackRule::StoreWide(0.0)).is_empty());
        assert_eq!(
            repacked(&[10, 0], RepackRule::StoreWide(0.0)),
            ["0 1% unused"]
        );
        assert!(repacked(&[900, 900], RepackRule::Nothing).is_empty());
        // Equally empty packs go in the order of their ids.
        let first = repacked(&[450, 450, 0, 0], RepackRule::StoreWide(0.2));
        assert_eq!(first, ["0 45% unused"]);
    }

    #[test]
    fn a_pack_that_frees_more_than_it_rewrites_is_repacked_under_the_limit_too() {
        // 600 of 10000 unused, but that pack's 600 against 352 live.
        let unused = [0, 0, 0, 600, 0, 0, 0, 0, 0, 0];
        let chosen = repacked(&unused, RepackRule::StoreWide(0.2));
        assert_eq!(chosen, ["3 60% unused, frees at least what it rewrites"]);
        // 476 against 476 rewritten pays; 475 against 477 does not; nor
        // anything at 100%.
        let even = repacked(&[0, 476, 0, 0], RepackRule::StoreWide(0.2));
        assert_eq!(even, ["1 48% unused, frees at least what it rewrites"]);
        assert!(repacked(&[0, 475, 0, 0], RepackRule::StoreWide(0.2)).is_empty());
        assert!(repacked(&unused, RepackRule::StoreWide(1.0)).is_empty());
    }

    #[test]
    fn a_marked_blob_without_a_row_is_noticed_though_two_others_share_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let (missing, b, c) = (id(1, 0), id(2, 1), id(2, 2));
        catalog
            .record_pack(&PublishedPack::for_test(b"pack", &[b, c]))
            .unwrap();
        let live = LiveSet::of(&[missing, b, c]);
        let (_, counts) = measure(&catalog, &live).unwrap();
        assert_eq!((counts.live, counts.dead), (2, 0));
        assert!(counts.lack_some_of(&live), "{counts:?}");
        let whole = LiveSet::of(&[b, c]);
        let (_, counts) = measure(&catalog, &whole).unwrap();
        assert!(!counts.lack_some_of(&whole), "{counts:?}");
    }
}
