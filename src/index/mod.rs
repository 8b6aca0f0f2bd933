//! Index objects: `index/ID`, small immutable objects that say which packs
//! the store holds and which blobs are in each, so that any host builds its
//! catalog with one GET per index object instead of one per pack.
//!
//! What must hold: an index object names only packs that were durable in
//! the store before it was written (a pack is uploaded, then indexed), and
//! it is written before any snapshot record that needs those packs. Every
//! commit writes one (a long snapshot one per batch of packs, so a run that
//! dies leaves what it uploaded indexed for the next run to reuse); prune
//! writes new ones for the packs it keeps before it deletes what they
//! supersede. Pack headers stay the fallback that `repair catalog` reads.

pub mod format;

use crate::backend::{Backend, BackendError};
use crate::id::{IndexId, is_hex_prefix};

pub use format::{IndexFormatError, IndexedPack};

impl From<crate::pack::writer::PublishedPack> for IndexedPack {
    fn from(pack: crate::pack::writer::PublishedPack) -> Self {
        Self {
            id: pack.id,
            size: pack.size,
            entries: pack.entries,
        }
    }
}

/// Largest index object a reader accepts (about 1.2 million blobs).
pub const MAX_INDEX_LEN: u64 = 64 << 20;
/// Largest index object a writer makes, encoded (about 80,000 blobs; a
/// pack whose record alone is larger goes in an object of its own). A
/// limit in packs let a store of small blobs (SQLite pages: 8,000 to a
/// pack) write objects past [`MAX_INDEX_LEN`], which no reader accepts;
/// and every object is held whole by whoever writes or reads it.
pub const TARGET_LEN: usize = 4 << 20;

// The fullest pack's record fits the largest object a reader accepts
// (with room to spare for an encrypted object's seal and for the blob
// `seal_unlike` may add to a pack).
const _: () = assert!(
    format::HEAD_LEN
        + format::RECORD_HEAD_LEN
        + crate::pack::writer::MAX_BLOBS * crate::pack::format::ENTRY_LEN
        + crate::pack::format::TRAILER_LEN
        <= MAX_INDEX_LEN as usize
);

/// `packs` cut, in order, into the runs that each become one index
/// object: at most [`TARGET_LEN`] bytes encoded, or one pack.
pub fn batches(packs: &[IndexedPack]) -> Vec<&[IndexedPack]> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (i, pack) in packs.iter().enumerate() {
        let record = format::record_len(pack);
        if closes(i - start, len, record) {
            out.push(&packs[start..i]);
            (start, len) = (i, 0);
        }
        len += record;
    }
    if start < packs.len() {
        out.push(&packs[start..]);
    }
    out
}

/// Whether an object of `count` packs whose records take `len` bytes is
/// closed before a record of `record` bytes: it would pass [`TARGET_LEN`].
fn closes(count: usize, len: usize, record: usize) -> bool {
    count > 0 && format::HEAD_LEN + len + record > TARGET_LEN
}

/// Packs gathered a pack at a time into the objects [`batches`] would cut
/// them into: for a writer that would otherwise hold every pack's entries
/// at once.
#[derive(Debug, Default)]
pub struct Batcher {
    packs: Vec<IndexedPack>,
    len: usize,
}

impl Batcher {
    /// Adds `pack`; returns the packs of the object it closed, if any.
    pub fn push(&mut self, pack: IndexedPack) -> Option<Vec<IndexedPack>> {
        let record = format::record_len(&pack);
        let full = if closes(self.packs.len(), self.len, record) {
            self.take()
        } else {
            None
        };
        self.len += record;
        self.packs.push(pack);
        full
    }

    /// Closes the object being gathered (the last one); its packs, if any.
    pub fn take(&mut self) -> Option<Vec<IndexedPack>> {
        self.len = 0;
        Some(std::mem::take(&mut self.packs)).filter(|packs| !packs.is_empty())
    }
}

/// Why an index object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The bytes do not hash to the id in the object's name.
    #[error("index/{id}: content does not match its id (hash {actual})")]
    IdMismatch {
        /// The id in the name.
        id: IndexId,
        /// The hash of the bytes.
        actual: IndexId,
    },
    /// The object is larger than any reader accepts ([`MAX_INDEX_LEN`]):
    /// damage, or an object an earlier cairn wrote before it kept them to
    /// [`TARGET_LEN`]; `repair catalog` indexes its packs again.
    #[error("{error}")]
    TooLarge {
        /// The object.
        id: IndexId,
        /// What the read said.
        error: BackendError,
    },
    /// The object does not open with the store's key: altered, or not
    /// what belongs under this name.
    #[error("index/{id}: {source}")]
    Sealed {
        /// The object.
        id: IndexId,
        /// What the cipher said.
        #[source]
        source: crate::crypt::CryptError,
    },
    /// The bytes are not an index object.
    #[error("index/{id}: {source}")]
    Format {
        /// The object.
        id: IndexId,
        /// What is wrong.
        #[source]
        source: IndexFormatError,
    },
}

