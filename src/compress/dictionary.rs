//! Store dictionaries: zstd dictionaries trained from a store's own small
//! blobs. A small file or a 4 KiB run of database pages compressed as a
//! frame of its own starts from nothing: zstd builds its tables for a few
//! KiB and finds no earlier bytes to refer to. Primed with a dictionary of
//! what such blobs usually hold, the frames of a 100 MiB database came out
//! 32% smaller and 28% faster to make with their check, those of 20 000
//! small files 17% smaller and 37% faster (store-format/dictionary.md).
//!
//! A dictionary is stored once per store as `dictionaries/N`; a pack entry
//! compressed with it names `N`. This module is the object's codec and the
//! trainer; `backend::dictionaries` loads and creates the objects.

use std::collections::HashMap;
use std::io;
use std::sync::OnceLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

use super::Compression;

/// Data blobs up to this size are compressed with the store's dictionary
/// and sampled to train one. Measured on the files of /usr/include and
/// /usr/lib/python3 by size (2026-12-06-vm-dictionary.txt, compress and
/// check as a capture does): up to 4 KiB the dictionary made frames 11%
/// smaller and 14% faster, 4-8 KiB 5% smaller and 6% slower, 8-16 KiB
/// 2.4% smaller and 12% slower, 16-64 KiB 2-3% smaller and 50-60% slower
/// (above 16 KiB zstd copies the dictionary's tables into each frame
/// rather than referring to them).
pub const MAX_BLOB: usize = 8 << 10;
/// Sample bytes gathered before training. Measured on a 100 MiB database
/// and 20 000 small files (2026-12-06-vm-dictionary.txt): 1 MiB trains in
/// 30-70 ms and gives frames within 1.3% of those of 4 MiB (215 ms).
pub const SAMPLE_BYTES: usize = 1 << 20;
/// The largest dictionary trained (zstd's own default size).
pub const MAX_SIZE: usize = 112 << 10;

/// ASCII magic at the start of a `dictionaries/N` object.
const MAGIC: &[u8; 8] = b"CAIRNDCT";
/// The version of the object's layout this code writes and reads.
const VERSION: u32 = 1;
/// Magic, version and BLAKE3 of the dictionary.
const HEADER_LEN: usize = 8 + 4 + 32;

/// One store dictionary, prepared for decoding (and, when asked, encoding).
pub struct Dictionary {
    number: u16,
    bytes: Vec<u8>,
    decoder: DecoderDictionary<'static>,
    encoder: OnceLock<EncoderDictionary<'static>>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("number", &self.number)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Why a `dictionaries/N` object is not a dictionary.
#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    /// Too short, or not starting with the magic.
    #[error("not a cairn dictionary (no CAIRNDCT header)")]
    NotADictionary,
    /// A layout this code does not know.
    #[error("dictionary layout version {0} is not known to this cairn")]
    Version(u32),
    /// The bytes are not the ones the header's BLAKE3 names.
    #[error("its checksum does not match: the object is damaged")]
    Checksum,
    /// zstd cannot load it.
    #[error("zstd cannot load it: {0}")]
    Zstd(io::Error),
    /// Not in zstd's dictionary format, or without a dictionary id: zstd
    /// would take any bytes as a raw-content dictionary, and frames made
    /// with one would not name it.
    #[error("it is not a zstd dictionary with an id")]
    NotZstd,
}

impl Dictionary {
    /// A dictionary of zstd dictionary `bytes`, numbered `number`.
    pub fn new(number: u16, bytes: Vec<u8>) -> Result<Self, DictionaryError> {
        if zstd::zstd_safe::get_dict_id_from_dict(&bytes).is_none() {
            return Err(DictionaryError::NotZstd);
        }
        let decoder = DecoderDictionary::try_copy(&bytes).map_err(DictionaryError::Zstd)?;
        Ok(Self {
            number,
            bytes,
            decoder,
            encoder: OnceLock::new(),
        })
    }

    /// Reads a `dictionaries/N` object's (plain) bytes.
    pub fn decode(number: u16, object: &[u8]) -> Result<Self, DictionaryError> {
        let (header, bytes) = object
            .split_at_checked(HEADER_LEN)
            .ok_or(DictionaryError::NotADictionary)?;
        if &header[..8] != MAGIC {
            return Err(DictionaryError::NotADictionary);
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(DictionaryError::Version(version));
        }
        if blake3::hash(bytes).as_bytes() != &header[12..] {
            return Err(DictionaryError::Checksum);
        }
        Self::new(number, bytes.to_vec())
    }

    /// The object's (plain) bytes: header, then the zstd dictionary.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.bytes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(blake3::hash(&self.bytes).as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Its number: it is `dictionaries/N`.
    pub fn number(&self) -> u16 {
        self.number
    }

