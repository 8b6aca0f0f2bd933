//! Reading packs back: a header (for catalog rebuilds and checks) or a single
//! blob, always verified against its id before it is returned.

use super::format::{self, PackEntry, TRAILER_LEN};
use super::{BlobLocation, PackError, key};
use crate::backend::Backend;
use crate::compress;
use crate::id::{BlobId, PackId};

/// How much of a pack's end one read fetches: the trailer and the header of
/// a data pack (16 MiB of ~1 MiB chunks: ~1 KiB of header), so most headers
/// cost a single read; tree packs with long headers take a second one.
const TAIL_READ: u64 = 16 * 1024;

/// Reads and checks a pack's header; returns its entries and the file size.
pub fn read_header(backend: &Backend, pack: &PackId) -> Result<(Vec<PackEntry>, u64), PackError> {
    let name = key(pack);
    let (tail, size) = backend.read_tail(&name, TAIL_READ)?;
    let bad = |source| PackError::Format {
        pack: *pack,
        source,
    };
    let trailer = format::decode_trailer(&tail, size).map_err(bad)?;
    let header_len = u64::from(trailer.header_len);
    let data_len = size - TRAILER_LEN as u64 - header_len;
    let header = if header_len + TRAILER_LEN as u64 <= tail.len() as u64 {
        let end = tail.len() - TRAILER_LEN;
        tail[end - header_len as usize..end].to_vec()
    } else {
        backend.read_range(&name, data_len, header_len as usize)?
    };
    let entries = format::decode_header(&header, &trailer, data_len).map_err(bad)?;
    Ok((entries, size))
}

/// Reads one blob, decodes it and checks that its BLAKE3 is `id`.
pub fn read_blob(backend: &Backend, id: &BlobId, at: &BlobLocation) -> Result<Vec<u8>, PackError> {
    let stored = backend.read_range(&key(&at.pack), at.offset, at.stored_len as usize)?;
    decode_blob(id, at, stored)
}

/// Decodes stored bytes read from `at` and checks them against `id`.
pub fn decode_blob(id: &BlobId, at: &BlobLocation, stored: Vec<u8>) -> Result<Vec<u8>, PackError> {
    let raw =
        compress::decode_owned(at.compression, stored, at.raw_len as usize).map_err(|source| {
            PackError::Decode {
                blob: *id,
                pack: at.pack,
                source,
            }
        })?;
    let actual = BlobId::of(&raw);
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(raw)
}

/// Checks stored bytes read from `at` against `id` without keeping the
/// decoded blob: for copying blobs as stored (repacking) after proving them.
pub fn check_stored(id: &BlobId, at: &BlobLocation, stored: &[u8]) -> Result<(), PackError> {
    let actual = match at.compression {
        compress::Compression::None if stored.len() == at.raw_len as usize => BlobId::of(stored),
        _ => {
            let raw = compress::decode(at.compression, stored, at.raw_len as usize).map_err(
                |source| PackError::Decode {
                    blob: *id,
                    pack: at.pack,
                    source,
                },
            )?;
            BlobId::of(&raw)
        }
    };
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(())
}