/// The store key of an index object.
pub fn key(id: &IndexId) -> String {
    format!("index/{id}")
}

/// What `index/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Index objects, by id.
    pub objects: Vec<IndexId>,
    /// Keys under `index/` that are not index objects.
    pub strays: Vec<String>,
}

/// Lists `index/`. A failed listing is an error, never a short list.
pub fn list(backend: &Backend) -> Result<Listing, BackendError> {
    let mut out = Listing::default();
    for object in backend.list("index/")? {
        let name = object.key.trim_start_matches("index/");
        match name.parse::<IndexId>() {
            Ok(id) if is_hex_prefix(name) => out.objects.push(id),
            _ => out.strays.push(object.key),
        }
    }
    Ok(out)
}

/// Writes an index object describing `packs`, all of them durable in the
/// store; returns its id. Writing the same object twice is harmless.
pub fn write(backend: &Backend, packs: &[IndexedPack]) -> Result<IndexId, BackendError> {
    let bytes = format::encode(packs);
    let id = IndexId::from(backend.vault().hash(&bytes));
    backend.create_sealed(&key(&id), bytes)?;
    crate::crash::point("index-written");
    Ok(id)
}

/// Reads and checks index object `id`.
pub fn read(backend: &Backend, id: &IndexId) -> Result<Vec<IndexedPack>, IndexError> {
    let bytes = match backend.get_sealed(&key(id), MAX_INDEX_LEN) {
        Err(error) if error.is_too_large() => return Err(IndexError::TooLarge { id: *id, error }),
        read => read?.map_err(|source| IndexError::Sealed { id: *id, source })?,
    };
    let actual = IndexId::from(backend.vault().hash(&bytes));
    if actual != *id {
        return Err(IndexError::IdMismatch { id: *id, actual });
    }
    format::decode(&bytes, backend.vault().overhead())
        .map_err(|source| IndexError::Format { id: *id, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;
    use crate::id::{BlobId, PackId};
    use crate::pack::format::{BlobKind, PackEntry};

    /// A pack of `blobs` one-byte blobs, as an index object describes it.
    fn pack_of(seed: u32, blobs: u32) -> IndexedPack {
        let entries = (0..blobs)
            .map(|i| PackEntry {
                kind: BlobKind::Data,
                id: BlobId::of(&[seed.to_le_bytes(), i.to_le_bytes()].concat()),
                offset: u64::from(i),
                stored_len: 1,
                raw_len: 1,
                compression: Compression::None,
            })
            .collect();
        IndexedPack {
            id: PackId::of(&seed.to_le_bytes()),
            size: u64::from(blobs) + u64::from(blobs) * 52 + 48,
            entries,
        }
    }

    #[test]
    fn packs_of_many_small_blobs_are_indexed_in_objects_of_at_most_the_target_size() {
        // 8,000 blobs to a pack, as a SQLite store's packs hold: 26 packs
        // already exceed the target, where a limit of 4,096 packs per
        // object once let objects grow past what a reader accepts.
        let packs: Vec<IndexedPack> = (0..40).map(|seed| pack_of(seed, 8000)).collect();
        let batches = batches(&packs);
        assert!(batches.len() > 1);
        for batch in &batches {
            let bytes = format::encode(batch);
            assert!(bytes.len() <= TARGET_LEN, "{} bytes", bytes.len());
            assert_eq!(format::decode(&bytes, 0).unwrap(), *batch);
        }
        let again: Vec<&IndexedPack> = batches.iter().flat_map(|b| b.iter()).collect();
        assert!(
            again.iter().copied().eq(packs.iter()),
            "every pack once, in order"
        );

        let mut batcher = Batcher::default();
        let mut gathered: Vec<Vec<IndexedPack>> = packs
            .iter()
            .filter_map(|p| batcher.push(p.clone()))
            .collect();
        gathered.extend(batcher.take());
        assert!(gathered.iter().map(Vec::as_slice).eq(batches));
    }

    #[test]
    fn a_pack_whose_record_alone_exceeds_the_target_is_an_object_of_its_own() {
        let huge = pack_of(1, (TARGET_LEN / 52) as u32 + 1);
        let packs = vec![pack_of(0, 10), huge.clone(), pack_of(2, 10)];
        let sizes: Vec<usize> = batches(&packs).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(batches(&[]).is_empty());
        assert_eq!(batches(&[huge]).len(), 1);
    }
}
