//! The pack file format, versions 1 (plain) and 2 (sealed header and
//! blobs, encrypted stores): a pure codec, no I/O, no keys.
//!
//! ```text
//! blob 0 stored bytes | blob 1 | ... | header | trailer
//! header  = entry * n, each ENTRY_LEN bytes:
//!   0  kind u8 (0 data, 1 tree)
//!   1  compression u8 (0 none, 1 zstd, 2 zstd with a store dictionary)
//!   2  dictionary u16le (its number with compression 2, else 0)
//!   4  raw_len u32le
//!   8  stored_len u32le
//!   12 offset u64le (from the start of the file)
//!   20 id [32] BLAKE3 of the raw bytes
//! trailer = TRAILER_LEN bytes:
//!   0  header_len u32le
//!   4  version u32le = 1
//!   8  header_hash [32] BLAKE3 of the header bytes
//!   40 magic [8] "CAIRNPAK"
//! ```
//! Blobs lie back to back in header order from offset 0, and the header
//! starts where the last blob ends. In version 2 the header region is the
//! header sealed in an envelope (`header_len` = 41 + 52n, `header_hash`
//! over the envelope) and every blob's stored bytes are an envelope too
//! (store-format/encryption.md); the caller seals and opens. Decoding checks every length against the
//! file size before using it: pack bytes are untrusted.

use crate::compress::Compression;
use crate::id::BlobId;

/// Last 8 bytes of every pack.
pub const MAGIC: [u8; 8] = *b"CAIRNPAK";
/// The pack format of unencrypted stores.
pub const VERSION: u32 = 1;
/// The pack format of encrypted stores: sealed header and blobs.
pub const SEALED_VERSION: u32 = 2;
/// Bytes a seal adds to a header or a blob in a version 2 pack.
pub const SEAL_OVERHEAD: u32 = crate::crypt::envelope::OVERHEAD as u32;
/// Bytes per header entry.
pub const ENTRY_LEN: usize = 52;
/// Bytes in the trailer.
pub const TRAILER_LEN: usize = 48;
/// Most blobs in one pack, whatever its size: a pack's index record (52
/// bytes a blob) must fit the largest index object a reader accepts
/// (`index::MAX_INDEX_LEN`, 64 MiB), or no host could catalog the pack
/// from the index (a 1 GiB pack of blobs under 830 bytes would not). A
/// reader refuses a header announcing more: it caps what reading one
/// allocates (a planted sparse pack claimed 4 GiB).
pub const MAX_BLOBS: usize = 1 << 20;
/// Largest raw blob a pack may describe (1 GiB): caps what a reader allocates.
pub const MAX_RAW_LEN: u32 = 1 << 30;

/// What a blob holds. The numeric values are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A directory listing.
    Tree = 1,
}

impl BlobKind {
    /// The on-disk code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind for an on-disk code, if known.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Data),
            1 => Some(Self::Tree),
            _ => None,
        }
    }
}

/// One blob as a pack header lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// BLAKE3 of the raw bytes.
    pub id: BlobId,
    /// Where the stored bytes start in the pack file.
    pub offset: u64,
    /// Bytes in the pack.
    pub stored_len: u32,
    /// Bytes after decoding.
    pub raw_len: u32,
    /// How the stored bytes decode.
    pub compression: Compression,
}

/// Why bytes are not a valid pack.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Shorter than a trailer.
    #[error("file of {0} bytes is too short to be a pack")]
    TooShort(u64),
    /// The last 8 bytes are not the magic.
    #[error("no pack magic at the end of the file")]
    BadMagic,
    /// A version this code cannot read.
    #[error(
        "pack format version {0} is not supported (this cairn reads versions {VERSION} and {SEALED_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// The header does not fit or has a partial entry.
    #[error("header length {header_len} does not fit a file of {file_len} bytes")]
    HeaderLength {
        /// Claimed header length.
        header_len: u32,
        /// The pack file's size.
        file_len: u64,
    },
    /// The header announces more than [`MAX_BLOBS`] entries.
    #[error("header length {0} announces more blobs than any pack holds (at most {MAX_BLOBS})")]
    TooManyBlobs(u32),
    /// Fewer or more header bytes were given than the trailer announces.
    #[error("header of {got} bytes where the trailer announces {expected}")]
    HeaderSize {
        /// Length from the trailer.
        expected: u32,
        /// Bytes given.
        got: usize,
    },
    /// The header bytes are not the ones the trailer hashed.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// An entry is malformed.
    #[error("header entry {index}: {what}")]
    Entry {
        /// Position in the header.
        index: usize,
        /// What is wrong with it.
        what: String,
    },
}

