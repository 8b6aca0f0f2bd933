//! `--read-data`: read packs whole, check each file's id (the BLAKE3 of
//! its bytes) and every blob in it, in parallel on every core, and keep the
//! ledger of when each pack was last found good.
//!
//! Which packs: all, a fixed slice `N/M` (by id, so the slices of a month
//! of `$(date +%d)/31` cover every pack whatever packs come and go), or a
//! random fraction; then, with `--max-age`, only those not found good more
//! recently than that, least recently verified first, until `--budget`
//! runs out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::packs::{Row, Rows};
use crate::backend::Backend;
use crate::catalog::prune::PackRow;
use crate::id::{BlobId, PackId};
use crate::pack::{self, stream::PackStream};
use crate::progress::Progress;

/// Which packs to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// None (structure only).
    Skip,
    /// Every pack.
    All,
    /// The `n`-th (1-based) of `of` fixed slices.
    Slice {
        /// Which slice, 1..=of.
        n: u32,
        /// How many slices.
        of: u32,
    },
    /// A random share of the packs, 0..=1.
    Fraction(f64),
}

/// `N/M` or `P%`, as `--read-data-subset` and a profile's
/// `verify.read_data_subset` take it.
pub fn parse_subset(text: &str) -> Result<ReadData, String> {
    let bad =
        || format!("{text:?} is not a subset: give N/M (1 <= N <= M) or a percentage like 10%");
    if let Some(p) = text.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&p) {
            return Err(bad());
        }
        return Ok(ReadData::Fraction(p / 100.0));
    }
    let (n, m) = text.split_once('/').ok_or_else(bad)?;
    let (n, m): (u32, u32) = (
        n.trim().parse().map_err(|_| bad())?,
        m.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || n > m {
        return Err(bad());
    }
    Ok(ReadData::Slice { n, of: m })
}

impl std::fmt::Display for ReadData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Skip => f.write_str("none"),
            Self::All => f.write_str("all"),
            Self::Slice { n, of } => write!(f, "{n}/{of}"),
            Self::Fraction(share) => write!(f, "{}%", share * 100.0),
        }
    }
}

/// How much to read.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Which packs.
    pub which: ReadData,
    /// Skip packs found good within this long.
    pub max_age: Option<Duration>,
    /// Stop starting new packs after this long.
    pub budget: Option<Duration>,
    /// Now, in Unix seconds (for the ledger).
    pub now: i64,
    /// Packs read whatever the selection says: a pass that checks again
    /// reads again those the pass before found damaged (a subset drawn
    /// anew could leave them out, and their damage unreported).
    pub again: Vec<PackId>,
}

/// What reading one pack found.
#[derive(Debug)]
pub struct PackRead {
    /// The pack.
    pub pack: PackId,
    /// Bytes read.
    pub bytes: u64,
    /// Why the file as a whole is damaged (unreadable, wrong size, wrong id).
    pub file_damage: Option<String>,
    /// Blobs that do not check out, with the reason; every other blob of
    /// the pack's rows checks out (not listed: verify reads every blob of
    /// the store, and a list of the good ones was a blob id for each).
    pub bad_blobs: Vec<(BlobId, String)>,
}

impl PackRead {
    /// Whether the pack and all its blobs are good.
    pub fn is_good(&self) -> bool {
        self.file_damage.is_none() && self.bad_blobs.is_empty()
    }
}

/// The packs to read, in order: least recently verified first.
pub fn choose<'p>(
    packs: &'p [(PackRow, Rows)],
    ledger: &HashMap<PackId, i64>,
    options: &DataOptions,
) -> Vec<&'p (PackRow, Rows)> {
    let fresh_since = options.max_age.map(|age| {
        options
            .now
            .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
    });
    let again = |id: &PackId| options.again.contains(id);
    let mut chosen: Vec<&(PackRow, Rows)> = packs
        .iter()
        .filter(|(p, _)| !again(&p.id) && in_selection(&p.id, options.which))
        .filter(|(p, _)| match (fresh_since, ledger.get(&p.id)) {
            (Some(since), Some(&at)) => at < since,
            _ => true,
        })
        .collect();
    if let ReadData::Fraction(share) = options.which {
        chosen = random_share(chosen, share);
    }
    chosen.extend(packs.iter().filter(|(p, _)| again(&p.id)));
    chosen.sort_by_key(|(p, _)| (ledger.get(&p.id).copied().unwrap_or(i64::MIN), p.id));
    chosen
}

