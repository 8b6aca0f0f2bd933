//! Per-blob compression: zstd, or the raw bytes when zstd does not shrink them.
//!
//! Every blob is compressed on its own so that any blob can be read from the
//! middle of a pack without its neighbours. Decoding never trusts the length
//! it is told: output is capped at the recorded raw length.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// How a blob's bytes are stored in a pack. The numeric values are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

impl Compression {
    /// The on-disk code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The compression for an on-disk code, if known.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            _ => None,
        }
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

/// A reusable zstd context (one per worker thread: contexts are not shared).
pub struct Compressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A compressor at the given zstd level.
    pub fn new(level: i32) -> io::Result<Self> {
        Ok(Self {
            inner: zstd::bulk::Compressor::new(level)?,
        })
    }

    /// Compresses `raw`, or gives it back unchanged when zstd would not make
    /// it smaller (already compressed media, random data).
    pub fn encode(&mut self, raw: Vec<u8>) -> io::Result<Encoded> {
        let packed = self.inner.compress(&raw)?;
        Ok(if packed.len() < raw.len() {
            Encoded {
                compression: Compression::Zstd,
                bytes: packed,
            }
        } else {
            Encoded {
                compression: Compression::None,
                bytes: raw,
            }
        })
    }
}

/// Why stored bytes did not decode to `raw_len` bytes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The zstd frame is damaged.
    #[error("zstd frame does not decode: {0}")]
    Zstd(io::Error),
    /// The output length is not the recorded one.
    #[error("decoded to {got} bytes where {want} were recorded")]
    Length {
        /// Recorded raw length.
        want: usize,
        /// Bytes produced (capped at `want + 1`).
        got: usize,
    },
}

/// Largest initial output buffer: beyond this the buffer grows only as real
/// output arrives, so a forged raw length cannot make us allocate gigabytes.
const MAX_PREALLOC: usize = 16 << 20;

/// Like [`decode`], taking the stored bytes by value so that an uncompressed
/// blob is returned without a copy.
pub fn decode_owned(
    compression: Compression,
    stored: Vec<u8>,
    raw_len: usize,
) -> Result<Vec<u8>, DecodeError> {
    match compression {
        Compression::None if stored.len() == raw_len => Ok(stored),
        _ => decode(compression, &stored, raw_len),
    }
}

/// Decodes stored bytes into exactly `raw_len` bytes.
pub fn decode(
    compression: Compression,
    stored: &[u8],
    raw_len: usize,
) -> Result<Vec<u8>, DecodeError> {
    let out = match compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => {
            let mut out = Vec::with_capacity(raw_len.min(MAX_PREALLOC));
            zstd::stream::read::Decoder::with_buffer(stored)
                .map_err(DecodeError::Zstd)?
                .take(raw_len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(DecodeError::Zstd)?;
            out
        }
    };
    if out.len() == raw_len {
        Ok(out)
    } else {
        Err(DecodeError::Length {
            want: raw_len,
            got: out.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressible_data_is_zstd_and_random_data_stays_raw() {
        let mut c = Compressor::new(3).unwrap();
        let text = b"hello hello hello hello hello hello".repeat(100);
        let e = c.encode(text.clone()).unwrap();
        assert_eq!(e.compression, Compression::Zstd);
        assert!(e.bytes.len() < text.len());
        assert_eq!(decode(e.compression, &e.bytes, text.len()).unwrap(), text);

        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = c.encode(random.clone()).unwrap();
        if e.compression == Compression::None {
            assert_eq!(e.bytes, random);
        }
    }

    #[test]
    fn a_wrong_raw_length_is_an_error_not_a_truncation() {
        let mut c = Compressor::new(3).unwrap();
        let data = vec![1u8; 10_000];
        let e = c.encode(data).unwrap();
        assert!(matches!(
            decode(e.compression, &e.bytes, 9_999),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            decode(e.compression, &e.bytes, 10_001),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode(Compression::Zstd, b"not zstd at all", 100).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let mut c = Compressor::new(3).unwrap();
            let e = c.encode(data.clone()).unwrap();
            prop_assert_eq!(decode(e.compression, &e.bytes, data.len()).unwrap(), data);
        }
    }
}
