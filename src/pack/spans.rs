//! Reading many blobs of a remote store with few requests.
//!
//! A restore reads each file's blobs as it writes the file: locally that is
//! a `pread` per run of blobs, on S3 it was a ranged GET per run, which for
//! a tree of small files is a GET per file (968 GETs for 20 MiB where
//! restic makes 4, and 2.5x its time). Before a batch of files is written,
//! [`Spans::plan`] groups the blobs the batch needs by pack and merges them
//! into spans: blobs less than [`GAP`] apart share a span, a pack more than
//! half of whose bytes are needed is one span from its first needed byte to
//! its last, and no span is longer than [`MAX_SPAN`]. A span is fetched
//! with one GET the first time a run inside it is read, and kept while the
//! runs after it are read from memory. The spans held, and those being
//! fetched, are kept in one [`SpanCache`] for the whole restore and never
//! add up to more than its budget (least recently read dropped first,
//! whichever plan it was fetched for), so memory stays bounded however
//! large the batch and however many large files are written at once
//! (each plans its own spans segment by segment); a span dropped too early
//! is fetched again, which costs a request, never correctness. Runs
//! outside every span (none, as restore plans) are read with a ranged GET
//! as before.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{BlobLocation, key};
use crate::backend::{Backend, BackendError};
use crate::id::PackId;

/// Needed ranges closer than this are fetched in one span: reading the
/// bytes between costs less than another request (on S3 a request's
/// latency is worth a few MiB of transfer).
pub const GAP: u64 = 1 << 20;

/// Longest span: a pack of the default target size (16 MiB, sealed once
/// past it, so up to one chunk more) is a single span.
pub const MAX_SPAN: u64 = 24 << 20;

/// Most bytes held in spans at once, fetched or being fetched, with up to
/// two readers: three default packs, enough for the two ends of the batch
/// that two threads write at once without dropping each other's span.
/// With more readers, the budget is a longest span for each, so that no
/// reader's span is dropped between its runs.
pub const HELD: u64 = 64 << 20;

/// The spans planned for one batch of reads from a remote store.
pub struct Spans<'b> {
    backend: &'b Backend,
    /// Per pack, its spans sorted by offset.
    by_pack: HashMap<PackId, Vec<Span>>,
    cache: &'b SpanCache,
}

/// The spans in memory for every plan of one restore, under one budget.
pub struct SpanCache {
    state: Mutex<Held>,
    /// Signalled when bytes are released.
    room: Condvar,
}

/// One range of a pack to fetch whole.
struct Span {
    offset: u64,
    len: u64,
    /// Held by the thread fetching it, so a span is fetched once even when
    /// several threads want it at the same moment.
    fetching: Mutex<()>,
}

/// A span: its pack, offset and length (the same span planned twice is
/// the same).
type SpanAt = (PackId, u64, u64);

/// The spans in memory, least recently read first, and the bytes of those
/// being fetched.
struct Held {
    spans: Vec<(SpanAt, Arc<Vec<u8>>)>,
    bytes: u64,
    in_flight: u64,
    budget: u64,
}

impl Held {
    fn get(&mut self, at: SpanAt) -> Option<Arc<Vec<u8>>> {
        let i = self.spans.iter().position(|(k, _)| *k == at)?;
        let entry = self.spans.remove(i);
        let bytes = Arc::clone(&entry.1);
        self.spans.push(entry);
        Some(bytes)
    }

    /// Drops the least recently read spans until `len` more bytes fit;
    /// whether they do (spans being fetched are not dropped).
    fn make_room(&mut self, len: u64) -> bool {
        while self.bytes + self.in_flight + len > self.budget && !self.spans.is_empty() {
            let ((_, _, dropped), _) = self.spans.remove(0);
            self.bytes -= dropped;
        }
        // A span larger than everything is let through alone.
        self.bytes + self.in_flight + len <= self.budget || self.in_flight == 0
    }
}

