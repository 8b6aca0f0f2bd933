//! Reading packs back: a header (for catalog rebuilds and checks) or a single
//! blob, always verified against its id before it is returned.

use std::io::{self, Read};
use std::sync::Arc;

use super::format::{self, PackEntry, TRAILER_LEN};
use super::{BlobLocation, PackError, key};
use crate::backend::Backend;
use crate::compress::{self, Compression, Dictionary};
use crate::crypt::Vault;
use crate::id::{BlobId, PackId};

/// How much of a pack's end one read fetches: the trailer and the header of
/// a data pack (16 MiB of ~1 MiB chunks: ~1 KiB of header), so most headers
/// cost a single read; tree packs with long headers take a second one.
const TAIL_READ: u64 = 16 * 1024;

/// Reads and checks a pack's header; returns its entries and the file size.
pub fn read_header(backend: &Backend, pack: &PackId) -> Result<(Vec<PackEntry>, u64), PackError> {
    let name = key(pack);
    let (tail, size) = backend.get_tail(&name, TAIL_READ)?;
    let trailer = format::decode_trailer(&tail, size).map_err(bad_format(pack))?;
    check_sealing(backend.vault(), pack, trailer.version)?;
    let header_len = u64::from(trailer.header_len);
    let data_len = size - TRAILER_LEN as u64 - header_len;
    let header = if header_len + TRAILER_LEN as u64 <= tail.len() as u64 {
        let end = tail.len() - TRAILER_LEN;
        tail[end - header_len as usize..end].to_vec()
    } else {
        backend.get_range(&name, data_len, header_len as usize)?
    };
    let entries = open_entries(backend.vault(), pack, &trailer, &header, data_len)?;
    Ok((entries, size))
}

/// The entries of a pack read whole into `file`, after proving the file is
/// the pack its id names (the id is the BLAKE3 of the file): then every
/// blob's stored bytes are as the writer sealed them, without decoding
/// one. Bytes that are not the id are damage ([`PackError::is_damage`]).
pub fn whole_pack_entries(
    vault: &Vault,
    pack: &PackId,
    file: &[u8],
) -> Result<Vec<PackEntry>, PackError> {
    super::check_whole(pack, file)?;
    let size = file.len() as u64;
    let trailer = format::decode_trailer(file, size).map_err(bad_format(pack))?;
    check_sealing(vault, pack, trailer.version)?;
    let data_len = size - TRAILER_LEN as u64 - u64::from(trailer.header_len);
    let header = &file[data_len as usize..file.len() - TRAILER_LEN];
    open_entries(vault, pack, &trailer, header, data_len)
}

fn bad_format(pack: &PackId) -> impl Fn(format::FormatError) -> PackError + '_ {
    move |source| PackError::Format {
        pack: *pack,
        source,
    }
}

/// Checks `header` against the trailer, opens it with the store's key and
/// decodes its entries.
fn open_entries(
    vault: &Vault,
    pack: &PackId,
    trailer: &format::Trailer,
    header: &[u8],
    data_len: u64,
) -> Result<Vec<PackEntry>, PackError> {
    format::check_header(header, trailer).map_err(bad_format(pack))?;
    let plain = vault
        .open_header(header)
        .map_err(|source| PackError::Sealed {
            what: "header".into(),
            pack: *pack,
            source,
        })?;
    format::decode_entries(&plain, data_len, vault.overhead()).map_err(bad_format(pack))
}

/// Refuses a pack whose version does not match the store: a plain pack
/// planted in an encrypted store would otherwise be read unauthenticated.
fn check_sealing(vault: &Vault, pack: &PackId, version: u32) -> Result<(), PackError> {
    let (wanted, what) = match vault.is_encrypted() {
        true => (format::SEALED_VERSION, "an encrypted"),
        false => (format::VERSION, "an unencrypted"),
    };
    if version == wanted {
        return Ok(());
    }
    Err(PackError::Sealing {
        pack: *pack,
        version,
        what,
    })
}

/// The inner (compressed or raw) bytes of a blob's stored bytes: opened
/// with the store's key, bound to the blob's id.
fn unseal<'a>(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    stored: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, PackError> {
    vault
        .open_blob(at.kind.code(), id.as_bytes(), stored)
        .map_err(|source| PackError::Sealed {
            what: format!("blob {id}"),
            pack: at.pack,
            source,
        })
}