/// Whether pack `id` is in the slice (fractions are drawn later).
fn in_selection(id: &PackId, which: ReadData) -> bool {
    match which {
        ReadData::Skip => false,
        ReadData::All | ReadData::Fraction(_) => true,
        ReadData::Slice { n, of } => {
            let b = id.as_bytes();
            let prefix = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let slice = (u128::from(prefix) * u128::from(of)) >> 64;
            slice + 1 == u128::from(n)
        }
    }
}

/// A random `share` of `packs` (at least one if there are any and share > 0).
fn random_share<T>(mut packs: Vec<T>, share: f64) -> Vec<T> {
    let want = ((packs.len() as f64 * share).ceil() as usize).min(packs.len());
    let mut seed = [0u8; 8];
    // Without randomness a fixed order still reads a share; not worth failing.
    let _ = getrandom::fill(&mut seed);
    let mut state = u64::from_le_bytes(seed) | 1;
    for i in (1..packs.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        packs.swap(i, (state % (i as u64 + 1)) as usize);
    }
    packs.truncate(want);
    packs
}

/// Reads `chosen` in parallel; packs not started when the budget runs out
/// are left for another night.
pub fn read_packs(
    backend: &Backend,
    chosen: &[&(PackRow, Rows)],
    budget: Option<Duration>,
    progress: &Progress,
) -> Vec<PackRead> {
    let started = Instant::now();
    let out_of_time = AtomicBool::new(false);
    chosen
        .par_iter()
        .filter_map(|(pack, rows)| {
            if budget.is_some_and(|b| started.elapsed() >= b) {
                out_of_time.store(true, Ordering::Relaxed);
            }
            if out_of_time.load(Ordering::Relaxed) {
                return None;
            }
            progress.working_on(|| format!("pack {}", pack.id.short()));
            let read = read_pack(backend, pack, rows);
            Progress::add(&progress.files, 1);
            Progress::add(&progress.bytes, read.bytes);
            Some(read)
        })
        .collect()
}

/// Reads one pack from start to end and checks it and each of `rows`.
///
/// The pack is streamed, never held whole: its id is hashed as the bytes go
/// by, and each blob is checked from a buffer of its own size. Holding whole
/// packs cost a pack per core (16 MiB each by default, up to 1 GiB with
/// `--pack-size`).
fn read_pack(backend: &Backend, pack: &PackRow, rows: &Rows) -> PackRead {
    let mut out = PackRead {
        pack: pack.id,
        bytes: 0,
        file_damage: None,
        bad_blobs: Vec::new(),
    };
    let mut stream = match backend.reader(&pack::key(&pack.id)) {
        Ok(reader) => PackStream::new(reader, pack.size),
        Err(e) => {
            out.file_damage = Some(e.source.to_string());
            out.bad_blobs = rows
                .iter()
                .map(|r| (r.id, "pack unreadable".into()))
                .collect();
            return out;
        }
    };
    let mut in_order: Vec<&Row> = rows.iter().collect();
    in_order.sort_by_key(|r| r.offset);
    let mut stored = Vec::new();
    for row in in_order {
        let checked = stream
            .read_at(row.offset, row.stored_len as usize, &mut stored, pack.size)
            .and_then(|()| {
                let at = row.location(pack.id);
                pack::reader::check_stored(backend, &row.id, &at, &stored)
                    .map_err(|e| e.to_string())
            });
        if let Err(why) = checked {
            out.bad_blobs.push((row.id, why));
        }
    }
    match stream.finish(pack.size) {
        Ok((bytes, actual)) => {
            out.bytes = bytes;
            if actual != pack.id {
                out.file_damage = Some(format!("content does not match its id (hash {actual})"));
            }
        }
        Err(why) => out.file_damage = Some(why),
    }
    out
}