/// The decoded trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Pack format version: 1 plain, 2 sealed.
    pub version: u32,
    /// Header length in bytes.
    pub header_len: u32,
    /// BLAKE3 of the header.
    pub header_hash: [u8; 32],
}

/// Encodes the header and trailer that end a plain (version 1) pack
/// holding `entries`.
pub fn encode_tail(entries: &[PackEntry]) -> Vec<u8> {
    let mut tail = encode_header(entries);
    tail.extend_from_slice(&encode_trailer(&tail, VERSION));
    tail
}

/// The trailer after `header` (as it lies in the pack: sealed for
/// version 2).
pub fn encode_trailer(header: &[u8], version: u32) -> [u8; TRAILER_LEN] {
    let mut out = [0u8; TRAILER_LEN];
    out[..4].copy_from_slice(&(header.len() as u32).to_le_bytes());
    out[4..8].copy_from_slice(&version.to_le_bytes());
    out[8..40].copy_from_slice(blake3::hash(header).as_bytes());
    out[40..].copy_from_slice(&MAGIC);
    out
}

/// The plain header listing `entries`.
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut header = Vec::with_capacity(entries.len() * ENTRY_LEN + TRAILER_LEN);
    for e in entries {
        header.push(e.kind.code());
        header.push(e.compression.code());
        header.extend_from_slice(&e.compression.dictionary().to_le_bytes());
        header.extend_from_slice(&e.raw_len.to_le_bytes());
        header.extend_from_slice(&e.stored_len.to_le_bytes());
        header.extend_from_slice(&e.offset.to_le_bytes());
        header.extend_from_slice(e.id.as_bytes());
    }
    header
}

/// Decodes the trailer, given the last `TRAILER_LEN` bytes (or fewer, for
/// a file that is too short) and the file's length.
pub fn decode_trailer(tail: &[u8], file_len: u64) -> Result<Trailer, FormatError> {
    if file_len < TRAILER_LEN as u64 || tail.len() < TRAILER_LEN {
        return Err(FormatError::TooShort(file_len));
    }
    let t = &tail[tail.len() - TRAILER_LEN..];
    if t[40..48] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u32_at(t, 4);
    let seal = match version {
        VERSION => 0,
        SEALED_VERSION => SEAL_OVERHEAD,
        _ => return Err(FormatError::UnsupportedVersion(version)),
    };
    let header_len = u32_at(t, 0);
    let fits = u64::from(header_len) + TRAILER_LEN as u64 <= file_len;
    let plain = header_len.checked_sub(seal).map(|plain| plain as usize);
    let whole = plain.is_some_and(|plain| plain.is_multiple_of(ENTRY_LEN));
    if !fits || !whole {
        return Err(FormatError::HeaderLength {
            header_len,
            file_len,
        });
    }
    if plain.is_some_and(|plain| plain / ENTRY_LEN > MAX_BLOBS) {
        return Err(FormatError::TooManyBlobs(header_len));
    }
    let mut header_hash = [0u8; 32];
    header_hash.copy_from_slice(&t[8..40]);
    Ok(Trailer {
        version,
        header_len,
        header_hash,
    })
}

/// Checks that `header` (as it lies in the pack) is the one the trailer
/// announces: its length and hash.
pub fn check_header(header: &[u8], trailer: &Trailer) -> Result<(), FormatError> {
    if header.len() != trailer.header_len as usize {
        return Err(FormatError::HeaderSize {
            expected: trailer.header_len,
            got: header.len(),
        });
    }
    if *blake3::hash(header).as_bytes() != trailer.header_hash {
        return Err(FormatError::HeaderChecksum);
    }
    Ok(())
}

/// Decodes and checks the header: its hash, every field, and that the blobs
/// tile `0..data_len` exactly, where `data_len` is the file length minus
/// header and trailer.
pub fn decode_header(
    header: &[u8],
    trailer: &Trailer,
    data_len: u64,
) -> Result<Vec<PackEntry>, FormatError> {
    if trailer.version != VERSION {
        return Err(FormatError::UnsupportedVersion(trailer.version));
    }
    check_header(header, trailer)?;
    decode_entries(header, data_len, 0)
}