/// The store dictionary `at`'s frame was made with, if any.
fn dictionary_for(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
) -> Result<Option<Arc<Dictionary>>, PackError> {
    match at.compression {
        Compression::Dictionary(n) => {
            backend
                .dictionary(n)
                .map(Some)
                .map_err(|source| PackError::Dictionary {
                    blob: *id,
                    pack: at.pack,
                    source,
                })
        }
        _ => Ok(None),
    }
}

/// Reads one blob, decodes it and checks that its BLAKE3 is `id`.
pub fn read_blob(backend: &Backend, id: &BlobId, at: &BlobLocation) -> Result<Vec<u8>, PackError> {
    let stored = backend.get_range(&key(&at.pack), at.offset, at.stored_len as usize)?;
    decode_blob(backend, id, at, stored)
}

/// Reads one blob and hands its decoded bytes to `consume` as a stream,
/// without holding them whole (a large tree is decoded as it is read).
/// The bytes are counted and hashed on the way; the outer result is `Err`
/// if the blob does not decode to `raw_len` bytes whose BLAKE3 is `id`,
/// whatever `consume` made of them (it must not act on them before this
/// returns), else it is what `consume` returned.
pub fn read_blob_streaming<T, E>(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    consume: impl FnOnce(&mut dyn io::Read) -> Result<T, E>,
) -> Result<Result<T, E>, PackError> {
    let stored = backend.get_range(&key(&at.pack), at.offset, at.stored_len as usize)?;
    decode_streaming(backend, id, at, &stored, consume)
}

/// [`read_blob_streaming`] of stored bytes already read.
pub fn decode_streaming<T, E>(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
    consume: impl FnOnce(&mut dyn io::Read) -> Result<T, E>,
) -> Result<Result<T, E>, PackError> {
    let raw_len = at.raw_len as usize;
    let vault = backend.vault();
    let inner = unseal(vault, id, at, stored)?;
    let dictionary = dictionary_for(backend, id, at)?;
    let decoder = compress::decoder(at.compression, &inner, raw_len, dictionary.as_deref())
        .map_err(|source| decode_error(id, at, source))?;
    // One byte more than recorded is enough to tell the length is wrong.
    let mut hashing = Hashing::new(decoder.take(raw_len as u64 + 1), vault.hasher());
    let consumed = consume(&mut hashing);
    let (got, actual) = hashing
        .drain()
        .map_err(|e| decode_error(id, at, compress::DecodeError::Zstd(e)))?;
    if got != raw_len {
        return Err(decode_error(
            id,
            at,
            compress::DecodeError::Length { want: raw_len, got },
        ));
    }
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(consumed)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    count: usize,
}

impl<R: io::Read> Hashing<R> {
    fn new(inner: R, hasher: blake3::Hasher) -> Self {
        Self {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Reads what is left; returns the byte count and the hash of all.
    fn drain(mut self) -> io::Result<(usize, BlobId)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.count, BlobId::from(self.hasher.finalize())))
    }
}

impl<R: io::Read> io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n;
        Ok(n)
    }
}

/// Decodes stored bytes read from `at` and checks them against `id`.
pub fn decode_blob(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    stored: Vec<u8>,
) -> Result<Vec<u8>, PackError> {
    let vault = backend.vault();
    if vault.is_encrypted() {
        return decode_slice(backend, id, at, &stored);
    }
    let dictionary = dictionary_for(backend, id, at)?;
    let raw = compress::decode_owned(
        at.compression,
        stored,
        at.raw_len as usize,
        dictionary.as_deref(),
    );
    checked(vault, id, at, raw)
}

/// [`decode_blob`] for stored bytes that are part of a larger read: a
/// compressed blob is decoded straight from them, without a copy first.
pub(super) fn decode_slice(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
) -> Result<Vec<u8>, PackError> {
    let vault = backend.vault();
    let inner = unseal(vault, id, at, stored)?;
    let dictionary = dictionary_for(backend, id, at)?;
    let (raw_len, dictionary) = (at.raw_len as usize, dictionary.as_deref());
    let raw = match inner {
        std::borrow::Cow::Owned(owned) => {
            compress::decode_owned(at.compression, owned, raw_len, dictionary)
        }
        std::borrow::Cow::Borrowed(slice) => {
            compress::decode(at.compression, slice, raw_len, dictionary)
        }
    };
    checked(vault, id, at, raw)
}

