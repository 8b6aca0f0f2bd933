//! Filling, sealing and publishing one pack.
//!
//! A pack is written sequentially into a staging file and hashed as it
//! goes. Sealing appends header and trailer; publishing makes it a durable
//! object under `packs/` (a local store fsyncs it, renames it into place
//! and fsyncs the directory; a remote one uploads it). Only a published
//! pack may be named by an index object or recorded in the catalog. After any I/O error the writer refuses
//! further work, and dropping an unsealed or unpublished pack deletes its
//! temporary file, so a failure never leaves a half pack visible.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;

use tempfile::{NamedTempFile, TempPath};

use super::format::{self, BlobKind, PackEntry};
use super::{PackError, key};
use crate::backend::{Backend, BackendError};
use crate::compress::{Compression, Encoded};
use crate::crash;
use crate::crypt::Vault;
use crate::id::{BlobId, PackId};
use crate::rawname::escaped;
use crate::store::Staging;

/// A pack being filled.
#[must_use = "unsealed packs are deleted on drop"]
pub struct PackWriter {
    /// The bare file, so that a write error is the OS's own and names the
    /// path once (in a `BackendError`), not twice as `NamedTempFile` would.
    out: HashedFile,
    /// Deletes the file when dropped, until the pack is published.
    path: TempPath,
    entries: Vec<PackEntry>,
    len: u64,
    kind: BlobKind,
    /// Seals the header (blobs come sealed).
    vault: Vault,
    failed: bool,
}

pub use super::format::MAX_BLOBS;

impl PackWriter {
    /// Starts an empty pack for blobs of `kind`, staged in `staging`.
    /// Blobs must be added sealed with `vault`, which seals the header.
    pub fn create(staging: &Staging, kind: BlobKind, vault: &Vault) -> Result<Self, PackError> {
        let (file, path) = staging.file()?.into_parts();
        Ok(Self {
            out: HashedFile::new(file),
            path,
            entries: Vec::new(),
            len: 0,
            kind,
            vault: vault.clone(),
            failed: false,
        })
    }

    /// Appends one blob.
    pub fn add(&mut self, id: BlobId, raw_len: u32, blob: &Encoded) -> Result<(), PackError> {
        self.add_stored(id, raw_len, blob.compression, &blob.bytes)
    }

    /// Appends one blob given as its stored bytes (already checked by the
    /// caller: a repack copies bytes it has verified).
    pub fn add_stored(
        &mut self,
        id: BlobId,
        raw_len: u32,
        compression: Compression,
        stored: &[u8],
    ) -> Result<(), PackError> {
        if self.failed {
            return Err(PackError::Poisoned);
        }
        let stored_len = stored.len() as u32;
        self.write(stored)?;
        self.entries.push(PackEntry {
            kind: self.kind,
            id,
            offset: self.len,
            stored_len,
            raw_len,
            compression,
        });
        self.len += u64::from(stored_len);
        Ok(())
    }

    /// Bytes of blob data written so far.
    pub fn data_len(&self) -> u64 {
        self.len
    }

    /// Whether the pack is full: `target` bytes of blob data, or
    /// [`MAX_BLOBS`] blobs.
    pub fn is_full(&self, target: u64) -> bool {
        self.len >= target || self.entries.len() >= MAX_BLOBS
    }