/// Decodes the plain header bytes of a pack whose blob data is `data_len`
/// bytes and each of whose blobs carries `seal` bytes of envelope (0 in a
/// plain pack): every field, and that the blobs tile the data exactly.
pub fn decode_entries(
    header: &[u8],
    data_len: u64,
    seal: u32,
) -> Result<Vec<PackEntry>, FormatError> {
    if !header.len().is_multiple_of(ENTRY_LEN) {
        return Err(FormatError::Entry {
            index: header.len() / ENTRY_LEN,
            what: format!("a header of {} bytes holds a partial entry", header.len()),
        });
    }
    let mut entries = Vec::with_capacity(header.len() / ENTRY_LEN);
    let mut next_offset = 0u64;
    for (index, raw) in header.chunks_exact(ENTRY_LEN).enumerate() {
        let entry = decode_entry(raw, seal).map_err(|what| FormatError::Entry { index, what })?;
        if entry.offset != next_offset {
            return Err(FormatError::Entry {
                index,
                what: format!("offset {} where {next_offset} was expected", entry.offset),
            });
        }
        next_offset += u64::from(entry.stored_len);
        entries.push(entry);
    }
    if next_offset != data_len {
        return Err(FormatError::Entry {
            index: entries.len(),
            what: format!("blobs end at {next_offset} but the header starts at {data_len}"),
        });
    }
    Ok(entries)
}

fn decode_entry(raw: &[u8], seal: u32) -> Result<PackEntry, String> {
    let kind = BlobKind::from_code(raw[0]).ok_or_else(|| format!("unknown kind {}", raw[0]))?;
    let dictionary = u16::from_le_bytes([raw[2], raw[3]]);
    let compression = Compression::from_parts(raw[1], dictionary).ok_or_else(|| {
        format!(
            "unknown compression {} with dictionary {dictionary}",
            raw[1]
        )
    })?;
    let raw_len = u32_at(raw, 4);
    let stored_len = u32_at(raw, 8);
    if raw_len > MAX_RAW_LEN {
        return Err(format!("raw length {raw_len} exceeds {MAX_RAW_LEN}"));
    }
    if compression == Compression::None
        && u64::from(raw_len) + u64::from(seal) != u64::from(stored_len)
    {
        return Err(format!(
            "uncompressed blob with stored length {stored_len} != raw length {raw_len} + {seal}"
        ));
    }
    if stored_len < seal {
        return Err(format!(
            "stored length {stored_len} is shorter than its seal"
        ));
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&raw[12..20]);
    let mut id = [0u8; 32];
    id.copy_from_slice(&raw[20..52]);
    Ok(PackEntry {
        kind,
        id: BlobId::from_bytes(id),
        offset: u64::from_le_bytes(offset),
        stored_len,
        raw_len,
        compression,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<PackEntry> {
        vec![
            PackEntry {
                kind: BlobKind::Data,
                id: BlobId::of(b"one"),
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
        ]
    }

    fn decode_all(file: &[u8]) -> Result<Vec<PackEntry>, FormatError> {
        let len = file.len() as u64;
        let trailer = decode_trailer(file, len)?;
        let data_len = len - TRAILER_LEN as u64 - u64::from(trailer.header_len);
        let header = &file[data_len as usize..file.len() - TRAILER_LEN];
        decode_header(header, &trailer, data_len)
    }

    fn pack_file() -> Vec<u8> {
        let mut file = vec![0u8; 13];
        file.extend(encode_tail(&entries()));
        file
    }

    #[test]
    fn header_round_trips() {
        assert_eq!(decode_all(&pack_file()).unwrap(), entries());
    }

    #[test]
    fn golden_trailer_bytes_are_stable() {
        let tail = encode_tail(&entries());
        let trailer = &tail[tail.len() - TRAILER_LEN..];
        assert_eq!(&trailer[..4], &104u32.to_le_bytes(), "header_len");
        assert_eq!(&trailer[4..8], &1u32.to_le_bytes(), "version");
        assert_eq!(&trailer[40..], b"CAIRNPAK", "magic");
        assert_eq!(&tail[..4], &[0, 0, 0, 0], "kind, compression, reserved");
        assert_eq!(&tail[4..8], &3u32.to_le_bytes(), "raw_len");
    }

    #[test]
    fn every_flipped_byte_in_header_or_trailer_is_an_error_never_a_panic() {
        let good = pack_file();
        for i in 13..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode_all(&bad).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let good = pack_file();
        for len in 0..good.len() {
            assert!(decode_all(&good[..len]).is_err(), "truncation to {len}");
        }
    }

    #[test]
    fn an_unknown_version_is_named() {
        let mut file = pack_file();
        let at = file.len() - TRAILER_LEN + 4;
        file[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(decode_all(&file), Err(FormatError::UnsupportedVersion(7)));
    }
}
