//! Where files are cut into blobs: FastCDC 2020 content-defined chunking.
//!
//! Boundaries depend only on the bytes and the parameters stored in the
//! store's config, so an insertion in the middle of a file moves only the
//! chunks around it and identical content yields identical blobs. A file
//! smaller than `min_size` is one chunk; an empty file has none.

use std::io::{self, Read};

use fastcdc::v2020::{self, StreamCDC};
use serde::{Deserialize, Serialize};

/// Chunk size bounds, as recorded in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is smaller, except the last of a file.
    pub min_size: u32,
    /// The size chunks cluster around.
    pub avg_size: u32,
    /// No chunk is larger.
    pub max_size: u32,
    /// FastCDC's gear seed: 0 (the published table) in a plain store,
    /// derived from the key in an encrypted one (never in `config.json`).
    #[serde(skip)]
    pub seed: u64,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
            seed: 0,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC accepts (it panics outside them), so that a
    /// config edited by hand is refused with a message instead.
    pub fn validate(&self) -> Result<(), String> {
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let checks = [
            ("min_size", min, v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX),
            ("avg_size", avg, v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX),
            ("max_size", max, v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX),
        ];
        for (field, value, range) in checks {
            if !range.contains(&value) {
                return Err(format!(
                    "chunker {field} {value} is outside {}..={}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if min % 2 != 0 || avg % 2 != 0 || max % 2 != 0 {
            return Err(format!("chunker sizes {min}/{avg}/{max} must be even"));
        }
        if !(min <= avg && avg <= max) {
            return Err(format!(
                "chunker sizes {min}/{avg}/{max} must satisfy min <= avg <= max"
            ));
        }
        Ok(())
    }
}

/// A stream of chunks, each an owned buffer.
pub type Chunks<'r> = Box<dyn Iterator<Item = io::Result<Vec<u8>>> + 'r>;

/// Streams `reader` as chunks, holding at most `max_size` bytes of it at once.
/// `params` must have passed [`ChunkerParams::validate`].
///
/// `size_hint` is the expected length (a file's size; `u64::MAX` if unknown).
/// Input of at most `min_size` bytes is always one chunk, so a small file is
/// read straight into a buffer of its size instead of through FastCDC's
/// `max_size` window; if it turns out longer than `min_size` (it grew), the
/// bytes read so far are fed to FastCDC first, so cut points never depend on
/// the hint.
pub fn chunks<'r, R: Read + 'r>(
    mut reader: R,
    size_hint: u64,
    params: &ChunkerParams,
) -> Chunks<'r> {
    let min = u64::from(params.min_size);
    if size_hint > min {
        return Box::new(stream(reader, *params));
    }
    let mut head = Vec::with_capacity(size_hint as usize);
    match (&mut reader).take(min + 1).read_to_end(&mut head) {
        Err(e) => Box::new(std::iter::once(Err(e))),
        Ok(_) if head.len() as u64 <= min => {
            Box::new((!head.is_empty()).then_some(Ok(head)).into_iter())
        }
        Ok(_) => Box::new(stream(io::Cursor::new(head).chain(reader), *params)),
    }
}

/// Streams `reader` as runs of exactly `run_len` bytes (the last may be
/// shorter). Database images are cut this way, at page boundaries, so a page
/// changed in place invalidates only the run that holds it.
pub fn fixed_runs<'r, R: Read + 'r>(mut reader: R, run_len: usize) -> Chunks<'r> {
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut run = Vec::with_capacity(run_len);
        match (&mut reader).take(run_len as u64).read_to_end(&mut run) {
            Err(e) => {
                done = true;
                Some(Err(e))
            }
            Ok(_) => {
                done = run.len() < run_len;
                (!run.is_empty()).then_some(Ok(run))
            }
        }
    }))
}