/// As [`decode_slice`], into `out`, which is the blob's raw length.
pub(super) fn decode_slice_into(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
    out: &mut [u8],
) -> Result<(), PackError> {
    let vault = backend.vault();
    let inner = unseal(vault, id, at, stored)?;
    let dictionary = dictionary_for(backend, id, at)?;
    compress::decode_into(at.compression, &inner, out, dictionary.as_deref())
        .map_err(|source| decode_error(id, at, source))?;
    check_id(vault, id, at, out)
}

/// The decoded blob, if it decoded and its BLAKE3 is `id`.
fn checked(
    vault: &Vault,
    id: &BlobId,
    at: &BlobLocation,
    raw: Result<Vec<u8>, compress::DecodeError>,
) -> Result<Vec<u8>, PackError> {
    let raw = raw.map_err(|source| decode_error(id, at, source))?;
    check_id(vault, id, at, &raw)?;
    Ok(raw)
}

fn decode_error(id: &BlobId, at: &BlobLocation, source: compress::DecodeError) -> PackError {
    PackError::Decode {
        blob: *id,
        pack: at.pack,
        source,
    }
}

/// Whether `raw`'s BLAKE3 (keyed in an encrypted store) is `id`.
fn check_id(vault: &Vault, id: &BlobId, at: &BlobLocation, raw: &[u8]) -> Result<(), PackError> {
    let actual = BlobId::from(vault.hash(raw));
    if actual != *id {
        return Err(PackError::HashMismatch {
            blob: *id,
            pack: at.pack,
            actual,
        });
    }
    Ok(())
}

/// Checks stored bytes read from `at` against `id` without keeping the
/// decoded blob: for copying blobs as stored (repacking) after proving them.
pub fn check_stored(
    backend: &Backend,
    id: &BlobId,
    at: &BlobLocation,
    stored: &[u8],
) -> Result<(), PackError> {
    let vault = backend.vault();
    let stored = unseal(vault, id, at, stored)?;
    let actual = match at.compression {
        Compression::None if stored.len() == at.raw_len as usize => {
            BlobId::from(vault.hash(&stored))
        }
        _ => {
            let dictionary = dictionary_for(backend, id, at)?;
            let raw_len = at.raw_len as usize;
            let raw = compress::decode(at.compression, &stored, raw_len, dictionary.as_deref())
                .map_err(|source| decode_error(id, at, source))?;
            BlobId::from(vault.hash(&raw))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::test_location as at;

    #[test]
    fn a_streamed_blob_is_checked_for_its_length_and_hash_whatever_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::local(dir.path(), 0o600);
        let raw: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let packed = zstd::bulk::compress(&raw, 3).unwrap();
        let pack = PackId::from_bytes([7; 32]);
        let path = dir.path().join(key(&pack));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, [&b"pad"[..], &packed].concat()).unwrap();
        let at = BlobLocation {
            offset: 3,
            stored_len: packed.len() as u32,
            raw_len: raw.len() as u32,
            compression: Compression::Zstd,
            ..at(7, 0, 0)
        };
        let id = BlobId::of(&raw);
        let first_ten = |r: &mut dyn io::Read| {
            let mut head = vec![0u8; 10];
            r.read_exact(&mut head).map(|()| head)
        };
        let head = read_blob_streaming(&backend, &id, &at, first_ten).unwrap();
        assert_eq!(head.unwrap(), raw[..10]);
        let other = BlobId::of(b"other");
        let wrong = read_blob_streaming(&backend, &other, &at, first_ten);
        assert!(matches!(wrong, Err(PackError::HashMismatch { .. })));
        for raw_len in [raw.len() - 1, raw.len() + 1] {
            let at = BlobLocation {
                raw_len: raw_len as u32,
                ..at
            };
            let wrong = read_blob_streaming(&backend, &id, &at, first_ten);
            assert!(matches!(wrong, Err(PackError::Decode { .. })), "{raw_len}");
        }
    }
}