impl<'b> Spans<'b> {
    /// The spans covering `blobs`, held in `cache`, for a remote store;
    /// `None` for a local one, whose reads cost no request.
    pub fn plan<'a>(
        backend: &'b Backend,
        cache: &'b SpanCache,
        blobs: impl IntoIterator<Item = &'a BlobLocation>,
    ) -> Option<Self> {
        if !backend.is_remote() {
            return None;
        }
        let mut ranges: HashMap<PackId, Vec<(u64, u64)>> = HashMap::new();
        for at in blobs {
            let end = at.offset + u64::from(at.stored_len);
            ranges.entry(at.pack).or_default().push((at.offset, end));
        }
        let by_pack = ranges
            .into_iter()
            .map(|(pack, ranges)| (pack, spans_of(ranges)))
            .collect();
        Some(Self {
            backend,
            by_pack,
            cache,
        })
    }

    /// How many spans there are: the GETs a batch costs at best.
    pub fn count(&self) -> usize {
        self.by_pack.values().map(Vec::len).sum()
    }

    /// `len` bytes of `pack` from `offset`, from the span that holds them
    /// (fetched first if it is not in memory); `None` if no span holds
    /// them all.
    pub fn read(
        &self,
        pack: &PackId,
        offset: u64,
        len: usize,
    ) -> Option<Result<Vec<u8>, BackendError>> {
        let spans = self.by_pack.get(pack)?;
        let end = offset + len as u64;
        let i = spans.partition_point(|s| s.offset + s.len < end);
        let span = spans.get(i).filter(|s| s.offset <= offset)?;
        let slice = |bytes: &[u8]| {
            let from = (offset - span.offset) as usize;
            bytes[from..from + len].to_vec()
        };
        let at = (*pack, span.offset, span.len);
        let fetch = || self.backend.get_range(&key(pack), at.1, at.2 as usize);
        let held = self.cache.held(at, &span.fetching, fetch);
        Some(held.map(|bytes| slice(&bytes)))
    }
}

/// A plan's spans are not needed once it is done: dropped at once, as
/// when each plan held its own.
impl Drop for Spans<'_> {
    fn drop(&mut self) {
        let planned: HashSet<SpanAt> = self
            .by_pack
            .iter()
            .flat_map(|(pack, spans)| spans.iter().map(|s| (*pack, s.offset, s.len)))
            .collect();
        let mut held = self.cache.lock();
        held.spans.retain(|(at, _)| !planned.contains(at));
        held.bytes = held.spans.iter().map(|((_, _, len), _)| len).sum();
        drop(held);
        self.cache.room.notify_all();
    }
}

impl SpanCache {
    /// An empty cache for `readers` threads reading at once: [`HELD`], or
    /// a longest span for each reader if that is more.
    pub fn for_readers(readers: usize) -> Self {
        let held = Held {
            spans: Vec::new(),
            bytes: 0,
            in_flight: 0,
            budget: HELD.max(readers as u64 * MAX_SPAN),
        };
        Self {
            state: Mutex::new(held),
            room: Condvar::new(),
        }
    }

    /// The bytes of span `at`, fetched with `fetch` if they are not held;
    /// `fetching` is held meanwhile, so that threads wanting the same
    /// planned span fetch it once.
    fn held(
        &self,
        at: SpanAt,
        fetching: &Mutex<()>,
        fetch: impl FnOnce() -> Result<Vec<u8>, BackendError>,
    ) -> Result<Arc<Vec<u8>>, BackendError> {
        if let Some(bytes) = self.lock().get(at) {
            return Ok(bytes);
        }
        let _fetching = fetching.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have fetched it while this one waited.
        if let Some(bytes) = self.lock().get(at) {
            return Ok(bytes);
        }
        let len = at.2;
        let flight = self.reserve(len);
        let fetched = fetch().map(Arc::new);
        let mut held = self.lock();
        // Another plan may have fetched the same span meanwhile.
        if let Ok(bytes) = &fetched
            && held.get(at).is_none()
        {
            held.bytes += len;
            held.spans.push((at, Arc::clone(bytes)));
        }
        drop(held);
        drop(flight);
        fetched
    }

    /// Waits until `len` more bytes fit under the budget, and counts them
    /// as being fetched until the returned guard goes.
    fn reserve(&self, len: u64) -> Flight<'_> {
        let mut held = self.lock();
        while !held.make_room(len) {
            held = self.room.wait(held).unwrap_or_else(PoisonError::into_inner);
        }
        held.in_flight += len;
        Flight { cache: self, len }
    }

    /// The held spans; a thread that panicked holding them left them
    /// consistent (every change is made whole under the lock).
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes counted as being fetched, until the fetch ends however it ends
/// (a fetch that panicked and kept its count would leave every later
/// reservation waiting for ever).
struct Flight<'c> {
    cache: &'c SpanCache,
    len: u64,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.cache.lock().in_flight -= self.len;
        self.cache.room.notify_all();
    }
}

