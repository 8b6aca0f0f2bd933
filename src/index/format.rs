//! The index object format, version 1: a pure codec, no I/O.
//!
//! An index object lists packs and, for each, the tail of the pack file
//! exactly as the pack holds it (header and trailer, pack.md), so that the
//! blobs of a pack are described by the same bytes, checked by the same
//! code, whether they are read from the pack or from an index.
//!
//! ```text
//! 0  magic [8] "CAIRNIDX"
//! 8  version u32le = 1
//! 12 pack_count u32le
//! 16 records, pack_count times:
//!      0  pack id [32]
//!      32 pack size u64le (the whole pack file)
//!      40 tail_len u32le (= the pack's header_len + 48)
//!      44 tail [tail_len] (the pack's last tail_len bytes)
//! ```
//! The object's id is the BLAKE3 of all its bytes. Everything is checked
//! before use: index bytes are untrusted.
//!
//! In an encrypted store the object is sealed whole, and each tail inside
//! is the pack's tail as it would be unsealed (plain header, version 1
//! trailer over it), while the pack's own header is `seal` bytes longer
//! and each blob's stored length includes its seal
//! (store-format/encryption.md).

use crate::id::PackId;
use crate::pack::format::{self, ENTRY_LEN, FormatError, PackEntry, TRAILER_LEN};

/// First 8 bytes of every index object.
pub const MAGIC: [u8; 8] = *b"CAIRNIDX";
/// The index format this code writes.
pub const VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEAD_LEN: usize = 16;
/// Bytes of a record before its tail.
pub const RECORD_HEAD_LEN: usize = 44;

/// One pack as an index object describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// BLAKE3 of the whole pack file.
    pub id: PackId,
    /// File size in bytes.
    pub size: u64,
    /// Its header.
    pub entries: Vec<PackEntry>,
}

/// Why bytes are not a valid index object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexFormatError {
    /// Too short, or not starting with the magic.
    #[error("not an index object (no CAIRNIDX magic)")]
    BadMagic,
    /// A version this code cannot read.
    #[error("index format version {0} is not supported (this cairn reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// A record runs past the end, or bytes follow the last one.
    #[error("record {index}: {what}")]
    Record {
        /// Position of the record.
        index: usize,
        /// What is wrong.
        what: String,
    },
    /// A pack's tail is not a valid pack header.
    #[error("pack {pack}: {source}")]
    Pack {
        /// The pack described.
        pack: PackId,
        /// What is wrong with its header.
        #[source]
        source: FormatError,
    },
}

/// Bytes of `pack`'s record in an index object.
pub fn record_len(pack: &IndexedPack) -> usize {
    RECORD_HEAD_LEN + pack.entries.len() * ENTRY_LEN + TRAILER_LEN
}

/// The bytes of an index object describing `packs`, allocated once at
/// their size (grown by doubling, a 12 MB object held 24 MB at the peak
/// of a prune).
pub fn encode(packs: &[IndexedPack]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + packs.iter().map(record_len).sum::<usize>());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for pack in packs {
        let tail = format::encode_tail(&pack.entries);
        out.extend_from_slice(pack.id.as_bytes());
        out.extend_from_slice(&pack.size.to_le_bytes());
        out.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        out.extend_from_slice(&tail);
    }
    out
}

/// Decodes and checks an index object.
pub fn decode(bytes: &[u8], seal: u32) -> Result<Vec<IndexedPack>, IndexFormatError> {
    if bytes.len() < HEAD_LEN || bytes[..8] != MAGIC {
        return Err(IndexFormatError::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(IndexFormatError::UnsupportedVersion(version));
    }
    let count = u32_at(bytes, 12) as usize;
    let mut rest = &bytes[HEAD_LEN..];
    // Bounded by the bytes, never by the count the object claims.
    let mut packs = Vec::with_capacity(count.min(rest.len() / RECORD_HEAD_LEN));
    for index in 0..count {
        let (pack, after) =
            decode_record(rest, seal).map_err(|what| IndexFormatError::Record { index, what })?;
        packs.push(pack?);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(IndexFormatError::Record {
            index: count,
            what: format!("{} bytes follow the last record", rest.len()),
        });
    }
    Ok(packs)
}

type Decoded<'a> = (Result<IndexedPack, IndexFormatError>, &'a [u8]);