fn stream<R: Read>(reader: R, params: ChunkerParams) -> impl Iterator<Item = io::Result<Vec<u8>>> {
    StreamCDC::with_level_and_seed(
        reader,
        params.min_size as usize,
        params.avg_size as usize,
        params.max_size as usize,
        v2020::Normalization::Level1,
        params.seed,
    )
    .map(|chunk| chunk.map(|c| c.data).map_err(io::Error::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seeded_bytes(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    fn cut_points(data: &[u8], params: &ChunkerParams) -> Vec<usize> {
        chunks(data, u64::MAX, params)
            .map(|c| c.unwrap().len())
            .scan(0, |end, len| {
                *end += len;
                Some(*end)
            })
            .collect()
    }

    #[test]
    fn fixed_runs_cut_at_multiples_of_the_run_length() {
        let data = seeded_bytes(10_000, 3);
        let runs: Vec<Vec<u8>> = fixed_runs(&data[..], 4096).map(|r| r.unwrap()).collect();
        let lens: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(lens, [4096, 4096, 1808]);
        assert_eq!(runs.concat(), data);
        assert_eq!(fixed_runs(&data[..8192], 4096).count(), 2);
        assert_eq!(fixed_runs(&b""[..], 4096).count(), 0);
    }

    #[test]
    fn default_params_are_valid() {
        ChunkerParams::default().validate().unwrap();
    }

    #[test]
    fn bad_params_are_refused_not_panicked_on() {
        let d = ChunkerParams::default();
        for bad in [
            ChunkerParams { min_size: 10, ..d },
            ChunkerParams {
                avg_size: d.max_size * 2,
                ..d
            },
            ChunkerParams {
                max_size: d.max_size + 1,
                ..d
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_input_has_no_chunks_and_small_input_is_one() {
        let p = ChunkerParams::default();
        for hint in [0, 1000, u64::MAX] {
            assert_eq!(chunks(&b""[..], hint, &p).count(), 0);
            let small = vec![7u8; 1000];
            let got: Vec<_> = chunks(&small[..], hint, &p).map(|c| c.unwrap()).collect();
            assert_eq!(got, vec![small]);
        }
    }

    // The cut points of a seeded 8 MiB input are part of the store format:
    // if this changes, existing stores stop deduplicating against new data.
    #[test]
    fn cut_points_of_a_seeded_8_mib_input_are_stable() {
        let data = seeded_bytes(8 << 20, 0x9E37_79B9_7F4A_7C15);
        let got = cut_points(&data, &ChunkerParams::default());
        assert_eq!(
            got,
            vec![
                1_040_333, 2_474_732, 3_526_740, 4_082_364, 5_128_939, 6_764_923, 8_388_608
            ]
        );
    }

    #[test]
    fn an_edit_in_the_middle_moves_only_nearby_chunks() {
        let p = ChunkerParams::default();
        let mut data = seeded_bytes(16 << 20, 42);
        let before: Vec<_> = chunks(&data[..], u64::MAX, &p)
            .map(|c| c.unwrap())
            .collect();
        data[8 << 20] ^= 0xff;
        let after: Vec<_> = chunks(&data[..], u64::MAX, &p)
            .map(|c| c.unwrap())
            .collect();
        let new = after.iter().filter(|c| !before.contains(c)).count();
        assert!(new <= 2, "{new} new chunks for a one-byte edit");
    }

    proptest! {
        #[test]
        fn chunks_concatenate_back_to_the_input(data in proptest::collection::vec(any::<u8>(), 0..300_000)) {
            let p = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, seed: 0 };
            let pieces: Vec<Vec<u8>> = chunks(&data[..], u64::MAX, &p).map(|c| c.unwrap()).collect();
            prop_assert!(pieces.iter().all(|c| c.len() <= 16384 && !c.is_empty()));
            prop_assert_eq!(pieces.concat(), data);
        }

        // A wrong size hint (a file that grew or shrank) never changes the cuts.
        #[test]
        fn the_size_hint_never_changes_cut_points(len in 0usize..6000, hint in 0u64..3000) {
            let p = ChunkerParams { min_size: 1024, avg_size: 2048, max_size: 4096, seed: 0 };
            let data: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            let hinted: Vec<Vec<u8>> = chunks(&data[..], hint, &p).map(|c| c.unwrap()).collect();
            let plain: Vec<Vec<u8>> = chunks(&data[..], u64::MAX, &p).map(|c| c.unwrap()).collect();
            prop_assert_eq!(hinted, plain);
        }
    }
}
