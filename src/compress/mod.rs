//! Per-blob compression: zstd, or the raw bytes when zstd does not shrink them.
//!
//! Every blob is compressed on its own so that any blob can be read from the
//! middle of a pack without its neighbours. Decoding never trusts the length
//! it is told: output is capped at the recorded raw length.

mod decode;
pub mod dictionary;

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use zstd::zstd_safe::{CCtx, DCtx};

use decode::frame_reader;
#[cfg(test)]
use decode::window_log_for;
pub use decode::{DecodeError, decode, decode_into, decode_owned, decoder};
pub use dictionary::Dictionary;

/// How a blob's bytes are stored in a pack. The codes are on disk (a pack
/// header entry's `compression` byte, and for a dictionary its number in
/// the two bytes after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// One zstd frame.
    Zstd,
    /// One zstd frame made with the store dictionary of this number
    /// (`dictionaries/N`, never 0).
    Dictionary(u16),
}

impl Compression {
    /// The on-disk code.
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Zstd => 1,
            Self::Dictionary(_) => 2,
        }
    }

    /// The number of the dictionary the frame needs; 0 when none.
    pub const fn dictionary(self) -> u16 {
        match self {
            Self::Dictionary(n) => n,
            _ => 0,
        }
    }

    /// The compression of an on-disk code and dictionary number, if they
    /// go together: a dictionary number with code 2 only, and never 0.
    pub const fn from_parts(code: u8, dictionary: u16) -> Option<Self> {
        match (code, dictionary) {
            (0, 0) => Some(Self::None),
            (1, 0) => Some(Self::Zstd),
            (2, 1..) => Some(Self::Dictionary(dictionary)),
            _ => None,
        }
    }

    /// Code and dictionary number in one integer (`code + 256 * number`),
    /// as the catalog's `compression` column holds them.
    pub const fn to_column(self) -> i64 {
        self.code() as i64 + ((self.dictionary() as i64) << 8)
    }

    /// The compression of a catalog `compression` value, if valid.
    pub fn from_column(value: i64) -> Option<Self> {
        let code = u8::try_from(value & 0xff).ok()?;
        let dictionary = u16::try_from(value >> 8).ok()?;
        Self::from_parts(code, dictionary)
    }
}

/// Compression settings, as recorded in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionConfig {
    /// Always `"zstd"` in format version 1.
    pub algorithm: CompressionAlgorithm,
    /// zstd level.
    pub level: i32,
}

/// The compression algorithm named in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// zstd, per blob.
    Zstd,
}

/// The levels `cairn init --compression` accepts.
pub const LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            algorithm: CompressionAlgorithm::Zstd,
            level: 3,
        }
    }
}

impl CompressionConfig {
    /// Refuses levels zstd does not have.
    pub fn validate(&self) -> Result<(), String> {
        if LEVELS.contains(&self.level) {
            Ok(())
        } else {
            Err(format!(
                "zstd level {} is outside {}..={}",
                self.level,
                LEVELS.start(),
                LEVELS.end()
            ))
        }
    }
}

/// A blob's bytes as they go into a pack.
#[derive(Debug)]
pub struct Encoded {
    /// How `bytes` are stored.
    pub compression: Compression,
    /// The stored bytes.
    pub bytes: Vec<u8>,
}

/// Reusable zstd contexts and a scratch buffer (one per worker thread:
/// contexts are not shared).
pub struct Compressor {
    level: i32,
    inner: zstd::bulk::Compressor<'static>,
    with_dictionary: CCtx<'static>,
    check: DCtx<'static>,
    scratch: Vec<u8>,
}

/// Compression failed, or produced bytes that do not decode back to the input.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// zstd itself failed.
    #[error("zstd failed: {0}")]
    Zstd(#[from] io::Error),
    /// The round trip did not give back the input: a compressor fault,
    /// caught before the bytes could be stored.
    #[error("compressed bytes do not decode back to the original ({0})")]
    RoundTrip(String),
}