/// One record and the bytes after it; the outer error is a record that
/// does not fit, the inner one a tail that is not a valid pack header.
fn decode_record(bytes: &[u8], seal: u32) -> Result<Decoded<'_>, String> {
    if bytes.len() < RECORD_HEAD_LEN {
        return Err(format!(
            "{} bytes where a record needs {RECORD_HEAD_LEN}",
            bytes.len()
        ));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[..32]);
    let id = PackId::from_bytes(id);
    let size = u64_at(bytes, 32);
    let tail_len = u32_at(bytes, 40) as usize;
    let Some(tail) = bytes.get(RECORD_HEAD_LEN..RECORD_HEAD_LEN + tail_len) else {
        return Err(format!("a tail of {tail_len} bytes runs past the end"));
    };
    let pack = decode_tail(tail, size, seal)
        .map(|entries| IndexedPack { id, size, entries })
        .map_err(|source| IndexFormatError::Pack { pack: id, source });
    Ok((pack, &bytes[RECORD_HEAD_LEN + tail_len..]))
}

/// The entries of a pack of `size` bytes whose tail is `tail`, checked as
/// a pack reader checks them (the tail must be exactly header + trailer);
/// `seal` is what sealing adds to the pack's header and to each blob.
pub fn decode_tail(tail: &[u8], size: u64, seal: u32) -> Result<Vec<PackEntry>, FormatError> {
    let trailer = format::decode_trailer(tail, size.saturating_sub(u64::from(seal)))?;
    if trailer.version != format::VERSION {
        return Err(FormatError::UnsupportedVersion(trailer.version));
    }
    let header_len = trailer.header_len as usize;
    if tail.len() != header_len + TRAILER_LEN {
        return Err(FormatError::HeaderSize {
            expected: trailer.header_len,
            got: tail.len().saturating_sub(TRAILER_LEN),
        });
    }
    let data_len = size - u64::from(seal) - TRAILER_LEN as u64 - trailer.header_len as u64;
    format::check_header(&tail[..header_len], &trailer)?;
    format::decode_entries(&tail[..header_len], data_len, seal)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;
    use crate::id::BlobId;
    use crate::pack::format::BlobKind;

    fn pack(seed: &[u8]) -> IndexedPack {
        let entries = vec![
            PackEntry {
                kind: BlobKind::Data,
                id: BlobId::of(seed),
                offset: 0,
                stored_len: 3,
                raw_len: 3,
                compression: Compression::None,
            },
            PackEntry {
                kind: BlobKind::Data,
                id: BlobId::of(b"two"),
                offset: 3,
                stored_len: 10,
                raw_len: 40,
                compression: Compression::Zstd,
            },
        ];
        let size = 13 + format::encode_tail(&entries).len() as u64;
        IndexedPack {
            id: PackId::of(seed),
            size,
            entries,
        }
    }

    #[test]
    fn index_objects_round_trip() {
        let packs = vec![pack(b"a"), pack(b"b")];
        assert_eq!(decode(&encode(&packs), 0).unwrap(), packs);
        assert_eq!(decode(&encode(&[]), 0).unwrap(), []);
    }

    #[test]
    fn golden_bytes_of_the_head_and_a_record_are_stable() {
        let bytes = encode(&[pack(b"a")]);
        assert_eq!(&bytes[..16], b"CAIRNIDX\x01\x00\x00\x00\x01\x00\x00\x00");
        assert_eq!(&bytes[16..48], PackId::of(b"a").as_bytes());
        let size = pack(b"a").size;
        assert_eq!(bytes[48..56], size.to_le_bytes());
        assert_eq!(bytes[56..60], (2u32 * 52 + 48).to_le_bytes());
        assert_eq!(bytes.len(), 16 + 44 + 2 * 52 + 48);
    }

    #[test]
    fn damaged_objects_are_refused_not_panicked_on() {
        let good = encode(&[pack(b"a"), pack(b"b")]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 0).is_err(), "cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&extra, 0).is_err());
        let mut wrong_size = good.clone();
        wrong_size[48] ^= 1;
        assert!(matches!(
            decode(&wrong_size, 0),
            Err(IndexFormatError::Pack { .. })
        ));
        let mut huge_count = good;
        huge_count[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge_count, 0).is_err());
    }
}