/// The spans that cover `ranges` (start, end) of one pack, sorted.
fn spans_of(mut ranges: Vec<(u64, u64)>) -> Vec<Span> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 + GAP && end.max(last.1) - last.0 <= MAX_SPAN => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    if let (Some(first), Some(last)) = (merged.first(), merged.last()) {
        let extent = last.1 - first.0;
        let needed: u64 = merged.iter().map(|(s, e)| e - s).sum();
        if merged.len() > 1 && extent <= MAX_SPAN && needed * 2 > extent {
            merged = vec![(first.0, last.1)];
        }
    }
    merged
        .into_iter()
        .map(|(offset, end)| Span {
            offset,
            len: end - offset,
            fetching: Mutex::new(()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
        spans_of(ranges.to_vec())
            .iter()
            .map(|s| (s.offset, s.offset + s.len))
            .collect()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn ranges_closer_than_the_gap_share_a_span_and_farther_ones_do_not() {
        let spans = plan(&[
            (0, 10),
            (10, 20),
            (20 + GAP - 1, 20 + GAP),
            (30 * MIB, 30 * MIB + 5),
        ]);
        assert_eq!(spans, [(0, 20 + GAP), (30 * MIB, 30 * MIB + 5)]);
    }

    #[test]
    fn a_pack_needed_more_than_half_is_one_span_despite_wide_gaps() {
        let spans = plan(&[(0, 3 * MIB), (5 * MIB, 8 * MIB)]);
        assert_eq!(spans, [(0, 8 * MIB)]);
        let sparse = plan(&[(0, MIB), (5 * MIB, 6 * MIB)]);
        assert_eq!(sparse, [(0, MIB), (5 * MIB, 6 * MIB)]);
    }

    #[test]
    fn no_span_grows_past_the_longest_and_every_range_is_covered() {
        let ranges: Vec<_> = (0..100).map(|i| (i * MIB, (i + 1) * MIB)).collect();
        let spans = plan(&ranges);
        assert!(spans.iter().all(|(s, e)| e - s <= MAX_SPAN), "{spans:?}");
        for (start, end) in ranges {
            assert!(
                spans.iter().any(|(s, e)| *s <= start && end <= *e),
                "{start}"
            );
        }
    }

    /// Reads of spans of `len` bytes of pack `n` from `cache`, counting
    /// fetches (the bytes are a stand-in: the budget counts planned lengths).
    struct Reader {
        cache: SpanCache,
        fetching: Mutex<()>,
        fetches: std::cell::Cell<u32>,
        len: u64,
    }

    impl Reader {
        fn new(readers: usize, len: u64) -> Self {
            Self {
                cache: SpanCache::for_readers(readers),
                fetching: Mutex::new(()),
                fetches: std::cell::Cell::new(0),
                len,
            }
        }

        fn read(&self, n: u8) {
            let at = (PackId::from_bytes([n; 32]), 0, self.len);
            let fetch = || {
                self.fetches.set(self.fetches.get() + 1);
                Ok(vec![n])
            };
            let held = self.cache.held(at, &self.fetching, fetch);
            assert_eq!(*held.unwrap(), [n]);
        }
    }

    #[test]
    fn one_budget_holds_the_spans_of_every_plan_dropping_the_least_recently_read() {
        let reader = Reader::new(2, 20 * MIB);
        let (read, fetches, cache) = (|n| reader.read(n), &reader.fetches, &reader.cache);
        // Three spans of one plan, one read again: no fetch.
        for n in [1, 2, 3, 1] {
            read(n);
        }
        assert_eq!(fetches.get(), 3);
        // Another plan's span: 80 MiB would be held, so the least recently
        // read (pack 2) goes.
        read(4);
        assert_eq!(fetches.get(), 4);
        assert_eq!(cache.lock().bytes, 60 * MIB);
        for n in [1, 3, 4] {
            read(n);
        }
        assert_eq!(fetches.get(), 4);
        read(2);
        assert_eq!(fetches.get(), 5);
        assert!(cache.lock().bytes <= HELD);
    }

    #[test]
    fn with_many_readers_each_keeps_a_longest_span_and_a_failed_fetch_frees_its_count() {
        let reader = Reader::new(8, MAX_SPAN);
        let (read, fetches, cache) = (|n| reader.read(n), &reader.fetches, &reader.cache);
        for n in (0..8).chain(0..8) {
            read(n);
        }
        assert_eq!(fetches.get(), 8, "a reader's span was dropped");
        // A fetch that panics gives its bytes back: the next one goes on.
        let at = (PackId::from_bytes([9; 32]), 0, MAX_SPAN);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.held(at, &reader.fetching, || panic!("fetch failed"))
        }));
        assert!(panicked.is_err());
        assert_eq!(cache.lock().in_flight, 0);
        read(10);
    }

    #[test]
    fn overlapping_and_repeated_ranges_merge() {
        assert_eq!(plan(&[(5, 10), (0, 8), (5, 10)]), [(0, 10)]);
    }
}