    /// Whether `blobs` more blobs of `bytes` fit before the pack is over
    /// `target` bytes or [`MAX_BLOBS`] blobs.
    pub fn has_room(&self, target: u64, blobs: usize, bytes: u64) -> bool {
        self.len + bytes <= target && self.entries.len() + blobs <= MAX_BLOBS
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes header and trailer and flushes: the pack is complete but still
    /// a temporary file.
    pub fn seal(mut self) -> Result<SealedPack, PackError> {
        if self.failed {
            return Err(PackError::Poisoned);
        }
        let tail = self.tail()?;
        self.write(&tail)?;
        let size = self.len + tail.len() as u64;
        let path = self.path;
        let (file, id) = self.out.finish().map_err(|source| BackendError {
            location: escaped(&path).to_string(),
            source,
        })?;
        Ok(SealedPack {
            id,
            kind: self.kind,
            entries: self.entries,
            size,
            file: NamedTempFile::from_parts(file, path),
        })
    }

    /// [`PackWriter::seal`], but never as one of the packs `avoid` names
    /// (condemned packs, which a prune deletes): a pack is named by its
    /// hash, so the blobs of a condemned pack stored again in the same
    /// order made that very pack, and the condemnation took the new copy
    /// down with the old. Such a pack gets one more blob, 16 random bytes
    /// that no tree names, which makes its bytes its own. (An encrypted
    /// pack is its own already: its envelopes hold random nonces.)
    pub fn seal_unlike(mut self, avoid: &HashSet<PackId>) -> Result<SealedPack, PackError> {
        if !avoid.is_empty() && !self.vault.is_encrypted() && avoid.contains(&self.id_if_sealed()?)
        {
            self.add_nonce()?;
        }
        self.seal()
    }

    /// The header and trailer that seal the pack as it is now.
    fn tail(&self) -> Result<Vec<u8>, PackError> {
        let header = format::encode_header(&self.entries);
        let mut tail = self.vault.seal_header(header).map_err(PackError::Seal)?;
        let version = match self.vault.is_encrypted() {
            true => format::SEALED_VERSION,
            false => format::VERSION,
        };
        tail.extend_from_slice(&format::encode_trailer(&tail, version));
        Ok(tail)
    }

    /// The id the pack would have if sealed now.
    fn id_if_sealed(&self) -> Result<PackId, PackError> {
        Ok(self.out.id_with(&self.tail()?))
    }

    /// Appends a blob of 16 random bytes.
    fn add_nonce(&mut self) -> Result<(), PackError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| {
            PackError::Io(BackendError {
                location: escaped(&self.path).to_string(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
        let id = BlobId::from(self.vault.hash(&nonce));
        self.add_stored(id, nonce.len() as u32, Compression::None, &nonce)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.out.write(bytes).map_err(|source| {
            self.failed = true;
            PackError::Io(BackendError {
                location: escaped(&self.path).to_string(),
                source,
            })
        })
    }
}

/// How many bytes [`HashedFile`] gathers before it hashes and writes them.
const BUFFER: usize = 1 << 20;

/// A file that is hashed as it is written, a buffer at a time: BLAKE3
/// hashes a large piece on all its SIMD lanes, but a blob of a few KiB one
/// 64-byte block at a time (128 MiB in 3 KiB pieces: 134 ms, against 30 ms
/// in 64 KiB ones), and a pack is mostly such blobs.
struct HashedFile {
    file: File,
    hasher: blake3::Hasher,
    pending: Vec<u8>,
}

impl HashedFile {
    fn new(file: File) -> Self {
        Self {
            file,
            hasher: blake3::Hasher::new(),
            pending: Vec::with_capacity(BUFFER),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.pending.len() + bytes.len() > BUFFER {
            self.flush()?;
        }
        if bytes.len() >= BUFFER {
            self.hasher.update(bytes);
            return self.file.write_all(bytes);
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hasher.update(&self.pending);
        self.file.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// The hash of everything written so far followed by `tail`.
    fn id_with(&self, tail: &[u8]) -> PackId {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.pending);
        hasher.update(tail);
        hasher.finalize().into()
    }

    /// Writes what is pending; returns the file and the hash of all of it.
    fn finish(mut self) -> std::io::Result<(File, PackId)> {
        self.flush()?;
        Ok((self.file, self.hasher.finalize().into()))
    }
}

/// A complete pack in `tmp/`, not yet visible in `packs/`.
#[must_use = "unpublished packs are deleted on drop"]
pub struct SealedPack {
    /// BLAKE3 of the whole file.
    pub id: PackId,
    /// Kind of every blob in it.
    pub kind: BlobKind,
    /// Its header.
    pub entries: Vec<PackEntry>,
    /// File size in bytes.
    pub size: u64,
    file: NamedTempFile,
}

impl SealedPack {
    /// Makes the pack a durable object under `packs/`. After this returns
    /// an index object may name it.
    pub fn publish(self, backend: &Backend) -> Result<PublishedPack, PackError> {
        crash::point("pack-written");
        backend.upload(&key(&self.id), self.file)?;
        crash::point("pack-published");
        Ok(PublishedPack {
            id: self.id,
            kind: self.kind,
            entries: self.entries,
            size: self.size,
        })
    }
}

/// A durable pack: what the catalog records.
#[derive(Debug, Clone)]
pub struct PublishedPack {
    /// BLAKE3 of the whole file.
    pub id: PackId,
    /// Kind of every blob in it.
    pub kind: BlobKind,
    /// Its header.
    pub entries: Vec<PackEntry>,
    /// File size in bytes.
    pub size: u64,
}

#[cfg(test)]
impl PublishedPack {
    /// A pack named by the hash of `seed` holding `ids`, 10 bytes each,
    /// uncompressed (for catalog tests: no file behind it).
    pub fn for_test(seed: &[u8], ids: &[BlobId]) -> Self {
        let entries = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackEntry {
                kind: BlobKind::Data,
                id: *id,
                offset: i as u64 * 10,
                stored_len: 10,
                raw_len: 10,
                compression: Compression::None,
            })
            .collect();
        Self {
            id: PackId::of(seed),
            kind: BlobKind::Data,
            entries,
            size: ids.len() as u64 * 10 + 100,
        }
    }
}

#[cfg(test)]
mod seal_tests {
    use super::*;

    /// Seals a pack of `blobs` (stored as given), unlike `avoid`.
    fn pack_of(staging: &Staging, blobs: &[&[u8]], avoid: &HashSet<PackId>) -> SealedPack {
        let mut writer = PackWriter::create(staging, BlobKind::Data, &Vault::plain()).unwrap();
        for blob in blobs {
            let len = blob.len() as u32;
            writer
                .add_stored(BlobId::of(blob), len, Compression::None, blob)
                .unwrap();
        }
        writer.seal_unlike(avoid).unwrap()
    }

    #[test]
    fn a_pack_that_would_be_a_condemned_one_gets_a_nonce_blob_and_an_id_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path().to_owned(), 0o600);
        let blobs: [&[u8]; 2] = [b"first blob", b"second blob"];
        let first = pack_of(&staging, &blobs, &HashSet::new());
        let same = pack_of(&staging, &blobs, &HashSet::new());
        assert_eq!(first.id, same.id, "packs are named by their bytes");
        let condemned = HashSet::from([first.id]);
        let unlike = pack_of(&staging, &blobs, &condemned);
        assert_ne!(unlike.id, first.id);
        assert_eq!(unlike.entries.len(), 3);
        assert_eq!(unlike.entries[..2], first.entries[..]);
        assert_eq!(unlike.entries[2].raw_len, 16);
    }
}
