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
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::packs::{Row, Rows};
use crate::backend::Backend;
use crate::catalog::prune::PackRow;
use crate::id::{BlobId, PackId};
use crate::pack;
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

/// A pack read once from start to end in blocks, each hashed whole as it
/// arrives (hashing blob by blob lost BLAKE3's SIMD: a tenth of the time).
struct PackStream {
    /// The file, cut off one byte past the size the catalog records: a
    /// longer file is damage, never loaded.
    file: io::Take<Box<dyn Read + Send>>,
    hasher: blake3::Hasher,
    block: Vec<u8>,
    /// How much of `block` was handed out.
    used: usize,
    /// File offset of `block[used]`.
    pos: u64,
    /// Why the stream broke off, if it did: every later read fails with it.
    broken: Option<Break>,
}

/// Why a pack's stream broke off.
enum Break {
    /// The file ended early: a short pack, whose hash then tells it apart
    /// from the real one.
    End,
    /// Reading failed.
    Io(String),
}

impl Break {
    fn why(&self) -> String {
        match self {
            Self::End => BEYOND_THE_END.to_owned(),
            Self::Io(why) => why.clone(),
        }
    }
}

const BEYOND_THE_END: &str = "lies beyond the end of the pack";

/// Bytes read and hashed at a time.
const BLOCK: usize = 1 << 20;

impl PackStream {
    fn new(file: Box<dyn Read + Send>, size: u64) -> Self {
        Self {
            file: file.take(size.saturating_add(1)),
            hasher: blake3::Hasher::new(),
            block: Vec::new(),
            used: 0,
            pos: 0,
            broken: None,
        }
    }

    /// Reads `len` bytes at `offset` into `buf`, passing over what lies
    /// before. Rows come sorted by offset; one that overlaps the previous
    /// (only a damaged catalog has those) or lies beyond `size` (what the
    /// catalog says the file holds) is an error.
    fn read_at(
        &mut self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        size: u64,
    ) -> Result<(), String> {
        if let Some(broken) = &self.broken {
            return Err(broken.why());
        }
        if offset < self.pos {
            return Err("overlaps the blob before it in the pack".to_owned());
        }
        if offset.saturating_add(len as u64) > size {
            return Err(BEYOND_THE_END.to_owned());
        }
        self.take(offset - self.pos, None)?;
        buf.clear();
        self.take(len as u64, Some(buf))
    }

    /// Reads the rest; returns the bytes read and the file's hash.
    fn finish(mut self, size: u64) -> Result<(u64, PackId), String> {
        while self.broken.is_none() {
            self.pos += (self.block.len() - self.used) as u64;
            self.used = self.block.len();
            if !self.refill()? {
                break;
            }
        }
        if let Some(Break::Io(why)) = self.broken {
            return Err(why);
        }
        if self.pos > size {
            return Err(format!("larger than the {size} bytes the catalog records"));
        }
        Ok((
            self.pos,
            PackId::from_bytes(*self.hasher.finalize().as_bytes()),
        ))
    }

    /// Consumes `len` bytes, appending them to `out` if given.
    fn take(&mut self, mut len: u64, mut out: Option<&mut Vec<u8>>) -> Result<(), String> {
        while len > 0 {
            if self.used == self.block.len() && !self.refill()? {
                self.broken = Some(Break::End);
                return Err(BEYOND_THE_END.to_owned());
            }
            let n = (self.block.len() - self.used).min(usize::try_from(len).unwrap_or(usize::MAX));
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&self.block[self.used..self.used + n]);
            }
            self.used += n;
            self.pos += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads and hashes the next block; false at the end of the file.
    fn refill(&mut self) -> Result<bool, String> {
        self.block.resize(BLOCK, 0);
        let n = loop {
            match self.file.read(&mut self.block) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.block.clear();
                    self.used = 0;
                    self.broken = Some(Break::Io(e.to_string()));
                    return Err(e.to_string());
                }
            }
        };
        self.block.truncate(n);
        self.used = 0;
        self.hasher.update(&self.block);
        Ok(n > 0)
    }
}