    /// The zstd dictionary itself.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The same dictionary under another number (a copy into a store
    /// whose own number `number` was taken).
    pub fn renumbered(&self, number: u16) -> Result<Self, DictionaryError> {
        Self::new(number, self.bytes.clone())
    }

    /// Prepared for decoding.
    pub fn decoder(&self) -> &DecoderDictionary<'static> {
        &self.decoder
    }

    /// Prepared for encoding at `level`: made on first use, as readers
    /// never need it (a store has one level, so the first call decides).
    pub fn encoder(&self, level: i32) -> Result<&EncoderDictionary<'static>, io::Error> {
        if let Some(e) = self.encoder.get() {
            return Ok(e);
        }
        let made = EncoderDictionary::try_copy(&self.bytes, level)?;
        Ok(self.encoder.get_or_init(|| made))
    }
}

/// How blobs moved between packs are labelled: in the same store, as they
/// were; into another store (a copy), with the number under which that
/// store holds the same dictionary. The frames themselves do not change.
#[derive(Debug, Clone)]
pub enum Renumbering {
    /// Within one store.
    Same,
    /// Source number to target number, for every dictionary carried.
    Into(HashMap<u16, u16>),
}

impl Renumbering {
    /// `compression` as the destination names it; `None` for a dictionary
    /// that was not carried (its frames would be unreadable there).
    pub fn apply(&self, compression: Compression) -> Option<Compression> {
        match (self, compression) {
            (Self::Into(map), Compression::Dictionary(n)) => {
                map.get(&n).map(|m| Compression::Dictionary(*m))
            }
            _ => Some(compression),
        }
    }
}

/// Samples gathered for training, back to back.
#[derive(Debug, Default)]
pub struct Samples {
    bytes: Vec<u8>,
    sizes: Vec<usize>,
}

impl Samples {
    /// Adds one blob; returns whether [`SAMPLE_BYTES`] are now gathered.
    pub fn add(&mut self, blob: &[u8]) -> bool {
        self.bytes.extend_from_slice(blob);
        self.sizes.push(blob.len());
        self.is_full()
    }

    /// Whether enough is gathered to train.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= SAMPLE_BYTES
    }

    /// Trains a dictionary of at most [`MAX_SIZE`] bytes; an error when
    /// zstd finds nothing worth keeping (too few or too alike samples).
    pub fn train(&self) -> io::Result<Vec<u8>> {
        zstd::dict::from_continuous(&self.bytes, &self.sizes, MAX_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples like small text files: words from a short list.
    fn text_samples(count: usize) -> Samples {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
        let mut samples = Samples::default();
        let mut state = 7u64;
        for _ in 0..count {
            let mut blob = Vec::new();
            while blob.len() < 2048 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                blob.extend_from_slice(words[(state >> 33) as usize % words.len()].as_bytes());
                blob.push(b' ');
            }
            samples.add(&blob);
        }
        samples
    }

    #[test]
    fn an_object_round_trips_and_any_damage_is_named() {
        let trained = text_samples(2200).train().unwrap();
        let dict = Dictionary::new(1, trained).unwrap();
        let object = dict.encode();
        assert_eq!(
            Dictionary::decode(1, &object).unwrap().bytes(),
            dict.bytes()
        );
        let mut flipped = object.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            Dictionary::decode(1, &flipped),
            Err(DictionaryError::Checksum)
        ));
        let mut newer = object.clone();
        newer[8] = 2;
        assert!(matches!(
            Dictionary::decode(1, &newer),
            Err(DictionaryError::Version(2))
        ));
        assert!(matches!(
            Dictionary::decode(1, b"CAIRNDCT"),
            Err(DictionaryError::NotADictionary)
        ));
        // Raw bytes with a good checksum: zstd would load them as content,
        // with no id for frames to carry.
        let raw = b"just some bytes, not a zstd dictionary".to_vec();
        let mut object = dict.encode();
        object.truncate(12);
        object.extend_from_slice(blake3::hash(&raw).as_bytes());
        object.extend_from_slice(&raw);
        assert!(matches!(
            Dictionary::decode(1, &object),
            Err(DictionaryError::NotZstd)
        ));
    }

    #[test]
    fn renumbering_relabels_carried_dictionaries_and_refuses_others() {
        let into = Renumbering::Into(HashMap::from([(1, 2)]));
        assert_eq!(
            into.apply(Compression::Dictionary(1)),
            Some(Compression::Dictionary(2))
        );
        assert_eq!(into.apply(Compression::Dictionary(3)), None);
        assert_eq!(into.apply(Compression::Zstd), Some(Compression::Zstd));
        let same = Renumbering::Same;
        assert_eq!(
            same.apply(Compression::Dictionary(3)),
            Some(Compression::Dictionary(3))
        );
    }

    #[test]
    fn samples_are_full_at_the_budget() {
        let mut samples = Samples::default();
        assert!(!samples.add(&vec![1; SAMPLE_BYTES - 1]));
        assert!(samples.add(&[2]));
    }
}