/// A zstd error code as an `io::Error`.
fn zstd_io(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

impl Compressor {
    /// A compressor at the given zstd level.
    pub fn new(level: i32) -> io::Result<Self> {
        let no_context = || io::Error::other("cannot allocate a zstd context");
        Ok(Self {
            level,
            inner: zstd::bulk::Compressor::new(level)?,
            with_dictionary: CCtx::try_create().ok_or_else(no_context)?,
            check: DCtx::try_create().ok_or_else(no_context)?,
            scratch: Vec::new(),
        })
    }

    /// Compresses `raw` (with `dictionary` if given), or gives it back
    /// unchanged when zstd would not make it smaller (already compressed
    /// media, random data).
    ///
    /// Compressed output is decompressed again and compared with `raw`
    /// before it is returned: restic once stored data a compressor had
    /// mangled, and this is where such a fault is cheapest to catch. One
    /// reused decompression context and buffer keep the check to about a
    /// quarter of the compression cost at level 3 (benches/inner.rs).
    pub fn encode(
        &mut self,
        raw: Vec<u8>,
        dictionary: Option<&Dictionary>,
    ) -> Result<Encoded, EncodeError> {
        let (packed, compression) = match dictionary {
            Some(d) => (
                self.compress_with(d, &raw)?,
                Compression::Dictionary(d.number()),
            ),
            None => (self.inner.compress(&raw)?, Compression::Zstd),
        };
        if packed.len() >= raw.len() {
            return Ok(Encoded {
                compression: Compression::None,
                bytes: raw,
            });
        }
        self.check(&packed, &raw, dictionary)?;
        Ok(Encoded {
            compression,
            bytes: packed,
        })
    }

    /// One frame of `raw` made with `dictionary`.
    fn compress_with(&mut self, dictionary: &Dictionary, raw: &[u8]) -> io::Result<Vec<u8>> {
        let cdict = dictionary.encoder(self.level)?.as_cdict();
        let mut packed = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
        self.with_dictionary
            .compress_using_cdict(&mut packed, raw, cdict)
            .map_err(zstd_io)?;
        Ok(packed)
    }

    /// Proves that `packed` decodes back to `raw`.
    fn check(
        &mut self,
        packed: &[u8],
        raw: &[u8],
        dictionary: Option<&Dictionary>,
    ) -> Result<(), EncodeError> {
        if raw.len() > CHECK_WHOLE_MAX {
            return check_streaming(packed, raw, dictionary);
        }
        self.scratch.clear();
        self.scratch.reserve(raw.len());
        let got = match dictionary {
            Some(d) => {
                self.check
                    .decompress_using_ddict(&mut self.scratch, packed, d.decoder().as_ddict())
            }
            None => self.check.decompress(&mut self.scratch, packed),
        }
        .map_err(|code| EncodeError::RoundTrip(zstd_io(code).to_string()))?;
        if got != raw.len() || self.scratch != raw {
            return Err(EncodeError::RoundTrip(format!(
                "{got} bytes came back for {}",
                raw.len()
            )));
        }
        Ok(())
    }
}

/// Blobs up to this size are checked by decoding them whole into a reused
/// buffer; larger ones (the tree of a directory of 300k files is 77 MB)
/// through a buffer of [`CHECK_STEP`] bytes, so the check never holds a
/// second copy of a large blob.
const CHECK_WHOLE_MAX: usize = 8 << 20;
/// Bytes compared at a time by [`check_streaming`].
const CHECK_STEP: usize = 1 << 20;

/// Checks that `packed` decodes back to `raw`, a step at a time.
fn check_streaming(
    packed: &[u8],
    raw: &[u8],
    dictionary: Option<&Dictionary>,
) -> Result<(), EncodeError> {
    let fault = |e: io::Error| EncodeError::RoundTrip(e.to_string());
    let mut decoder = frame_reader(packed, dictionary).map_err(fault)?;
    let mut step = vec![0u8; CHECK_STEP];
    let mut at = 0;
    loop {
        let n = decoder.read(&mut step).map_err(fault)?;
        if n == 0 {
            break;
        }
        if raw.get(at..at + n) != Some(&step[..n]) {
            return Err(EncodeError::RoundTrip(format!("they differ at byte {at}")));
        }
        at += n;
    }
    if at != raw.len() {
        return Err(EncodeError::RoundTrip(format!(
            "{at} bytes came back for {}",
            raw.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressible_data_is_zstd_and_random_data_stays_raw() {
        let mut c = Compressor::new(3).unwrap();
        let text = b"hello hello hello hello hello hello".repeat(100);
        let e = c.encode(text.clone(), None).unwrap();
        assert_eq!(e.compression, Compression::Zstd);
        assert!(e.bytes.len() < text.len());
        assert_eq!(
            decode(e.compression, &e.bytes, text.len(), None).unwrap(),
            text
        );

        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = c.encode(random.clone(), None).unwrap();
        if e.compression == Compression::None {
            assert_eq!(e.bytes, random);
        }
    }

    #[test]
    fn frames_without_a_declared_size_decode_by_streaming_with_the_same_checks() {
        let data = vec![7u8; 50_000];
        // A frame need not declare its size (cairn's always do); then the
        // one-go path cannot be used.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.window_log(16).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).ok(),
            Some(None)
        );
        assert_eq!(
            decode(Compression::Zstd, &frame, 50_000, None).unwrap(),
            data
        );
        assert!(matches!(
            decode(Compression::Zstd, &frame, 49_999, None),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn a_wrong_raw_length_is_an_error_not_a_truncation() {
        let mut c = Compressor::new(3).unwrap();
        let data = vec![1u8; 10_000];
        let e = c.encode(data, None).unwrap();
        assert!(matches!(
            decode(e.compression, &e.bytes, 9_999, None),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            decode(e.compression, &e.bytes, 10_001, None),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn window_logs_cover_the_blob_with_one_step_of_slack() {
        assert_eq!(window_log_for(0), 10);
        assert_eq!(window_log_for(1024), 11);
        assert_eq!(window_log_for(1025), 12);
        assert_eq!(window_log_for(4 << 20), 23);
        assert_eq!(window_log_for(1 << 30), 31);
    }

    #[test]
    fn large_blobs_round_trip_through_the_linear_buffer() {
        let mut c = Compressor::new(3).unwrap();
        let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
        let e = c.encode(data.clone(), None).unwrap();
        assert_eq!(
            decode(e.compression, &e.bytes, data.len(), None).unwrap(),
            data
        );
    }

    #[test]
    fn the_streaming_check_of_large_blobs_catches_any_difference() {
        let data: Vec<u8> = (0..(CHECK_WHOLE_MAX as u32 + 3))
            .map(|i| (i % 251) as u8)
            .collect();
        let packed = zstd::bulk::compress(&data, 3).unwrap();
        check_streaming(&packed, &data, None).unwrap();
        let mut changed = data.clone();
        changed[CHECK_WHOLE_MAX] ^= 1;
        assert!(check_streaming(&packed, &changed, None).is_err());
        assert!(check_streaming(&packed, &data[..data.len() - 1], None).is_err());
        let longer = [&data[..], b"x"].concat();
        assert!(check_streaming(&packed, &longer, None).is_err());
    }

    /// A dictionary trained from text like `text_blob`'s.
    fn text_dictionary(number: u16) -> Dictionary {
        let mut samples = dictionary::Samples::default();
        let mut seed = u64::from(number);
        while !samples.add(&text_blob(&mut seed)) {}
        Dictionary::new(number, samples.train().unwrap()).unwrap()
    }

    fn text_blob(seed: &mut u64) -> Vec<u8> {
        let words = ["select", "from", "where", "order", "group", "join", "rows"];
        let mut blob = Vec::new();
        while blob.len() < 3000 {
            *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            blob.extend_from_slice(words[(*seed >> 33) as usize % words.len()].as_bytes());
            blob.push(b' ');
        }
        blob
    }

    #[test]
    fn a_dictionary_frame_is_smaller_and_decodes_only_with_its_dictionary() {
        let dict = text_dictionary(1);
        let blob = text_blob(&mut 99);
        let mut c = Compressor::new(3).unwrap();
        let plain = c.encode(blob.clone(), None).unwrap();
        let primed = c.encode(blob.clone(), Some(&dict)).unwrap();
        assert_eq!(primed.compression, Compression::Dictionary(1));
        assert!(primed.bytes.len() < plain.bytes.len());
        let back = decode(primed.compression, &primed.bytes, blob.len(), Some(&dict)).unwrap();
        assert_eq!(back, blob);
        assert!(matches!(
            decode(primed.compression, &primed.bytes, blob.len(), None),
            Err(DecodeError::NoDictionary(1))
        ));
        // Another dictionary (another host's, say) is refused by zstd's
        // own dictionary id in the frame, not decoded into other bytes.
        let other = text_dictionary(2);
        assert!(decode(primed.compression, &primed.bytes, blob.len(), Some(&other)).is_err());
        let mut streamed = Vec::new();
        decoder(primed.compression, &primed.bytes, blob.len(), Some(&dict))
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, blob);
    }

    #[test]
    fn decoding_into_a_buffer_gives_the_bytes_or_says_why_not() {
        let dict = text_dictionary(1);
        let blob = text_blob(&mut 7);
        let mut c = Compressor::new(3).unwrap();
        for (encoded, d) in [
            (c.encode(blob.clone(), Some(&dict)).unwrap(), Some(&dict)),
            (c.encode(blob.clone(), None).unwrap(), None),
            (
                Encoded {
                    compression: Compression::None,
                    bytes: blob.clone(),
                },
                None,
            ),
        ] {
            let mut out = vec![0u8; blob.len()];
            decode_into(encoded.compression, &encoded.bytes, &mut out, d).unwrap();
            assert_eq!(out, blob);
            // A buffer of another length than the blob's is refused.
            let mut short = vec![0u8; blob.len() - 1];
            let wrong = decode_into(encoded.compression, &encoded.bytes, &mut short, d);
            assert!(
                matches!(wrong, Err(DecodeError::Length { .. })),
                "{wrong:?}"
            );
        }
        // A frame that does not declare its size still decodes.
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        streamed.include_contentsize(false).unwrap();
        streamed.window_log(12).unwrap();
        io::Write::write_all(&mut streamed, &blob).unwrap();
        let bytes = streamed.finish().unwrap();
        let mut out = vec![0u8; blob.len()];
        decode_into(Compression::Zstd, &bytes, &mut out, None).unwrap();
        assert_eq!(out, blob);
        let damaged = [&bytes[..bytes.len() / 2], &[0xff; 9][..]].concat();
        assert!(decode_into(Compression::Zstd, &damaged, &mut out, None).is_err());
    }

    #[test]
    fn compression_codes_and_catalog_values_round_trip_and_refuse_nonsense() {
        for c in [
            Compression::None,
            Compression::Zstd,
            Compression::Dictionary(1),
            Compression::Dictionary(u16::MAX),
        ] {
            assert_eq!(Compression::from_parts(c.code(), c.dictionary()), Some(c));
            assert_eq!(Compression::from_column(c.to_column()), Some(c));
        }
        assert_eq!(Compression::from_parts(2, 0), None);
        assert_eq!(Compression::from_parts(1, 3), None);
        assert_eq!(Compression::from_parts(3, 0), None);
        assert_eq!(Compression::from_column(-1), None);
        assert_eq!(Compression::from_column(1 << 24), None);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode(Compression::Zstd, b"not zstd at all", 100, None).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let mut c = Compressor::new(3).unwrap();
            let e = c.encode(data.clone(), None).unwrap();
            prop_assert_eq!(decode(e.compression, &e.bytes, data.len(), None).unwrap(), data);
        }
    }
}
